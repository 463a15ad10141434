"""The durable outbox (DESIGN.md §8): sign → commit → send → record, each step on record in the order book.

Why it is crash-safe:

- An order enters the outbox in the same transaction that moves it from ``signed`` to ``queued``; the entry stores
  the SHA-256 of the signed document. Signing itself already committed the document with the ``signed`` status.
- Before each try the worker *claims* the entry (attempts + 1, a short lease) and commits, so a crash during the
  send leaves an entry that is simply due again after the lease.
- What is sent is always read back from the order book (``Order.signed_document``, or the lost-order statement's
  linked record) and checked against the stored SHA-256; nothing else can go out under that order number. Sending
  the same bytes twice is harmless: the order number is the supplier's idempotency key, and a supplier answers a
  repeat with the same acknowledgement.
- The answer is recorded (``transmitted``, the 855 as a linked record, the new status, the entry ``sent``) in one
  transaction. A crash before that commit means one more identical send, never a lost or a different order.

Failures that may pass (timeouts, dropped connections, 5xx) leave the order ``queued`` with the error and the time of
the next try (exponential backoff with jitter); a refusal that cannot pass (the supplier already holds a different
document under that number) marks the entry ``failed`` so a person looks at it. When the supplier took the document
(HTTP 200) but its answer cannot be used — unreadable, deeply nested, or an 855 naming another order — the order is
``transmitted`` and the entry ``sent`` with the error and its code: it is never posted again, ``order sync`` fetches
the supplier's records later, and the outbox goes on with the other entries (issue 16.2).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import bindparam, case, insert, or_, select, update

from app.errors import CsosError, StorageError
from app.models.orderbook import LinkedRecord, LinkedRecordKind, Order, Supplier, utcnow
from app.models.outbox import OutboxEntry, OutboxPurpose, OutboxState
from app.models.integrity import append_audit_row
from app.models.states import OrderStatus, check_transition
from app.services.orders.lifecycle import Lifecycle, LifecycleError
from app.services.orders.orderbook import OrderBook
from app.services.transport.connectors import Connector, TransportError
from app.services.signing.usage_indicator import check_before_sending
from app.services.signing.verifier import ORDER_VALIDITY

log = logging.getLogger(__name__)

CLAIM_LEASE = dt.timedelta(minutes=2)
RETRY_BASE = dt.timedelta(seconds=30)
RETRY_CAP = dt.timedelta(minutes=30)


_ORDERS = Order.__table__
_ORDER_TO_QUEUE = select(_ORDERS.c.order_number, _ORDERS.c.status, _ORDERS.c.signed_document).where(
    _ORDERS.c.id == bindparam("b_order_id"))
_ORDER_ENTRY = select(OutboxEntry.__table__.c.id).where(OutboxEntry.__table__.c.order_id == bindparam("b_order_id"),
                                                        OutboxEntry.__table__.c.purpose == OutboxPurpose.ORDER)
_INSERT_ENTRY = insert(OutboxEntry.__table__)
# Built once (building a statement costs more than running it on SQLite); "due": queued, its time come, not held by
# another worker's lease.
_ENTRIES = OutboxEntry.__table__
_IS_DUE = (_ENTRIES.c.state == OutboxState.QUEUED, _ENTRIES.c.next_attempt_at <= bindparam("b_now"),
           or_(_ENTRIES.c.claimed_until.is_(None), _ENTRIES.c.claimed_until < bindparam("b_now_lease")))
_DUE = select(_ENTRIES.c.id).where(*_IS_DUE).order_by(_ENTRIES.c.next_attempt_at, _ENTRIES.c.id)
_DUE_FOR_ORDERS = _DUE.where(_ENTRIES.c.order_id.in_(bindparam("b_order_ids", expanding=True)))
_MARK_SENT = update(_ENTRIES).where(_ENTRIES.c.id == bindparam("b_entry_id"))  # SET from the parameters
_MARK_SENT_WITH_SEQ = _MARK_SENT.values(records_after=case(
    (_ENTRIES.c.records_after < bindparam("b_seq"), bindparam("b_seq")), else_=_ENTRIES.c.records_after))
_LINKED_BY_DIGEST = select(LinkedRecord.__table__.c.id).where(
    LinkedRecord.__table__.c.order_id == bindparam("b_order_id"),
    LinkedRecord.__table__.c.raw_sha256 == bindparam("b_sha256"))
_CLAIM = (update(_ENTRIES).where(_ENTRIES.c.id == bindparam("b_entry_id"), *_IS_DUE)  # SET also from the parameters
          .values(attempts=_ENTRIES.c.attempts + 1))
_ORDER_STATUS = select(_ORDERS.c.status).where(_ORDERS.c.id == bindparam("b_order_id"))
_ORDER_ENTRY_STATE = select(_ENTRIES.c.state).where(_ENTRIES.c.order_id == bindparam("b_order_id"),
                                                    _ENTRIES.c.purpose == OutboxPurpose.ORDER)
_QUEUE_ORDER = update(_ORDERS).where(_ORDERS.c.id == bindparam("b_order_id"),  # SET from the execute() parameters
                                     _ORDERS.c.status == OrderStatus.SIGNED)


class OutboxError(CsosError):
    code = "outbox.failed"


@dataclass
class OutboxView:
    """What the outbox list shows per entry."""

    entry_id: int
    order_id: int
    order_number: str
    supplier: str
    purpose: str
    state: str
    order_status: str
    attempts: int
    queued_at: dt.datetime
    next_attempt_at: dt.datetime | None
    last_error: str
    last_error_code: str
    sent_at: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in self.__dict__.items()}


@dataclass
class RunReport:
    sent: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    # Sent (the supplier has it) but its answer could not be used: a person checks with the supplier.
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return len(self.sent) + len(self.failed)


def retry_delay(attempts: int, rng: random.Random) -> dt.timedelta:
    """Exponential backoff with full jitter: up to 30 s after the first failure, doubling, at most 30 min."""
    ceiling = min(RETRY_CAP.total_seconds(), RETRY_BASE.total_seconds() * 2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=rng.uniform(ceiling / 2, ceiling))


class Outbox:
    def __init__(self, book: OrderBook, *, connector_for: Callable[[Supplier], Connector],
                 lifecycle: Lifecycle | None = None, clock: Callable[[], dt.datetime] | None = None,
                 rng: random.Random | None = None, worker_name: str = "") -> None:
        self.book = book
        self.db = book.db
        self.connector_for = connector_for
        self.lifecycle = lifecycle or Lifecycle(book, clock=clock)
        self.clock = clock or utcnow
        self.rng = rng or random.Random()
        self.worker_name = worker_name

    # -- queueing ---------------------------------------------------------------------------------------------------

    def enqueue(self, order_id: int) -> OutboxEntry:
        """Queue a signed order (signed → queued). Queuing an order already queued or sent changes nothing.

        One transaction of Core statements: the order's status and document, the new entry, the status change made
        only if the order is still signed (checked by the state machine, audited like ``OrderBook.transition``).
        The returned entry is detached, with the values stored."""
        with self.book._write() as session:
            queued = self._enqueue_in(session, order_id, claim=False)
            if queued is None:  # already in the outbox
                return session.scalar(select(OutboxEntry).where(OutboxEntry.order_id == order_id,
                                                               OutboxEntry.purpose == OutboxPurpose.ORDER))
        return queued

    def send_now(self, order_id: int) -> OutboxState | None:
        """"Sign and send" after the signing (and "Send now"): queue a signed order and try it at once, or make a
        waiting one due and try it. Returns the state the order's entry is left in (None: it has none).

        A signed order is queued and claimed for this try in one transaction, so the outbox's background worker
        cannot take it in between (and report it waiting while it goes), and the try needs no second commit. A crash
        before the answer is recorded leaves the entry claimed: it is due again when the lease ends, as after any
        claim."""
        connectors: dict[int, Connector] = {}
        report = RunReport()
        with self.book._write() as session:
            queued = self._enqueue_in(session, order_id, claim=True)
            claim = None if queued is None else (queued, session.get(Order, order_id))
        if claim is not None:
            entry, order = claim
            try:
                self._guarded(entry.id, report, lambda: self._try_claimed(entry, order, order.signed_document,
                                                                          connectors, report))
            finally:
                for connector in connectors.values():
                    connector.close()
        else:
            with self.db.session() as session:
                status = session.scalar(_ORDER_STATUS, {"b_order_id": order_id})
            if status is OrderStatus.QUEUED:
                self.retry_now(order_id)
            self.run_once(order_ids=[order_id])
        with self.db.session() as session:
            return session.scalar(_ORDER_ENTRY_STATE, {"b_order_id": order_id})

    def _enqueue_in(self, session: Any, order_id: int, *, claim: bool) -> OutboxEntry | None:
        """``enqueue``'s statements in ``session``'s write transaction; None when the order is already in the outbox.
        ``claim``: the new entry is claimed for a try now (attempts 1, the lease), as ``_claim`` would."""
        now = self.clock()
        check_transition(OrderStatus.SIGNED, OrderStatus.QUEUED)
        connection = session.connection()
        order = connection.execute(_ORDER_TO_QUEUE, {"b_order_id": order_id}).one_or_none()
        if order is None:
            raise OutboxError(f"Order {order_id} does not exist.", code="order.not_found")
        if connection.execute(_ORDER_ENTRY, {"b_order_id": order_id}).first() is not None:
            return None
        if order.status is not OrderStatus.SIGNED or not order.signed_document:
            if claim and order.status is not OrderStatus.DRAFT:
                return None  # send_now: queued or further along; tried as the outbox has it
            raise OutboxError(f"Order {order.order_number} is {order.status.label.lower()}; only a signed order "
                              "is sent.", code="outbox.not_signed")
        values = {"order_id": order_id, "purpose": OutboxPurpose.ORDER, "linked_record_id": None,
                  "document_sha256": hashlib.sha256(order.signed_document).hexdigest(),
                  "state": OutboxState.QUEUED, "attempts": 1 if claim else 0, "queued_at": now,
                  "next_attempt_at": now, "last_attempt_at": now if claim else None,
                  "claimed_until": now + CLAIM_LEASE if claim else None, "last_error": "", "last_error_code": "",
                  "sent_at": None, "answer": {}, "records_after": 0, "last_sync_at": None}
        values["id"] = connection.execute(_INSERT_ENTRY, values).inserted_primary_key[0]
        moved = connection.execute(_QUEUE_ORDER, {"b_order_id": order_id, "status": OrderStatus.QUEUED,
                                                  "updated_at": self.book.clock()})
        if moved.rowcount != 1:  # cannot happen under the writer lock; never queue half an order
            raise OutboxError(f"Order {order.order_number} changed while it was queued; try again.",
                              code="outbox.not_signed")
        append_audit_row(connection, action="order.status", actor=self.book.actor, order_id=order_id,
                         details={"from": OrderStatus.SIGNED.value, "to": OrderStatus.QUEUED.value,
                                  "outbox_entry": values["id"]})
        return OutboxEntry(**values)

    def retry_now(self, order_id: int) -> None:
        """Make a waiting (or failed) entry due at once, e.g. after the supplier said it is back."""
        with self.book._write() as session:
            session.execute(update(OutboxEntry).where(
                OutboxEntry.order_id == order_id,
                OutboxEntry.state.in_([OutboxState.QUEUED, OutboxState.FAILED]))
                .values(state=OutboxState.QUEUED, next_attempt_at=self.clock()))

    # -- sending ----------------------------------------------------------------------------------------------------

    def due_entries(self, *, now: dt.datetime | None = None, order_ids: list[int] | None = None) -> list[int]:
        now = now or self.clock()
        params: dict[str, Any] = {"b_now": now, "b_now_lease": now}
        if order_ids is not None:
            params["b_order_ids"] = list(order_ids)
        with self.db.session() as session:
            return list(session.scalars(_DUE if order_ids is None else _DUE_FOR_ORDERS, params))

    def next_due_at(self) -> dt.datetime | None:
        with self.db.session() as session:
            return session.scalar(select(OutboxEntry.next_attempt_at).where(OutboxEntry.state == OutboxState.QUEUED)
                                  .order_by(OutboxEntry.next_attempt_at).limit(1))

    def run_once(self, *, order_ids: list[int] | None = None) -> RunReport:
        """Try every due entry once."""
        report = RunReport()
        connectors: dict[int, Connector] = {}
        try:
            for entry_id in self.due_entries(order_ids=order_ids):
                self._guarded(entry_id, report, lambda entry_id=entry_id: self._process(entry_id, connectors, report))
        finally:
            for connector in connectors.values():
                connector.close()
        return report

    def _guarded(self, entry_id: int, report: RunReport, attempt: Callable[[], None]) -> None:
        """One entry's try: a surprise is noted on the entry and the report, and never stops the others."""
        try:
            attempt()
        except StorageError:
            raise  # the order book itself is in trouble: nothing else can be recorded either
        except Exception as exc:  # one entry's surprise never stops the others (issue 16.2)
            log.exception("outbox entry %s: unexpected problem", entry_id)
            message = ("Something unexpected happened while sending; it will be tried again. If it keeps "
                       "happening, run `csos-desk support bundle`.")
            self._failed_by_id(entry_id, "outbox.unexpected", message)
            report.failed.append({"order_number": str(entry_id), "code": "outbox.unexpected",
                                  "message": f"{message} ({type(exc).__name__})"})

    def run_until_idle(self, *, max_rounds: int = 100, order_ids: list[int] | None = None) -> RunReport:
        """Drain what is due now (entries that failed wait for their next try)."""
        total = RunReport()
        for _ in range(max_rounds):
            report = self.run_once(order_ids=order_ids)
            total.sent += report.sent
            total.failed += report.failed
            total.skipped += report.skipped
            total.unreadable += report.unreadable
            if not report.tried or order_ids is not None:
                # Asked for given orders: each of their due entries has been tried once; one that failed waits for
                # its next try (at least 15 s away), so another round could not find it due.
                break
        return total

    def _claim(self, entry_id: int) -> tuple[OutboxEntry, Order, bytes | None] | None:
        """Claim a due entry (attempts + 1, a short lease) and commit; with it, read the document to send back from
        the order book (checked against the queued SHA-256 by ``_document``)."""
        now = self.clock()
        with self.book._write() as session:
            claimed = session.execute(_CLAIM, {"b_entry_id": entry_id, "b_now": now, "b_now_lease": now,
                                               "claimed_until": now + CLAIM_LEASE, "last_attempt_at": now}).rowcount
            if claimed != 1:
                return None  # another worker has it, or it was cancelled meanwhile
            entry = session.get(OutboxEntry, entry_id)
            order = session.get(Order, entry.order_id)
            if entry.purpose is OutboxPurpose.ORDER:
                document = order.signed_document
            else:
                document = session.scalar(select(LinkedRecord.raw).where(LinkedRecord.id == entry.linked_record_id))
            return entry, order, document

    @staticmethod
    def _document(entry: OutboxEntry, document: bytes | None) -> bytes:
        if not document or hashlib.sha256(document).hexdigest() != entry.document_sha256:
            raise OutboxError("The stored document no longer matches the one queued; it was not sent. Run "
                              "`csos-desk records check`.", code="outbox.document_changed")
        return document

    def _process(self, entry_id: int, connectors: dict[int, Connector], report: RunReport) -> None:
        claim = self._claim(entry_id)
        if claim is not None:
            self._try_claimed(*claim, connectors, report)

    def _try_claimed(self, entry: OutboxEntry, order: Order, stored_document: bytes | None,
                     connectors: dict[int, Connector], report: RunReport) -> None:
        """Send a claimed entry's document (checked against its SHA-256) and record what came back."""
        number = order.order_number
        if entry.purpose is OutboxPurpose.ORDER and order.status is not OrderStatus.QUEUED:
            self._settle(entry, state={OrderStatus.CANCELLED: OutboxState.CANCELLED,
                                       OrderStatus.EXPIRED: OutboxState.EXPIRED}.get(order.status, OutboxState.SENT))
            report.skipped.append(number)
            return
        if entry.purpose is OutboxPurpose.ORDER and order.signed_at and \
                self.clock() > order.signed_at + ORDER_VALIDITY:
            self.lifecycle.expire_overdue(now=self.clock())
            report.skipped.append(number)
            return
        try:
            document = self._document(entry, stored_document)
            connector = connectors.get(order.supplier_id)
            if connector is None:
                connector = connectors[order.supplier_id] = self.connector_for(order.supplier)
            purchaser = order.registration.dea_number
            if entry.purpose is OutboxPurpose.ORDER:  # ISA15 T/P must suit the supplier, before any network call
                check_before_sending(document, connector.expected_test_indicator, supplier=order.supplier.name)
                delivery = connector.send_order(order_number=number, purchaser_dea=purchaser, document=document)
            else:
                delivery = connector.send_statement(order_number=number, purchaser_dea=purchaser, document=document)
        except TransportError as exc:
            if exc.delivered:  # the supplier has it: never post it again, say so, go on with the others
                self._delivered_unreadable(entry, exc.code, exc.message, answer=getattr(exc, "answer", {}))
                report.sent.append(number)
                report.unreadable.append({"order_number": number, "code": exc.code, "message": exc.message})
                return
            self._failed(entry, exc.code, exc.message, permanent=not exc.retryable)
            report.failed.append({"order_number": number, "code": exc.code, "message": exc.message})
            return
        except CsosError as exc:  # configuration or integrity: a person must look, retrying cannot help
            self._failed(entry, exc.code, exc.message, permanent=True)
            report.failed.append({"order_number": number, "code": exc.code, "message": exc.message})
            return
        try:
            self._record(entry, delivery)
        except LifecycleError as exc:  # e.g. its 855 names another order or cannot be read
            self._delivered_unreadable(entry, exc.code, exc.message, answer=dict(delivery.answer or {}),
                                       delivery=delivery)
            report.unreadable.append({"order_number": number, "code": exc.code, "message": exc.message})
        report.sent.append(number)

    def _link_proofs(self, session: Any, order_id: int, delivery: Any) -> None:
        """A connector's proof of delivery (the supplier system's signed AS2 MDN) joins the order's linked records,
        once, in the same transaction that records the delivery."""
        for proof in getattr(delivery, "proofs", ()):
            known = session.scalar(_LINKED_BY_DIGEST, {"b_order_id": order_id, "b_sha256": proof.sha256})
            if known is None:
                self.book.link_record(session, order_id, LinkedRecord(
                    kind=LinkedRecordKind.DELIVERY_RECEIPT, direction="in", media_type=proof.media_type,
                    raw=proof.data, parsed=dict(proof.parsed), created_at=self.clock()))

    def _record(self, entry: OutboxEntry, delivery: Any) -> None:
        now = self.clock()
        with self.book._write() as session:
            self._link_proofs(session, entry.order_id, delivery)
            if entry.purpose is OutboxPurpose.ORDER:
                self.lifecycle.apply_delivery(session, entry.order_id, delivery)
            values: dict[str, Any] = {"b_entry_id": entry.id, "state": OutboxState.SENT, "sent_at": now,
                                      "claimed_until": None, "last_error": "", "last_error_code": "",
                                      "answer": dict(delivery.answer or {}) | {"where": delivery.where}}
            seqs = [r.seq for r in delivery.records if r.seq is not None]
            if seqs:  # never below what a sync already fetched
                values["b_seq"] = max(seqs)
            session.execute(_MARK_SENT_WITH_SEQ if seqs else _MARK_SENT, values)
        log.info("outbox entry %s sent (%s)", entry.id, "answered" if delivery.answered else "handed over")

    def _delivered_unreadable(self, entry: OutboxEntry, code: str, message: str, *, answer: dict[str, Any],
                              delivery: Any = None) -> None:
        """The supplier took the document but its answer cannot be used: the order is *transmitted* (never posted
        again), the entry *sent* with the error and its code, and whatever the supplier sent back is kept on the
        order as evidence without changing it."""
        now = self.clock()
        with self.book._write() as session:
            order = session.get(Order, entry.order_id)
            if entry.purpose is OutboxPurpose.ORDER and order.status is OrderStatus.QUEUED:
                order.transmitted_at = order.transmitted_at or now
                self.book.transition(order.id, OrderStatus.TRANSMITTED, session=session,
                                     details={"answer_problem": code})
            if delivery is not None:
                for record in delivery.records:
                    self.lifecycle.keep_unusable(session, entry.order_id, record, code=code, message=message)
            stored = session.get(OutboxEntry, entry.id)
            stored.state = OutboxState.SENT
            stored.sent_at = now
            stored.claimed_until = None
            stored.last_error = message
            stored.last_error_code = code
            stored.answer = {k: v for k, v in answer.items() if isinstance(k, str)} | {"answer_problem": code}
        log.info("outbox entry %s sent; the supplier's answer could not be used (%s)", entry.id, code)

    def _failed_by_id(self, entry_id: int, code: str, message: str) -> None:
        with self.db.session() as session:
            entry = session.get(OutboxEntry, entry_id)
            if entry is None:
                return
            session.expunge(entry)
        self._failed(entry, code, message, permanent=False)

    def _failed(self, entry: OutboxEntry, code: str, message: str, *, permanent: bool) -> None:
        now = self.clock()
        with self.book._write() as session:
            stored = session.get(OutboxEntry, entry.id)
            stored.claimed_until = None
            stored.last_error = message
            stored.last_error_code = code
            if permanent:
                stored.state = OutboxState.FAILED
            else:
                stored.next_attempt_at = now + retry_delay(stored.attempts, self.rng)
        log.info("outbox entry %s not sent (%s, attempt %s)", entry.id, code, entry.attempts)

    def _settle(self, entry: OutboxEntry, *, state: OutboxState) -> None:
        with self.book._write() as session:
            stored = session.get(OutboxEntry, entry.id)
            stored.state = state
            stored.claimed_until = None

    # -- viewing ----------------------------------------------------------------------------------------------------

    def entries(self, *, states: list[OutboxState] | None = None, limit: int = 200) -> list[OutboxView]:
        with self.db.session() as session:
            query = (select(OutboxEntry, Order.order_number, Order.status, Supplier.name)
                     .join(Order, Order.id == OutboxEntry.order_id).join(Supplier, Supplier.id == Order.supplier_id))
            if states:
                query = query.where(OutboxEntry.state.in_(states))
            rows = session.execute(query.order_by(OutboxEntry.id.desc()).limit(limit)).all()
        return [OutboxView(entry_id=e.id, order_id=e.order_id, order_number=number, supplier=supplier,
                           purpose=e.purpose.value, state=e.state.value, order_status=status.value,
                           attempts=e.attempts, queued_at=e.queued_at,
                           next_attempt_at=e.next_attempt_at if e.state is OutboxState.QUEUED else None,
                           last_error=e.last_error, last_error_code=e.last_error_code, sent_at=e.sent_at)
                for e, number, status, supplier in rows]

    def entry_for(self, order_id: int, purpose: OutboxPurpose = OutboxPurpose.ORDER) -> OutboxEntry | None:
        with self.db.session() as session:
            return session.scalar(select(OutboxEntry).where(OutboxEntry.order_id == order_id,
                                                            OutboxEntry.purpose == purpose))


class OutboxWorker:
    """A background loop that drains the outbox and fetches supplier records (the GUI wraps it in its own helper).

    ``stop()`` ends it; ``wake()`` makes it look at once (after an order was queued). ``wait`` is injectable so tests
    do not sleep.
    """

    def __init__(self, outbox: Outbox, *, poll_interval: float = 30.0, sync_interval: float = 300.0,
                 sync: Callable[[], Any] | None = None, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.outbox = outbox
        self.poll_interval = poll_interval
        self.sync_interval = sync_interval
        self.sync = sync
        self.on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0

    def start(self) -> "OutboxWorker":
        self._thread = threading.Thread(target=self.run, name="outbox-worker", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def run(self) -> None:
        last_sync = None
        while not self._stop.is_set():
            try:
                self.outbox.run_until_idle()
                now = self.outbox.clock()
                if self.sync is not None and (last_sync is None or
                                              (now - last_sync).total_seconds() >= self.sync_interval):
                    self.sync()
                    last_sync = now
            except CsosError as exc:  # storage trouble etc.: reported, the loop goes on
                log.info("outbox worker round failed: %s", exc.code)
                if self.on_error:
                    self.on_error(exc)
            self.rounds += 1
            self._wake.wait(self._seconds_to_next())
            self._wake.clear()

    def _seconds_to_next(self) -> float:
        due = self.outbox.next_due_at()
        if due is None:
            return self.poll_interval
        return max(0.05, min(self.poll_interval, (due - self.outbox.clock()).total_seconds()))
