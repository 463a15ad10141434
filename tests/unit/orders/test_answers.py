"""Supplier answers as claims (issue 16.1/16.2/17.1) on a real SQLite order book: dates and purchaser checked,
partial shipments summed across 856s, a signed answer file with several interchanges, a bad record that never blocks
the ones after it, and one entry's surprise that never stops the outbox."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from app.models.orderbook import LinkedRecordKind
from app.models.outbox import OutboxState
from app.models.states import OrderStatus
from app.services.orders.answers import credited_by_line, split_interchanges
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.outbox import Outbox
from app.services.signing.cms import sign_content
from app.services.transport.connectors import Connector, Delivery, SupplierRecord
from tests.factories import draft_order, seed, sign_for_test
from tests.pki import build_training_pki
from tests.signers import KeySigner
from tests.unit.orders.test_lifecycle import NOW, AckStatus, ack, apply, envelope, ship, transmitted
from app.services.signing.x12 import Acknowledgement855, write_855

S = OrderStatus


@pytest.fixture
def world(book):
    seed(book)
    return book, Lifecycle(book)


def codes(applied) -> list[str]:
    return [f.code for f in applied.flags]


@pytest.mark.parametrize("days, code", [(-5, "date_before_signing"), (5, "date_in_future"), (None, None)])
def test_the_acknowledgement_date_is_checked(world, days, code):
    book, lifecycle = world
    order = transmitted(book, lines=1)
    date = NOW.date() + dt.timedelta(days=days) if days is not None else NOW.date()
    data = write_855(Acknowledgement855(order_number=order.order_number, order_date=order.signed_at.date(),
                                       status=AckStatus.ACCEPTED, date=date), **envelope())
    applied = apply(lifecycle, order, "855", data)
    assert codes(applied) == ([code] if code else [])


def test_a_shipment_addressed_to_another_purchaser_is_do_not_accept(world):
    book, lifecycle = world
    order = transmitted(book, lines=1)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    data = ship(order, {1: 1}).replace(b"BJ6125341", b"FN5623740")
    applied = apply(lifecycle, order, "856", data)
    assert "wrong_purchaser" in codes(applied)
    [shipment] = [r for r in book.get_order(order.id).linked_records if r.kind is LinkedRecordKind.SHIPMENT]
    assert shipment.parsed["do_not_accept"] is True


def test_partial_shipments_are_summed_and_never_credited_beyond_the_order(world):
    book, lifecycle = world
    order = book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    book.add_line(order.id, ndc="00406055262", packages=2)
    sign_for_test(book, order.id)
    book.transition(order.id, S.QUEUED)
    book.transition(order.id, S.TRANSMITTED)
    order = book.get_order(order.id)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    assert codes(apply(lifecycle, order, "856", ship(order, {1: 1}, shipment_id="S1", n=10))) == []
    second = apply(lifecycle, order, "856", ship(order, {1: 2}, shipment_id="S2", n=11))
    assert codes(second) == ["shipped_more_than_ordered"]
    assert "3 packages shipped in all" in second.flags[0].message
    assert credited_by_line(book.get_order(order.id)) == {1: 2}
    assert lifecycle.receive(order.id).lines == {1: 2}


def test_a_signed_answer_file_with_several_interchanges_is_linked_document_by_document(world, tmp_path):
    book, lifecycle = world
    order = transmitted(book, lines=2)
    content = ack(order, AckStatus.ACCEPTED) + b"\r\n" + ship(order, {1: 1}, n=12) + b"\r\n" + ship(
        order, {2: 1}, shipment_id="SHIP2", n=13)
    assert len(split_interchanges(content)) == 3
    pki = build_training_pki(tmp_path / "pki")
    supplier = pki.issue()
    signed = sign_content(content, signer=KeySigner(supplier.key), certificate_der=supplier.cert.public_bytes(
        Encoding.DER), signing_time=NOW)
    path = tmp_path / "answers.p7m"
    path.write_bytes(signed)
    [report] = lifecycle.import_answer_files([path])
    assert report.refused == [] and [a.kind for a in report.linked] == ["855", "856", "856"]
    assert report.signed_by
    assert book.get_order(order.id).status is S.ACCEPTED
    tampered = bytearray(signed)
    tampered[signed.index(b"SHIP2")] ^= 0x01
    path.write_bytes(bytes(tampered))
    [report] = lifecycle.import_answer_files([path])
    assert [r["code"] for r in report.refused] == ["answers.bad_signature"] and not report.linked


class _Records(Connector):
    """A connector that hands out fixed records (and refuses to send)."""

    kind = "test"

    def __init__(self, records):
        self.records = records

    @property
    def answers_at_once(self) -> bool:
        return True

    def send_order(self, **_):
        raise AssertionError("not sent here")

    send_statement = send_order

    def fetch_records(self, *, order_number, purchaser_dea, after):
        return [r for r in self.records if (r.seq or 0) > after]


def test_a_bad_record_in_sync_is_kept_as_evidence_and_the_next_records_still_apply(world, tmp_path):
    book, lifecycle = world
    order = draft_order(book, lines=1)
    sign_for_test(book, order.id, document=b"doc")
    outbox = Outbox(book, connector_for=lambda s: _Records([]))
    outbox.enqueue(order.id)
    with book.db.session() as session, session.begin():
        from app.models.outbox import OutboxEntry

        entry = session.query(OutboxEntry).one()
        entry.state = OutboxState.SENT
    book.transition(order.id, S.TRANSMITTED)
    order = book.get_order(order.id)
    other = transmitted(book, lines=1)
    records = [SupplierRecord("855", ack(other, AckStatus.ACCEPTED), seq=1, source="test"),
               SupplierRecord("855", b"ISA*garbage~", seq=2, source="test"),
               SupplierRecord("855", ack(order, AckStatus.ACCEPTED), seq=3, source="test")]
    report = lifecycle.sync(lambda s: _Records(records), order_ids=[order.id], expire=False)
    assert [e["code"] for e in report.errors] == ["lifecycle.wrong_order", "lifecycle.unreadable_record"]
    assert [a.kind for a in report.applied] == ["855"]
    stored = book.get_order(order.id)
    assert stored.status is S.ACCEPTED
    notes = [r for r in stored.linked_records if r.kind is LinkedRecordKind.NOTE]
    assert [n.parsed["problem_code"] for n in notes] == ["lifecycle.wrong_order", "lifecycle.unreadable_record"]
    # A second sync starts after them: nothing is fetched again.
    assert lifecycle.sync(lambda s: _Records(records), order_ids=[order.id], expire=False).errors == []


class _Flaky(Connector):
    kind = "test"

    def send_order(self, *, order_number, purchaser_dea, document):
        if document == b"first":
            raise ValueError("a surprise")
        return Delivery(answered=False, where="somewhere")

    send_statement = send_order


def test_one_entrys_surprise_never_stops_the_outbox(world):
    book, _ = world
    first, second = draft_order(book, lines=1), draft_order(book, lines=1)
    sign_for_test(book, first.id, document=b"first")
    sign_for_test(book, second.id, document=b"second")
    outbox = Outbox(book, connector_for=lambda s: _Flaky())
    outbox.enqueue(first.id)
    outbox.enqueue(second.id)
    report = outbox.run_once()
    assert report.sent == [book.get_order(second.id).order_number]
    assert [f["code"] for f in report.failed] == ["outbox.unexpected"]
    entry = outbox.entry_for(first.id)
    assert entry.state is OutboxState.QUEUED and entry.last_error_code == "outbox.unexpected"
