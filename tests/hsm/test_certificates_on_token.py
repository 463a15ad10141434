"""Certificate records for keys on a real SoftHSM token: keygen on the token, CSR, install binds to the token key,
the chosen certificate signs an order through the token, token keys are never exported."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from app.config import AppConfig, Profile
from app.models.orderbook import CertificateStatus
from app.services.certificates.book import CertificateBook
from app.services.certificates.profile import SubscriberIdentity
from app.services.keys import KeyAlgorithm, WrongPin
from app.services.signing.order_signing import OrderSigningService
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import PURCHASER_DEA, draft_order, seed
from tests.pki import build_training_pki

pytestmark = pytest.mark.hsm

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"), now=NOW)


@pytest.fixture
def certs(db, book, tmp_path, hsm_token, pki):
    seed(book)
    config = AppConfig(profile=Profile.TRAINING, data_dir=tmp_path / "data", database_url=db.url,
                       settings={"pkcs11_modules": [hsm_token.module], "pkcs11_token_label": hsm_token.label})
    with CertificateBook(db, config, clock=lambda: NOW, environ={}, trust_roots=pki.trust_roots) as book_of_certs:
        yield book_of_certs


def enroll_on_token(certs, pki, hsm_token, algorithm: KeyAlgorithm, serial: str):
    ref = certs.keygen(store="token", algorithm=algorithm, label=f"pat {serial}", secret=hsm_token.pin)
    csr = certs.make_csr(ref, secret=hsm_token.pin, full_name="Pat Purchaser", email="pat@example.com",
                         registrant_name="Main Street Pharmacy", subject_serial=serial)
    cert = pki.sub.issue_signing_certificate(
        csr, subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", serial),
        registration=pki.registration(dea=PURCHASER_DEA), now=NOW)
    return ref, cert


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.EC_P256, KeyAlgorithm.RSA_2048])
def test_a_token_key_gets_its_certificate_and_signs_an_order(certs, pki, hsm_token, book, db, algorithm):
    ref, cert = enroll_on_token(certs, pki, hsm_token, algorithm, serial="70080090")
    (pending,) = certs.list()
    assert pending.status is CertificateStatus.PENDING
    assert pending.key_ref["token"]["label"] == hsm_token.label
    assert pending.key_ref["module"] == os.path.abspath(hsm_token.module)

    chain = cert.public_bytes(serialization.Encoding.PEM) + pki.sub.certificate.public_bytes(
        serialization.Encoding.PEM)
    record = certs.install(chain)  # no PIN: the certificate is a public object on the token
    assert record.id == pending.id and record.status is CertificateStatus.ACTIVE
    assert record.key_ref["key_id"] == ref.key_id and record.key_ref["store"] == "pkcs11"
    token_store = certs.store_for(ref)
    assert token_store.load_certificate(ref) == cert.public_bytes(serialization.Encoding.DER)

    order = draft_order(book)
    chosen = certs.signing_certificate_for(order.registration.dea_number, at=NOW)
    assert chosen.id == record.id
    certificate, intermediates = certs.chain(chosen)
    verifier = OrderVerifier(
        validation=CertificateValidationService(trust_roots=pki.trust_roots),
        catalog=MappingSchedules.from_database(db), crls=[pki.crl(pki.root), pki.crl(pki.sub)], fetch_crls=False,
        clock=lambda: NOW)
    with pytest.raises(WrongPin):
        certs.open_signer(chosen, secret="999999")
    with certs.open_signer(chosen, secret=hsm_token.pin) as signer:
        signed = OrderSigningService(book, verifier, clock=lambda: NOW).sign(
            order.id, signer=signer, certificate=certificate, intermediates=intermediates, now=NOW)
    assert signed.verdict.accepted, signed.verdict.reasons
    assert signed.order.signer_fingerprint == cert.fingerprint(hashes.SHA256()).hex()

    with pytest.raises(Exception) as err:
        certs.export_p12(record.fingerprint, secret=hsm_token.pin, export_password="Quartz-Meadow-1188!p",
                         path=certs.config.data_dir / "never.p12", acknowledge_backup_risk=True)
    assert err.value.code == "key.not_exportable"
    assert not (certs.config.data_dir / "never.p12").exists()


def test_install_finds_the_token_key_without_a_pending_record(certs, pki, hsm_token, db, tmp_path):
    ref, cert = enroll_on_token(certs, pki, hsm_token, KeyAlgorithm.EC_P256, serial="70080091")
    # A second workstation (fresh order book, same token): install must search the token itself.
    from app.models.database import open_database, sqlite_url

    other_db = open_database(sqlite_url(tmp_path / "other.sqlite3"))
    try:
        config = AppConfig(profile=Profile.TRAINING, data_dir=tmp_path / "other", database_url=other_db.url,
                           settings={"pkcs11_modules": [hsm_token.module]})
        with CertificateBook(other_db, config, clock=lambda: NOW, environ={}, trust_roots=pki.trust_roots,
                             intermediates=pki.intermediates) as elsewhere:
            record = elsewhere.install(cert.public_bytes(serialization.Encoding.DER))
            assert record.key_ref["key_id"] == ref.key_id
            assert record.key_ref["token"]["serial"] == ref.token.serial
            assert record.registration is None  # that order book has no registrations yet
            tokens = {t.label: t for t in elsewhere.list_tokens()}
            assert tokens[hsm_token.label].serial == ref.token.serial
    finally:
        other_db.close()


def test_keygen_on_a_token_that_is_not_there_is_a_typed_error(certs):
    with pytest.raises(Exception) as err:
        certs.keygen(store="token", algorithm=KeyAlgorithm.EC_P256, label="nowhere", secret="123456",
                     token_label="no-such-token")
    assert err.value.code == "key.token_not_found"
    assert certs.list() == []


def test_csr_from_a_token_key_verifies_with_openssl(certs, pki, hsm_token, tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI missing")
    ref = certs.keygen(store="token", algorithm=KeyAlgorithm.RSA_2048, label="pat openssl", secret=hsm_token.pin)
    der = certs.make_csr(ref, secret=hsm_token.pin, full_name="Pat Purchaser", email="pat@example.com",
                         registrant_name="Main Street Pharmacy", subject_serial="70080092")
    path = tmp_path / "req.der"
    path.write_bytes(der)
    done = subprocess.run(["openssl", "req", "-in", str(path), "-inform", "DER", "-verify", "-noout"],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert x509.load_der_x509_csr(der).public_key().public_numbers() == certs.store_for(ref).public_key(
        ref).public_numbers()
