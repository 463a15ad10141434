"""Several workstations on one order book at the same moment, on SQLite and on PostgreSQL (issue 10/10).

Each test forks worker processes (a workstation each, with its own engine and connections) that wait at a barrier
and then hit the same database together:

* allocating order numbers: no number twice, none skipped;
* writing audit events (new orders, lines, transitions): the hash chain stays one unbroken line and nothing fails;
* draining one outbox towards a real HTTPS supplier on loopback: every order reaches the supplier exactly once.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import traceback
from collections import Counter

import pytest
from sqlalchemy import func, select

from app.models.database import open_database
from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent, Order
from app.models.outbox import OutboxEntry, OutboxState
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CachedCrl
from app.services.orders.orderbook import OrderBook
from app.services.orders.outbox import Outbox
from app.services.signing.order_signing import OrderSigningService
from app.services.transport.connectors import HttpsConnector
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import PURCHASER_DEA, PRODUCTS, draft_order, seed
from tests.integration.test_lifecycle_transport import LoopbackSupplier, make_tls_files
from tests.pki import build_training_pki
from tests.signers import KeySigner

FORK = multiprocessing.get_context("fork")
WORKERS = 3


def run_workstations(target, *args, workers: int = WORKERS, timeout: float = 120) -> list:
    """Run ``target(url_or_args…, barrier)`` in ``workers`` forked processes; their results, or the first failure."""
    barrier = FORK.Barrier(workers)
    results = FORK.Queue()

    def child(index: int) -> None:
        try:
            results.put((index, "ok", target(index, barrier, *args)))
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test with it
            results.put((index, "error", traceback.format_exc()))
        finally:
            results.close()
            results.join_thread()
            os._exit(0)

    processes = [FORK.Process(target=child, args=(i,)) for i in range(workers)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=timeout) for _ in processes]
    for process in processes:
        process.join(timeout=30)
    failures = [detail for _, kind, detail in outcomes if kind == "error"]
    assert not failures, "a workstation failed:\n" + "\n".join(failures)
    return [value for _, _, value in sorted(outcomes, key=lambda o: o[0])]


def _seeded(url: str) -> int:
    db = open_database(url)
    book = OrderBook(db)
    seed(book)
    registration_id = book.registration(PURCHASER_DEA).id
    db.close()  # no pooled connection may cross the fork
    return registration_id


# -- order numbers ------------------------------------------------------------------------------------------------

ALLOCATIONS = 40


def _allocate(index: int, barrier, url: str, registration_id: int) -> list[str]:
    db = open_database(url, migrate=False)
    book = OrderBook(db)
    barrier.wait()
    numbers = [book.allocate_order_number(registration_id, year=2026).value for _ in range(ALLOCATIONS)]
    db.close()
    return numbers


def test_workstations_allocating_at_once_never_share_or_skip_a_number(engine_url):
    registration_id = _seeded(engine_url)
    batches = run_workstations(_allocate, engine_url, registration_id)
    numbers = [n for batch in batches for n in batch]
    duplicates = [n for n, count in Counter(numbers).items() if count > 1]
    assert duplicates == []
    assert sorted(numbers) == [f"26X{i:06d}" for i in range(1, WORKERS * ALLOCATIONS + 1)]
    assert all(batch == sorted(batch) for batch in batches)  # each workstation's numbers only go up


# -- audit chain --------------------------------------------------------------------------------------------------

ORDERS_EACH = 8


def _write_orders(index: int, barrier, url: str) -> list[int]:
    db = open_database(url, migrate=False)
    book = OrderBook(db, actor=f"workstation-{index}")
    barrier.wait()
    ids = []
    for _ in range(ORDERS_EACH):
        order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
        for ndc, *_ in PRODUCTS[:2]:
            book.add_line(order.id, ndc=ndc, packages=1)
        book.transition(order.id, OrderStatus.CANCELLED, details={"reason": "concurrency test"})
        ids.append(order.id)
    db.close()
    return ids


def test_workstations_writing_at_once_keep_one_unbroken_audit_chain(engine_url):
    _seeded(engine_url)
    batches = run_workstations(_write_orders, engine_url)
    db = open_database(engine_url, migrate=False)
    try:
        with db.session() as session:
            assert verify_audit_chain(session) == []
            per_order = 1 + 2 + 1  # created, two lines, cancelled
            actors = Counter(session.scalars(select(AuditEvent.actor).where(AuditEvent.order_id.is_not(None))))
            assert actors == {f"workstation-{i}": ORDERS_EACH * per_order for i in range(WORKERS)}
            assert session.scalar(select(func.count(Order.id))) == WORKERS * ORDERS_EACH
            assert len({n for n in session.scalars(select(Order.order_number))}) == WORKERS * ORDERS_EACH
    finally:
        db.close()
    assert len({i for batch in batches for i in batch}) == WORKERS * ORDERS_EACH


# -- outbox -------------------------------------------------------------------------------------------------------

OUTBOX_ORDERS = 9


@pytest.fixture(scope="module")
def signing_world(tmp_path_factory):
    directory = tmp_path_factory.mktemp("workstations")
    pki = build_training_pki(directory / "pki")
    subscriber = pki.issue()
    crls = [CachedCrl.from_crl(pki.crl(pki.root)).der, CachedCrl.from_crl(pki.crl()).der]
    return pki, subscriber, crls, make_tls_files(directory / "tls")


def _drain(index: int, barrier, url: str, supplier_url: str, tls_bundle) -> list[str]:
    db = open_database(url, migrate=False)
    book = OrderBook(db, actor=f"workstation-{index}")
    outbox = Outbox(book, rng=random.Random(index), worker_name=f"workstation-{index}",
                    connector_for=lambda _supplier: HttpsConnector(supplier_url, tls_bundle=tls_bundle,
                                                                   connect_timeout=5, read_timeout=10,
                                                                   max_attempts=1))
    barrier.wait()
    report = outbox.run_until_idle()
    db.close()
    assert report.failed == []
    return report.sent


def test_workstations_draining_one_outbox_send_each_order_once(engine_url, signing_world, tmp_path):
    pki, subscriber, crls, tls_files = signing_world
    _seeded(engine_url)
    db = open_database(engine_url, migrate=False)
    book = OrderBook(db, actor="purchaser")
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=pki.trust_roots),
                             catalog=MappingSchedules.from_database(db), crls=crls, fetch_crls=False)
    signing = OrderSigningService(book, verifier)
    outbox = Outbox(book, connector_for=lambda _supplier: None)
    numbers = []
    for _ in range(OUTBOX_ORDERS):
        order = draft_order(book, lines=2)
        signing.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=pki.intermediates)
        outbox.enqueue(order.id)
        numbers.append(order.order_number)
    db.close()

    with LoopbackSupplier(tmp_path, tls_files=tls_files) as supplier:
        supplier.faults["latency_ms"] = 30  # each send takes a while, so the workstations overlap
        sent = run_workstations(_drain, engine_url, supplier.url, supplier.tls_bundle)
        received = Counter(number for number, _digest in supplier.received)

    assert received == Counter({number: 1 for number in numbers})  # every order reached the supplier once
    assert sorted(n for batch in sent for n in batch) == sorted(numbers)
    assert sum(1 for batch in sent if batch) >= 2  # the work really was shared between workstations
    db = open_database(engine_url, migrate=False)
    try:
        with db.session() as session:
            assert set(session.scalars(select(OutboxEntry.state))) == {OutboxState.SENT}
            assert set(session.scalars(select(Order.status))) == {OrderStatus.ACCEPTED}
            assert verify_audit_chain(session) == []
            transmitted = session.scalars(select(AuditEvent.details).where(AuditEvent.action == "order.status"))
            assert sum(1 for d in transmitted if d.get("to") == "transmitted") == OUTBOX_ORDERS
    finally:
        db.close()

