"""The start-up's first page of the order list (app.models.first_page), read with sqlite3 before the order book is
opened: the same orders, rows and total as the order book service gives the list, or nothing. Real SQLite files."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3

import pytest
from sqlalchemy import insert, text

from app.models.first_page import read_first_page, sqlite_path
from app.models.orderbook import Order
from app.models.states import OrderStatus
from app.services.orders.orderbook import OrderBook
from tests.ui.conftest import bulk_orders


def _service_view(db, limit):
    """What the order list is given by the order book service (no filter, newest first)."""
    book = OrderBook(db)
    with db.session() as session:
        keys = book.order_ids_page(session, limit=limit)
        rows = book.order_rows(session, [key.id for key in keys])
        total = book.count_orders(session)
    return keys, rows, total


def _path(db):
    return sqlite_path(db.url)


def test_the_first_page_is_what_the_order_book_service_lists(db):
    ids = bulk_orders(db, 260)
    with db.session() as session, session.begin():
        # An order without lines, one unsigned, and two created in the same microsecond (ties go by id).
        same = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.timezone.utc)
        first = ids[-1] + 1
        for offset in range(3):
            session.execute(insert(Order).values(
                id=first + offset, order_number=f"26X{first + offset:06d}", registration_id=1, supplier_id=1 + offset,
                status=OrderStatus.DRAFT, created_at=same, updated_at=same, signed_at=None, note=""))
    for limit in (200, 5, 1000):
        page = read_first_page(_path(db), limit=limit)
        keys, rows, total = _service_view(db, limit)
        assert page is not None
        assert [(k.created_at, k.id) for k in page.keys] == [(k.created_at, k.id) for k in keys]
        assert page.rows.keys() == rows.keys() and len(rows) == min(limit, 263)
        for order_id, row in rows.items():
            assert dataclasses.astuple(page.rows[order_id]) == dataclasses.astuple(row)
        assert page.total == total == 263
    newest = read_first_page(_path(db), limit=3)
    assert [k.id for k in newest.keys] == [first + 2, first + 1, first]
    assert newest.rows[first].line_count == 0 and newest.rows[first].signed_at is None
    assert newest.keys[0].created_at == same and newest.keys[0].created_at.tzinfo is dt.timezone.utc


def test_an_empty_order_book_has_an_empty_first_page(db):
    page = read_first_page(_path(db))
    assert page is not None and page.keys == () and page.rows == {} and page.total == 0


def test_a_missing_file_is_left_to_the_full_opening_and_not_created(tmp_path):
    path = tmp_path / "none.sqlite3"
    assert read_first_page(path) is None
    assert not path.exists()


@pytest.mark.parametrize("url", [None, "", "postgresql://u:p@host/db", "postgresql+psycopg://host/db",
                                 "sqlite://", "sqlite:///:memory:", "sqlite:///file:x?mode=ro&uri=true"])
def test_only_a_plain_sqlite_file_is_read_this_way(url):
    assert sqlite_path(url) is None


def test_an_order_book_at_another_schema_is_left_to_the_full_opening(db):
    bulk_orders(db, 3)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0004_safe_draft_descriptions'"))
    assert read_first_page(_path(db)) is None
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_from_a_newer_program'"))
    assert read_first_page(_path(db)) is None


def test_a_damaged_file_or_an_unknown_status_gives_nothing(tmp_path, db):
    damaged = tmp_path / "damaged.sqlite3"
    damaged.write_bytes(b"this is not a database" * 100)
    assert read_first_page(damaged) is None
    bulk_orders(db, 3)
    with db.engine.begin() as connection:
        connection.execute(text("UPDATE orders SET status = 'teleported' WHERE id = 2"))
    assert read_first_page(_path(db)) is None


def test_it_reads_a_consistent_snapshot_beside_a_writer_and_never_writes(db):
    bulk_orders(db, 10)
    path = _path(db)
    writer = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM order_lines")
        writer.execute("DELETE FROM orders")
        page = read_first_page(path)  # WAL: the reader sees the last commit, not the writer's work in progress
        assert page is not None and page.total == 10 and len(page.keys) == 10
        writer.execute("ROLLBACK")
    finally:
        writer.close()
    db.close()  # the last connection checkpoints: the file holds everything
    before = path.read_bytes()
    assert read_first_page(path).total == 10
    assert path.read_bytes() == before
