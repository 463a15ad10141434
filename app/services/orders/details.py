"""Read-only views the desktop program shows: one order in full, reminders, the status-bar facts.

Plain data classes so the screens only render; every rule about what a reminder says or when it is due lives here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from sqlalchemy import and_, bindparam, func, select
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
    Registration,
    Supplier,
    utcnow,
)
from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
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


def _record_summary(parsed: Any, direction: str, size: int | None) -> str:
    """A linked record in a line: its own summary, else how much is kept (``size``: its raw bytes)."""
    parsed = parsed if isinstance(parsed, dict) else {}
    for key in ("summary", "message", "reason", "status"):
        value = parsed.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return f"{size:,} bytes kept exactly as {'received' if direction == 'in' else 'sent'}" if size else ""


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
    """Everything the detail pane shows about one order: six statements on one connection, built once.

    Core, not the ORM: the pane shows values, it changes nothing. The ORM loaded the signed document and every
    linked record's bytes only to count them, and spent more on building and tracking objects than SQLite on the
    statements (about 2 ms an order here, what the pharmacist waits for after "Sign and send")."""
    try:
        with db.engine.connect() as connection:
            return _order_details(connection, order_id)
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc


def _order_details(connection: Any, order_id: int) -> OrderDetails:
    from app.services.orders.answers import discrepancies_in, sent_state_words

    key = {"b_order_id": order_id}
    order = connection.execute(_DETAILS_ORDER, key).first()
    if order is None:
        raise NotFound("This order is no longer in the order book. Press F5 to refresh the list.",
                       code="order.not_found")
    lines = tuple(LineView(
        line_number=line.line_number, ndc=_ndc_display(line.ndc), description=line.description,
        schedule=line.schedule, packages=line.packages,
        package_quantity=f"{line.package_quantity.normalize():f} {line.unit}",
        line_status=line.line_status.value.replace("_", " ").capitalize(),
        packages_confirmed=line.packages_confirmed, packages_received=int(line.packages_received or 0),
    ) for line in connection.execute(_DETAILS_LINES, key))
    records = connection.execute(_DETAILS_RECORDS, key).all()
    timeline = tuple(RecordView(at=record.created_at, kind=_KIND_WORDS.get(record.kind, record.kind.value),
                                direction=_DIRECTION_WORDS.get(record.direction, record.direction),
                                summary=_record_summary(record.parsed, record.direction, record.size))
                     for record in records)
    receipts = tuple(ReceiptView(line_number=receipt.line_number, description=receipt.description,
                                 packages_received=receipt.packages_received, received_on=receipt.received_on,
                                 recorded_by=receipt.recorded_by, reason=receipt.reason)
                     for receipt in connection.execute(_DETAILS_RECEIPTS, key))
    audit = tuple(AuditView(at=event.at, actor=event.actor, what=describe_audit_event(event.action, event.details))
                  for event in connection.execute(_DETAILS_AUDIT, key))
    replaced_by = tuple(connection.scalars(_DETAILS_REPLACED_BY, key))
    answer_problem = (sent_state_words(order.last_error_code) if order.entry_state is OutboxState.SENT and
                      order.last_error_code and order.status is OrderStatus.TRANSMITTED else "")
    return OrderDetails(
        id=order.id, order_number=order.order_number, status=order.status,
        registration_dea=order.registration_dea, registration_name=order.registration_name,
        supplier_name=order.supplier_name, supplier_dea=order.supplier_dea or "",
        supplier_address=_address(order.address_lines, order.city, order.state, order.postal_code),
        created_at=order.created_at, signed_at=order.signed_at, transmitted_at=order.transmitted_at,
        signer_fingerprint=order.signer_fingerprint or "", replaces_order_number=order.replaces_order_number or "",
        replaced_by_order_numbers=replaced_by, note=order.note or "",
        lines=lines, timeline=timeline, receipts=receipts, audit=audit,
        discrepancies=tuple(discrepancies_in(record.parsed for record in records)), answer_problem=answer_problem,
    )


def _details_statements() -> tuple[Any, ...]:
    """The detail pane's statements (building one costs more than running it on SQLite, so they are built once)."""
    orders, lines, receipts = Order.__table__, OrderLine.__table__, Receipt.__table__
    registrations, suppliers = Registration.__table__, Supplier.__table__
    records, events, entries = LinkedRecord.__table__, AuditEvent.__table__, OutboxEntry.__table__
    order_id = bindparam("b_order_id")
    replaced = orders.alias("replaced")
    header = (select(orders.c.id, orders.c.order_number, orders.c.status, orders.c.created_at, orders.c.signed_at,
                     orders.c.transmitted_at, orders.c.signer_fingerprint, orders.c.note,
                     registrations.c.dea_number.label("registration_dea"),
                     registrations.c.name.label("registration_name"), suppliers.c.name.label("supplier_name"),
                     suppliers.c.dea_number.label("supplier_dea"), suppliers.c.address_lines, suppliers.c.city,
                     suppliers.c.state, suppliers.c.postal_code,
                     replaced.c.order_number.label("replaces_order_number"),
                     entries.c.state.label("entry_state"), entries.c.last_error_code)
              .join(registrations, registrations.c.id == orders.c.registration_id)
              .join(suppliers, suppliers.c.id == orders.c.supplier_id)
              .outerjoin(replaced, replaced.c.id == orders.c.replaces_order_id)
              .outerjoin(entries, and_(entries.c.order_id == orders.c.id, entries.c.purpose == OutboxPurpose.ORDER))
              .where(orders.c.id == order_id))
    received = (select(func.sum(receipts.c.packages_received)).where(receipts.c.order_line_id == lines.c.id)
                .scalar_subquery())
    order_lines = (select(lines.c.line_number, lines.c.ndc, lines.c.description, lines.c.schedule, lines.c.packages,
                          lines.c.package_quantity, lines.c.unit, lines.c.line_status, lines.c.packages_confirmed,
                          received.label("packages_received"))
                   .where(lines.c.order_id == order_id).order_by(lines.c.line_number))
    linked = (select(records.c.created_at, records.c.kind, records.c.direction, records.c.parsed,
                     func.length(records.c.raw).label("size"))
              .where(records.c.order_id == order_id).order_by(records.c.id))
    goods = (select(lines.c.line_number, lines.c.description, receipts.c.packages_received, receipts.c.received_on,
                    receipts.c.recorded_by, receipts.c.reason)
             .join(lines, lines.c.id == receipts.c.order_line_id)
             .where(lines.c.order_id == order_id).order_by(receipts.c.received_on, receipts.c.id))
    trail = (select(events.c.at, events.c.actor, events.c.action, events.c.details)
             .where(events.c.order_id == order_id).order_by(events.c.id))
    replaced_by = select(orders.c.order_number).where(orders.c.replaces_order_id == order_id).order_by(orders.c.id)
    return header, order_lines, linked, goods, trail, replaced_by


_DETAILS_ORDER, _DETAILS_LINES, _DETAILS_RECORDS, _DETAILS_RECEIPTS, _DETAILS_AUDIT, _DETAILS_REPLACED_BY = \
    _details_statements()


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
