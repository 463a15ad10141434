from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import sqlite3

import pytest
from sqlalchemy import select, text

from app.errors import ImmutableRecord, InvalidTransition, InvalidValue, NotFound, StorageError
from app.models.database import head_revision, open_database, schema_revision, sqlite_url
from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent, LinkedRecord, LinkedRecordKind, Order, OrderLine
from app.models.states import TRANSITIONS, OrderStatus, check_transition
from app.services.orders.orderbook import DuplicateRecord, OrderBook, OrderFilter
from tests.factories import PURCHASER_DEA, draft_order, seed, sign_for_test

ALL_PAIRS = list(itertools.product(OrderStatus, OrderStatus))


# -- state machine --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("current, target", ALL_PAIRS, ids=[f"{a.value}->{b.value}" for a, b in ALL_PAIRS])
def test_every_transition_is_allowed_or_refused_as_the_table_says(current, target):
    if target in TRANSITIONS[current]:
        check_transition(current, target)
    else:
        with pytest.raises(InvalidTransition) as caught:
            check_transition(current, target)
        assert current.label.lower() in caught.value.message


def test_final_states_have_no_way_out():
    finals = {s for s in OrderStatus if s.is_final}
    assert finals == {OrderStatus.NOT_ACCEPTED, OrderStatus.RECEIVED, OrderStatus.VOIDED, OrderStatus.CANCELLED,
                      OrderStatus.LOST, OrderStatus.EXPIRED}
    # Every non-final state can reach a final one (no trap cycles).
    for start in OrderStatus:
        seen, frontier = {start}, [start]
        while frontier:
            for nxt in TRANSITIONS[frontier.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        assert seen & finals or start in finals


def test_transitions_on_the_database_write_audit_events(book):
    seed(book)
    order = draft_order(book)
    sign_for_test(book, order.id)
    book.transition(order.id, OrderStatus.QUEUED)
    book.transition(order.id, OrderStatus.TRANSMITTED)
    book.transition(order.id, OrderStatus.ACCEPTED, details={"ack": "AC"})
    with pytest.raises(InvalidTransition):
        book.transition(order.id, OrderStatus.DRAFT)
    assert book.get_order(order.id).status is OrderStatus.ACCEPTED
    with book.db.session() as session:
        moves = [(e.details["from"], e.details["to"]) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.order_id == order.id, AuditEvent.action == "order.status")
            .order_by(AuditEvent.id))]
        assert moves == [("draft", "signed"), ("signed", "queued"), ("queued", "transmitted"),
                         ("transmitted", "accepted")]
        assert verify_audit_chain(session) == []


def test_an_order_cannot_become_signed_without_its_document(book):
    seed(book)
    order = draft_order(book)
    with pytest.raises(InvalidValue) as caught:
        book.transition(order.id, OrderStatus.SIGNED)
    assert caught.value.code == "order.unsigned"


def _store(book, order_id, document=b"cms-bytes"):
    import datetime as dt

    return book.store_signed(order_id, document=document, payload_sha256="a" * 64, signer_fingerprint="b" * 64,
                             signed_at=dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc),
                             details={"document_sha256": "c" * 64})


def _events(book, order_id):
    with book.db.session() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.order_id == order_id)
                                    .order_by(AuditEvent.id)))


def test_store_signed_writes_document_status_and_audit_event_together(book):
    """The signing path's one transaction: the document, the move to signed (state machine) and its audit event."""
    seed(book)
    order = draft_order(book)
    before = len(_events(book, order.id))
    assert _store(book, order.id) is True
    stored = book.get_order(order.id)
    assert stored.status is OrderStatus.SIGNED and stored.signed_document == b"cms-bytes"
    assert stored.payload_sha256 == "a" * 64 and stored.signer_fingerprint == "b" * 64 and stored.signed_at
    events = _events(book, order.id)
    assert len(events) == before + 1
    assert events[-1].action == "order.status" and events[-1].actor == "test"
    assert events[-1].details == {"from": "draft", "to": "signed", "document_sha256": "c" * 64}
    with book.db.session() as session:
        assert verify_audit_chain(session) == []
    # Signed content is immutable afterwards, through the ORM as for any signed order ...
    with book.db.session() as session:
        session.get(Order, order.id).signed_document = b"other"
        with pytest.raises(ImmutableRecord):
            session.commit()
    # ... and a second store (a racing workstation, a retry) writes nothing at all.
    assert _store(book, order.id, document=b"second") is False
    assert book.get_order(order.id).signed_document == b"cms-bytes"
    assert len(_events(book, order.id)) == before + 1


def test_store_signed_refuses_an_order_that_is_no_longer_a_draft(book):
    seed(book)
    order = draft_order(book)
    book.transition(order.id, OrderStatus.CANCELLED)
    events = len(_events(book, order.id))
    assert _store(book, order.id) is False
    after = book.get_order(order.id)
    assert after.status is OrderStatus.CANCELLED and after.signed_document is None
    assert len(_events(book, order.id)) == events


def test_store_signed_compares_the_lines_inside_its_write_transaction(book):
    """A line changed by another writer just before the store (after the lines were read for signing, before the
    UPDATE): nothing is stored. On SQLite the comparison has to come after the UPDATE, which is what takes the write
    lock; a SELECT before it ran outside any write transaction and the change slipped in between (stored: True)."""
    from sqlalchemy import event

    from app.services.signing.draft_load import load_draft

    seed(book)
    order = draft_order(book, lines=2)
    signed_lines = load_draft(book.db, order.id).line_rows
    changed = []

    def other_writer(connection, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("UPDATE orders") and not changed:
            other = sqlite3.connect(book.db.engine.url.database, timeout=5)
            other.execute("UPDATE order_lines SET packages = packages + 1 WHERE order_id = ?", (order.id,))
            other.commit()
            other.close()
            changed.append(True)

    event.listen(book.db.engine, "before_cursor_execute", other_writer)
    try:
        events = len(_events(book, order.id))
        stored = book.store_signed(order.id, document=b"cms", payload_sha256="a" * 64, signer_fingerprint="b" * 64,
                                   signed_at=dt.datetime(2026, 5, 6, tzinfo=dt.timezone.utc),
                                   signed_lines=signed_lines)
    finally:
        event.remove(book.db.engine, "before_cursor_execute", other_writer)
    assert changed and stored is False
    after = book.get_order(order.id)
    assert after.status is OrderStatus.DRAFT and after.signed_document is None
    assert len(_events(book, order.id)) == events


# -- drafts ---------------------------------------------------------------------------------------------------

def test_lines_take_description_package_and_schedule_from_the_catalog(book):
    seed(book)
    order = draft_order(book, lines=2)
    first, second = order.lines
    assert (first.line_number, first.description, first.schedule, first.unit) == (1, "Oxycodone Hydrochloride 5 mg",
                                                                                  "II", "EA")
    assert second.schedule == "IIN" and second.package_quantity == 100


@pytest.mark.parametrize("ndc, packages, error, code", [
    ("12345-6789-01", 1, NotFound, "catalog.unknown_ndc"),
    ("0406055262", 1, InvalidValue, "ndc.ambiguous"),
    ("00406-0552-62", 0, InvalidValue, "line.packages"),
    ("00406-0552-62", -3, InvalidValue, "line.packages"),
    ("00406-0552-62", 100_000, InvalidValue, "line.packages"),
])
def test_bad_lines_are_refused_and_nothing_is_added(book, ndc, packages, error, code):
    seed(book)
    order = draft_order(book, lines=1)
    with pytest.raises(error) as caught:
        book.add_line(order.id, ndc=ndc, packages=packages)
    assert caught.value.code == code
    assert len(book.get_order(order.id).lines) == 1


def test_duplicate_registration_and_order_number(book):
    seed(book)
    with pytest.raises(DuplicateRecord):
        book.add_registration(dea_number=PURCHASER_DEA, name="Another Name", address_lines=["2 Elm St"],
                              city="Springfield", state="IL", postal_code="62701")
    order = draft_order(book, lines=0)
    with pytest.raises(DuplicateRecord) as caught:
        book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug", order_number=order.order_number)
    assert caught.value.code == "order_number.duplicate"


# -- immutability ---------------------------------------------------------------------------------------------

@pytest.fixture
def signed_order(book):
    seed(book)
    order = draft_order(book)
    return sign_for_test(book, order.id)


@pytest.mark.parametrize("field, value", [("signed_document", b"other"), ("order_number", "26X999999"),
                                          ("payload_sha256", "0" * 64), ("supplier_id", 999)])
def test_signed_order_fields_cannot_change(book, signed_order, field, value):
    with book.db.session() as session:
        order = session.get(Order, signed_order.id)
        setattr(order, field, value)
        with pytest.raises(ImmutableRecord) as caught:
            session.commit()
        assert caught.value.code == "order.signed_immutable"
    assert book.get_order(signed_order.id).signed_document == b"signed-cms-placeholder"


def test_signed_order_lines_cannot_change_be_added_or_removed(book, signed_order):
    with book.db.session() as session:
        line = session.scalar(select(OrderLine).where(OrderLine.order_id == signed_order.id))
        line.packages = 50
        with pytest.raises(ImmutableRecord):
            session.commit()
    with book.db.session() as session:
        line = session.scalar(select(OrderLine).where(OrderLine.order_id == signed_order.id))
        session.delete(line)
        with pytest.raises(ImmutableRecord):
            session.commit()
    with pytest.raises(InvalidValue):
        book.add_line(signed_order.id, ndc="00009002901", packages=1)
    with book.db.session() as session:
        session.add(OrderLine(order_id=signed_order.id, line_number=9, ndc="00009002901", description="x",
                              packages=1, package_quantity=1, unit="EA"))
        with pytest.raises(ImmutableRecord):
            session.commit()
    with book.db.session() as session:
        session.delete(session.get(Order, signed_order.id))
        with pytest.raises(ImmutableRecord):
            session.commit()
    assert [line.packages for line in book.get_order(signed_order.id).lines] == [1, 1]


def test_status_of_a_signed_order_still_moves(book, signed_order):
    book.transition(signed_order.id, OrderStatus.QUEUED)
    assert book.get_order(signed_order.id).status is OrderStatus.QUEUED


def test_linked_records_and_audit_events_are_append_only(book, signed_order):
    with book.db.session() as session, session.begin():
        record = book.link_record(session, signed_order.id,
                                  LinkedRecord(kind=LinkedRecordKind.NOTE, raw=b"hello", direction="local"))
    with book.db.session() as session:
        stored = session.get(LinkedRecord, record.id)
        stored.raw = b"changed"
        with pytest.raises(ImmutableRecord):
            session.commit()
    with book.db.session() as session:
        event = session.scalars(select(AuditEvent)).first()
        event.action = "rewritten"
        with pytest.raises(ImmutableRecord):
            session.commit()


def test_every_book_opened_in_one_process_keeps_the_rules(tmp_path):
    """The program opens books again and again (start-over, switching books, the tests); each must refuse edits.

    SQLAlchemy's event registry remembers a listener by id(): a new session factory born at the address of a
    collected one used to look "already installed" and got no rules at all.
    """
    import gc

    from app.models.integrity import install_integrity_rules
    from sqlalchemy.orm import sessionmaker

    without_rules = 0
    for attempt in range(100):
        factory = sessionmaker()
        install_integrity_rules(factory)
        without_rules += not list(factory().dispatch.before_flush)
        del factory
        if attempt % 10 == 0:
            gc.collect()
    assert without_rules == 0
    for attempt in range(2):
        db = open_database(sqlite_url(tmp_path / f"book{attempt}.sqlite"))
        book = OrderBook(db, actor="test")
        seed(book)
        order = draft_order(book)
        sign_for_test(book, order.id)
        with db.session() as session:
            session.get(Order, order.id).signed_document = b"forged"
            with pytest.raises(ImmutableRecord):
                session.commit()
        db.close()
        del db, book
        gc.collect()


# -- audit chain ----------------------------------------------------------------------------------------------

def test_audit_chain_detects_an_edited_event(book, signed_order, db):
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
    with db.session() as session:
        problems = verify_audit_chain(session)
    assert [(p.event_id, p.code) for p in problems] == [(2, "audit.event_altered")]


def test_audit_chain_detects_a_removed_event(book, signed_order, db):
    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_events WHERE id = 3"))
    with db.session() as session:
        problems = verify_audit_chain(session)
    assert [(p.event_id, p.code) for p in problems] == [(4, "audit.chain_broken")]


def test_audit_chain_cannot_fork(book, signed_order, db):
    """previous_hash is unique: a second event claiming the same predecessor is refused by the database."""
    with db.engine.connect() as connection:
        last = connection.execute(text("SELECT previous_hash FROM audit_events ORDER BY id DESC LIMIT 1")).scalar()
        with pytest.raises(Exception) as caught:
            connection.execute(text(
                "INSERT INTO audit_events (at, actor, action, details, previous_hash, event_hash) "
                "VALUES ('2026-01-01', 'x', 'fork', '{}', :p, :h)"), {"p": last, "h": "f" * 64})
        assert "UNIQUE" in str(caught.value)


# -- migrations -----------------------------------------------------------------------------------------------

def test_migrations_on_empty_and_populated_database(tmp_path):
    url = sqlite_url(tmp_path / "book.sqlite3")
    db = open_database(url)
    assert schema_revision(db.engine) == head_revision()
    book = OrderBook(db)
    seed(book)
    order = draft_order(book)
    db.close()
    # Re-opening a populated database applies nothing new and keeps everything.
    db = open_database(url)
    assert schema_revision(db.engine) == head_revision()
    assert [line.ndc for line in OrderBook(db).get_order(order.id).lines] == ["00406055262", "00555097302"]
    with db.session() as session:
        assert verify_audit_chain(session) == []
    db.close()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db):
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_a_newer_schema_is_refused_with_a_clear_error(tmp_path):
    path = tmp_path / "book.sqlite3"
    open_database(sqlite_url(path)).close()
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999_future'")
    with pytest.raises(StorageError) as caught:
        open_database(sqlite_url(path))
    assert caught.value.code == "storage.newer_schema"


def test_a_file_that_is_not_a_database_is_explained(tmp_path):
    path = tmp_path / "book.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError) as caught:
        open_database(sqlite_url(path))
    assert caught.value.code == "storage.corrupt"
    assert path.read_bytes().startswith(b"this is not sqlite")  # nothing lost


# -- order numbers --------------------------------------------------------------------------------------------

def test_order_numbers_follow_o2_and_skip_numbers_typed_by_hand(db):
    book = OrderBook(db, clock=lambda: dt.datetime(2026, 6, 1, 12, tzinfo=dt.timezone.utc))
    seed(book)
    registration = book.registration(PURCHASER_DEA)
    book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug", order_number="26X000002")
    numbers = [book.allocate_order_number(registration.id, year=2026).value for _ in range(3)]
    assert numbers == ["26X000001", "26X000003", "26X000004"]
    assert book.allocate_order_number(registration.id, year=2027).value == "27X000001"


def _allocate_many(url: str, registration_id: int, count: int, queue) -> None:
    db = open_database(url, migrate=False)
    book = OrderBook(db)
    queue.put([book.allocate_order_number(registration_id, year=2026).value for _ in range(count)])
    db.close()


def test_two_processes_allocating_at_once_never_get_the_same_number(tmp_path):
    url = sqlite_url(tmp_path / "book.sqlite3")
    db = open_database(url)
    book = OrderBook(db)
    seed(book)
    registration_id = book.registration(PURCHASER_DEA).id
    db.close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_allocate_many, args=(url, registration_id, 40, queue)) for _ in range(3)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    numbers = [n for batch in results for n in batch]
    assert len(numbers) == 120
    assert len(set(numbers)) == 120
    assert sorted(numbers) == [f"26X{i:06d}" for i in range(1, 121)]


# -- listing --------------------------------------------------------------------------------------------------

def test_keyset_pages_cover_every_order_once_and_filters_narrow(book):
    seed(book)
    ids = [draft_order(book, lines=1 if i % 2 else 3).id for i in range(25)]
    sign_for_test(book, ids[0])
    with book.db.session() as session:
        seen, after = [], None
        while True:
            page = book.order_ids_page(session, after=after, limit=7)
            if not page:
                break
            seen += [key.id for key in page]
            after = page[-1]
        assert seen == sorted(ids, reverse=True)
        signed = book.order_ids_page(session, OrderFilter(statuses=frozenset({OrderStatus.SIGNED})))
        assert [k.id for k in signed] == [ids[0]]
        alprazolam = book.order_ids_page(session, OrderFilter(text="alpraz"))
        assert len(alprazolam) == 13  # orders with 3 lines
        by_ndc = book.order_ids_page(session, OrderFilter(text="00009-0029-01"))
        assert {k.id for k in by_ndc} == {k.id for k in alprazolam}
        by_number = book.order_ids_page(session, OrderFilter(text="26x00001"))
        assert len(by_number) == 10  # 26X000010..26X000019
        assert book.count_orders(session) == 25
        rows = book.order_rows(session, [ids[0]])
        assert rows[ids[0]].line_count == 3 and rows[ids[0]].status is OrderStatus.SIGNED


def test_an_order_book_from_the_first_release_is_upgraded_without_losing_anything(tmp_path):
    """A database written at revision 0001 (no outbox yet) opens with today's code: every later migration runs
    and the orders, lines and audit chain are as they were."""
    from alembic import command

    from app.models.database import _alembic_config, make_engine

    url = sqlite_url(tmp_path / "old.sqlite3")
    engine = make_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        assert "outbox_entries" not in {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    # Content written by the old schema (through today's models, which only add tables on top of 0001).
    db = open_database(url, migrate=False)
    book = OrderBook(db)
    seed(book)
    order = draft_order(book)
    db.close()
    db = open_database(url)
    assert schema_revision(db.engine) == head_revision() != "0001"
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        assert "outbox_entries" in {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
    kept = OrderBook(db).get_order(order.id)
    assert [line.ndc for line in kept.lines] == ["00406055262", "00555097302"]
    with db.session() as session:
        assert verify_audit_chain(session) == []
    db.close()


def test_the_schema_head_constant_is_alembics_head():
    from app.models.order_rows import SCHEMA_HEAD

    assert SCHEMA_HEAD == head_revision()
