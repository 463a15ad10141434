"""Order lifecycle on a real SQLite order book: supplier answers (855/856/865 written with the X12 codec), receiving
rules, the 60-day rule, lost orders, cancellation, reissue, and the folder and manual connectors (O4–O8)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pytest
from sqlalchemy import select

from app.errors import CsosError, InvalidValue
from app.models.integrity import verify_audit_chain
from app.models.orderbook import LineStatus, LinkedRecord, LinkedRecordKind, Order
from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
from app.models.states import OrderStatus
from app.services.signing.cms import check_signature, parse_signed_document
from app.services.orders.lifecycle import (
    Lifecycle,
    LifecycleError,
    ReceivingError,
    read_lost_statement,
    receivable_lines,
)
from app.services.orders.outbox import Outbox, retry_delay
from app.services.transport.connectors import (
    FolderConnector,
    ManualConnector,
    SupplierRecord,
    TransportError,
    connector_for,
    write_once,
)
from app.services.signing.x12 import (
    AckLine,
    Acknowledgement855,
    AckStatus,
    LineStatus as AckLineStatus,
    Shipment856,
    ShipmentLine,
    VoidNotice,
    write_855,
    write_856,
    write_865,
)
from tests.factories import PRODUCTS, PURCHASER_DEA, draft_order, seed, sign_for_test
from tests.pki import build_training_pki
from tests.signers import KeySigner

S = OrderStatus
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def envelope(n: int = 7) -> dict:
    return {"interchange_control_number": n, "group_control_number": n, "sender_id": "RA1234563",
            "receiver_id": PURCHASER_DEA, "created_at": NOW.replace(tzinfo=None)}


def ack(order: Order, status: AckStatus, lines=(), reason=None, n: int = 7) -> bytes:
    return write_855(Acknowledgement855(order_number=order.order_number, order_date=order.signed_at.date(),
                                        status=status, date=NOW.date(), reason=reason, lines=tuple(lines)),
                     **envelope(n))


def ship(order: Order, lines: dict[int, int], *, ship_date: dt.date | None = None, shipment_id="SHIP1",
         n: int = 8) -> bytes:
    ndcs = {line.line_number: line.ndc for line in order.lines}
    return write_856(Shipment856(order_number=order.order_number, shipment_id=shipment_id,
                                 ship_date=ship_date or NOW.date(), created_at=NOW.replace(tzinfo=None),
                                 lines=tuple(ShipmentLine(k, ndcs[k], v) for k, v in lines.items())), **envelope(n))


def void(order: Order, lines=(), reason="Out of stock", n: int = 9) -> bytes:
    return write_865(VoidNotice(order_number=order.order_number, order_date=order.signed_at.date(), date=NOW.date(),
                                whole_order=not lines, voided_lines=tuple(lines), reason=reason), **envelope(n))


def record(kind: str, data: bytes, seq: int | None = None) -> SupplierRecord:
    return SupplierRecord(kind=kind, data=data, seq=seq, source="test")


@pytest.fixture
def world(book):
    seed(book)
    return book, Lifecycle(book)


def transmitted(book, lines: int = 3, *, signed_at: dt.datetime | None = None) -> Order:
    """A signed order moved to transmitted the way the outbox does (placeholder document: no crypto here)."""
    order = draft_order(book, lines=lines)
    sign_for_test(book, order.id, document=f"doc-{order.order_number}".encode())
    if signed_at is not None:
        with book.db.session() as session, session.begin():
            session.execute(Order.__table__.update().where(Order.id == order.id).values(
                signed_at=signed_at))
    book.transition(order.id, S.QUEUED)
    book.transition(order.id, S.TRANSMITTED)
    return book.get_order(order.id)


def apply(lifecycle, order, kind, data, seq=None):
    with lifecycle.db.session() as session, session.begin():
        return lifecycle.apply_record(session, order.id, record(kind, data, seq))


# -- supplier answers ---------------------------------------------------------------------------------------------


def test_acceptance_links_the_855_and_confirms_every_line(world):
    book, lifecycle = world
    order = transmitted(book)
    data = ack(order, AckStatus.ACCEPTED, [AckLine(n, AckLineStatus.ACCEPTED, 1) for n in (1, 2, 3)])
    applied = apply(lifecycle, order, "855", data)
    order = book.get_order(order.id)
    assert (applied.status_before, applied.status_after) == ("transmitted", "accepted")
    assert order.status is S.ACCEPTED
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED] * 3
    [linked] = order.linked_records
    assert linked.kind is LinkedRecordKind.ACKNOWLEDGEMENT and linked.raw == data
    assert linked.raw_sha256 == hashlib.sha256(data).hexdigest()
    assert linked.parsed["document"]["status"] == "AD"
    # The same document again is recognised and changes nothing.
    again = apply(lifecycle, order, "855", data)
    assert again.duplicate and len(book.get_order(order.id).linked_records) == 1


def test_acceptance_with_changes_marks_backordered_and_changed_lines(world):
    book, lifecycle = world
    order = transmitted(book)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED_WITH_CHANGES, [
        AckLine(1, AckLineStatus.ACCEPTED, 1), AckLine(2, AckLineStatus.BACKORDERED, 1, reason="Backordered"),
        AckLine(3, AckLineStatus.REJECTED, 0)]))
    order = book.get_order(order.id)
    assert order.status is S.PARTIALLY_ACCEPTED
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED, LineStatus.BACKORDERED,
                                                          LineStatus.REJECTED]
    assert [line.packages_confirmed for line in order.lines] == [1, 1, 0]


def test_non_acceptance_is_linked_and_a_new_order_is_issued_without_touching_the_old(world):
    book, lifecycle = world
    order = transmitted(book)
    apply(lifecycle, order, "855", ack(order, AckStatus.REJECTED, reason="DEA number does not match"))
    old = book.get_order(order.id)
    assert old.status is S.NOT_ACCEPTED
    assert old.linked_records[0].kind is LinkedRecordKind.NON_ACCEPTANCE
    assert old.linked_records[0].parsed["document"]["reason"] == "DEA number does not match"
    document_before = old.signed_document
    new = lifecycle.new_from(order.id)
    assert new.status is S.DRAFT and new.order_number != old.order_number and new.replaces_order_id == old.id
    assert [(l.ndc, l.packages) for l in new.lines] == [(l.ndc, l.packages) for l in old.lines]
    old = book.get_order(order.id)
    assert old.status is S.NOT_ACCEPTED and old.signed_document == document_before
    assert old.linked_records[-1].kind is LinkedRecordKind.NOTE and old.linked_records[-1].related_order_id == new.id
    with pytest.raises(LifecycleError) as caught:
        lifecycle.new_from(new.id)
    assert caught.value.code == "lifecycle.not_reissuable"


def test_a_record_for_another_order_is_refused(world):
    book, lifecycle = world
    first, second = transmitted(book), transmitted(book)
    with pytest.raises(LifecycleError) as caught:
        apply(lifecycle, first, "855", ack(second, AckStatus.ACCEPTED))
    assert caught.value.code == "lifecycle.wrong_order"
    assert book.get_order(first.id).linked_records == []


def test_full_void_returns_the_order_void(world):
    book, lifecycle = world
    order = transmitted(book)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "865", void(order))
    order = book.get_order(order.id)
    assert order.status is S.VOIDED
    assert order.linked_records[-1].kind is LinkedRecordKind.VOID
    assert {line.line_status for line in order.lines} == {LineStatus.VOIDED}


def test_partial_void_marks_lines_nothing_shipped_and_receiving_the_rest_completes(world):
    book, lifecycle = world
    order = transmitted(book)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "865", void(order, lines=[2]))
    order = book.get_order(order.id)
    assert order.status is S.PARTIALLY_VOIDED
    assert order.linked_records[-1].kind is LinkedRecordKind.PARTIAL_VOID
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED, LineStatus.VOIDED, LineStatus.ACCEPTED]
    apply(lifecycle, order, "856", ship(order, {1: 1, 3: 1}))
    result = lifecycle.receive(order.id, received_on=NOW.date())
    assert result.status == "received" and result.lines == {1: 1, 3: 1}


def test_partial_shipments_then_receipts_move_to_partially_received_then_received(world):
    book, lifecycle = world
    order = transmitted(book, lines=2)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "856", ship(order, {1: 1}, shipment_id="SHIP1", n=10))
    first = lifecycle.receive(order.id, received_on=NOW.date(), recorded_by="Pat")
    assert first.status == "partially_received" and first.lines == {1: 1}
    with pytest.raises(ReceivingError) as caught:
        lifecycle.receive(order.id)  # everything shipped is already received
    assert caught.value.code == "receiving.nothing_to_receive"
    apply(lifecycle, order, "856", ship(order, {2: 1}, shipment_id="SHIP2", n=11))
    second = lifecycle.receive(order.id, received_on=NOW.date())
    assert second.status == "received"
    order = book.get_order(order.id)
    assert [[(r.packages_received, r.received_on) for r in line.receipts] for line in order.lines] == \
        [[(1, NOW.date())], [(1, NOW.date())]]
    receipts = [r for r in order.linked_records if r.kind is LinkedRecordKind.RECEIPT]
    assert len(receipts) == 2 and json.loads(receipts[0].raw)["lines"][0]["packages_received"] == 1
    assert [line["received"] for line in receivable_lines(order)] == [1, 1]
    with book.db.session() as session:
        assert verify_audit_chain(session) == []


def test_receiving_more_than_ordered_needs_a_reason_and_is_flagged(world):
    book, lifecycle = world
    order = transmitted(book, lines=1)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "856", ship(order, {1: 1}))
    with pytest.raises(ReceivingError) as caught:
        lifecycle.receive(order.id, packages={1: 2})
    assert caught.value.code == "receiving.more_than_ordered" and "1 ordered" in caught.value.message
    assert book.get_order(order.id).lines[0].receipts == []
    result = lifecycle.receive(order.id, packages={1: 2}, reason="Supplier packed an extra package; reported")
    assert result.lines == {1: 2}
    order = book.get_order(order.id)
    assert order.lines[0].receipts[0].reason.startswith("Supplier packed")
    [receipt] = [r for r in order.linked_records if r.kind is LinkedRecordKind.RECEIPT]
    assert [f["code"] for f in receipt.parsed["flags"]] == ["received_more_than_ordered"]


@pytest.mark.parametrize("kwargs, code", [
    ({"packages": {9: 1}}, "receiving.unknown_line"),
    ({"packages": {1: -1}}, "receiving.bad_packages"),
    ({"packages": {1: 0}}, "receiving.nothing_given"),
    ({"packages": {1: 1}, "received_on": NOW.date() + dt.timedelta(days=2)}, "receiving.future_date"),
    ({"packages": {1: 1}, "received_on": NOW.date() - dt.timedelta(days=30)}, "receiving.before_signing"),
    ({}, "receiving.nothing_shipped"),
])
def test_receiving_refuses_bad_input_and_records_nothing(world, kwargs, code):
    book, lifecycle = world
    order = transmitted(book, lines=1)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    with pytest.raises(ReceivingError) as caught:
        lifecycle.receive(order.id, **kwargs)
    assert caught.value.code == code
    assert book.get_order(order.id).lines[0].receipts == []


def test_goods_can_be_received_before_any_answer_but_not_before_sending(world):
    """Issue 17: a supplier that only ships (manual, folder) still gets its receipt recorded."""
    book, lifecycle = world
    order = transmitted(book, lines=1)
    assert lifecycle.receive(order.id, packages={1: 1}).status == "received"
    unsent = draft_order(book, lines=1)
    sign_for_test(book, unsent.id)
    with pytest.raises(ReceivingError) as caught:
        lifecycle.receive(unsent.id, packages={1: 1})
    assert caught.value.code == "receiving.order_not_receivable"


# -- 60-day rule ----------------------------------------------------------------------------------------------------


def test_orders_not_received_60_days_after_signing_expire_and_late_shipments_are_flagged(world):
    book, lifecycle = world
    old = transmitted(book, lines=2, signed_at=NOW - dt.timedelta(days=61))
    apply(lifecycle, old, "855", ack(old, AckStatus.ACCEPTED))
    recent = transmitted(book, lines=1, signed_at=NOW - dt.timedelta(days=59))
    assert lifecycle.expire_overdue(now=NOW) == [old.order_number]
    old_now = book.get_order(old.id)
    assert old_now.status is S.EXPIRED and book.get_order(recent.id).status is S.TRANSMITTED
    note = old_now.linked_records[-1]
    assert note.kind is LinkedRecordKind.EXPIRY and len(note.parsed["not_received"]) == 2
    applied = apply(lifecycle, old_now, "856", ship(old_now, {1: 1}))
    assert [f.code for f in applied.flags] == ["shipment_after_60_days"]
    assert book.get_order(old.id).status is S.EXPIRED
    with pytest.raises(ReceivingError) as caught:
        lifecycle.receive(old.id, packages={1: 1})
    assert caught.value.code == "receiving.order_expired"
    lifecycle.receive(old.id, packages={1: 1}, reason="Arrived late; quarantined and reported to supplier")
    assert book.get_order(old.id).status is S.EXPIRED
    assert lifecycle.expire_overdue(now=NOW) == []


# -- lost orders ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


def test_a_lost_order_gets_a_signed_statement_and_a_linked_replacement(world, pki):
    book, lifecycle = world
    order = transmitted(book, lines=2)
    subscriber = pki.issue()
    result = lifecycle.report_lost(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                                   intermediates=pki.intermediates)
    old = book.get_order(order.id)
    assert old.status is S.LOST
    statement = next(r for r in old.linked_records if r.kind is LinkedRecordKind.LOST_STATEMENT)
    assert statement.direction == "out" and statement.related_order_id == result.replacement_order_id
    signed = parse_signed_document(statement.raw)
    assert check_signature(signed) == []
    content = read_lost_statement(signed.content)
    replacement = book.get_order(result.replacement_order_id)
    # 1305.26: the lost order's number and date, purchaser and supplier, the declaration, the replacement's number.
    assert content["order_number"] == old.order_number and content["order_date"] == old.signed_at.date().isoformat()
    assert content["purchaser_dea"] == PURCHASER_DEA and content["purchaser"]["name"] == "Main Street Pharmacy"
    assert content["supplier"] == {"name": "Acme Drug", "dea_number": "RA1234563",
                                   "address": "9 Depot Rd, Memphis TN 38118"}
    assert content["replacement_order_number"] == replacement.order_number
    assert [(i["line_number"], i["ndc"], i["packages"]) for i in content["lines_not_received"]] == \
        [(1, PRODUCTS[0][0], 1), (2, PRODUCTS[1][0], 1)]
    # ... and a person reads the same in plain words at the top of the signed content (not only JSON).
    text = signed.content.decode().split("-----BEGIN", 1)[0]
    for words in (f"Lost order number: {old.order_number}", f"Date of the lost order: {content['order_date']}",
                  "Purchaser: Main Street Pharmacy, DEA BJ6125341", "Supplier: Acme Drug, DEA RA1234563",
                  "was not received by the supplier through loss",
                  f"Replacement order number: {replacement.order_number}"):
        assert words in text
    assert replacement.status is S.DRAFT and replacement.replaces_order_id == old.id
    link = replacement.linked_records[0]
    assert link.kind is LinkedRecordKind.REPLACEMENT and link.related_order_id == old.id
    assert link.parsed["lost_statement_record_id"] == statement.id
    with book.db.session() as session:
        entry = session.scalar(select(OutboxEntry).where(OutboxEntry.order_id == old.id))
    assert entry.purpose is OutboxPurpose.LOST_STATEMENT and entry.state is OutboxState.QUEUED
    assert entry.document_sha256 == hashlib.sha256(statement.raw).hexdigest()
    # The late original is returned not accepted by the supplier: linked, flagged, the order stays lost.
    applied = apply(lifecycle, old, "855", ack(old, AckStatus.REJECTED, reason="Lost order replaced"))
    assert [f.code for f in applied.flags] == ["late_original_not_accepted"]
    assert book.get_order(order.id).status is S.LOST
    assert book.get_order(order.id).linked_records[-1].kind is LinkedRecordKind.NON_ACCEPTANCE


def test_the_records_csv_carries_the_lost_statement_links_and_ship_dates(world, pki, tmp_path):
    """Issue 19: the CSV has what the PDF has — ship dates and the replaces / replaced by / lost statement links."""
    import csv

    from app.services.orders.records import export_records

    book, lifecycle = world
    order = transmitted(book, lines=2)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "856", ship(order, {1: 1}, ship_date=NOW.date()))
    subscriber = pki.issue()
    result = lifecycle.report_lost(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                                   intermediates=pki.intermediates, lines_not_received={2: 1})
    summary = export_records(book.db, date_from=NOW.date() - dt.timedelta(days=1),
                             date_to=NOW.date() + dt.timedelta(days=1), out_dir=tmp_path / "export")
    rows = list(csv.DictReader(summary.csv.open(encoding="utf-8")))
    lost = [r for r in rows if r["order_number"] == order.order_number]
    assert lost[0]["ship_dates"] == f"{NOW.date().isoformat()}: 1" and lost[1]["ship_dates"] == ""
    assert lost[0]["replaced_by"] == result.replacement_order_number
    assert f"Lost order number: {order.order_number}" in lost[0]["lost_statement"]
    assert "not received by the supplier through loss" in lost[0]["lost_statement"]
    [replacement] = [r for r in rows if r["order_number"] == result.replacement_order_number]
    assert replacement["replaces"] == order.order_number


def test_only_a_sent_order_can_be_reported_lost(world, pki):
    book, lifecycle = world
    order = draft_order(book)
    subscriber = pki.issue()
    with pytest.raises(LifecycleError) as caught:
        lifecycle.report_lost(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert)
    assert caught.value.code == "lifecycle.not_losable"


# -- cancellation -------------------------------------------------------------------------------------------------


def test_cancel_before_transmission_and_not_after(world, tmp_path):
    book, lifecycle = world
    order = draft_order(book)
    sign_for_test(book, order.id)
    outbox = Outbox(book, connector_for=lambda s: FolderConnector(tmp_path / "out", tmp_path / "in"))
    outbox.enqueue(order.id)
    with pytest.raises(InvalidValue):
        lifecycle.cancel(order.id, reason="  ")
    cancelled = lifecycle.cancel(order.id, reason="Ordered from the wrong supplier")
    assert cancelled.status is S.CANCELLED
    assert cancelled.linked_records[-1].kind is LinkedRecordKind.CANCELLATION
    assert outbox.entry_for(order.id).state is OutboxState.CANCELLED
    assert outbox.run_once().tried == 0 and not (tmp_path / "out").exists()
    sent = transmitted(book)
    with pytest.raises(LifecycleError) as caught:
        lifecycle.cancel(sent.id, reason="too late")
    assert caught.value.code == "lifecycle.not_cancellable"


def test_an_order_being_sent_cannot_be_cancelled(world, tmp_path):
    book, lifecycle = world
    order = draft_order(book)
    sign_for_test(book, order.id)
    outbox = Outbox(book, connector_for=lambda s: FolderConnector(tmp_path / "out", tmp_path / "in"))
    entry = outbox.enqueue(order.id)
    assert outbox._claim(entry.id) is not None  # a worker holds it
    with pytest.raises(LifecycleError) as caught:
        lifecycle.cancel(order.id, reason="changed my mind")
    assert caught.value.code == "lifecycle.sending"
    assert book.get_order(order.id).status is S.QUEUED


# -- folder and manual connectors -----------------------------------------------------------------------------------


def test_folder_connector_round_trip(world, tmp_path):
    book, lifecycle = world
    folder = tmp_path / "van"
    supplier = book.supplier("Acme Drug")
    with book.db.session() as session, session.begin():
        session.get(type(supplier), supplier.id).connector = {"kind": "folder", "folder": str(folder)}
    order = draft_order(book)
    sign_for_test(book, order.id, document=b"signed-bytes-1")
    outbox = Outbox(book, connector_for=lambda s: connector_for(s, data_dir=tmp_path))
    outbox.enqueue(order.id)
    report = outbox.run_once()
    assert report.sent == [order.order_number]
    assert (folder / "outgoing" / f"{order.order_number}.csos").read_bytes() == b"signed-bytes-1"
    order = book.get_order(order.id)
    assert order.status is S.TRANSMITTED and order.transmitted_at is not None
    # The VAN agent drops the supplier's answers back.
    (folder / "incoming").mkdir(parents=True)
    (folder / "incoming" / "a.855").write_bytes(ack(order, AckStatus.ACCEPTED))
    (folder / "incoming" / "b.856").write_bytes(ship(order, {1: 1, 2: 1}))
    (folder / "incoming" / "junk.txt").write_bytes(b"not x12")
    sync = lifecycle.sync(lambda s: connector_for(s, data_dir=tmp_path))
    assert sorted(a.kind for a in sync.applied) == ["855", "856"]
    assert [e["file"] for e in sync.errors] == ["junk.txt"]
    assert sorted(p.name for p in (folder / "incoming" / "processed").iterdir()) == ["a.855", "b.856"]
    assert [p.name for p in (folder / "incoming" / "failed").iterdir()] == ["junk.txt"]
    assert book.get_order(order.id).status is S.ACCEPTED
    assert lifecycle.receive(order.id).status == "received"


def test_folder_connector_never_replaces_a_different_document(tmp_path):
    path = tmp_path / "26X000001.csos"
    assert write_once(path, b"first") is True
    assert write_once(path, b"first") is False  # the same bytes again: fine
    with pytest.raises(TransportError) as caught:
        write_once(path, b"second")
    assert caught.value.code == "transport.conflicting_document" and not caught.value.retryable
    assert path.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["26X000001.csos"]


def test_manual_connector_saves_for_upload_and_imports_the_answer_file(world, tmp_path):
    book, lifecycle = world
    order = draft_order(book)
    sign_for_test(book, order.id, document=b"manual-doc")
    outbox = Outbox(book, connector_for=lambda s: connector_for(s, data_dir=tmp_path))  # seed supplier is manual
    outbox.enqueue(order.id)
    assert outbox.run_once().sent == [order.order_number]
    saved = tmp_path / "suppliers" / "acme-drug" / "to-upload" / f"{order.order_number}.csos"
    assert saved.read_bytes() == b"manual-doc"
    order = book.get_order(order.id)
    answer = tmp_path / "downloaded-855.x12"
    answer.write_bytes(ack(order, AckStatus.REJECTED, reason="Unknown account"))
    applied = lifecycle.import_answer_file(answer)
    assert applied.status_after == "not_accepted"
    (tmp_path / "garbage.x12").write_bytes(b"ISA*garbage")
    with pytest.raises(LifecycleError) as caught:
        lifecycle.import_answer_file(tmp_path / "garbage.x12")
    assert caught.value.code == "lifecycle.unreadable_record"


def test_unknown_connector_settings_are_a_clear_error(world, tmp_path):
    book, _ = world
    supplier = book.supplier("Acme Drug")
    bundle = tmp_path / "tls.pem"
    bundle.write_text("x")
    for settings, code in [({"kind": "fax"}, "connector.unknown_kind"), ({"kind": "https"}, "connector.no_url"),
                           ({"kind": "https", "url": "https://x.example/s"}, "connector.tls_bundle_missing"),
                           ({"kind": "https", "url": "http://x.example/s", "tls_bundle": str(bundle)},
                            "connector.not_https"),
                           ({"kind": "https", "url": "https://x.example/s", "tls_bundle": str(tmp_path / "no.pem")},
                            "connector.tls_bundle_missing")]:
        supplier.connector = settings
        with pytest.raises(CsosError) as caught:
            connector_for(supplier, data_dir=tmp_path)
        assert getattr(caught.value, "code", None) == code


def test_retry_delay_grows_and_is_capped():
    import random

    rng = random.Random(1)
    delays = [retry_delay(n, rng).total_seconds() for n in range(1, 12)]
    assert 15 <= delays[0] <= 30 and delays[3] > delays[0] and max(delays) <= 1800


def test_a_document_changed_after_queueing_is_never_sent(world, tmp_path):
    book, _ = world
    order = draft_order(book)
    sign_for_test(book, order.id, document=b"original")
    outbox = Outbox(book, connector_for=lambda s: ManualConnector(tmp_path / "up"))
    outbox.enqueue(order.id)
    # Tamper with the stored bytes underneath the ORM's immutability rules.
    with book.db.engine.begin() as connection:
        connection.execute(Order.__table__.update().where(Order.id == order.id).values(signed_document=b"forged"))
    report = outbox.run_once()
    assert report.failed[0]["code"] == "outbox.document_changed"
    assert not (tmp_path / "up").exists()
    assert outbox.entry_for(order.id).state is OutboxState.FAILED
    assert book.get_order(order.id).status is S.QUEUED
