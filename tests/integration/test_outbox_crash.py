"""Crash safety of sign → commit → send → record the answer → receive the goods (DESIGN.md §8, issue 9/10).

Each trial forks a process that signs two orders, queues them, drains the outbox to a real HTTPS supplier on
loopback and records the goods received, and kills it with SIGKILL at a random moment. Then the work is finished the
way a restarted program does it (sign what is still a draft, queue what is signed, send what is due once the lease of
the killed worker is over, receive what is accepted and not yet received), and the trial asserts: no order lost, no
order number ever carried two different documents to the supplier, each answer linked once, each delivery received
exactly once, and ``records check`` clean (signatures, linked records, audit chain).

The process is forked from the test process (a fresh interpreter would spend most of each trial importing), with its
own database engine; each trial has its own tiny SQLite file and its own supplier.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models.database import Database, open_database, sqlite_url
from app.models.orderbook import Order
from app.models.outbox import OutboxEntry, OutboxState
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CachedCrl
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.orderbook import OrderBook
from app.services.orders.outbox import Outbox
from app.services.orders.records import check_records
from app.services.signing.order_signing import OrderSigningService
from app.services.transport.connectors import HttpsConnector
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import draft_order, seed
from tests.integration.test_lifecycle_transport import LoopbackSupplier, make_tls_files
from tests.pki import build_training_pki
from tests.signers import KeySigner

ORDERS_PER_TRIAL = 2
TRIALS = 50
LEASE_OVER = dt.timedelta(minutes=5)  # the restarted program's clock: past the killed worker's claim


@dataclass
class CrashWorld:
    pki: object
    subscriber: object
    verifier: OrderVerifier
    template: Path  # a seeded order book with draft orders, copied per trial
    tls: tuple[Path, Path, Path]


def build_world(directory: Path) -> CrashWorld:
    pki = build_training_pki(directory / "pki")
    subscriber = pki.issue()
    template = directory / "template.sqlite3"
    db = open_database(sqlite_url(template))
    book = OrderBook(db, actor="crash-test")
    seed(book)
    for _ in range(ORDERS_PER_TRIAL):
        draft_order(book, lines=2)
    catalog = MappingSchedules.from_database(db)
    db.close()
    crls = [CachedCrl.from_crl(pki.crl(pki.root)).der, CachedCrl.from_crl(pki.crl()).der]
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=pki.trust_roots), catalog=catalog,
                             crls=crls, fetch_crls=False)
    return CrashWorld(pki, subscriber, verifier, template, make_tls_files(directory / "tls"))


def _connector(supplier: LoopbackSupplier):
    return lambda _record: HttpsConnector(supplier.url, tls_bundle=supplier.tls_bundle, connect_timeout=2,
                                          read_timeout=2, max_attempts=1)


def do_the_work(world: CrashWorld, db: Database, supplier: LoopbackSupplier, *, clock=None) -> None:
    """What the program does: sign drafts, queue signed orders (half of them sent at once, as "Sign and send" does),
    drain the outbox, receive what was accepted.

    Safe to run again after a crash: each step looks at the committed state only."""
    book = OrderBook(db, actor="worker", **({"clock": clock} if clock else {}))
    signing = OrderSigningService(book, world.verifier)
    outbox = Outbox(book, connector_for=_connector(supplier), clock=clock, rng=random.Random(0))
    with db.session() as session:
        rows = session.execute(select(Order.id, Order.status).order_by(Order.id)).all()
    for order_id, status in rows:
        if status is OrderStatus.DRAFT:
            signing.sign(order_id, signer=KeySigner(world.subscriber.key), certificate=world.subscriber.cert,
                         intermediates=world.pki.intermediates)
            status = OrderStatus.SIGNED
        if status is OrderStatus.SIGNED:
            if order_id % 2:  # the screen's "Sign and send": queued, claimed and tried in one go
                outbox.send_now(order_id)
            else:
                outbox.enqueue(order_id)
    outbox.run_until_idle()
    # The goods arrive: the whole order, recorded in one transaction per order (O4).
    lifecycle = Lifecycle(book, **({"clock": clock} if clock else {}))
    with db.session() as session:
        accepted = session.execute(select(Order.id).where(Order.status == OrderStatus.ACCEPTED)
                                   .order_by(Order.id)).scalars().all()
        ordered = {order_id: {line.line_number: line.packages for line in session.get(Order, order_id).lines}
                   for order_id in accepted}
    for order_id in accepted:
        lifecycle.receive(order_id, packages=ordered[order_id], recorded_by="crash-test")


def _child(world: CrashWorld, db: Database, supplier: LoopbackSupplier) -> None:
    # The parent's pooled connections stay untouched; this process opens its own (SQLAlchemy's fork recipe), and
    # keeps the engine's compiled-statement cache, which is what makes a trial cheap.
    db.engine.dispose(close=False)
    do_the_work(world, db, supplier)
    os._exit(0)


class TrialBook:
    """One order book file reused by every trial: the engine (and its statement cache) stays, the file is fresh."""

    def __init__(self, directory: Path, template: Path) -> None:
        self.path = directory / "orderbook.sqlite3"
        self.template = template
        directory.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, self.path)
        self.db = open_database(sqlite_url(self.path), migrate=False)

    def reset(self) -> Database:
        self.db.engine.dispose()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(self.template, self.path)
        return self.db


@dataclass
class TrialResult:
    killed_after: float
    exit_code: int | None
    statuses: list[str]
    recovery_seconds: float


class KillWindow:
    """How long an uninterrupted run takes now: the median of the last five uninterrupted runs, one more measured
    every ten trials. This machine's disk changes speed within minutes (2-5x): a window measured once, at the start,
    let most of fifty kills land after the work was done (10 of 50 killed in one CI run; 30-35 usually)."""

    def __init__(self, measured: list[float]) -> None:
        self._runs = collections.deque(measured, maxlen=5)

    @property
    def seconds(self) -> float:
        return statistics.median(self._runs)

    def measured(self, seconds: list[float]) -> None:
        self._runs.extend(seconds)


def run_trial(world: CrashWorld, trial_book: TrialBook, rng: random.Random, window: KillWindow) -> TrialResult:
    db = trial_book.reset()
    with LoopbackSupplier(trial_book.path.parent, tls_files=world.tls) as supplier:
        process = multiprocessing.get_context("fork").Process(target=_child, args=(world, db, supplier))
        delay = rng.uniform(0, window.seconds)
        process.start()
        time.sleep(delay)
        if process.is_alive():
            os.kill(process.pid, signal.SIGKILL)
        process.join(10)
        # Restart: finish the work with a clock past the dead worker's lease.
        later = lambda: dt.datetime.now(dt.timezone.utc) + LEASE_OVER  # noqa: E731
        db.engine.dispose()
        started = time.perf_counter()
        do_the_work(world, db, supplier, clock=later)
        recovery = time.perf_counter() - started
        statuses = assert_consistent(world, db, supplier)
    return TrialResult(delay, process.exitcode, statuses, recovery)


def assert_consistent(world: CrashWorld, db: Database, supplier: LoopbackSupplier) -> list[str]:
    with db.session() as session:
        orders = list(session.scalars(select(Order).order_by(Order.id)))
        entries = {e.order_id: e for e in session.scalars(select(OutboxEntry))}
        sent = supplier.distinct_documents()
        assert len(orders) == ORDERS_PER_TRIAL
        for order in orders:
            # Not lost: every order was sent, answered and received.
            assert order.status is OrderStatus.RECEIVED, (order.order_number, order.status)
            assert entries[order.id].state is OutboxState.SENT
            # One document per order number, and it is the stored one.
            assert sent[order.order_number] == {hashlib.sha256(order.signed_document).hexdigest()}
            assert [r.kind.value for r in order.linked_records] == ["acknowledgement", "receipt"]
            # Received exactly once: one receipt per line, for what was ordered.
            for line in order.lines:
                assert [r.packages_received for r in line.receipts] == [line.packages], order.order_number
    report = check_records(db, verifier=world.verifier)
    assert report.clean, report.problems
    assert report.signatures_checked == ORDERS_PER_TRIAL
    return [o.status.value for o in orders]


def measure_full_run(world: CrashWorld, trial_book: TrialBook, runs: int = 3) -> list[float]:
    """How long an uninterrupted run takes, so kills land across all of it."""
    times = []
    for _ in range(runs):
        db = trial_book.reset()
        with LoopbackSupplier(trial_book.path.parent, tls_files=world.tls) as supplier:
            process = multiprocessing.get_context("fork").Process(target=_child, args=(world, db, supplier))
            start = time.perf_counter()
            process.start()
            process.join(30)
            times.append(time.perf_counter() - start)
            assert process.exitcode == 0
            db.engine.dispose()
            assert_consistent(world, db, supplier)
    return times


@pytest.fixture(scope="module")
def crash_world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("crash"))


def test_sigkill_at_random_points_never_loses_or_doubles_an_order(crash_world, tmp_path):
    trial_book = TrialBook(tmp_path / "trial", crash_world.template)
    window = KillWindow(measure_full_run(crash_world, trial_book))
    rng = random.Random(int(os.environ.get("CSOS_CRASH_SEED", "20261130")))
    results = []
    for trial in range(TRIALS):
        if trial and trial % 10 == 0:
            window.measured(measure_full_run(crash_world, trial_book, runs=1))
        results.append(run_trial(crash_world, trial_book, rng, window))
    killed = [r for r in results if r.exit_code == -signal.SIGKILL]
    # The kills really interrupted work (not just processes that had already finished); how many depends on the
    # machine's speed from one trial to the next, so the bar is a third.
    assert len(killed) >= TRIALS // 3, [r.exit_code for r in results]
