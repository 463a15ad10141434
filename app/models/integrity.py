"""Integrity rules the store enforces by itself: signed content is immutable, the audit log is an append-only
hash chain. Kept at the model layer so no service, script or future UI can bypass them through the ORM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from sqlalchemy import event, insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from app.errors import ImmutableRecord
from app.models.locking import lock_writers
from app.models.orderbook import AuditEvent, LinkedRecord, Order, OrderLine, Receipt

GENESIS_HASH = "0" * 64

ORDER_SIGNED_FIELDS = (
    "order_number", "registration_id", "supplier_id", "signed_at", "signer_fingerprint", "signed_document",
    "payload_sha256",
)
LINE_SIGNED_FIELDS = ("order_id", "line_number", "product_id", "ndc", "description", "packages", "package_quantity",
                      "unit")


def _was_set_before(obj: Any, attribute: str) -> bool:
    history = inspect(obj).attrs[attribute].history
    previous = list(history.unchanged) + list(history.deleted)
    return any(value is not None for value in previous)


def _changed(obj: Any, attributes: Iterable[str]) -> list[str]:
    state = inspect(obj)
    return [name for name in attributes if state.attrs[name].history.has_changes()]


def _order_was_signed(order: Order | None) -> bool:
    if order is None:
        return False
    state = inspect(order)
    if state.pending or state.transient:
        return False
    return _was_set_before(order, "signed_document")


def _line_order(session: Session, line: OrderLine) -> Order | None:
    if line.order is not None:
        return line.order
    if line.order_id is None:
        return None
    with session.no_autoflush:
        return session.get(Order, line.order_id)


def _refuse_changes_to_signed_content(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in session.dirty:
        if isinstance(obj, Order) and _was_set_before(obj, "signed_document"):
            changed = _changed(obj, ORDER_SIGNED_FIELDS)
            if changed:
                raise ImmutableRecord(
                    f"Order {obj.order_number} is signed; its signed content cannot be changed "
                    f"({', '.join(changed)}). Issue a new order instead.",
                    code="order.signed_immutable",
                )
        elif isinstance(obj, OrderLine) and _order_was_signed(_line_order(session, obj)):
            changed = _changed(obj, LINE_SIGNED_FIELDS)
            if changed:
                raise ImmutableRecord(
                    f"Line {obj.line_number} belongs to a signed order and cannot be changed. Issue a new order "
                    "instead.",
                    code="order.signed_immutable",
                )
        elif isinstance(obj, AuditEvent) and session.is_modified(obj):
            raise ImmutableRecord("Audit events cannot be changed.", code="audit.append_only")
        elif isinstance(obj, LinkedRecord) and _changed(obj, ("raw", "raw_sha256", "order_id", "kind")):
            raise ImmutableRecord("A linked record is kept exactly as received or sent.", code="linked_record.immutable")
        elif isinstance(obj, Receipt) and _changed(obj, ("packages_received", "received_on", "order_line_id")):
            raise ImmutableRecord("A recorded receipt cannot be changed; record a correction instead.",
                                  code="receipt.immutable")
    for obj in session.new:
        if isinstance(obj, OrderLine) and _order_was_signed(_line_order(session, obj)):
            raise ImmutableRecord("Lines cannot be added to a signed order.", code="order.signed_immutable")
    for obj in session.deleted:
        if isinstance(obj, Order) and _was_set_before(obj, "signed_document"):
            raise ImmutableRecord(f"Signed order {obj.order_number} must be kept (2-year record duty).",
                                  code="order.signed_immutable")
        if isinstance(obj, OrderLine) and _order_was_signed(_line_order(session, obj)):
            raise ImmutableRecord("Lines of a signed order cannot be removed.", code="order.signed_immutable")
        if isinstance(obj, (AuditEvent, LinkedRecord, Receipt)):
            raise ImmutableRecord("Records are kept; they cannot be deleted.", code="record.append_only")


# Factories that already carry the rules. Not ``event.contains``: SQLAlchemy keys that registry by id() and keeps the
# entry after a sessionmaker is collected, so a new one at the same address looked "installed" and got no rules (seen
# as an unchanged-by-rule linked record in a long test run; 2,963 of 3,000 fresh factories in a loop).
_FACTORIES_WITH_RULES: "weakref.WeakSet[Any]" = weakref.WeakSet()


def install_integrity_rules(session_factory: Any) -> None:
    """Attach the before-flush rules to a sessionmaker (idempotent)."""
    if session_factory in _FACTORIES_WITH_RULES:
        return
    event.listen(session_factory, "before_flush", _refuse_changes_to_signed_content)
    _FACTORIES_WITH_RULES.add(session_factory)


# ---------------------------------------------------------------------------------------------------------------------
# Audit chain


def canonical_event_content(*, at: dt.datetime, actor: str, action: str, order_id: int | None,
                            details: dict[str, Any], previous_hash: str) -> bytes:
    payload = {
        "at": at.astimezone(dt.timezone.utc).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "order_id": order_id,
        "details": details,
        "previous_hash": previous_hash,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def append_audit_event(session: Session, *, action: str, actor: str = "", order_id: int | None = None,
                       details: dict[str, Any] | None = None, at: dt.datetime | None = None) -> AuditEvent:
    """Write the next event of the chain in ``session``'s transaction (written, not committed).

    ``previous_hash`` is unique in the table, so two writers racing for the same predecessor cannot fork the chain:
    the loser's commit fails and its transaction is retried by the caller.

    The returned ``AuditEvent`` carries the stored values and id; it is not attached to the session (nobody may
    change it anyway; reading it back loads it from the database). See ``append_audit_row`` for how it is written.
    """

    lock_writers(session)  # PostgreSQL: one appender at a time, even for writers outside OrderBook's helper
    session.flush()  # pending ORM changes (e.g. the order row this event describes) go first, in order
    event_id, values = _append(session.connection(), action=action, actor=actor, order_id=order_id,
                               details=details, at=at)
    return AuditEvent(id=event_id, **values)


def append_audit_row(connection: Connection, *, action: str, actor: str = "", order_id: int | None = None,
                     details: dict[str, Any] | None = None, at: dt.datetime | None = None,
                     chain_tip: str | None = None) -> int:
    """``append_audit_event`` for a Core ``connection`` inside a write transaction; returns the new event's id.

    The caller holds the writer lock (``OrderBook``'s write helpers take it first on PostgreSQL; SQLite lets one
    writer in by itself). The tip is read and the row inserted with two Core statements in the caller's
    transaction: an append-only row gains nothing from the ORM's unit of work, which cost about as much again as
    the two statements themselves.

    ``chain_tip``: the tip's ``event_hash`` when the caller has read it in this same write transaction, under the
    writer lock (``chain_tip_statement``, e.g. beside rows it reads anyway); None reads it here. A wrong one cannot
    fork the chain: ``previous_hash`` is unique.
    """
    return _append(connection, action=action, actor=actor, order_id=order_id, details=details, at=at,
                   chain_tip=chain_tip)[0]


def _append(connection: Connection, *, action: str, actor: str, order_id: int | None,
            details: dict[str, Any] | None, at: dt.datetime | None,
            chain_tip: str | None = None) -> tuple[int, dict[str, Any]]:
    at = at or dt.datetime.now(dt.timezone.utc)
    # Round-trip through JSON now so the hash covers exactly what the database will give back.
    details = json.loads(json.dumps(details or {}, sort_keys=True, default=str))
    previous_hash = chain_tip or connection.execute(_CHAIN_TIP).scalar() or GENESIS_HASH
    digest = hashlib.sha256(canonical_event_content(
        at=at, actor=actor, action=action, order_id=order_id, details=details, previous_hash=previous_hash,
    )).hexdigest()
    values = {"at": at, "actor": actor, "action": action, "order_id": order_id, "details": details,
              "previous_hash": previous_hash, "event_hash": digest}
    return connection.execute(_INSERT_EVENT, values).inserted_primary_key[0], values


_CHAIN_TIP = select(AuditEvent.__table__.c.event_hash).order_by(AuditEvent.__table__.c.id.desc()).limit(1)


def chain_tip_statement() -> Any:
    """The SELECT of the chain's tip (``event_hash`` of the newest event), to read it beside other rows."""
    return _CHAIN_TIP


_INSERT_EVENT = insert(AuditEvent.__table__)


@dataclass(frozen=True)
class ChainProblem:
    event_id: int
    code: str
    message: str


def verify_audit_chain(session: Session, *, batch_size: int = 5000,
                       visit: Callable[[AuditEvent], None] | None = None) -> list[ChainProblem]:
    """Walk the whole chain; report every event whose content or link does not match.

    ``visit`` sees each event on the way, so the records check can learn what the chain says should exist (orders,
    lines, linked records, signed documents) in the same single pass."""
    problems: list[ChainProblem] = []
    expected_previous = GENESIS_HASH
    last_id = 0
    while True:
        rows = session.execute(
            select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id).limit(batch_size)
        ).scalars().all()
        if not rows:
            break
        for audit in rows:
            if audit.previous_hash != expected_previous:
                problems.append(ChainProblem(audit.id, "audit.chain_broken",
                                             f"Audit event {audit.id} does not follow the event before it "
                                             "(an event was removed or inserted)."))
            digest = hashlib.sha256(canonical_event_content(
                at=audit.at, actor=audit.actor, action=audit.action, order_id=audit.order_id,
                details=audit.details, previous_hash=audit.previous_hash,
            )).hexdigest()
            if digest != audit.event_hash:
                problems.append(ChainProblem(audit.id, "audit.event_altered",
                                             f"Audit event {audit.id} was changed after it was written."))
            if visit is not None:
                visit(audit)
            expected_previous = audit.event_hash
            last_id = audit.id
        session.expunge_all()
    return problems
