"""The order-book tests of tests/unit/orders/test_orderbook.py, run again on PostgreSQL (the shared order book).

The functions are imported from the SQLite module and re-collected here, with ``db`` overridden to a fresh
PostgreSQL database, so both engines are held to the same behaviour. SQLite-only tests (WAL pragma, a damaged file)
stay in the unit module; tests that touch the engine directly have PostgreSQL versions below.
"""

from __future__ import annotations

import pytest
import sqlalchemy
from sqlalchemy import text

from app.errors import StorageError
from app.models.database import head_revision, open_database, schema_revision
from app.models.integrity import verify_audit_chain
from app.services.orders.orderbook import OrderBook
from tests.factories import draft_order, seed
from tests.unit.orders.test_orderbook import (  # noqa: F401 - re-collected by pytest on this engine
    signed_order,
    test_an_order_cannot_become_signed_without_its_document,
    test_audit_chain_detects_a_removed_event,
    test_audit_chain_detects_an_edited_event,
    test_bad_lines_are_refused_and_nothing_is_added,
    test_duplicate_registration_and_order_number,
    test_keyset_pages_cover_every_order_once_and_filters_narrow,
    test_lines_take_description_package_and_schedule_from_the_catalog,
    test_linked_records_and_audit_events_are_append_only,
    test_order_numbers_follow_o2_and_skip_numbers_typed_by_hand,
    test_signed_order_fields_cannot_change,
    test_signed_order_lines_cannot_change_be_added_or_removed,
    test_status_of_a_signed_order_still_moves,
    test_transitions_on_the_database_write_audit_events,
)


@pytest.fixture
def db(postgres_url):
    database = open_database(postgres_url)
    assert database.engine.dialect.name == "postgresql"
    yield database
    database.close()


def test_audit_chain_cannot_fork_on_postgresql(book, signed_order, db):
    """previous_hash is unique: a second event claiming the same predecessor is refused by the server."""
    with db.engine.connect() as connection:
        last = connection.execute(text("SELECT previous_hash FROM audit_events ORDER BY id DESC LIMIT 1")).scalar()
        with pytest.raises(sqlalchemy.exc.IntegrityError) as caught:
            connection.execute(text(
                "INSERT INTO audit_events (at, actor, action, details, previous_hash, event_hash) "
                "VALUES ('2026-01-01', 'x', 'fork', '{}', :p, :h)"), {"p": last, "h": "f" * 64})
        assert "uq_audit_events_previous_hash" in str(caught.value)


def test_migrations_on_empty_and_populated_postgresql_database(postgres_server):
    url = postgres_server.new_database(migrated=False)
    db = open_database(url)
    assert schema_revision(db.engine) == head_revision()
    book = OrderBook(db)
    seed(book)
    order = draft_order(book)
    db.close()
    # Re-opening a populated database applies nothing new and keeps everything (and a plain postgresql:// URL
    # means psycopg 3).
    db = open_database(url)
    assert db.engine.dialect.driver == "psycopg"
    assert schema_revision(db.engine) == head_revision()
    assert [line.ndc for line in OrderBook(db).get_order(order.id).lines] == ["00406055262", "00555097302"]
    with db.session() as session:
        assert verify_audit_chain(session) == []
    db.close()
    postgres_server.drop(url)


def test_a_newer_schema_on_the_server_is_refused_with_a_clear_error(postgres_url):
    with open_database(postgres_url).engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(StorageError) as caught:
        open_database(postgres_url)
    assert caught.value.code == "storage.newer_schema"
