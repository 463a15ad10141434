"""A token signs on its own worker thread while the signing service works out the unusual-quantity notice
(``sign_later``): the same signature checks, the same typed errors, the same session behaviour as ``sign``."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from sqlalchemy import select

from app.models.orderbook import AuditEvent
from app.models.states import OrderStatus
from app.services.keys.base import KeyAlgorithm, SignerClosed
from app.services.keys.pkcs11_store import Pkcs11KeyStore
from app.services.keys.session import SigningSession
from app.services.signing.cms import prepare_signed_document, sign_content
from app.services.signing.order_signing import OrderSigningService
from tests.factories import PURCHASER_DEA
from tests.hsm.test_signed_orders_both_stores import _certificate_for, world  # noqa: F401 - the shared fixture
from tests.integration.test_signing_notice import _usual
from tests.unit.orders.test_history import OXY_TABLETS

pytestmark = pytest.mark.hsm


@pytest.fixture
def token(hsm_token):
    store = Pkcs11KeyStore(hsm_token.module, token_label=hsm_token.label)
    ref = store.generate_key(algorithm=KeyAlgorithm.RSA_2048, label="sign-later", secret=hsm_token.pin)
    yield store, ref, hsm_token.pin
    store.close()


def test_sign_later_runs_on_the_worker_and_gives_what_sign_gives(token):
    store, ref, pin = token
    signer = store.open_signer(ref, secret=pin)
    try:
        caller = threading.get_ident()
        seen = []
        store._run(lambda: seen.append(threading.get_ident()))
        pending = signer.sign_later(b"order bytes")
        signature = pending.result()
        assert seen[0] != caller  # token calls stay on the one worker thread
        # RSA PKCS#1 v1.5 is deterministic: the same bytes as a waited-for signature, and they verify
        assert signature == signer.sign(b"order bytes")
        signer.public_key.verify(signature, b"order bytes", padding.PKCS1v15(), hashes.SHA256())
    finally:
        signer.close()
    with pytest.raises(SignerClosed):
        signer.sign_later(b"order bytes").result()


def test_the_cms_finished_with_a_later_signature_is_sign_contents(world, token):  # noqa: F811
    import datetime as dt

    from cryptography.hazmat.primitives.serialization import Encoding

    pki, _service, _verifier = world
    store, ref, pin = token
    signer = store.open_signer(ref, secret=pin)
    try:
        certificate = _certificate_for(pki, signer)
        der = certificate.public_bytes(Encoding.DER)
        intermediates = [c.public_bytes(Encoding.DER) for c in pki.intermediates]
        when = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.timezone.utc)
        unsigned = prepare_signed_document(b"ISA*content", algorithm=signer.signature_algorithm,
                                           certificate_der=der, intermediates_der=intermediates, signing_time=when)
        later = unsigned.with_signature(signer.sign_later(unsigned.to_sign).result())
        assert later == sign_content(b"ISA*content", signer=signer, certificate_der=der,
                                     intermediates_der=intermediates, signing_time=when)
    finally:
        signer.close()


def test_a_token_signed_order_records_the_notice_worked_out_while_the_token_signed(world, book, token):  # noqa: F811
    pki, _service, verifier = world
    store, ref, pin = token
    _usual(book)
    session = SigningSession(store, ref)
    session.unlock(pin)
    try:
        certificate = _certificate_for(pki, session.signer)
        order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
        book.add_line(order.id, ndc=OXY_TABLETS, packages=5)

        class SessionSigner:  # what the sign screen hands the service (app.ui.signing_sessions.SessionSigner)
            signature_algorithm = session.signer.signature_algorithm
            sign = staticmethod(session.sign)
            sign_later = staticmethod(session.sign_later)

        signed = OrderSigningService(book, verifier).sign(order.id, signer=SessionSigner(), certificate=certificate,
                                                          intermediates=pki.intermediates)
    finally:
        session.lock()
    assert signed.order.status is OrderStatus.SIGNED and verifier.verify(signed.document).accepted
    (notice,) = signed.notices
    with book.db.session() as db_session:
        event = db_session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                   .order_by(AuditEvent.id.desc())).first()
    assert event.details["unusual_quantity"] == [notice.to_json()]


def test_a_session_whose_token_signer_fails_later_locks_as_after_sign(token):
    store, ref, pin = token
    session = SigningSession(store, ref)
    session.unlock(pin)
    session._signer.close()  # the token session is gone under the signing session (as after a lost token)
    pending = session.sign_later(b"order bytes")
    with pytest.raises(SignerClosed):
        pending.result()
    assert not session.is_unlocked
    session.unlock(pin)
    try:
        signature = session.sign_later(b"order bytes").result()
        assert signature == session.sign(b"order bytes")
    finally:
        session.lock()
