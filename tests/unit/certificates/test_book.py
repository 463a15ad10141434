"""Certificate records (issue 3, item 6): binding, superseding, registration matching, S1/S4 selection, statuses,
.p12 import/export -- real SQLite, real key files, certificates from the training CA, real CMS."""

from __future__ import annotations

import datetime as dt
import json
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from sqlalchemy import select

from app.config import AppConfig, Profile
from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent, CertificateRecord, CertificateStatus
from app.models.values import Schedule
from app.services.certificates.ca import new_subscriber_serial
from app.services.certificates.admission import CertificateRefused
from app.services.certificates.book import CertificateBook, NoSigningCertificate
from app.services.certificates.profile import CsosCertificate, SubscriberIdentity
from app.services.keys import CertificateNoMatchingKey, KeyAlgorithm, SoftwareKeyStore, WrongPassword
from app.services.signing.order_signing import OrderSigningService
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import PURCHASER_DEA, draft_order, seed
from tests.pki import OTHER_DEA, build_training_pki, new_key

NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
PASSWORD = "Harbor-Violet-3319!q"
NEW_PASSWORD = "Copper-Lantern-7720?z"
EXPORT_PASSWORD = "Saffron-Glacier-4406#m"
UNKNOWN_DEA = "FN5623740"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"), now=NOW)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """Three keys imported once per module (each key file costs a 600,000-round PBKDF2)."""
    store = SoftwareKeyStore(tmp_path_factory.mktemp("keys"))
    material = {"alice": new_key("rsa"), "bob": new_key("ec"), "carol": new_key("rsa")}
    refs = {name: store.import_private_key(key, label=name, secret=PASSWORD) for name, key in material.items()}
    return store, material, refs


@pytest.fixture
def certs(db, book, tmp_path, keys, pki):
    seed(book)  # registration BJ6125341 "Main Street Pharmacy", supplier, catalog
    book.add_registration(dea_number=OTHER_DEA, name="Second Street Pharmacy", address_lines=["2 Second St"],
                          city="Springfield", state="IL", postal_code="62702", schedules=["II", "IV"])
    config = AppConfig(profile=Profile.TRAINING, data_dir=tmp_path / "data", database_url=db.url)
    with CertificateBook(db, config, clock=lambda: NOW, environ={}, software_store=keys[0],
                         trust_roots=pki.trust_roots, intermediates=pki.intermediates) as book_of_certs:
        yield book_of_certs


def pem_chain(pki, issued) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM)
                    for c in (issued.cert, pki.sub.certificate, pki.root.certificate))


def issue(pki, keys, name, **kwargs):
    return pki.issue(key=keys[1][name], **kwargs)


def audit_actions(db) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


# ---------------------------------------------------------------------------------------------------------------------
# install


@pytest.mark.parametrize("form", ["pem_chain", "der", "pkcs7"])
def test_install_binds_the_certificate_to_its_key_in_every_file_form(certs, pki, keys, db, form):
    store, _, refs = keys
    issued = issue(pki, keys, "bob", schedules={Schedule.II, Schedule.IV})
    data = {
        "pem_chain": pem_chain(pki, issued),
        "der": issued.der,
        "pkcs7": pkcs7.serialize_certificates([issued.cert, pki.sub.certificate], serialization.Encoding.DER),
    }[form]
    record = certs.install(data)
    assert record.status is CertificateStatus.ACTIVE
    assert record.fingerprint == issued.cert.fingerprint(hashes.SHA256()).hex()
    assert record.key_ref["key_id"] == refs["bob"].key_id and record.key_ref["store"] == "software"
    assert record.kind == "signing" and record.registration.dea_number == PURCHASER_DEA
    assert record.schedules == "II,IV"
    assert record.not_after == issued.cert.not_valid_after_utc
    assert store.load_certificate(refs["bob"]) == issued.der  # kept with the key as well
    cert, intermediates = certs.chain(record)
    assert cert == issued.cert
    # The root never comes from the file: it is trusted only through the trust bundle. The chain stored is the path
    # to it, so a file with the certificate alone gets the intermediate known here.
    assert intermediates == [pki.sub.certificate]
    assert "certificate.installed" in audit_actions(db)
    with db.session() as session:
        assert verify_audit_chain(session) == []


def test_a_certificate_for_a_key_we_do_not_hold_is_refused_and_nothing_is_recorded(certs, pki):
    stranger = pki.issue(key=new_key("ec"))
    with pytest.raises(CertificateNoMatchingKey) as err:
        certs.install(pem_chain(pki, stranger))
    assert err.value.code == "certificate.no_matching_key"
    assert certs.list() == []


def test_an_unreadable_file_is_a_typed_error(certs):
    with pytest.raises(Exception) as err:
        certs.install(b"this is not a certificate")
    assert err.value.code == "certificate.unreadable"


def test_keygen_records_a_pending_key_and_its_csr_becomes_the_installed_certificate(db, tmp_path, pki):
    config = AppConfig(profile=Profile.TRAINING, data_dir=tmp_path / "own", database_url=db.url)
    with CertificateBook(db, config, clock=lambda: NOW, environ={}, trust_roots=pki.trust_roots) as certs:
        ref = certs.keygen(algorithm=KeyAlgorithm.EC_P256, label="Pat 2026", secret=PASSWORD)
        (pending,) = certs.list()
        assert pending.status is CertificateStatus.PENDING and pending.fingerprint is None
        assert pending.key_ref["key_id"] == ref.key_id
        assert certs.get(ref.key_id[:8]).id == pending.id  # a key without a certificate is found by key id
        found, module = certs.find_key(ref.key_id[:6])
        assert found == ref and module is None
        der = certs.make_csr(ref, secret=PASSWORD, full_name="Pat Purchaser", email="pat@example.com",
                             registrant_name="Main Street Pharmacy", subject_serial="100200300")
        csr = x509.load_der_x509_csr(der)
        assert csr.is_signature_valid
        assert csr.subject.rfc4514_string() == "2.5.4.5=100200300,CN=Pat Purchaser,O=Main Street Pharmacy,C=US"
        with pytest.raises(WrongPassword):
            certs.make_csr(ref, secret=NEW_PASSWORD, full_name="Pat Purchaser", email="pat@example.com",
                           registrant_name="Main Street Pharmacy", subject_serial="100200300")
        cert = pki.sub.issue_signing_certificate(
            der, subscriber=SubscriberIdentity("Pat Purchaser", "pat@example.com", "100200300"),
            registration=pki.registration(dea=PURCHASER_DEA), now=NOW)
        installed = certs.install(cert.public_bytes(serialization.Encoding.PEM)
                                  + pki.sub.certificate.public_bytes(serialization.Encoding.PEM))
        assert installed.id == pending.id and installed.status is CertificateStatus.ACTIVE
        assert installed.subscriber_name == "Pat Purchaser" and installed.email == "pat@example.com"
        assert (config.keys_dir / f"{ref.key_id}.key").exists()


# ---------------------------------------------------------------------------------------------------------------------
# superseding and registration matching


def test_a_renewed_certificate_supersedes_the_earlier_one_of_the_same_subscriber(certs, pki, keys, db):
    serial = new_subscriber_serial()
    first = certs.install(issue(pki, keys, "alice", serial=serial, not_after=NOW + dt.timedelta(days=200)).der)
    other_person = certs.install(issue(pki, keys, "carol", not_after=NOW + dt.timedelta(days=200)).der)
    renewed = certs.install(issue(pki, keys, "bob", serial=serial, not_after=NOW + dt.timedelta(days=400)).der)
    by_id = {r.id: r for r in certs.list()}
    assert by_id[first.id].status is CertificateStatus.SUPERSEDED
    assert by_id[first.id].superseded_by_id == renewed.id
    assert by_id[renewed.id].status is CertificateStatus.ACTIVE
    assert by_id[other_person.id].status is CertificateStatus.ACTIVE  # another subscriber is untouched
    assert "certificate.superseded" in audit_actions(db)
    # The same subscriber on ANOTHER registration is a separate certificate, not a renewal.
    elsewhere = certs.install(issue(pki, keys, "alice", serial=serial, dea=OTHER_DEA).der)
    assert certs.get(elsewhere.fingerprint).status is CertificateStatus.ACTIVE
    assert certs.get(renewed.fingerprint).status is CertificateStatus.ACTIVE


def test_installing_an_older_certificate_after_its_renewal_keeps_the_renewal_active(certs, pki, keys):
    serial = new_subscriber_serial()
    newer = certs.install(issue(pki, keys, "alice", serial=serial, not_after=NOW + dt.timedelta(days=400)).der)
    older = certs.install(issue(pki, keys, "bob", serial=serial, not_after=NOW + dt.timedelta(days=100)).der)
    assert older.status is CertificateStatus.SUPERSEDED and older.superseded_by_id == newer.id
    assert certs.get(newer.fingerprint).status is CertificateStatus.ACTIVE


@pytest.mark.parametrize("dea, expected", [(PURCHASER_DEA, PURCHASER_DEA), (OTHER_DEA, OTHER_DEA),
                                           (UNKNOWN_DEA, None)])
def test_the_registration_is_the_one_whose_dea_number_matches_the_certificate_hash(certs, pki, keys, dea, expected):
    record = certs.install(issue(pki, keys, "alice", dea=dea).der)
    assert (record.registration.dea_number if record.registration else None) == expected
    assert record.status is CertificateStatus.ACTIVE


# ---------------------------------------------------------------------------------------------------------------------
# which certificate signs (S1, S4)


def test_a_multi_registration_subscriber_never_signs_with_the_wrong_certificate(certs, pki, keys):
    serial = new_subscriber_serial()
    for_main = certs.install(issue(pki, keys, "alice", serial=serial, dea=PURCHASER_DEA).der)
    for_second = certs.install(issue(pki, keys, "bob", serial=serial, dea=OTHER_DEA).der)
    chosen_main = certs.signing_certificate_for(PURCHASER_DEA, at=NOW)
    chosen_second = certs.signing_certificate_for(OTHER_DEA.lower(), at=NOW)
    assert chosen_main.id == for_main.id and chosen_second.id == for_second.id
    assert CsosCertificate.from_der(chosen_main.certificate_der).matches_dea(PURCHASER_DEA)
    assert not CsosCertificate.from_der(chosen_main.certificate_der).matches_dea(OTHER_DEA)
    with pytest.raises(NoSigningCertificate) as err:
        certs.signing_certificate_for(UNKNOWN_DEA, at=NOW)
    assert err.value.code == "certificate.none_for_registration"
    assert err.value.message == f"No active CSOS signing certificate for {UNKNOWN_DEA}: enroll or install one."


def test_the_valid_certificate_with_the_latest_expiry_is_chosen(certs, pki, keys):
    short = certs.install(issue(pki, keys, "alice", not_after=NOW + dt.timedelta(days=30)).der)
    long = certs.install(issue(pki, keys, "bob", not_after=NOW + dt.timedelta(days=300)).der)
    assert certs.signing_certificate_for(PURCHASER_DEA, at=NOW).id == long.id
    # Before notBefore nothing is valid; after the long one ends nothing is either.
    with pytest.raises(NoSigningCertificate):
        certs.signing_certificate_for(PURCHASER_DEA, at=NOW - dt.timedelta(days=1))
    with pytest.raises(NoSigningCertificate):
        certs.signing_certificate_for(PURCHASER_DEA, at=NOW + dt.timedelta(days=301))
    assert short.status is CertificateStatus.ACTIVE


def test_a_coordinator_certificate_never_signs(certs, pki, keys):
    admin = pki.issue_admin(key=keys[1]["carol"], organization="Main Street Pharmacy")
    record = certs.install(admin.der)
    assert record.kind == "administrative" and record.schedules == ""
    assert record.registration.dea_number == PURCHASER_DEA  # linked by the registrant name in its subject
    with pytest.raises(NoSigningCertificate) as err:
        certs.signing_certificate_for(PURCHASER_DEA, at=NOW)
    assert err.value.code == "certificate.administrative_only"
    assert "cannot sign orders" in err.value.message


def test_revoked_and_expired_certificates_are_not_used(certs, pki, keys, db):
    soon = certs.install(issue(pki, keys, "alice", not_after=NOW + dt.timedelta(days=10)).der)
    revoked = certs.install(issue(pki, keys, "bob", not_after=NOW + dt.timedelta(days=300)).der)
    certs.mark_revoked(revoked.fingerprint[:10], reason="key_compromise")
    assert certs.get(revoked.fingerprint).status is CertificateStatus.REVOKED
    assert certs.signing_certificate_for(PURCHASER_DEA, at=NOW).id == soon.id
    assert certs.refresh_statuses(NOW + dt.timedelta(days=5)) == []
    changed = certs.refresh_statuses(NOW + dt.timedelta(days=11))
    assert [r.id for r in changed] == [soon.id]
    assert certs.get(soon.fingerprint).status is CertificateStatus.EXPIRED
    with pytest.raises(NoSigningCertificate):
        certs.signing_certificate_for(PURCHASER_DEA, at=NOW)
    # A revoked certificate cannot be brought back by installing it again.
    with pytest.raises(Exception) as err:
        certs.install(revoked.certificate_der)
    assert err.value.code == "certificate.not_reinstallable"
    assert {"certificate.revoked", "certificate.expired"} <= set(audit_actions(db))


def test_a_certificate_installed_after_its_expiry_is_recorded_as_expired(db, book, tmp_path, keys, pki):
    issued = issue(pki, keys, "carol", not_after=NOW + dt.timedelta(days=3))
    config = AppConfig(profile=Profile.TRAINING, data_dir=tmp_path / "data", database_url=db.url)
    with CertificateBook(db, config, clock=lambda: NOW + dt.timedelta(days=4), environ={},
                         software_store=keys[0], trust_roots=pki.trust_roots,
                         intermediates=pki.intermediates) as later:
        assert later.install(issued.der).status is CertificateStatus.EXPIRED


def test_get_by_prefix_explains_short_unknown_and_ambiguous_prefixes(certs, pki, keys):
    record = certs.install(issue(pki, keys, "alice").der)
    assert certs.get(record.fingerprint[:8].upper()).id == record.id
    for prefix, code in (("ab", "certificate.prefix_too_short"), ("0000000000", "certificate.not_found")):
        with pytest.raises(Exception) as err:
            certs.get(prefix)
        assert err.value.code == code
    second = certs.install(issue(pki, keys, "bob").der)
    common = next((n for n in range(4, 64) if record.fingerprint[:n] != second.fingerprint[:n]), 4) - 1
    if common >= 4:  # two random fingerprints rarely share 4 characters; only check when they do
        with pytest.raises(Exception) as err:
            certs.get(record.fingerprint[:common])
        assert err.value.code == "certificate.ambiguous"


# ---------------------------------------------------------------------------------------------------------------------
# end to end: the chosen certificate signs an order


def test_the_chosen_certificate_and_its_key_sign_an_order_the_supplier_accepts(certs, pki, keys, book, db):
    certs.install(pem_chain(pki, issue(pki, keys, "bob", dea=OTHER_DEA)))
    certs.install(pem_chain(pki, issue(pki, keys, "alice", dea=PURCHASER_DEA)))
    order = draft_order(book)
    record = certs.signing_certificate_for(order.registration.dea_number, at=NOW)
    certificate, intermediates = certs.chain(record)
    verifier = OrderVerifier(
        validation=CertificateValidationService(trust_roots=pki.trust_roots),
        catalog=MappingSchedules.from_database(db), crls=[pki.crl(pki.root), pki.crl(pki.sub)], fetch_crls=False,
        clock=lambda: NOW)
    with certs.open_signer(record, secret=PASSWORD) as signer:
        signed = OrderSigningService(book, verifier, clock=lambda: NOW).sign(
            order.id, signer=signer, certificate=certificate, intermediates=intermediates, now=NOW)
    assert signed.verdict.accepted, signed.verdict.reasons
    assert signed.order.signer_fingerprint == record.fingerprint
    assert verifier.verify(signed.document, now=NOW).accepted


# ---------------------------------------------------------------------------------------------------------------------
# .p12 import / export (K2)


def _p12(key, cert, chain, password: str) -> bytes:
    return pkcs12.serialize_key_and_certificates(b"pat", key, cert, chain,
                                                 serialization.BestAvailableEncryption(password.encode()))


def test_import_p12_keeps_the_key_under_a_new_password_and_records_the_certificate(certs, pki, db):
    key = new_key("rsa")
    issued = pki.issue(key=key)
    record = certs.import_p12(_p12(key, issued.cert, [pki.sub.certificate, pki.root.certificate], PASSWORD),
                              password=PASSWORD, new_secret=NEW_PASSWORD, label="Pat imported")
    assert record.status is CertificateStatus.ACTIVE and record.fingerprint == issued.csos.fingerprint
    _, intermediates = certs.chain(record)
    assert intermediates == [pki.sub.certificate]
    with certs.open_signer(record, secret=NEW_PASSWORD) as signer:
        issued.cert.public_key().verify(signer.sign(b"x"), b"x", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(WrongPassword):
        certs.open_signer(record, secret=PASSWORD)
    assert "certificate.imported" in audit_actions(db)


def test_a_p12_with_a_wrong_password_or_without_certificate_imports_nothing(certs, pki, keys):
    key = new_key("ec")
    data = _p12(key, pki.issue(key=key).cert, None, PASSWORD)
    files = sorted(keys[0].directory.iterdir())
    with pytest.raises(WrongPassword):
        certs.import_p12(data, password=NEW_PASSWORD, new_secret=NEW_PASSWORD, label="x")
    assert certs.list() == []
    with pytest.raises(CertificateRefused) as err:
        certs.import_p12(_p12(key, None, None, PASSWORD), password=PASSWORD, new_secret=NEW_PASSWORD,
                         label="key only")
    assert err.value.code == "certificate.key_only" and "Nothing was imported" in err.value.message
    assert certs.list() == [] and sorted(keys[0].directory.iterdir()) == files


def test_export_is_explicit_owner_only_and_leaves_no_secret_behind(certs, pki, keys, db, tmp_path):
    store, material, refs = keys
    record = certs.install(issue(pki, keys, "alice").der)
    target = tmp_path / "backup.p12"
    with pytest.raises(Exception) as err:
        certs.export_p12(record.fingerprint, secret=PASSWORD, export_password=EXPORT_PASSWORD, path=target)
    assert err.value.code == "key.export_not_acknowledged" and not target.exists()
    certs.export_p12(record.fingerprint, secret=PASSWORD, export_password=EXPORT_PASSWORD, path=target,
                     acknowledge_backup_risk=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    loaded = pkcs12.load_pkcs12(target.read_bytes(), EXPORT_PASSWORD.encode())
    assert loaded.cert.certificate.fingerprint(hashes.SHA256()).hex() == record.fingerprint
    assert loaded.key.private_numbers() == material["alice"].private_numbers()
    with db.session() as session:
        details = json.dumps([e.details for e in session.scalars(select(AuditEvent))])
    assert "certificate.key_exported" in audit_actions(db)
    for secret in (PASSWORD, EXPORT_PASSWORD):
        assert secret not in details
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("orderbook.sqlite3*"))  # the WAL too
    assert record.fingerprint.encode() in stored or record.certificate_der in stored  # the grep can see records
    assert all(secret.encode() not in stored for secret in (PASSWORD, EXPORT_PASSWORD))


def test_records_hold_no_private_key(certs, pki, keys, db):
    certs.install(issue(pki, keys, "alice").der)
    with db.session() as session:
        record = session.scalars(select(CertificateRecord)).one()
    text = json.dumps(record.key_ref)
    assert set(record.key_ref) == {"store", "key_id", "label", "algorithm"}
    assert "PRIVATE" not in text and b"PRIVATE" not in (record.chain_pem.encode() + record.certificate_der)


def test_a_certificate_outside_the_csos_profile_is_refused_before_anything_is_written(certs, pki, keys):
    from app.services.certificates.profile import OID_DEA_NUMBER_HASH

    store, material, refs = keys
    before = store.load_certificate(refs["carol"])
    broken = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Pat Purchaser")]))
        .issuer_name(pki.sub.certificate.subject)
        .public_key(material["carol"].public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.UnrecognizedExtension(OID_DEA_NUMBER_HASH, b"\x04\x02ab"), critical=False)
        .sign(pki.sub.key, hashes.SHA256())
    )
    with pytest.raises(Exception) as err:
        certs.install(broken.public_bytes(serialization.Encoding.DER))
    assert err.value.code == "certificate.not_csos" and "not a CSOS certificate" in err.value.message
    assert store.load_certificate(refs["carol"]) == before and certs.list() == []
