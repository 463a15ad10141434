"""Fixtures shared by every test layer: a real SQLite order book in a temp folder."""

from __future__ import annotations

import os
import shutil
import subprocess

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from app.models.database import open_database, sqlite_url  # noqa: E402
from app.services.orders.orderbook import OrderBook  # noqa: E402


@pytest.fixture
def db(tmp_path):
    database = open_database(sqlite_url(tmp_path / "orderbook.sqlite3"))
    yield database
    database.close()


@pytest.fixture
def book(db):
    return OrderBook(db, actor="test")


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A 2 MB tmpfs, to fill up with ``tests.full_drive.fill_up`` (needs root, as ./test has in CI); skipped with
    the reason where mounting is not allowed (the size-limit test in test_disk_full.py covers the logic there)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small filesystem needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this container may not mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


# -- PostgreSQL (the shared order book of several workstations) ----------------------------------------------------
# ./test starts a throw-away cluster (scripts/postgres-cluster) and exports its URL as CSOS_TEST_PG_URL; the user in
# that URL may create databases. Each test gets its own database, copied from a template migrated once per session.

POSTGRES_URL_ENV = "CSOS_TEST_PG_URL"


def _postgres_unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL tests must run in CI, but {reason}. ./test starts a throw-away cluster "
                    "(scripts/postgres-cluster, needs the postgresql package).", pytrace=False)
    pytest.skip(f"PostgreSQL not available: {reason} (./test starts one; or set {POSTGRES_URL_ENV})")


class PostgresServer:
    """The test server: makes fresh databases (empty, or at the newest schema) and drops them afterwards."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self.url = make_url(url).set(drivername="postgresql")
        self.template = f"csos_template_{os.getpid()}"
        self.created: list[str] = []
        self._counter = 0

    def admin_connection(self):
        import psycopg

        return psycopg.connect(self.url.render_as_string(hide_password=False), autocommit=True, connect_timeout=5)

    def url_for(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def new_database(self, *, migrated: bool = True) -> str:
        self._counter += 1
        name = f"csos_test_{os.getpid()}_{self._counter}"
        with self.admin_connection() as admin:
            # FILE_COPY (PostgreSQL 15+) copies the few files of a small database faster than WAL-logging them.
            strategy = " STRATEGY FILE_COPY" if admin.info.server_version >= 150000 else ""
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template if migrated else "template0"}"'
                          f'{strategy}')
        self.created.append(name)
        return self.url_for(name)

    def drop(self, name_or_url: str) -> None:
        name = name_or_url.rsplit("/", 1)[-1].split("?", 1)[0]
        with self.admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def start(self) -> None:
        with self.admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{self.template}" TEMPLATE template0')
        database = open_database(self.url_for(self.template))
        database.close()

    def stop(self) -> None:
        for name in list(self.created) + [self.template]:
            self.drop(name)


@pytest.fixture(scope="session")
def postgres_server():
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        _postgres_unavailable(f"{POSTGRES_URL_ENV} is not set")
    server = PostgresServer(url)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: cannot test on it
        _postgres_unavailable(f"the server at {server.url.render_as_string()} cannot be used ({exc})")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh PostgreSQL database at the newest schema, dropped after the test."""
    url = postgres_server.new_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_url(request, tmp_path):
    """The order book's URL on each engine: a new SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "orderbook.sqlite3")
    return request.getfixturevalue("postgres_url")
