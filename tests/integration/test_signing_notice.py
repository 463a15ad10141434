"""The unusual-quantity notice at signing (issue 21): recorded in the signing's audit event with its figures, and
never a block — the order is signed whatever the notice says or if it cannot be worked out."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import PURCHASER_DEA, seed
from tests.pki import build_training_pki, serve_directory
from tests.signers import KeySigner
from tests.unit.orders.test_history import OXY_TABLETS, signed

UTC = dt.timezone.utc


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


def _months_back(count: int) -> dt.datetime:
    today = dt.datetime.now(UTC)
    index = today.year * 12 + today.month - 1 - count
    return dt.datetime(index // 12, index % 12 + 1, 10, 12, tzinfo=UTC)


def _usual(book, packages: int = 1) -> None:
    """One order of ``packages`` × 100 oxycodone tablets in each of the six months before this one."""
    for back in range(1, 7):
        signed(book, [(OXY_TABLETS, packages)], at=_months_back(back), status=OrderStatus.ACCEPTED)


def _sign_draft(book, service, pki, packages: int):
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(order.id, ndc=OXY_TABLETS, packages=packages)
    subscriber = pki.issue()
    result = service.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                          intermediates=pki.intermediates)
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                .order_by(AuditEvent.id.desc())).first()
        assert verify_audit_chain(session) == []
    return book.get_order(order.id), result, event


def test_an_unusual_order_is_signed_and_the_notice_is_audited_with_its_figures(world, book):
    pki, verifier = world
    _usual(book)
    stored, result, event = _sign_draft(book, OrderSigningService(book, verifier), pki, packages=5)
    assert stored.status is OrderStatus.SIGNED  # a notice, never a block
    (notice,) = result.notices
    assert event.details["to"] == "signed"
    (recorded,) = event.details["unusual_quantity"]
    assert recorded == notice.to_json()
    assert (recorded["substance"], recorded["this_order"], recorded["usual_monthly"], recorded["ratio"]) == \
        ("oxycodone", "500", "100.0", "5.0")
    assert recorded["message"].startswith("Oxycodone this month would be 5.0× your usual")


def test_a_usual_order_records_no_notice(world, book):
    pki, verifier = world
    _usual(book)
    _stored, result, event = _sign_draft(book, OrderSigningService(book, verifier), pki, packages=1)
    assert result.notices == [] and "unusual_quantity" not in event.details


def test_the_limit_from_settings_is_used_and_a_notice_that_cannot_be_worked_out_never_blocks(world, book):
    pki, verifier = world
    _usual(book, packages=10)
    limited = OrderSigningService(book, verifier, usage_settings={"monthly_limits": {PURCHASER_DEA:
                                                                                     {"oxycodone": "150"}}})
    _stored, result, event = _sign_draft(book, limited, pki, packages=2)
    assert [n["limit"] for n in event.details["unusual_quantity"]] == ["150"]
    broken = OrderSigningService(book, verifier, usage_settings={"time_zones": {PURCHASER_DEA: "Nowhere/Atlantis"}})
    stored, result, event = _sign_draft(book, broken, pki, packages=50)
    assert stored.status is OrderStatus.SIGNED and result.notices == []


def test_the_lines_signing_hands_the_notice_are_the_lines_it_would_read_itself(world, book):
    """Signing reads the draft once (draft_load) and passes its controlled lines to the notice: the same rows, so
    the same notices, as the notice's own query (a catalog product, one no longer in the catalog, a line that is
    not controlled, a product whose brand name is not its substance)."""
    from app.services.orders.history import _order_lines_statement, unusual_quantities
    from app.services.signing.draft_load import load_draft
    from tests.unit.orders.test_history import (
        AMOXICILLIN,
        OXY_OTHER_TABLETS,
        OXY_SOLUTION,
        add_more_oxycodone_products,
    )

    _usual(book)
    add_more_oxycodone_products(book)
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    for ndc, packages in ((OXY_TABLETS, 4), (AMOXICILLIN, 3), (OXY_OTHER_TABLETS, 2), (OXY_SOLUTION, 1)):
        book.add_line(order.id, ndc=ndc, packages=packages)
    with book.db.engine.begin() as connection:  # a product taken out of the catalog after the line was added
        connection.exec_driver_sql("UPDATE order_lines SET ndc = '99999999999' WHERE order_id = ? AND line_number = 4",
                                   (order.id,))
    draft = load_draft(book.db, order.id)
    with book.db.session() as session:
        own = [tuple(row) for row in session.execute(_order_lines_statement(), {"order_id": order.id})]
    assert sorted(draft.notice_lines(), key=repr) == sorted(own, key=repr) and len(own) == 3
    now = dt.datetime.now(UTC)
    given = unusual_quantities(book.db, order.id, now=now, lines=draft.notice_lines())
    assert given == unusual_quantities(book.db, order.id, now=now) and [n.substance for n in given] == ["oxycodone"]


def test_the_signed_order_returned_is_the_stored_order_detached(world, book):
    pki, verifier = world
    stored, result, _event = _sign_draft(book, OrderSigningService(book, verifier), pki, packages=2)
    order = result.order
    assert order is result.order  # built once
    for name in ("id", "order_number", "status", "signed_document", "signed_at", "signer_fingerprint",
                 "payload_sha256", "registration_id", "supplier_id", "created_at", "note", "replaces_order_id"):
        assert getattr(order, name) == getattr(stored, name), name
    assert order.registration.dea_number == stored.registration.dea_number == PURCHASER_DEA
    assert order.supplier.name == stored.supplier.name == "Acme Drug"
    assert [(line.id, line.line_number, line.ndc, line.packages, line.package_quantity, line.order is order)
            for line in order.lines] == [(line.id, line.line_number, line.ndc, line.packages, line.package_quantity,
                                          True) for line in stored.lines]
    with book.db.session() as session:  # detached with its identity: merged, never inserted a second time
        merged = session.merge(order, load=True)
        assert merged.id == stored.id and len(session.new) == 0


def _signing_event(book, order_id: int) -> dict:
    with book.db.session() as session:
        (details,) = [e.details for e in session.scalars(select(AuditEvent).where(AuditEvent.order_id == order_id))
                      if e.details.get("to") == "signed"]
        assert verify_audit_chain(session) == []
    return details


def _draft(book, packages: int) -> int:
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(order.id, ndc=OXY_TABLETS, packages=packages)
    return order.id


def test_the_notices_shown_before_the_password_are_the_ones_recorded(world, book):
    """The sign screen works the notice out before the password and signing records that one, with the moment it
    was worked out, instead of working it out again: what the signer decided on is what the audit trail keeps."""
    pki, verifier = world
    _usual(book)
    service = OrderSigningService(book, verifier)
    subscriber = pki.issue()
    # Shown as "nothing unusual" a moment ago (another window signed a big order since): recorded as shown.
    quiet = _draft(book, packages=1)
    shown_quiet = service.notices_to_show(quiet)
    assert shown_quiet.notices == ()
    signed(book, [(OXY_TABLETS, 20)], at=dt.datetime.now(UTC), status=OrderStatus.ACCEPTED)
    assert service.notices_to_show(quiet).notices != ()  # worked out now, it would say something
    service.sign(quiet, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                 intermediates=pki.intermediates, shown_notices=shown_quiet)
    assert "unusual_quantity" not in _signing_event(book, quiet)
    # Shown with a notice: the same notice, figures and all, is recorded.
    order_id = _draft(book, packages=5)
    shown = service.notices_to_show(order_id)
    assert [n.substance for n in shown.notices] == ["oxycodone"]
    result = service.sign(order_id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                          intermediates=pki.intermediates, shown_notices=shown)
    details = _signing_event(book, order_id)
    assert details["unusual_quantity"] == [n.to_json() for n in shown.notices] == [n.to_json() for n in result.notices]
    assert details["unusual_quantity_shown_at"] == shown.worked_out_at.isoformat()


def test_notices_that_no_longer_describe_the_signing_are_worked_out_again(world, book):
    """Lines changed since they were shown, or shown too long ago: signing works the notice out again, as when
    none were shown, and records that one (without a "shown at")."""
    from app.services.signing.order_signing import SHOWN_NOTICES_STAND_FOR, ShownNotices

    pki, verifier = world
    _usual(book)
    service = OrderSigningService(book, verifier)
    subscriber = pki.issue()

    def sign(order_id, shown):
        service.sign(order_id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=pki.intermediates, shown_notices=shown)
        return _signing_event(book, order_id)

    # Shown for 1 package (nothing unusual), then the line is replaced by 5 packages in another window.
    changed = _draft(book, packages=1)
    shown = service.notices_to_show(changed)
    assert shown.notices == ()
    book.remove_line(changed, 1)
    book.add_line(changed, ndc=OXY_TABLETS, packages=5)
    details = sign(changed, shown)
    assert [n["substance"] for n in details["unusual_quantity"]] == ["oxycodone"]
    assert "unusual_quantity_shown_at" not in details
    # Shown (as nothing unusual) longer ago than they stand for.
    old = _draft(book, packages=5)
    fresh = service.notices_to_show(old)
    assert fresh.notices != ()
    stale = ShownNotices(notices=(), line_rows=fresh.line_rows,
                         worked_out_at=fresh.worked_out_at - SHOWN_NOTICES_STAND_FOR - dt.timedelta(seconds=5))
    details = sign(old, stale)
    assert [n["substance"] for n in details["unusual_quantity"]] == ["oxycodone"]
    # None could be worked out when the screen opened (the draft could not be read then): worked out at signing.
    unread = service.notices_to_show(10**9)  # no such order: no notice, and no error on the way to the password
    assert unread.notices == () and unread.line_rows == ()
    unread_then = _draft(book, packages=5)
    details = sign(unread_then, ShownNotices(notices=(), line_rows=(), worked_out_at=unread.worked_out_at))
    assert [n["substance"] for n in details["unusual_quantity"]] == ["oxycodone"]
    # The same, shown a moment ago: they stand, and "nothing unusual" is what is recorded.
    recent = _draft(book, packages=5)
    fresh = service.notices_to_show(recent)
    details = sign(recent, ShownNotices(notices=(), line_rows=fresh.line_rows, worked_out_at=fresh.worked_out_at))
    assert "unusual_quantity" not in details


def test_notices_shown_in_another_month_do_not_stand(world, book):
    """Shown a minute before the pharmacy's month turned: the month's total is another one, so they no longer
    describe the signing (the rule alone, around a month boundary in the pharmacy's zone)."""
    from app.services.signing.draft_load import load_draft
    from app.services.signing.order_signing import ShownNotices

    _pki, verifier = world
    book.time_zones = {PURCHASER_DEA: "America/Chicago"}
    service = OrderSigningService(book, verifier)
    draft = load_draft(book.db, _draft(book, packages=5))
    lines = tuple(draft.line_rows)
    turn = dt.datetime(2026, 12, 1, 6, 0, tzinfo=UTC)  # midnight in Chicago
    before = ShownNotices(notices=("shown",), line_rows=lines, worked_out_at=turn - dt.timedelta(minutes=1))
    assert service._still_shown(before, draft, turn + dt.timedelta(seconds=30)) is None
    assert service._still_shown(before, draft, turn - dt.timedelta(seconds=10)) is before
    # In UTC it is already December at 05:59 Chicago time; in Chicago it is still November: the same month.
    utc_turn = dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    shown = ShownNotices(notices=("shown",), line_rows=lines, worked_out_at=utc_turn - dt.timedelta(minutes=1))
    assert service._still_shown(shown, draft, utc_turn + dt.timedelta(seconds=30)) is shown
