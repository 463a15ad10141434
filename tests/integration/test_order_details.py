"""The detail pane's view of one order (``order_details``), read from a real order book on SQLite and PostgreSQL.

The pane reads its own statements (not the ORM objects the rest of the program uses), so every field it shows is
checked here against what was written: lines with what was received of each, the timeline of linked records, the
receipts, the audit trail, the orders it replaces and is replaced by, the supplier's discrepancies, and the state in
words when the supplier's answer could not be used.
"""

from __future__ import annotations

import datetime as dt

import pytest

from app.errors import NotFound
from app.models.database import open_database
from app.models.orderbook import LinkedRecord, LinkedRecordKind, Order, Receipt
from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
from app.models.states import OrderStatus
from app.services.orders.details import order_details
from app.services.orders.orderbook import OrderBook
from tests.factories import PRODUCTS, PURCHASER_DEA, draft_order, seed, sign_for_test

FLAG = "Line 2: the supplier shipped 1,000 packages; 2 were ordered. Do not accept the extra packages."


@pytest.fixture
def book(engine_url):
    db = open_database(engine_url)
    yield OrderBook(db, actor="Pat Lee")
    db.close()


def _sent_with_unreadable_answer(book: OrderBook) -> tuple[int, str, str]:
    """An order that replaces another, was sent, got three linked records and two receipts, and is replaced in
    turn; its outbox entry says the supplier's answer named another order. Returns (id, replaced, replacement)."""
    seed(book)
    refused = draft_order(book, lines=1)
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug", replaces_order_id=refused.id,
                           note="Call before delivery")
    for ndc, *_ in PRODUCTS[:2]:
        book.add_line(order.id, ndc=ndc, packages=2)
    sign_for_test(book, order.id)
    book.transition(order.id, OrderStatus.QUEUED)
    book.transition(order.id, OrderStatus.TRANSMITTED)
    at = dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.timezone.utc)
    with book.db.session() as session, session.begin():
        lines = session.get(Order, order.id).lines
        book.link_record(session, order.id, LinkedRecord(
            kind=LinkedRecordKind.ACKNOWLEDGEMENT, direction="in", raw=b"ISA*00*" + b"x" * 300,
            parsed={"summary": "Accepted as ordered", "flags": [{"message": FLAG}, {"message": FLAG}]},
            created_at=at))
        book.link_record(session, order.id, LinkedRecord(
            kind=LinkedRecordKind.DELIVERY_RECEIPT, direction="in", raw=b"m" * 1234, parsed={},
            created_at=at + dt.timedelta(minutes=1)))
        book.link_record(session, order.id, LinkedRecord(
            kind=LinkedRecordKind.NOTE, direction="out", raw=b"n" * 12, parsed=["not", "a", "dict"],
            created_at=at + dt.timedelta(minutes=2)))
        session.add_all([
            Receipt(order_line_id=lines[0].id, packages_received=1, received_on=dt.date(2026, 12, 2),
                    recorded_by="Pat Lee", reason=""),
            Receipt(order_line_id=lines[0].id, packages_received=1, received_on=dt.date(2026, 12, 1),
                    recorded_by="Sam Roe", reason="Second box came a day early"),
        ])
        session.add(OutboxEntry(order_id=order.id, purpose=OutboxPurpose.ORDER, document_sha256="0" * 64,
                                state=OutboxState.SENT, last_error_code="lifecycle.wrong_order"))
    replacement = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug",
                                 replaces_order_id=order.id)
    return order.id, refused.order_number, replacement.order_number


def test_the_detail_pane_shows_everything_written_about_an_order(book):
    order_id, refused_number, replacement_number = _sent_with_unreadable_answer(book)

    shown = order_details(book.db, order_id)

    stored = book.get_order(order_id)
    assert (shown.id, shown.order_number, shown.status) == (order_id, stored.order_number, OrderStatus.TRANSMITTED)
    assert (shown.registration_dea, shown.registration_name) == (PURCHASER_DEA, "Main Street Pharmacy")
    assert (shown.supplier_name, shown.supplier_dea) == ("Acme Drug", "RA1234563")
    assert shown.supplier_address == "9 Depot Rd, Memphis, TN 38118"
    assert (shown.created_at, shown.signed_at, shown.transmitted_at) == (
        stored.created_at, stored.signed_at, stored.transmitted_at)
    assert shown.signed_at is not None and shown.signed_at.tzinfo is not None
    assert shown.signer_fingerprint == "ab" * 32
    assert shown.note == "Call before delivery"
    assert shown.replaces_order_number == refused_number
    assert shown.replaced_by_order_numbers == (replacement_number,)

    assert [(line.line_number, line.ndc, line.schedule, line.packages, line.package_quantity, line.line_status,
             line.packages_confirmed, line.packages_received) for line in shown.lines] == [
        (1, "00406-0552-62", "II", 2, "100 EA", "Open", None, 2),
        (2, "00555-0973-02", "IIN", 2, "100 EA", "Open", None, 0)]
    assert shown.lines[0].description.startswith("Oxycodone Hydrochloride")

    assert [(record.kind, record.direction, record.summary) for record in shown.timeline] == [
        ("Supplier's answer", "from supplier", "Accepted as ordered"),
        ("Delivery receipt", "from supplier", "1,234 bytes kept exactly as received"),
        ("Note", "to supplier", "12 bytes kept exactly as sent")]
    assert shown.timeline[0].at == dt.datetime(2026, 11, 30, 15, 0, tzinfo=dt.timezone.utc)

    assert [(receipt.line_number, receipt.packages_received, receipt.received_on, receipt.recorded_by,
             receipt.reason) for receipt in shown.receipts] == [
        (1, 1, dt.date(2026, 12, 1), "Sam Roe", "Second box came a day early"),
        (1, 1, dt.date(2026, 12, 2), "Pat Lee", "")]

    whats = [event.what for event in shown.audit]
    assert whats[0] == "Order created (in place of an order the supplier did not accept)"
    assert "Line added (line 2, NDC 00555-0973-02, 2 package(s))" in whats
    assert whats[-5:] == ["Status: Signed → Queued", "Status: Queued → Transmitted", "Record linked: supplier's answer",
                          "Record linked: delivery receipt", "Record linked: note"]
    assert {event.actor for event in shown.audit} == {"Pat Lee"}

    assert shown.discrepancies == (FLAG,)  # said once, however often it was flagged
    assert shown.answer_problem == "Sent — the supplier's answer names another order; check with the supplier"


def test_an_answer_problem_is_not_shown_once_the_order_moved_on(book):
    order_id, _, _ = _sent_with_unreadable_answer(book)
    book.transition(order_id, OrderStatus.ACCEPTED)

    shown = order_details(book.db, order_id)

    assert shown.status is OrderStatus.ACCEPTED
    assert shown.answer_problem == ""
    assert shown.audit[-1].what == "Status: Transmitted → Accepted"


def test_a_plain_draft_shows_no_history_it_does_not_have(book):
    seed(book)
    draft = draft_order(book, lines=1)

    shown = order_details(book.db, draft.id)

    assert shown.status is OrderStatus.DRAFT
    assert (shown.signed_at, shown.transmitted_at, shown.signer_fingerprint) == (None, None, "")
    assert (shown.replaces_order_number, shown.replaced_by_order_numbers) == ("", ())
    assert (shown.timeline, shown.receipts, shown.discrepancies, shown.answer_problem) == ((), (), (), "")
    assert [line.packages_received for line in shown.lines] == [0]


def test_an_order_no_longer_in_the_book_says_how_to_refresh(book):
    seed(book)
    with pytest.raises(NotFound) as caught:
        order_details(book.db, 987654)
    assert caught.value.code == "order.not_found"
    assert "F5" in caught.value.message
