"""Read-only views the desktop program shows: one order in full, reminders, the status-bar facts.

Plain data classes so the screens only render; every rule about what a reminder says or when it is due lives here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.errors import InvalidValue, NotFound
from app.models.database import explain_storage_failure
from app.models.orderbook import (
    AuditEvent,
    CertificateStatus,
    LinkedRecord,
    LinkedRecordKind,
    Order,
    OrderLine,
    Receipt,
    utcnow,
)
from app.models.states import OrderStatus
from app.models.values import Ndc, Schedule

DEFAULT_REMINDER_DAYS: tuple[int, ...] = (45, 30, 14, 7, 1)


@dataclass(frozen=True)
class LineView:
    line_number: int
    ndc: str  # 5-4-2 display form
    description: str
    schedule: str  # short: "II", "IIN", "NC"
    packages: int
    package_quantity: str  # "100 EA"
    line_status: str
    packages_confirmed: int | None
    packages_received: int


@dataclass(frozen=True)
class RecordView:
    """One entry of an order's timeline: a linked record as received or sent."""

    at: dt.datetime
    kind: str
    direction: str
    summary: str


@dataclass(frozen=True)
class ReceiptView:
    line_number: int
    description: str
    packages_received: int
    received_on: dt.date
    recorded_by: str
    reason: str


@dataclass(frozen=True)
class AuditView:
    at: dt.datetime
    actor: str
    what: str


@dataclass(frozen=True)
class OrderDetails:
    id: int
    order_number: str
    status: OrderStatus
    registration_dea: str
    registration_name: str
    supplier_name: str
    supplier_dea: str
    supplier_address: str
    created_at: dt.datetime
    signed_at: dt.datetime | None
    transmitted_at: dt.datetime | None
    signer_fingerprint: str
    replaces_order_number: str
    replaced_by_order_numbers: tuple[str, ...]
    note: str
    lines: tuple[LineView, ...]
    timeline: tuple[RecordView, ...]
    receipts: tuple[ReceiptView, ...]
    audit: tuple[AuditView, ...]
    # Supplier claims that did not match the order, in plain words (issue 16.1).
    discrepancies: tuple[str, ...] = ()
    # The state in words when the supplier took the order but its answer could not be used (issue 16.2).
    answer_problem: str = ""

    @property
    def can_be_copied(self) -> bool:
        """O6: a supplier refused the order; nobody corrects it, a new order is issued instead."""
        return self.status is OrderStatus.NOT_ACCEPTED


_KIND_WORDS = {
    LinkedRecordKind.ACKNOWLEDGEMENT: "Supplier's answer",
    LinkedRecordKind.NON_ACCEPTANCE: "Not accepted by supplier",
    LinkedRecordKind.VOID: "Voided by supplier",
    LinkedRecordKind.PARTIAL_VOID: "Partly voided by supplier",
    LinkedRecordKind.SHIPMENT: "Shipment notice",
    LinkedRecordKind.RECEIPT: "Goods received",
    LinkedRecordKind.LOST_STATEMENT: "Lost-order statement",
    LinkedRecordKind.REPLACEMENT: "Replacement order",
    LinkedRecordKind.CANCELLATION: "Cancelled",
    LinkedRecordKind.EXPIRY: "Expired (60 days)",
    LinkedRecordKind.NOTE: "Note",
    LinkedRecordKind.DELIVERY_RECEIPT: "Delivery receipt",
}

_DIRECTION_WORDS = {"in": "from supplier", "out": "to supplier", "local": "kept here"}


def _record_summary(record: LinkedRecord) -> str:
    parsed = record.parsed if isinstance(record.parsed, dict) else {}
    for key in ("summary", "message", "reason", "status"):
        value = parsed.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    size = len(record.raw or b"")
    return f"{size:,} bytes kept exactly as {'received' if record.direction == 'in' else 'sent'}" if size else ""


_ACTION_WORDS = {
    "order.created": "Order created",
    "order.line_added": "Line added",
    "order.line_removed": "Line removed",
    "order.supplier_changed": "Supplier changed",
    "order.linked_record": "Record linked",
    "order.flagged": "Discrepancy noted",
    "registration.added": "Registration added",
    "supplier.added": "Supplier added",
    "supplier.updated": "Supplier settings changed",
}


def describe_audit_event(action: str, details: dict[str, Any]) -> str:
    """An audit event in the words of the person reading the trail."""
    details = details if isinstance(details, dict) else {}
    if action == "order.status":
        source = OrderStatus(details["from"]).label if details.get("from") in _STATUS_VALUES else details.get("from")
        target = OrderStatus(details["to"]).label if details.get("to") in _STATUS_VALUES else details.get("to")
        return f"Status: {source} → {target}"
    text = _ACTION_WORDS.get(action, action.replace(".", " ").replace("_", " ").capitalize())
    if action == "order.created" and details.get("replaces_order_id"):
        text += " (in place of an order the supplier did not accept)"
    if action in ("order.line_added", "order.line_removed") and details.get("line"):
        text += f" (line {details['line']}"
        if details.get("ndc"):
            text += f", NDC {_ndc_display(details['ndc'])}, {details.get('packages')} package(s)"
        text += ")"
    if action == "order.linked_record" and details.get("kind") in _KIND_VALUES:
        text += f": {_KIND_WORDS[LinkedRecordKind(details['kind'])].lower()}"
    if action == "order.supplier_changed" and details.get("to"):
        text += f" to {details['to']}"
    return text


_STATUS_VALUES = {s.value for s in OrderStatus}
_KIND_VALUES = {k.value for k in LinkedRecordKind}


def _ndc_display(digits: str) -> str:
    try:
        return Ndc.parse(str(digits)).display
    except InvalidValue:  # an odd stored value is still shown rather than hiding the row
        return str(digits)


def _address(lines: Sequence[str] | None, city: str | None, state: str | None, postal_code: str | None) -> str:
    last = " ".join(part for part in (f"{city}," if city else "", state or "", postal_code or "") if part)
    return ", ".join([*(lines or []), last] if last else list(lines or []))


def order_details(db: Any, order_id: int) -> OrderDetails:
    """Everything the detail pane shows about one order, read in one short session."""
    try:
        with db.session() as session:
            return _order_details(session, order_id)
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc


def _order_details(session: Any, order_id: int) -> OrderDetails:
    order = session.get(Order, order_id)
    if order is None:
        raise NotFound("This order is no longer in the order book. Press F5 to refresh the list.",
                       code="order.not_found")
    received = dict(session.execute(
        select(Receipt.order_line_id, func.sum(Receipt.packages_received))
        .join(OrderLine, OrderLine.id == Receipt.order_line_id)
        .where(OrderLine.order_id == order.id).group_by(Receipt.order_line_id)).all())
    lines = tuple(LineView(
        line_number=line.line_number, ndc=_ndc_display(line.ndc), description=line.description,
        schedule=line.schedule, packages=line.packages,
        package_quantity=f"{line.package_quantity.normalize():f} {line.unit}",
        line_status=line.line_status.value.replace("_", " ").capitalize(),
        packages_confirmed=line.packages_confirmed, packages_received=int(received.get(line.id) or 0),
    ) for line in order.lines)
    timeline = tuple(RecordView(at=record.created_at, kind=_KIND_WORDS.get(record.kind, record.kind.value),
                                direction=_DIRECTION_WORDS.get(record.direction, record.direction),
                                summary=_record_summary(record))
                     for record in order.linked_records)
    receipts = tuple(ReceiptView(line_number=line.line_number, description=line.description,
                                 packages_received=receipt.packages_received, received_on=receipt.received_on,
                                 recorded_by=receipt.recorded_by, reason=receipt.reason)
                     for line, receipt in session.execute(
                         select(OrderLine, Receipt).join(Receipt, Receipt.order_line_id == OrderLine.id)
                         .where(OrderLine.order_id == order.id).order_by(Receipt.received_on, Receipt.id)))
    audit = tuple(AuditView(at=event.at, actor=event.actor, what=describe_audit_event(event.action, event.details))
                  for event in session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                               .order_by(AuditEvent.id)))
    replaces = session.get(Order, order.replaces_order_id) if order.replaces_order_id else None
    replaced_by = tuple(session.scalars(select(Order.order_number).where(Order.replaces_order_id == order.id)
                                        .order_by(Order.id)))
    supplier = order.supplier
    from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
    from app.services.orders.answers import discrepancies, sent_state_words

    entry = session.scalar(select(OutboxEntry).where(OutboxEntry.order_id == order.id,
                                                     OutboxEntry.purpose == OutboxPurpose.ORDER))
    answer_problem = (sent_state_words(entry.last_error_code) if entry is not None and entry.state is
                      OutboxState.SENT and entry.last_error_code and order.status is OrderStatus.TRANSMITTED else "")
    return OrderDetails(
        id=order.id, order_number=order.order_number, status=order.status,
        registration_dea=order.registration.dea_number, registration_name=order.registration.name,
        supplier_name=supplier.name, supplier_dea=supplier.dea_number or "",
        supplier_address=_address(supplier.address_lines, supplier.city, supplier.state, supplier.postal_code),
        created_at=order.created_at, signed_at=order.signed_at, transmitted_at=order.transmitted_at,
        signer_fingerprint=order.signer_fingerprint or "",
        replaces_order_number=replaces.order_number if replaces else "",
        replaced_by_order_numbers=replaced_by, note=order.note or "",
        lines=lines, timeline=timeline, receipts=receipts, audit=audit,
        discrepancies=tuple(discrepancies(order)), answer_problem=answer_problem,
    )


# -- reminders (S2, K3) -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """One reminder as the notice bar shows it. ``key`` + ``stage`` let a dismissal last until the next step."""

    key: str
    stage: int  # the reminder step reached (e.g. 45, 30, 14, 7, 1 days; 0 = expired or a deadline)
    message: str
    action: str
    urgent: bool


def reminder_stage(days_left: int, days: Iterable[int]) -> int | None:
    """The reminder step ``days_left`` has reached, or None when no reminder is due yet."""
    if days_left < 0:
        return 0
    reached = [d for d in days if days_left <= d]
    return min(reached) if reached else None


def due_notices(db: Any, *, today: dt.date, days: Sequence[int] = DEFAULT_REMINDER_DAYS,
                dismissed: dict[str, int] | None = None) -> list[Notice]:
    """Reminders (``app.services.orders.reminders``) due on the reminder days chosen in Settings and not dismissed at
    their current step; most urgent first."""
    from app.services.orders.reminders import Severity, due_reminders

    dismissed = dismissed or {}
    try:
        reminders = due_reminders(db, today=today)
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc
    notices: list[Notice] = []
    for reminder in reminders:
        stage = reminder_stage(reminder.days_left, days)
        if stage is None:
            continue
        key = f"{reminder.kind}:{reminder.reference}"
        if key in dismissed and stage >= dismissed[key]:
            continue  # dismissed at this step; it comes back at the next one
        notices.append(Notice(key=key, stage=stage, message=reminder.headline, action=reminder.action,
                              urgent=reminder.severity in (Severity.URGENT, Severity.EXPIRED)))
    return notices


# -- status bar facts ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateSummary:
    subscriber_name: str
    registration_dea: str
    not_after: dt.datetime
    days_left: int
    active_count: int


def active_certificate(db: Any, config: Any, *, now: dt.datetime | None = None) -> CertificateSummary | None:
    """The active signing certificate that expires first (the one to watch), or None when there is none."""
    from app.services.certificates.book import CertificateBook

    now = now or utcnow()
    try:
        records = CertificateBook(db, config).list()
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc
    current = sorted((r for r in records if r.status is CertificateStatus.ACTIVE and r.kind == "signing"
                      and r.not_after is not None and r.not_after > now), key=lambda r: r.not_after)
    if not current:
        return None
    first = current[0]
    return CertificateSummary(subscriber_name=first.subscriber_name,
                              registration_dea=first.registration.dea_number if first.registration else "",
                              not_after=first.not_after, days_left=(first.not_after - now).days,
                              active_count=len(current))


def orders_waiting_to_send(db: Any) -> int:
    """Signed orders that have not left yet (queued or signed): what the outbox still has to send."""
    try:
        with db.session() as session:
            return session.scalar(select(func.count(Order.id)).where(
                Order.status.in_([OrderStatus.QUEUED, OrderStatus.SIGNED]))) or 0
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc


def registration_allows(registration_schedules: str, schedule: str) -> bool:
    """Whether a registration's schedules cover a product's schedule (non-controlled products always fit)."""
    value = Schedule.parse(schedule)
    if not value.is_controlled:
        return True
    allowed = {Schedule.parse(s) for s in (registration_schedules or "").split(",") if s.strip()}
    return value in allowed
