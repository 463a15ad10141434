"""A software key and a SoftHSM token produce equally valid signed orders through one code path (issue 3/10)."""

from __future__ import annotations

import datetime as dt
import subprocess

import pytest

from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.profile import RegistrationFacts, SubscriberIdentity
from app.services.keys.base import KeyAlgorithm
from app.services.keys.pkcs11_store import Pkcs11KeyStore
from app.services.keys.software import SoftwareKeyStore
from app.services.signing.order_signing import OrderSigningService
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.models.values import DeaNumber, Schedule
from tests.factories import PURCHASER_DEA, draft_order, seed
from tests.pki import build_training_pki, make_csr, serve_directory

pytestmark = pytest.mark.hsm
PASSWORD = "Correct-Horse-Battery-9"


@pytest.fixture
def world(book, tmp_path):
    seed(book)
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=CrlCache(tmp_path / "crl-cache"))
        verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
        yield pki, OrderSigningService(book, verifier), verifier


def _certificate_for(pki, signer):
    registration = RegistrationFacts(
        dea_number=DeaNumber.parse(PURCHASER_DEA), registrant_name="Main Street Pharmacy",
        address_lines=("1 Main St", "Springfield IL 62701"), business_activity="RETAIL PHARMACY",
        schedules=frozenset({Schedule.II, Schedule.IIN, Schedule.III, Schedule.IIIN, Schedule.IV, Schedule.V}),
        expires=pki.now + dt.timedelta(days=365))
    subscriber = SubscriberIdentity(full_name="Pat Purchaser", email="pat@example.org", serial="1234567")
    return pki.sub.issue_signing_certificate(make_csr(signer.as_private_key()), subscriber=subscriber,
                                             registration=registration)


@pytest.mark.parametrize("store_kind, algorithm", [("software", KeyAlgorithm.RSA_2048),
                                                   ("software", KeyAlgorithm.EC_P256),
                                                   ("token", KeyAlgorithm.RSA_2048),
                                                   ("token", KeyAlgorithm.EC_P256)])
def test_signed_orders_are_equally_valid(world, book, hsm_token, tmp_path, store_kind, algorithm):
    pki, service, verifier = world
    if store_kind == "software":
        store = SoftwareKeyStore(tmp_path / "keys")
        secret = PASSWORD
    else:
        store = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
        secret = hsm_token.pin
    ref = store.generate_key(algorithm=algorithm, label=f"order-signing-{algorithm.name}", secret=secret)
    signer = store.open_signer(ref, secret=secret)
    try:
        certificate = _certificate_for(pki, signer)
        order = draft_order(book, lines=3)
        signed = service.sign(order.id, signer=signer, certificate=certificate, intermediates=pki.intermediates)
    finally:
        signer.close()
        if store_kind == "token":
            store.close()
    assert signed.order.status is OrderStatus.SIGNED
    assert signed.order.signed_document == signed.document  # stored exactly as it will be transmitted
    assert book.get_order(order.id).signed_document == signed.document  # ... in the order book, not only in memory
    assert verifier.verify(signed.document).accepted
    path = tmp_path / "order.csos"
    path.write_bytes(signed.document)
    done = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(path),
                           "-CAfile", str(pki.trust_bundle), "-purpose", "any", "-out", str(tmp_path / "o.x12")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o.x12").read_bytes() == signed.content
    assert b"BEG*00*SA*" + signed.order.order_number.encode() in signed.content


@pytest.mark.parametrize("algorithm", [KeyAlgorithm.RSA_2048, KeyAlgorithm.EC_P256])
def test_a_token_key_that_does_not_match_the_certificate_signs_nothing(world, book, hsm_token, algorithm):
    """The final check of the exact bytes catches a token key that is not the certificate's (e.g. the wrong key
    picked on a token holding several): the signature is refused and nothing is stored."""
    from app.services.signing.order_signing import PreSignCheckFailed

    pki, service, _ = world
    store = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
    try:
        first = store.open_signer(store.generate_key(algorithm=algorithm, label=f"first-{algorithm.name}",
                                                     secret=hsm_token.pin), secret=hsm_token.pin)
        other = store.open_signer(store.generate_key(algorithm=algorithm, label=f"other-{algorithm.name}",
                                                     secret=hsm_token.pin), secret=hsm_token.pin)
        certificate = _certificate_for(pki, first)
        order = draft_order(book, lines=2)
        with pytest.raises(PreSignCheckFailed) as caught:
            service.sign(order.id, signer=other, certificate=certificate, intermediates=pki.intermediates)
        first.close()
        other.close()
    finally:
        store.close()
    assert [reason.code for reason in caught.value.reasons] == ["signature_invalid"]
    after = book.get_order(order.id)
    assert after.status is OrderStatus.DRAFT and after.signed_document is None
