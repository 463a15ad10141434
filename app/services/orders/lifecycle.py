"""The life of an order after signing: supplier answers, shipments, voids, receiving, the 60-day rule, lost orders,
cancellation and "new order from this one" (duties O4–O8).

Every supplier document is kept exactly as received as a linked record (raw bytes + parsed JSON) before it changes
anything, and every status change goes through ``OrderBook.transition`` so it is validated and audited in the same
transaction. Nothing here edits signed content: a defective or lost order is followed by a *new* order.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import logging
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from app.errors import CsosError, InvalidValue
from app.models.integrity import append_audit_event
from app.models.orderbook import (
    LineStatus,
    LinkedRecord,
    LinkedRecordKind,
    Order,
    OrderLine,
    Supplier,
)
from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
from app.models.states import TRANSITIONS, OrderStatus
from app.services.signing.cms import MEDIA_TYPE, SignsData, sign_content
from app.services.orders.orderbook import OrderBook, order_with_lines
from app.services.transport.connectors import (
    X12_MEDIA_TYPE,
    Connector,
    Delivery,
    FolderConnector,
    SupplierRecord,
    TransportError,
)
from app.services.signing.verifier import ORDER_VALIDITY
from app.services.signing.x12 import (
    Acknowledgement855,
    AckStatus,
    Shipment856,
    VoidNotice,
    X12Error,
    parse_interchange,
)
from app.services.signing.x12 import LineStatus as AckLineStatus
from app.services.orders.answer_entry import import_file, record_by_hand
from app.services.orders.answers import (
    JSON_MEDIA_TYPE,
    LINE_NOT_APPLIED,
    Flag,
    LifecycleError,
    canonical_json,
    load_order,
    local_record,
    check_acknowledgement,
    check_date,
    check_purchaser,
    check_shipment,
    credited_by_line,
    expected,
    fully_received,
    received_by_line,
)
from app.services.orders.receiving import RECEIVABLE, ReceiptResult, ReceivingError, receivable_lines, receive

__all__ = ["Lifecycle", "LifecycleError", "ReceivingError", "ReceiptResult", "Flag", "AppliedRecord",
           "receivable_lines", "load_order", "local_record", "RECEIVABLE"]

log = logging.getLogger(__name__)

S = OrderStatus

# Orders that may still become expired (not fully received, not closed) — O5.
EXPIRABLE = frozenset(s for s in OrderStatus if S.EXPIRED in TRANSITIONS[s])
# Orders whose supplier records are still worth fetching (late records are linked and flagged too).
SYNCABLE = frozenset({S.TRANSMITTED, S.ACCEPTED, S.PARTIALLY_ACCEPTED, S.PARTIALLY_VOIDED, S.PARTIALLY_RECEIVED,
                      S.LOST, S.EXPIRED})
REISSUABLE = frozenset({S.NOT_ACCEPTED, S.CANCELLED, S.EXPIRED, S.VOIDED})

_LINE_STATUS = {
    AckLineStatus.ACCEPTED: LineStatus.ACCEPTED,
    AckLineStatus.REJECTED: LineStatus.REJECTED,
    AckLineStatus.BACKORDERED: LineStatus.BACKORDERED,
    AckLineStatus.QUANTITY_CHANGED: LineStatus.QUANTITY_CHANGED,
}


@dataclass
class AppliedRecord:
    """What one supplier document did to one order."""

    order_id: int
    order_number: str
    kind: str
    linked_record_id: int | None
    status_before: str
    status_after: str
    duplicate: bool = False
    flags: list[Flag] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"order_number": self.order_number, "kind": self.kind, "linked_record_id": self.linked_record_id,
                "status_before": self.status_before, "status_after": self.status_after,
                "duplicate": self.duplicate, "flags": [dataclasses.asdict(f) for f in self.flags]}


@dataclass
class LostOrderResult:
    order_number: str
    statement_record_id: int
    replacement_order_id: int | None
    replacement_order_number: str | None
    statement: dict[str, Any]


@dataclass
class SyncReport:
    applied: list[AppliedRecord] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"applied": [a.to_json() for a in self.applied], "errors": self.errors, "expired": self.expired}


def document_json(document: Any) -> dict[str, Any]:
    """An X12 document (frozen dataclass) as plain JSON for the ``parsed`` column."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, (dt.date, dt.datetime)):
            return value.isoformat()
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(document)


class Lifecycle:
    def __init__(self, book: OrderBook, *, clock: Callable[[], dt.datetime] | None = None) -> None:
        self.book = book
        self.db = book.db
        self.clock = clock or book.clock

    def _write(self) -> Any:
        """A write transaction that turns driver failures into plain-language storage errors."""
        return self.book._write()

    # =================================================================================================================
    # supplier documents

    def apply_delivery(self, session: Session, order_id: int, delivery: Delivery) -> list[AppliedRecord]:
        """The order has left: QUEUED → TRANSMITTED, then whatever the supplier answered at once.

        The order is read once for the whole delivery, with its lines (what an answer changes); its receipts and
        linked records load only if a record needs them (an 856 or 865 arriving with the delivery), in this session.
        """
        order = order_with_lines(session, order_id)
        if order.status is S.QUEUED:
            order.transmitted_at = self.clock()
            self.book.transition(order_id, S.TRANSMITTED, session=session,
                                 details={"where": delivery.where, "answered": delivery.answered})
        applied = []
        for record in delivery.records:
            applied.append(self._apply_record_to(session, order, record, answer=delivery.answer))
        if delivery.answered and not delivery.records and delivery.status:
            # An answer without its 855: keep the answer itself so the verdict is on record.
            applied.append(self._apply_bare_answer(session, order, delivery))
        return applied

    def apply_record(self, session: Session, order_id: int, record: SupplierRecord, *,
                     answer: Mapping[str, Any] | None = None) -> AppliedRecord:
        """Link one supplier document to the order (once) and drive the state machine from it."""
        return self._apply_record_to(session, _order(session, order_id), record, answer=answer)

    def _apply_record_to(self, session: Session, order: Order, record: SupplierRecord, *,
                         answer: Mapping[str, Any] | None = None) -> AppliedRecord:
        """``apply_record`` for an order already read in ``session``."""
        order_id = order.id
        before = order.status
        existing = session.scalar(_INCOMING_BY_DIGEST, {"b_order_id": order_id, "b_sha256": record.sha256})
        if existing is not None:
            return AppliedRecord(order_id, order.order_number, record.kind, existing, before.value, before.value,
                                 duplicate=True)
        try:
            interchange = parse_interchange(record.data)
        except X12Error as exc:
            raise LifecycleError(f"A document from the supplier for order {order.order_number} is not readable: "
                                 f"{exc.message}", code="lifecycle.unreadable_record") from None
        document = interchange.document
        if getattr(document, "order_number", None) != order.order_number:
            raise LifecycleError(f"A supplier document names order {getattr(document, 'order_number', '?')}, not "
                                 f"{order.order_number}; it was not linked.", code="lifecycle.wrong_order")
        parsed: dict[str, Any] = {"transaction_set": record.kind, "document": document_json(document),
                                  "source": record.source}
        if record.seq is not None:
            parsed["supplier_seq"] = record.seq
        if answer:
            parsed["answer"] = dict(answer)
        receiver = interchange.envelope.receiver_id
        if isinstance(document, Acknowledgement855):
            kind, flags = self._acknowledgement(session, order, document, receiver)
        elif isinstance(document, Shipment856):
            kind, flags, credited = self._shipment(session, order, document, receiver)
            parsed["credited"] = credited
            parsed["do_not_accept"] = any(f.do_not_accept and f.line_number is None for f in flags)
        elif isinstance(document, VoidNotice):
            kind, flags = self._void(session, order, document, receiver)
        else:
            raise LifecycleError(f"A purchase order (850) came back for order {order.order_number}; only the "
                                 "supplier's answers are linked.", code="lifecycle.unexpected_document")
        if flags:
            parsed["summary"] = "Discrepancy: " + " ".join(f.message for f in flags)
        parsed["flags"] = [dataclasses.asdict(f) for f in flags]
        linked = LinkedRecord(kind=kind, direction="in", media_type=record.media_type or X12_MEDIA_TYPE,
                              raw=record.data, parsed=parsed, created_at=self.clock())
        self.book.link_record(session, order_id, linked)
        for flag in flags:
            append_audit_event(session, action="order.flagged", actor=self.book.actor, order_id=order_id,
                               details={"code": flag.code, "record_id": linked.id})
        return AppliedRecord(order_id, order.order_number, record.kind, linked.id, before.value, order.status.value,
                             flags=flags)

    def keep_unusable(self, session: Session, order_id: int, record: SupplierRecord, *, code: str,
                      message: str) -> LinkedRecord | None:
        """Keep a supplier document that cannot be applied (unreadable, another order's) on the order as evidence,
        flagged, changing nothing else. Kept once per distinct content."""
        existing = session.scalar(select(LinkedRecord.id).where(
            LinkedRecord.order_id == order_id, LinkedRecord.raw_sha256 == record.sha256,
            LinkedRecord.direction == "in"))
        if existing is not None:
            return None
        flag = Flag("answer_not_usable", "The supplier sent an answer that could not be used, so it changed nothing: "
                    + message + " Check with the supplier.")
        parsed = {"type": "unusable_answer", "transaction_set": record.kind, "source": record.source,
                  "problem_code": code, "flags": [dataclasses.asdict(flag)], "summary": flag.message}
        if record.seq is not None:
            parsed["supplier_seq"] = record.seq
        linked = LinkedRecord(kind=LinkedRecordKind.NOTE, direction="in",
                              media_type=record.media_type or X12_MEDIA_TYPE, raw=record.data, parsed=parsed,
                              created_at=self.clock())
        self.book.link_record(session, order_id, linked)
        append_audit_event(session, action="order.flagged", actor=self.book.actor, order_id=order_id,
                           details={"code": flag.code, "problem": code, "record_id": linked.id})
        return linked

    def _move(self, session: Session, order: Order, target: OrderStatus, **details: Any) -> bool:
        if target in TRANSITIONS[order.status]:
            self.book.transition(order.id, target, session=session, details=details)
            return True
        return False

    def _acknowledgement(self, session: Session, order: Order, ack: Acknowledgement855, receiver: str = ""
                         ) -> tuple[LinkedRecordKind, list[Flag]]:
        flags: list[Flag] = check_acknowledgement(order, ack, self.clock().date(), receiver)
        rejected = ack.status is AckStatus.REJECTED
        kind = LinkedRecordKind.NON_ACCEPTANCE if rejected else LinkedRecordKind.ACKNOWLEDGEMENT
        if order.status is S.QUEUED:  # the supplier has it even if we crashed before noting that it left
            order.transmitted_at = order.transmitted_at or self.clock()
            self._move(session, order, S.TRANSMITTED, via="acknowledgement")
        if order.status is not S.TRANSMITTED:
            if order.status is S.LOST and rejected:
                flags.append(Flag("late_original_not_accepted",
                                  "The original of this lost order reached the supplier late and was returned not "
                                  "accepted (O7); the statement of non-acceptance is linked."))
            elif order.status is S.LOST:
                flags.append(Flag("lost_order_accepted", "The supplier acknowledged an order already reported lost; "
                                                         "call the supplier so it is not filled twice."))
            else:
                flags.append(Flag("acknowledgement_out_of_turn",
                                  f"An acknowledgement arrived while the order is {order.status.label.lower()}; it "
                                  "is linked but changes nothing."))
            return kind, flags
        lines = {line.line_number: line for line in order.lines}
        if rejected:
            for line in lines.values():
                line.line_status = LineStatus.REJECTED
                line.packages_confirmed = 0
            self._move(session, order, S.NOT_ACCEPTED, reason=ack.reason or "")
            return kind, flags
        # A line whose answer does not match the order (other NDC, more than ordered) is not applied: it stays open.
        not_credible = {f.line_number for f in flags if f.code in LINE_NOT_APPLIED}
        for ack_line in ack.lines:
            line = lines.get(ack_line.line_number)
            if line is None or ack_line.line_number in not_credible:
                continue
            line.line_status = _LINE_STATUS[ack_line.status]
            line.packages_confirmed = 0 if ack_line.status is AckLineStatus.REJECTED else ack_line.quantity
        if ack.status is AckStatus.ACCEPTED and not ack.lines:
            for line in lines.values():
                line.line_status = LineStatus.ACCEPTED
                line.packages_confirmed = line.packages
        changed = ack.status is AckStatus.ACCEPTED_WITH_CHANGES or any(
            line.line_status is not LineStatus.ACCEPTED for line in lines.values())
        self._move(session, order, S.PARTIALLY_ACCEPTED if changed else S.ACCEPTED)
        return kind, flags

    def _shipment(self, session: Session, order: Order, shipment: Shipment856, receiver: str = ""
                  ) -> tuple[LinkedRecordKind, list[Flag], list[dict[str, int]]]:
        flags, credited = check_shipment(order, shipment, self.clock().date(), receiver)
        if order.status is S.QUEUED:
            order.transmitted_at = order.transmitted_at or self.clock()
            self._move(session, order, S.TRANSMITTED, via="shipment")
        lines = {line.line_number: line for line in order.lines}
        deadline = order.signed_at + ORDER_VALIDITY if order.signed_at else None
        if order.status is S.EXPIRED or (deadline is not None and shipment.ship_date > deadline.date()):
            flags = [f for f in flags if f.code != "date_after_60_days"]
            flags.append(Flag("shipment_after_60_days",
                              f"Shipment {shipment.shipment_id} is dated {shipment.ship_date.isoformat()}, more than 60 "
                              "days after the order was signed; the order is no longer valid (O5). Do not accept "
                              "controlled substances against it; contact the supplier.", do_not_accept=True))
        if order.status in (S.VOIDED, S.NOT_ACCEPTED, S.CANCELLED, S.LOST):
            flags.append(Flag("shipment_on_closed_order",
                              f"Shipment {shipment.shipment_id} arrived for an order that is "
                              f"{order.status.label.lower()}. Do not accept controlled substances against it.",
                              do_not_accept=True))
        for item in shipment.lines:
            line = lines.get(item.line_number)
            if line is not None and line.line_status is LineStatus.VOIDED and item.packages_shipped:
                flags.append(Flag("shipment_on_voided_line", f"Line {item.line_number} was voided but the shipment "
                                                             "lists packages for it.", item.line_number))
        return LinkedRecordKind.SHIPMENT, flags, credited

    def _void(self, session: Session, order: Order, void: VoidNotice, receiver: str = ""
              ) -> tuple[LinkedRecordKind, list[Flag]]:
        flags: list[Flag] = check_purchaser(order, receiver) + check_date("void notice", void.date, order,
                                                                          self.clock().date())
        if order.status is S.QUEUED:
            order.transmitted_at = order.transmitted_at or self.clock()
            self._move(session, order, S.TRANSMITTED, via="void")
        lines = {line.line_number: line for line in order.lines}
        kind = LinkedRecordKind.VOID if void.whole_order else LinkedRecordKind.PARTIAL_VOID
        received = _received_by_line(order)
        if void.whole_order:
            targets = [n for n in lines if not received.get(n)]
        else:
            targets = list(void.voided_lines)
        for number in targets:
            line = lines.get(number)
            if line is None:
                flags.append(Flag("unknown_line", f"The void notice names line {number}, which the order does not "
                                                  "have.", number))
                continue
            line.line_status = LineStatus.VOIDED
        remaining = [line for line in lines.values() if line.line_status not in (LineStatus.VOIDED,
                                                                                   LineStatus.REJECTED)]
        if not remaining and self._move(session, order, S.VOIDED, reason=void.reason or ""):
            return kind, flags
        if remaining and self._move(session, order, S.PARTIALLY_VOIDED, reason=void.reason or ""):
            if _fully_received(order):
                self._move(session, order, S.RECEIVED, via="void of the rest")
            return kind, flags
        if order.status not in (S.VOIDED, S.PARTIALLY_VOIDED):
            flags.append(Flag("void_out_of_turn", f"A void notice arrived while the order is "
                                                  f"{order.status.label.lower()}; it is linked but changes nothing."))
        elif _fully_received(order) and order.status is S.PARTIALLY_VOIDED:
            self._move(session, order, S.RECEIVED, via="void of the rest")
        return kind, flags

    def _apply_bare_answer(self, session: Session, order: Order, delivery: Delivery) -> AppliedRecord:
        order_id = order.id
        before = order.status
        content = {"answer": delivery.answer, "status": delivery.status, "reasons": list(delivery.reasons)}
        rejected = delivery.status == "rejected"
        kind = LinkedRecordKind.NON_ACCEPTANCE if rejected else LinkedRecordKind.ACKNOWLEDGEMENT
        linked = LinkedRecord(kind=kind, direction="in", media_type=JSON_MEDIA_TYPE, raw=canonical_json(
            delivery.answer), parsed=content, created_at=self.clock())
        self.book.link_record(session, order_id, linked)
        if order.status is S.TRANSMITTED:
            if rejected:
                for line in order.lines:
                    line.line_status = LineStatus.REJECTED
                    line.packages_confirmed = 0
            self._move(session, order, {"rejected": S.NOT_ACCEPTED, "accepted": S.ACCEPTED}.get(
                delivery.status or "", S.PARTIALLY_ACCEPTED))
        return AppliedRecord(order_id, order.order_number, "answer", linked.id, before.value, order.status.value)

    # -- records arriving outside a send (folder drop, manual import) ------------------------------------------------

    def find_order_for(self, session: Session, record: SupplierRecord) -> Order:
        try:
            interchange = parse_interchange(record.data)
        except X12Error as exc:
            raise LifecycleError(f"The supplier document {record.source} is not readable: {exc.message}",
                                 code="lifecycle.unreadable_record") from None
        number = getattr(interchange.document, "order_number", None)
        candidates = list(session.scalars(select(Order).where(Order.order_number == number)))
        if not candidates:
            raise LifecycleError(f"The supplier document {record.source} is for order {number}, which is not in this "
                                 "order book.", code="lifecycle.unknown_order")
        # Matched by order number AND purchaser: the supplier addresses the interchange to the purchaser's DEA number.
        receiver = interchange.envelope.receiver_id.strip()
        matching = [o for o in candidates if o.registration.dea_number == receiver]
        if not matching:
            raise LifecycleError(f"The supplier document {record.source} is for order {number} of {receiver}, but "
                                 f"order {number} here belongs to "
                                 f"{', '.join(sorted(o.registration.dea_number for o in candidates))}; it was not "
                                 "linked.", code="lifecycle.wrong_purchaser")
        candidates = matching
        if len(candidates) > 1:
            raise LifecycleError(f"The supplier document {record.source} is for order {number}, which exists for "
                                 "several registrations; it does not say which.", code="lifecycle.ambiguous_order")
        return candidates[0]

    def import_record(self, record: SupplierRecord) -> AppliedRecord:
        with self._write() as session:
            order = self.find_order_for(session, record)
            return self.apply_record(session, order.id, record)

    def import_answer_file(self, path: str | Path) -> AppliedRecord:
        """One supplier document from a file (the first one linked); raises when nothing in it could be linked."""
        report = self.import_answer_files([path])[0]
        if report.linked:
            return report.linked[0]
        first = report.refused[0] if report.refused else {"code": "lifecycle.unreadable_record",
                                                          "message": f"{Path(path).name} holds nothing to link."}
        raise LifecycleError(first["message"], code=first["code"])

    def import_answer_files(self, paths: Sequence[str | Path]) -> list[Any]:
        """Supplier answer files from any connector (plain X12 or signed, one or several interchanges each): each
        document is matched by order number and purchaser, checked, linked; per file, what was linked and refused."""
        return [import_file(self, Path(path)) for path in paths]

    def record_answer_by_hand(self, order_id: int, *, accepted: bool, lines: Mapping[int, str] | None = None,
                              reason: str, attachment: str | Path | None = None, recorded_by: str = "") -> Any:
        """An answer given by e-mail, PDF or phone, typed in (with the file kept when there is one)."""
        return record_by_hand(self, order_id, accepted=accepted, lines=lines or {}, reason=reason,
                              attachment=Path(attachment) if attachment else None, recorded_by=recorded_by)

    # -- fetching ---------------------------------------------------------------------------------------------------

    def sync(self, connector_for: Callable[[Supplier], Connector], *, order_ids: Sequence[int] | None = None,
             expire: bool = True) -> SyncReport:
        """Fetch what suppliers have for sent orders (https) and read dropped files (folder); then apply O5."""
        report = SyncReport()
        with self.db.session() as session:
            query = (select(OutboxEntry.id, Order.id, Order.supplier_id)
                     .join(Order, Order.id == OutboxEntry.order_id)
                     .where(OutboxEntry.purpose == OutboxPurpose.ORDER, OutboxEntry.state == OutboxState.SENT,
                            Order.status.in_(sorted(SYNCABLE, key=lambda s: s.value))))
            if order_ids is not None:
                query = query.where(Order.id.in_(list(order_ids)))
            rows = session.execute(query.order_by(Order.id)).all()
            suppliers = {s.id: s for s in session.scalars(select(Supplier))}
        connectors: dict[int, Connector] = {}
        try:
            for supplier_id, supplier in suppliers.items():
                try:
                    connectors[supplier_id] = connector_for(supplier)
                except CsosError as exc:
                    report.errors.append({"supplier": supplier.name, "code": exc.code, "message": exc.message})
            for entry_id, order_id, supplier_id in rows:
                connector = connectors.get(supplier_id)
                if connector is None or not connector.answers_at_once:
                    continue
                self._sync_order(connector, entry_id, order_id, report)
            for supplier_id, connector in connectors.items():
                if isinstance(connector, FolderConnector):
                    self._sync_folder(connector, report)
        finally:
            for connector in connectors.values():
                connector.close()
        if expire:
            report.expired = self.expire_overdue()
        return report

    def _sync_order(self, connector: Connector, entry_id: int, order_id: int, report: SyncReport) -> None:
        order = self.book.get_order(order_id)
        with self.db.session() as session:
            after = session.get(OutboxEntry, entry_id).records_after
        try:
            records = connector.fetch_records(order_number=order.order_number,
                                              purchaser_dea=order.registration.dea_number, after=after)
        except TransportError as exc:
            report.errors.append({"order_number": order.order_number, "code": exc.code, "message": exc.message})
            return
        for record in records:
            try:
                with self._write() as session:
                    report.applied.append(self.apply_record(session, order_id, record))
                    entry = session.get(OutboxEntry, entry_id)
                    entry.records_after = max(entry.records_after, record.seq or 0)
                    entry.last_sync_at = self.clock()
            except LifecycleError as exc:
                # A bad record is kept as evidence and passed over, so it never blocks the ones after it.
                report.errors.append({"order_number": order.order_number, "code": exc.code, "message": exc.message})
                with self._write() as session:
                    self.keep_unusable(session, order_id, record, code=exc.code, message=exc.message)
                    entry = session.get(OutboxEntry, entry_id)
                    entry.records_after = max(entry.records_after, record.seq or 0)
        with self._write() as session:
            session.get(OutboxEntry, entry_id).last_sync_at = self.clock()

    def _sync_folder(self, connector: FolderConnector, report: SyncReport) -> None:
        """Answer files in the folder's inbox: each read like ``order import`` (several documents, signed or not),
        then moved to ``processed/`` (all linked) or ``failed/`` (anything refused) so it is read once."""
        for incoming in connector.collect_incoming():
            result = import_file(self, incoming.path)
            report.applied.extend(result.linked)
            for refused in result.refused:
                report.errors.append({"file": incoming.path.name, "code": refused["code"],
                                      "message": refused["message"]})
            connector.file_away(incoming, problem=bool(result.refused) or not result.linked)

    # =================================================================================================================
    # receiving (O4): the rules are in receiving.py

    def shipped_by_line(self, order: Order) -> dict[int, int]:
        return credited_by_line(order)

    def receive(self, order_id: int, *, packages: Mapping[int, int] | None = None,
                received_on: dt.date | None = None, reason: str = "", recorded_by: str = "") -> ReceiptResult:
        """Record packages received per line on a date. ``packages=None`` takes what was credibly shipped and not yet
        received. More than shipped or ordered, a flagged shipment or a date before shipping needs ``reason``."""
        return receive(self, order_id, packages=packages, received_on=received_on, reason=reason,
                       recorded_by=recorded_by)

    # =================================================================================================================
    # 60-day rule (O5)

    def expire_overdue(self, *, now: dt.datetime | None = None) -> list[str]:
        """Orders not fully received 60 days after signing become expired, each with a linked note."""
        now = now or self.clock()
        cutoff = now - ORDER_VALIDITY
        with self.db.session() as session:
            ids = list(session.scalars(select(Order.id).where(
                Order.signed_at.is_not(None), Order.signed_at < cutoff,
                Order.status.in_(sorted(EXPIRABLE, key=lambda s: s.value))).order_by(Order.id)))
        expired = []
        for order_id in ids:
            with self._write() as session:
                order = _order(session, order_id)
                if order.status not in EXPIRABLE:
                    continue
                received = _received_by_line(order)
                content = {
                    "type": "expiry", "order_number": order.order_number,
                    "signed_at": order.signed_at.isoformat(), "expired_at": now.isoformat(),
                    "status_before": order.status.value,
                    "note": "The order was not fully received within 60 days of signing and is no longer valid "
                            "(21 CFR 1305; O5). Shipments against it arriving later are flagged.",
                    "not_received": [{"line_number": line.line_number, "ndc": line.ndc,
                                      "packages": max(0, _expected(line) - received.get(line.line_number, 0))}
                                     for line in order.lines if _expected(line) > received.get(line.line_number, 0)],
                }
                self.book.link_record(session, order.id, local_record(LinkedRecordKind.EXPIRY, content))
                session.execute(update(OutboxEntry).where(OutboxEntry.order_id == order.id,
                                                          OutboxEntry.state == OutboxState.QUEUED)
                                .values(state=OutboxState.EXPIRED, claimed_until=None))
                self.book.transition(order.id, S.EXPIRED, session=session, details={"rule": "O5"})
                expired.append(order.order_number)
        return expired

    # =================================================================================================================
    # lost orders (O7)

    def report_lost(self, order_id: int, *, signer: SignsData, certificate: x509.Certificate,
                    intermediates: Sequence[x509.Certificate] = (), statement_date: dt.date | None = None,
                    lines_not_received: Mapping[int, int] | None = None,
                    replacement: bool = True) -> LostOrderResult:
        """Sign a lost-order statement, queue it for the supplier, mark the order lost and start the replacement
        order (a draft to sign), all linked together."""
        now = self.clock().astimezone(dt.timezone.utc).replace(microsecond=0)
        order = self.book.get_order(order_id)
        if S.LOST not in TRANSITIONS[order.status]:
            raise LifecycleError(f"Order {order.order_number} is {order.status.label.lower()}; only an order that "
                                 "was sent and not received can be reported lost.", code="lifecycle.not_losable")
        lines = {line.line_number: line for line in order.lines}
        received = _received_by_line(order)
        if lines_not_received is None:
            missing = {n: max(0, line.packages - received.get(n, 0)) for n, line in lines.items()
                       if line.line_status not in (LineStatus.REJECTED, LineStatus.VOIDED)}
        else:
            missing = dict(lines_not_received)
        missing = {n: count for n, count in missing.items() if count}
        for number, count in missing.items():
            if number not in lines:
                raise LifecycleError(f"Order {order.order_number} has no line {number}.", code="lifecycle.unknown_line")
            if not isinstance(count, int) or count < 1 or count > lines[number].packages:
                raise LifecycleError(f"Line {number}: packages not received must be between 1 and "
                                     f"{lines[number].packages}.", code="lifecycle.bad_packages")
        if not missing:
            raise LifecycleError(f"Every line of order {order.order_number} is received, rejected or voided; "
                                 "nothing is lost.", code="lifecycle.nothing_lost")
        # The replacement's number is part of what is signed (1305.26), so it is allocated first.
        number = self.book.allocate_order_number(order.registration_id) if replacement else None
        statement = lost_statement(order, lines, missing, statement_date=statement_date or now.date(),
                                   replacement_order_number=number.value if number else None)
        content = lost_statement_content(statement)
        document = sign_content(content, signer=signer, certificate_der=certificate.public_bytes(Encoding.DER),
                                intermediates_der=[c.public_bytes(Encoding.DER) for c in intermediates],
                                signing_time=now)
        with self._write() as session:
            stored = _order(session, order_id)
            if S.LOST not in TRANSITIONS[stored.status]:
                raise LifecycleError(f"Order {stored.order_number} changed meanwhile; nothing was recorded.",
                                     code="lifecycle.not_losable")
            new_order = None
            if number is not None:
                new_order = self._copy_as_draft(session, stored, number.value, missing,
                                                note=f"Replacement for lost order {stored.order_number} (O7).")
            record = LinkedRecord(kind=LinkedRecordKind.LOST_STATEMENT, direction="out", media_type=MEDIA_TYPE,
                                  raw=document, parsed={"statement": statement, "text": statement["text"],
                                                        "summary": lost_statement_summary(statement),
                                                        "replacement_order_number": number.value if number else None},
                                  related_order_id=new_order.id if new_order else None, created_at=now)
            self.book.link_record(session, stored.id, record)
            if new_order is not None:
                self.book.link_record(session, new_order.id, local_record(
                    LinkedRecordKind.REPLACEMENT,
                    {"type": "replacement", "replaces_order_number": stored.order_number,
                     "lost_statement_record_id": record.id, "order_number": new_order.order_number},
                    related_order_id=stored.id))
            session.add(OutboxEntry(order_id=stored.id, purpose=OutboxPurpose.LOST_STATEMENT,
                                    linked_record_id=record.id, document_sha256=hashlib.sha256(document).hexdigest(),
                                    state=OutboxState.QUEUED, queued_at=now, next_attempt_at=now))
            self.book.transition(stored.id, S.LOST, session=session,
                                 details={"statement_record_id": record.id,
                                          "replacement": new_order.order_number if new_order else None})
            return LostOrderResult(stored.order_number, record.id, new_order.id if new_order else None,
                                   new_order.order_number if new_order else None, statement)

    def _copy_as_draft(self, session: Session, old: Order, number: str, packages: Mapping[int, int] | None, *,
                       note: str) -> Order:
        """A new draft with the old order's products (``packages`` per line number, default the same)."""
        now = self.clock()
        new = Order(order_number=number, registration_id=old.registration_id, supplier_id=old.supplier_id,
                    status=S.DRAFT, created_at=now, updated_at=now, replaces_order_id=old.id, note=note)
        session.add(new)
        session.flush()
        append_audit_event(session, action="order.created", actor=self.book.actor, order_id=new.id,
                           details={"order_number": number, "registration": old.registration.dea_number,
                                    "supplier": old.supplier.name, "replaces_order_id": old.id})
        line_number = 0
        for line in old.lines:
            count = line.packages if packages is None else packages.get(line.line_number, 0)
            if not count:
                continue
            line_number += 1
            session.add(OrderLine(order_id=new.id, line_number=line_number, product_id=line.product_id,
                                  ndc=line.ndc, description=line.description, schedule=line.schedule, packages=count,
                                  package_quantity=line.package_quantity, unit=line.unit))
            session.flush()
            append_audit_event(session, action="order.line_added", actor=self.book.actor, order_id=new.id,
                               details={"line": line_number, "ndc": line.ndc, "packages": count})
        return new

    # =================================================================================================================
    # cancellation and reissue (O6)

    def cancel(self, order_id: int, *, reason: str) -> Order:
        """Cancel an order that has not left the pharmacy (draft, signed or queued and not being sent)."""
        reason = reason.strip()
        if not reason:
            raise InvalidValue("Say why the order is cancelled; the reason is kept with the order.",
                               code="cancel.reason_required")
        now = self.clock()
        with self._write() as session:
            order = _order(session, order_id)
            if S.CANCELLED not in TRANSITIONS[order.status]:
                raise LifecycleError(f"Order {order.order_number} is {order.status.label.lower()}; only an order that "
                                     "has not been sent can be cancelled.", code="lifecycle.not_cancellable")
            entry = session.scalar(select(OutboxEntry).where(OutboxEntry.order_id == order_id,
                                                            OutboxEntry.purpose == OutboxPurpose.ORDER))
            if entry is not None:
                result = session.execute(
                    update(OutboxEntry)
                    .where(OutboxEntry.id == entry.id, OutboxEntry.state == OutboxState.QUEUED,
                           (OutboxEntry.claimed_until.is_(None)) | (OutboxEntry.claimed_until < now))
                    .values(state=OutboxState.CANCELLED))
                if result.rowcount != 1:
                    raise LifecycleError(f"Order {order.order_number} is being sent right now; it can no longer be "
                                         "cancelled.", code="lifecycle.sending")
            if order.signed_document:
                self.book.link_record(session, order.id, local_record(
                    LinkedRecordKind.CANCELLATION, {"type": "cancellation", "order_number": order.order_number,
                                                    "reason": reason, "at": now.isoformat(),
                                                    "status_before": order.status.value}))
            self.book.transition(order.id, S.CANCELLED, session=session, details={"reason": reason})
        return self.book.get_order(order_id)

    def new_from(self, order_id: int) -> Order:
        """A new draft (new order number) with the products of an order that was not accepted, cancelled, voided or
        expired. The old order is never edited; it gets a note linking the new one."""
        order = self.book.get_order(order_id)
        if order.status not in REISSUABLE:
            raise LifecycleError(f"Order {order.order_number} is {order.status.label.lower()}; a new order is issued "
                                 "from one that was not accepted, cancelled, voided or expired.",
                                 code="lifecycle.not_reissuable")
        number = self.book.allocate_order_number(order.registration_id)
        with self._write() as session:
            old = _order(session, order_id)
            new = self._copy_as_draft(session, old, number.value, None,
                                      note=f"New order issued in place of {old.order_number} "
                                           f"({old.status.label.lower()}).")
            self.book.link_record(session, old.id, local_record(
                LinkedRecordKind.NOTE, {"type": "reissued", "order_number": old.order_number,
                                        "new_order_number": new.order_number}, related_order_id=new.id))
            new_id = new.id
        return self.book.get_order(new_id)


# ---------------------------------------------------------------------------------------------------------------------
# the lost-order statement (1305.26)

LOST_DECLARATION = ("The purchaser declares that the order named above was not received by the supplier through loss "
                    "(it was lost in transmission or never arrived), and that a replacement order has been or will be "
                    "issued for the goods not received.")
STATEMENT_DATA_BEGIN = "-----BEGIN CSOS STATEMENT DATA-----"
STATEMENT_DATA_END = "-----END CSOS STATEMENT DATA-----"


def _party(party: Any) -> dict[str, Any]:
    tail = " ".join(p for p in (party.city, party.state, party.postal_code) if p)
    return {"name": party.name, "dea_number": party.dea_number or "",
            "address": ", ".join([*(party.address_lines or []), *([tail] if tail else [])])}


def lost_statement(order: Order, lines: Mapping[int, OrderLine], missing: Mapping[int, int], *,
                   statement_date: dt.date, replacement_order_number: str | None) -> dict[str, Any]:
    """What 1305.26 asks the statement to say, as data plus the same in plain words (``text``)."""
    purchaser, supplier = _party(order.registration), _party(order.supplier)
    order_date = order.signed_at.date().isoformat() if order.signed_at else ""
    items = [{"line_number": n, "ndc": lines[n].ndc, "description": lines[n].description, "packages": c}
             for n, c in sorted(missing.items())]
    text_lines = [
        "STATEMENT OF A LOST ORDER (21 CFR 1305.26)",
        f"Date of this statement: {statement_date.isoformat()}",
        f"Lost order number: {order.order_number}",
        f"Date of the lost order: {order_date}",
        f"Purchaser: {purchaser['name']}, DEA {purchaser['dea_number']}, {purchaser['address']}",
        f"Supplier: {supplier['name']}" + (f", DEA {supplier['dea_number']}" if supplier["dea_number"] else "")
        + (f", {supplier['address']}" if supplier["address"] else ""),
        LOST_DECLARATION,
        "Goods not received:",
        *[f"  line {i['line_number']}: NDC {i['ndc'][:5]}-{i['ndc'][5:9]}-{i['ndc'][9:]} {i['description']}, "
          f"{i['packages']} package(s)" for i in items],
        "Replacement order number: " + (replacement_order_number or "none issued"),
    ]
    return {"type": "lost_order_statement", "order_number": order.order_number, "order_date": order_date,
            "purchaser_dea": purchaser["dea_number"], "purchaser": purchaser, "supplier": supplier,
            "date": statement_date.isoformat(), "declaration": LOST_DECLARATION,
            "replacement_order_number": replacement_order_number, "lines_not_received": items,
            "text": "\n".join(text_lines)}


def lost_statement_summary(statement: Mapping[str, Any]) -> str:
    """One line for the timeline: what the signed statement declares."""
    return (f"Signed statement: order {statement['order_number']} of {statement['order_date']} to "
            f"{statement['supplier']['name']} was not received through loss; replacement order "
            f"{statement.get('replacement_order_number') or 'none'}")


def lost_statement_content(statement: Mapping[str, Any]) -> bytes:
    """The signed content: the statement in plain words a person at the supplier reads, then the same as data."""
    data = json.dumps({k: v for k, v in statement.items() if k != "text"}, sort_keys=True, indent=1,
                      ensure_ascii=True)
    return (statement["text"] + "\n\n" + STATEMENT_DATA_BEGIN + "\n" + data + "\n" + STATEMENT_DATA_END
            + "\n").encode("utf-8")


def read_lost_statement(content: bytes) -> dict[str, Any]:
    """The data of a signed statement (this format, or the older JSON-only one). Raises ValueError."""
    text = content.decode("utf-8")
    if STATEMENT_DATA_BEGIN in text:
        text = text.split(STATEMENT_DATA_BEGIN, 1)[1].split(STATEMENT_DATA_END, 1)[0]
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a statement")
    return value


# ---------------------------------------------------------------------------------------------------------------------
# helpers


_order = load_order
_expected = expected
_received_by_line = received_by_line
_fully_received = fully_received


# Built once (building a statement costs more than running it on SQLite).
_INCOMING_BY_DIGEST = select(LinkedRecord.__table__.c.id).where(
    LinkedRecord.__table__.c.order_id == bindparam("b_order_id"),
    LinkedRecord.__table__.c.raw_sha256 == bindparam("b_sha256"), LinkedRecord.__table__.c.direction == "in")
