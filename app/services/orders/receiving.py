"""Receiving goods (O4, 21 CFR 1305.22): packages and date per line, for every connector, with or without a ship
notice.

Why the rules: the receipt is the pharmacy's own count, so it is never taken from a supplier's claim without a limit.
What is offered by default never exceeds what was ordered; recording more than ordered (or than credibly shipped),
taking goods against a shipment flagged "do not accept", or dating a receipt before the ship date of the shipment it
receives needs a written reason, and is then flagged on the receipt's linked record and in the audit trail so
``records check`` reports it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from app.errors import CsosError
from app.models.integrity import append_audit_event
from app.models.orderbook import LinkedRecordKind, Order, Receipt
from app.models.states import OrderStatus
from app.services.orders.answers import (
    Flag,
    credited_by_line,
    expected,
    fully_received,
    is_do_not_accept,
    load_order,
    local_record,
    received_by_line,
    shipment_credit,
)

S = OrderStatus
RECEIVABLE = frozenset({S.ACCEPTED, S.PARTIALLY_ACCEPTED, S.PARTIALLY_VOIDED, S.PARTIALLY_RECEIVED})


class ReceivingError(CsosError):
    """A receipt was refused; nothing was recorded. Codes ``receiving.*``."""

    code = "receiving.invalid"


@dataclass
class ReceiptResult:
    order_number: str
    status: str
    lines: dict[int, int]
    received_on: dt.date
    linked_record_id: int
    flags: list[Flag] | None = None


def receivable_lines(order: Order) -> list[dict[str, Any]]:
    """Per line: ordered, expected, shipped (credible), claimed by the supplier, received, and what receiving offers
    by default (never more than ordered)."""
    from app.services.orders.answers import claimed_by_line

    shipped, claimed, received = credited_by_line(order), claimed_by_line(order), received_by_line(order)
    has_shipments = any(r.kind is LinkedRecordKind.SHIPMENT for r in order.linked_records)
    rows = []
    for line in order.lines:
        n = line.line_number
        basis = shipped.get(n, 0) if has_shipments else expected(line)
        rows.append({"line_number": n, "ndc": line.ndc, "description": line.description, "ordered": line.packages,
                     "status": line.line_status.value, "expected": expected(line), "shipped": shipped.get(n, 0),
                     "claimed": claimed.get(n, 0), "received": received.get(n, 0),
                     "default": max(0, min(basis, line.packages) - received.get(n, 0))})
    return rows


def _shipments_received(order: Order, number: int, before: int, count: int) -> list[Any]:
    """The shipment records (oldest ship date first) whose packages on line ``number`` this receipt takes: the first
    ``before`` credited packages were received earlier."""
    shipments = sorted((r for r in order.linked_records if r.kind is LinkedRecordKind.SHIPMENT),
                       key=lambda r: (str((r.parsed or {}).get("document", {}).get("ship_date", "")), r.id))
    touched, start = [], 0
    for record in shipments:
        packages = shipment_credit(record.parsed or {}).get(number, 0)
        end = start + packages
        if packages and end > before and start < before + count:
            touched.append(record)
        start = end
    return touched


def receive(lifecycle: Any, order_id: int, *, packages: Mapping[int, int] | None = None,
            received_on: dt.date | None = None, reason: str = "", recorded_by: str = "") -> ReceiptResult:
    """Record packages received per line on a date (``lifecycle`` gives the book, clock and write transaction)."""
    book = lifecycle.book
    today = lifecycle.clock().date()
    received_on = received_on or today
    reason = reason.strip()
    if received_on > today:
        raise ReceivingError(f"The date received ({received_on.isoformat()}) is in the future.",
                             code="receiving.future_date")
    with lifecycle._write() as session:
        order = load_order(session, order_id)
        if order.status not in RECEIVABLE and order.status not in (S.EXPIRED, S.TRANSMITTED):
            hint = (" Send it first (csos-desk order send)." if order.status in (S.QUEUED, S.SIGNED) else "")
            raise ReceivingError(f"Order {order.order_number} is {order.status.label.lower()}; goods cannot be "
                                 f"received against it.{hint}", code="receiving.order_not_receivable")
        if order.status is S.EXPIRED and not reason:
            raise ReceivingError(f"Order {order.order_number} expired 60 days after signing (O5). Goods received "
                                 "against it need a written reason.", code="receiving.order_expired")
        if order.signed_at and received_on < order.signed_at.date():
            raise ReceivingError(f"The date received ({received_on.isoformat()}) is before the order was signed "
                                 f"({order.signed_at.date().isoformat()}).", code="receiving.before_signing")
        lines = {line.line_number: line for line in order.lines}
        shipped = credited_by_line(order)
        received = received_by_line(order)
        has_shipments = any(r.kind is LinkedRecordKind.SHIPMENT for r in order.linked_records)
        if packages is None:
            if not has_shipments:
                raise ReceivingError(f"No shipment notice is linked to order {order.order_number}, so there is "
                                     "nothing to take the quantities from; give the packages per line "
                                     "(--line LINE=PACKAGES).", code="receiving.nothing_shipped")
            packages = {n: min(shipped.get(n, 0), lines[n].packages) - received.get(n, 0) for n in lines
                        if min(shipped.get(n, 0), lines[n].packages) > received.get(n, 0)}
            if not packages:
                raise ReceivingError(f"Everything shipped on order {order.order_number} is already recorded as "
                                     "received.", code="receiving.nothing_to_receive")
        cleaned: dict[int, int] = {}
        for number, count in packages.items():
            if number not in lines:
                raise ReceivingError(f"Order {order.order_number} has no line {number}.",
                                     code="receiving.unknown_line")
            if not isinstance(count, int) or isinstance(count, bool) or count < 0 or count > 99_999:
                raise ReceivingError(f"Line {number}: the packages received must be a whole number from 0 to "
                                     "99,999.", code="receiving.bad_packages")
            if count:
                cleaned[number] = count
        if not cleaned:
            raise ReceivingError("No packages were given; nothing was recorded.", code="receiving.nothing_given")
        flags, over_shipped, over_ordered, early, flagged_shipments = [], [], [], [], []
        for number, count in sorted(cleaned.items()):
            line, total = lines[number], received.get(number, 0) + count
            if total > line.packages:
                over_ordered.append(f"line {number}: {total} received, {line.packages} ordered")
                flags.append(Flag("received_more_than_ordered", f"Line {number}: {total} packages received in all, "
                                  f"{line.packages} ordered (recorded with the reason given).", number))
            elif has_shipments and total > shipped.get(number, 0):
                over_shipped.append(f"line {number}: {total} received, {shipped.get(number, 0)} shipped")
            elif not has_shipments and total > expected(line):
                over_shipped.append(f"line {number}: {total} received, {expected(line)} expected")
            for record in _shipments_received(order, number, received.get(number, 0), count):
                document = (record.parsed or {}).get("document", {})
                ship_date = dt.date.fromisoformat(document["ship_date"]) if document.get("ship_date") else None
                if is_do_not_accept(record.parsed or {}):
                    flagged_shipments.append(f"line {number}: shipment {document.get('shipment_id')}")
                    flags.append(Flag("received_against_flagged_shipment",
                                      f"Line {number}: received against shipment {document.get('shipment_id')}, "
                                      "which was flagged \u201cdo not accept\u201d (recorded with the reason given).",
                                      number))
                if ship_date and received_on < ship_date and ship_date <= today:
                    early.append(f"line {number}: shipment {document.get('shipment_id')} shipped "
                                 f"{ship_date.isoformat()}")
                    flags.append(Flag("received_before_ship_date",
                                      f"Line {number}: recorded as received on {received_on.isoformat()}, before "
                                      f"shipment {document.get('shipment_id')} was shipped "
                                      f"({ship_date.isoformat()}) (recorded with the reason given).", number))
        if not reason:
            if over_ordered:
                raise ReceivingError("More was received than ordered (" + "; ".join(over_ordered) + "). Check the "
                                     "count; if it is right, give the reason with the receipt and tell the supplier.",
                                     code="receiving.more_than_ordered")
            if flagged_shipments:
                raise ReceivingError("These goods come with a shipment flagged \u201cdo not accept\u201d ("
                                     + "; ".join(flagged_shipments) + "). Check with the supplier first; to record "
                                     "them anyway, give the reason.", code="receiving.flagged_shipment")
            if early:
                raise ReceivingError("The date received is before the shipment was shipped (" + "; ".join(early)
                                     + "). Check the date; to record it anyway, give the reason.",
                                     code="receiving.before_ship_date")
            if over_shipped:
                raise ReceivingError("More was received than " + ("shipped" if has_shipments else "ordered")
                                     + " (" + "; ".join(over_shipped) + "). Check the count, or give the reason with "
                                     "the receipt.", code="receiving.more_than_shipped")
        if order.status is S.TRANSMITTED:
            # Goods arrived before any answer (e.g. a supplier that only ships): the delivery is its acceptance.
            book.transition(order.id, S.ACCEPTED, session=session,
                            details={"via": "goods received before any answer from the supplier"})
        receipts = []
        recorder = recorded_by or book.actor
        for number, count in sorted(cleaned.items()):
            session.add(Receipt(order_line_id=lines[number].id, packages_received=count, received_on=received_on,
                                recorded_at=lifecycle.clock(), recorded_by=recorder, reason=reason))
            receipts.append({"line_number": number, "ndc": lines[number].ndc, "packages_received": count})
        session.flush()
        content = {"type": "receipt", "order_number": order.order_number, "received_on": received_on.isoformat(),
                   "lines": receipts, "reason": reason, "recorded_by": recorder,
                   "over_shipped": over_shipped + over_ordered, "flags": [asdict(f) for f in flags]}
        if flags:
            content["summary"] = "Goods received with a discrepancy: " + " ".join(f.message for f in flags)
        linked = book.link_record(session, order.id, local_record(LinkedRecordKind.RECEIPT, content))
        for flag in flags:
            append_audit_event(session, action="order.flagged", actor=book.actor, order_id=order.id,
                               details={"code": flag.code, "record_id": linked.id, "line": flag.line_number,
                                        "reason": reason})
        session.refresh(order)
        if order.status in RECEIVABLE:
            target = S.RECEIVED if fully_received(order) else S.PARTIALLY_RECEIVED
            if target is not order.status:
                book.transition(order.id, target, session=session, details={"receipt_record": linked.id})
        return ReceiptResult(order.order_number, order.status.value, cleaned, received_on, linked.id, flags)
