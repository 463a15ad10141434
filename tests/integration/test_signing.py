"""Signing service: the pre-sign check and the clock rule stop a bad signature before it exists (S1, K6)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent
from app.models.states import OrderStatus
from app.models.values import Schedule
from app.sandbox.sntp import SntpServer
from app.services.clock import ClockOff, check_clock
from app.services.crl_cache import CrlCache
from app.services.signing import NotDraft, OrderSigningService, PreSignCheckFailed
from app.services.validation import CertificateValidationService
from app.services.verifier import MappingSchedules, OrderVerifier
from tests.factories import draft_order, seed
from tests.pki import OTHER_DEA, build_training_pki, serve_directory
from tests.signers import KeySigner


@pytest.fixture
def world(book, tmp_path):
    seed(book)
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=CrlCache(tmp_path / "crl-cache"))
        verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
        yield pki, verifier


def _sign(book, service, pki, subscriber, order):
    return service.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                        intermediates=pki.intermediates)


def test_signing_stores_the_document_and_audits_it(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order = draft_order(book)
    signed = _sign(book, service, pki, pki.issue(), order)
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.SIGNED and stored.signed_document == signed.document
    assert stored.payload_sha256 and stored.signer_fingerprint and stored.signed_at
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                .order_by(AuditEvent.id.desc())).first()
        assert event.details["to"] == "signed" and "document_sha256" in event.details
        assert verify_audit_chain(session) == []
    with pytest.raises(NotDraft):
        _sign(book, service, pki, pki.issue(), order)


@pytest.mark.parametrize("issue_kwargs, code", [
    ({"dea": OTHER_DEA}, "dea_number_mismatch"),
    ({"schedules": {Schedule.IV, Schedule.V}}, "schedule_not_authorized"),
])
def test_the_pre_sign_check_refuses_and_nothing_is_signed(world, book, issue_kwargs, code):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    order = draft_order(book)
    subscriber = pki.issue(**issue_kwargs)
    verdict = service.check(order.id, certificate=subscriber.cert, intermediates=pki.intermediates)
    assert code in verdict.codes
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, subscriber, order)
    assert code in [reason.code for reason in caught.value.reasons]
    assert book.get_order(order.id).status is OrderStatus.DRAFT
    assert book.get_order(order.id).signed_document is None


def test_an_administrative_certificate_cannot_sign(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, pki.issue_admin(), draft_order(book))
    assert "not_signing_certificate" in [reason.code for reason in caught.value.reasons]


def test_an_order_without_lines_is_refused(world, book):
    pki, verifier = world
    service = OrderSigningService(book, verifier)
    with pytest.raises(PreSignCheckFailed) as caught:
        _sign(book, service, pki, pki.issue(), draft_order(book, lines=0))
    assert "missing_field:lines" in [reason.code for reason in caught.value.reasons]


@pytest.mark.parametrize("offset, blocked", [(30.0, False), (600.0, True), (-600.0, True)])
def test_a_clock_more_than_five_minutes_off_blocks_signing(world, book, offset, blocked):
    pki, verifier = world
    with SntpServer(offset=offset) as sntp:
        service = OrderSigningService(book, verifier,
                                      clock_check=lambda: check_clock(sntp.host, port=sntp.port, timeout=1))
        order = draft_order(book)
        if blocked:
            with pytest.raises(ClockOff) as caught:
                _sign(book, service, pki, pki.issue(), order)
            assert "5 minutes" in caught.value.message
            assert book.get_order(order.id).status is OrderStatus.DRAFT
        else:
            assert _sign(book, service, pki, pki.issue(), order).order.status is OrderStatus.SIGNED
