"""Choosing, setting up and upgrading the order book's database: connection test, `csos-desk db …`, explained errors,
and the least-privilege role of docs/multi-workstation.md, against a real PostgreSQL server (and SQLite files)."""

from __future__ import annotations

import json
import os
import socket

import pytest
import sqlalchemy
from alembic import command
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.cli import main
from app.errors import StorageError
from app.models.database import _alembic_config, head_revision, make_engine, open_database, sqlite_url
from app.services import database_admin
from app.services.orders.orderbook import OrderBook
from tests.factories import draft_order, seed, sign_for_test
from tests.integration.test_postgres_concurrency import run_workstations


def _migrate_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    engine.dispose()


def _with(url: str, **parts) -> str:
    return make_url(url).set(**parts).render_as_string(hide_password=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def empty_postgres_url(postgres_server):
    url = postgres_server.new_database(migrated=False)
    yield url
    postgres_server.drop(url)


# -- connection test ------------------------------------------------------------------------------------------------


def test_a_ready_shared_order_book(postgres_url):
    db = open_database(postgres_url)
    book = OrderBook(db)
    seed(book)
    draft_order(book)
    db.close()
    status = database_admin.test_connection(postgres_url)
    assert (status.state, status.usable, status.engine, status.revision, status.orders) == (
        "ready", True, "postgresql", head_revision(), 1)
    assert status.server_version.startswith("PostgreSQL ")
    password = make_url(postgres_url).password
    assert password and password not in json.dumps(status.to_json())
    assert "***" in status.url


def test_an_empty_database_is_set_up_by_init_and_then_ready(empty_postgres_url):
    before = database_admin.test_connection(empty_postgres_url)
    assert (before.state, before.usable, before.revision) == ("empty", True, None)
    after = database_admin.init_database(empty_postgres_url)
    assert (after.state, after.revision, after.orders) == ("ready", head_revision(), 0)
    assert database_admin.init_database(empty_postgres_url).state == "ready"  # again: nothing to do


@pytest.mark.parametrize("change, code", [
    (lambda url: _with(url, password="not-the-password"), "storage.wrong_credentials"),
    (lambda url: _with(url, username="nobody_here"), "storage.wrong_credentials"),
    (lambda url: _with(url, port=_closed_port()), "storage.server_down"),
    (lambda url: _with(url, database="no_such_order_book"), "storage.no_such_database"),
    (lambda url: _with(url, drivername="postgresql+pg8000"), "storage.missing_driver"),
    (lambda url: "postgresql+nosuchdriver://u@127.0.0.1/x", "storage.missing_driver"),
    (lambda url: "mysql://u@127.0.0.1/x", "database.engine_unsupported"),
    (lambda url: "not a url", "database.url_invalid"),
])
def test_connection_problems_are_explained_and_never_raise(postgres_url, change, code):
    url = change(postgres_url)
    status = database_admin.test_connection(url)
    assert (status.state, status.usable, status.error_code) == ("unavailable", False, code)
    assert "not-the-password" not in status.message and "not-the-password" not in status.url
    # Opening it the way the program does gives the same explanation as an error.
    if code.startswith("storage."):
        with pytest.raises(StorageError) as caught:
            open_database(url)
        assert caught.value.code == code
        assert "not-the-password" not in caught.value.message


def test_an_older_shared_schema_is_explained_and_upgraded_on_purpose(empty_postgres_url):
    _migrate_to(empty_postgres_url, "0001")
    status = database_admin.test_connection(empty_postgres_url)
    assert (status.state, status.usable, status.revision, status.error_code) == (
        "older", False, "0001", "storage.older_schema")
    assert "csos-desk db upgrade" in status.message
    # A workstation starting with the newer program does not upgrade the shared book behind everyone's back.
    with pytest.raises(StorageError) as caught:
        open_database(empty_postgres_url)
    assert caught.value.code == "storage.older_schema"
    with pytest.raises(StorageError) as caught:
        database_admin.init_database(empty_postgres_url)
    assert caught.value.code == "storage.older_schema"
    upgraded = database_admin.upgrade_database(empty_postgres_url)
    assert (upgraded.state, upgraded.revision) == ("ready", head_revision())
    open_database(empty_postgres_url).close()


def test_a_newer_or_foreign_database_is_refused(postgres_url, empty_postgres_url):
    with make_engine(postgres_url).begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    newer = database_admin.test_connection(postgres_url)
    assert (newer.state, newer.usable, newer.error_code) == ("newer", False, "storage.newer_schema")
    with pytest.raises(StorageError) as caught:
        database_admin.upgrade_database(postgres_url)
    assert caught.value.code == "storage.newer_schema"

    with make_engine(empty_postgres_url).begin() as connection:
        connection.execute(text("CREATE TABLE invoices (id integer primary key)"))
    foreign = database_admin.test_connection(empty_postgres_url)
    assert (foreign.state, foreign.usable) == ("foreign", False)
    with pytest.raises(StorageError) as caught:
        database_admin.init_database(empty_postgres_url)
    assert caught.value.code == "database.not_an_order_book"


def test_sqlite_files_are_created_and_upgraded_by_the_program(tmp_path):
    url = sqlite_url(tmp_path / "new" / "orderbook.sqlite3")
    assert database_admin.test_connection(url).state == "empty"
    assert not (tmp_path / "new").exists()  # a connection test creates nothing
    assert database_admin.init_database(url).state == "ready"
    _older = sqlite_url(tmp_path / "older.sqlite3")
    _migrate_to(_older, "0001")
    older = database_admin.test_connection(_older)
    assert (older.state, older.usable, older.error_code) == ("older", True, "")  # opened = upgraded
    assert database_admin.upgrade_database(_older).state == "ready"


# -- first start of several workstations at once --------------------------------------------------------------------


def _first_open(index: int, barrier, url: str) -> str:
    barrier.wait()
    db = open_database(url)
    revision = database_admin.test_connection(url).revision
    db.close()
    return revision


def test_workstations_opening_an_empty_database_at_once_set_it_up_once(empty_postgres_url):
    assert run_workstations(_first_open, empty_postgres_url) == [head_revision()] * 3
    assert database_admin.test_connection(empty_postgres_url).state == "ready"


# -- the least-privilege role of docs/multi-workstation.md ----------------------------------------------------------


def test_the_workstation_role_works_the_order_book_but_cannot_rewrite_history(postgres_server):
    url = postgres_server.new_database(migrated=False)
    database = make_url(url).database
    role = f"csos_app_{os.getpid()}"
    with postgres_server.admin_connection() as admin:
        admin.execute(f"DROP ROLE IF EXISTS {role}")
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'app-pass'")
    try:
        database_admin.init_database(url)  # by the owner
        owner = make_engine(url)
        with owner.begin() as connection:
            connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
            for statement in database_admin.app_role_grants(role, database):
                connection.execute(text(statement))
        owner.dispose()
        app_url = _with(url, username=role, password="app-pass")

        db = open_database(app_url)
        book = OrderBook(db, actor="workstation")
        seed(book)
        order = sign_for_test(book, draft_order(book).id)
        for statement in ("UPDATE audit_events SET actor = 'mallory'", "DELETE FROM audit_events",
                          "DROP TABLE orders", "UPDATE alembic_version SET version_num = '0001'"):
            with pytest.raises(sqlalchemy.exc.ProgrammingError) as caught:  # the server itself refuses
                with db.engine.begin() as connection:
                    connection.execute(text(statement))
            assert "permission denied" in str(caught.value) or "must be owner" in str(caught.value)
        assert OrderBook(db).get_order(order.id).signed_document == b"signed-cms-placeholder"
        db.close()

        # The role cannot change the schema: setting up or upgrading stays with the owner.
        empty = postgres_server.new_database(migrated=False)
        with postgres_server.admin_connection() as admin:
            admin.execute(f'GRANT CONNECT ON DATABASE "{make_url(empty).database}" TO {role}')
        with make_engine(empty).begin() as connection:
            connection.execute(text("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        with pytest.raises(StorageError) as caught:
            database_admin.init_database(_with(empty, username=role, password="app-pass"))
        assert caught.value.code == "storage.permission_denied"
        postgres_server.drop(empty)
    finally:
        postgres_server.drop(url)
        with postgres_server.admin_connection() as admin:
            admin.execute(f"DROP ROLE IF EXISTS {role}")


# -- csos-desk db ---------------------------------------------------------------------------------------------------


def test_cli_db_init_status_upgrade(empty_postgres_url, capsys, tmp_path):
    base = ["--data-dir", str(tmp_path / "data")]
    assert main(base + ["db", "status", "--url", empty_postgres_url]) == 1  # something to do: init
    assert "empty" in capsys.readouterr().out
    assert main(base + ["db", "init", "--url", empty_postgres_url]) == 0
    out = capsys.readouterr().out
    assert f"Schema:   {head_revision()}" in out and "ready" in out
    assert make_url(empty_postgres_url).password not in out
    assert main(base + ["db", "status", "--url", empty_postgres_url, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["usable"], status["orders"]) == ("ready", True, 0)
    assert main(base + ["db", "upgrade", "--url", empty_postgres_url]) == 0
    capsys.readouterr()
    # --database-url (the global option) is what `db` uses without --url.
    assert main(base + ["--database-url", _with(empty_postgres_url, password="wrong"), "db", "status"]) == 2
    captured = capsys.readouterr()
    assert "user name or password" in captured.out and "wrong" not in captured.out.replace("wrong credentials", "")
    assert main(base + ["db", "upgrade", "--url", _with(empty_postgres_url, database="nope")]) == 2
    assert "error [storage.no_such_database]" in capsys.readouterr().err


def test_cli_db_grants_prints_the_sql(capsys, tmp_path):
    assert main(["--data-dir", str(tmp_path), "db", "grants", "--role", "csos_app",
                 "--url", "postgresql://owner@db.pharmacy.lan/csos"]) == 0
    out = capsys.readouterr().out
    assert "GRANT SELECT, INSERT ON" not in out
    assert "GRANT CONNECT ON DATABASE csos TO csos_app;" in out
    assert "REVOKE UPDATE, DELETE ON public.audit_events FROM csos_app;" in out
    assert main(["--data-dir", str(tmp_path), "db", "grants", "--role", "x; DROP", "--url",
                 "postgresql://owner@db/csos"]) == 1
