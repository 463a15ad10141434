"""The token is pulled out between two orders of one signing session (issue 9/10, fault suite): the second order gets a
typed, plain-language error, stays a draft with nothing stored, and the order book's records stay clean."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models.orderbook import AuditEvent
from app.models.states import OrderStatus
from app.services.keys.base import KeyAlgorithm, TokenRemoved
from app.services.keys.pkcs11_store import Pkcs11KeyStore
from app.services.orders.records import check_records
from app.services.keys.session import SigningSession
from tests.factories import draft_order
from tests.hsm.test_signed_orders_both_stores import _certificate_for, world  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.hsm


def test_token_removed_during_signing_leaves_the_order_a_draft_and_the_records_clean(world, book, hsm_token,  # noqa: F811
                                                                                      softhsm):
    pki, service, verifier = world
    # A spare token made before the PKCS#11 library was loaded (SoftHSM lists tokens only at C_Initialize).
    LABEL, PIN = softhsm.spare["pulled_while_signing"]  # noqa: N806
    with Pkcs11KeyStore(hsm_token.module, token_label=LABEL) as store:
        serial = store.find_token(label=LABEL).serial
        ref = store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="pulled", secret=PIN)
        session = SigningSession(store, ref)
        session.unlock(PIN)
        signer = store.open_signer(ref, secret=PIN)
        certificate = _certificate_for(pki, signer)
        signer.close()
        first, second = draft_order(book, lines=2), draft_order(book, lines=2)
        signed = service.sign(first.id, signer=session.signer, certificate=certificate, intermediates=pki.intermediates)
        assert signed.order.status is OrderStatus.SIGNED
        with book.db.session() as db_session:
            audit_entries = len(db_session.scalars(select(AuditEvent)).all())

        softhsm.delete_token(serial)  # pulled out while the session is still open
        with pytest.raises(TokenRemoved) as raised:
            service.sign(second.id, signer=session.signer, certificate=certificate, intermediates=pki.intermediates)
        assert raised.value.code == "key.token_removed"
        assert "Traceback" not in raised.value.message and PIN not in raised.value.message

    after = book.get_order(second.id)
    assert after.status is OrderStatus.DRAFT and after.signed_document is None and after.signed_at is None
    assert book.get_order(first.id).signed_document == signed.document  # the earlier order is untouched
    with book.db.session() as db_session:
        assert len(db_session.scalars(select(AuditEvent)).all()) == audit_entries  # nothing half-written
    report = check_records(book.db, verifier=verifier)
    assert report.clean, report.problems
    assert report.signatures_checked == 1
