"""Looking after the order book's database: connection test, status, set-up and upgrade.

The settings page ("use the pharmacy's shared database") and `csos-desk db …` call these. A connection test changes
nothing; it says in plain language what is wrong (wrong credentials, server down, missing driver, an older or newer
schema) so a person can act on it. A shared (PostgreSQL) order book is only ever set up or upgraded on purpose.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from app.errors import InvalidValue, StorageError
from app.models.database import (
    engine_url,
    explain_storage_failure,
    head_revision,
    make_engine,
    open_database,
    schema_revision,
    upgrade_schema,
)
from app.models.orderbook import Order

SUPPORTED_ENGINES = ("sqlite", "postgresql")

# What a connection test found.
READY = "ready"  # the order book is there, at the schema this program uses
EMPTY = "empty"  # nothing there yet: `db init` (or the first start, for SQLite and empty databases) sets it up
OLDER = "older"  # an order book of an older version: `db upgrade` (automatic for a local SQLite file)
NEWER = "newer"  # written by a newer CSOS Desk: update this workstation
FOREIGN = "foreign"  # tables of something else and no order book: choose another database
UNAVAILABLE = "unavailable"  # could not connect or read (see error_code)


@dataclass(frozen=True)
class DatabaseStatus:
    """The answer of a connection test. ``usable`` says whether this program can work with it as it is."""

    url: str  # password hidden
    engine: str
    state: str
    message: str
    revision: str | None = None
    head: str = ""
    server_version: str = ""
    orders: int | None = None
    error_code: str = ""
    checked_at: str = ""

    @property
    def usable(self) -> bool:
        if self.state == READY:
            return True
        # SQLite files and empty databases are set up by the program itself when opened; a local file is upgraded.
        return self.state == EMPTY or (self.state == OLDER and self.engine == "sqlite")

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"usable": self.usable}


def safe_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages, logs and screens."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database address)"


def check_url(url: str) -> str:
    """Refuse, with a clear reason, what is not an SQLite or PostgreSQL address."""
    value = (url or "").strip()
    if not value:
        raise InvalidValue("Give the database address, e.g. postgresql://csos_app@server/csos.",
                           code="database.url_empty")
    try:
        parsed = make_url(value)
    except ArgumentError:
        raise InvalidValue("This is not a database address. Use e.g. postgresql://csos_app@server/csos, or "
                           "sqlite:///path/to/orderbook.sqlite3.", code="database.url_invalid") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    if backend not in SUPPORTED_ENGINES:
        raise InvalidValue(f"CSOS Desk works with SQLite or PostgreSQL, not “{backend}”.",
                           code="database.engine_unsupported")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise InvalidValue("An SQLite address must name a file, e.g. sqlite:///path/to/orderbook.sqlite3.",
                           code="database.url_invalid")
    return value


def test_connection(url: str) -> DatabaseStatus:
    """Connect and look, changing nothing. Problems come back as a status with a plain message, not as errors."""
    try:
        value = check_url(url)
    except InvalidValue as exc:
        return DatabaseStatus(url=safe_url(url or ""), engine="", state=UNAVAILABLE, message=exc.message,
                              head=head_revision(), error_code=exc.code, checked_at=_now())
    backend = _backend(value)
    if backend == "sqlite":
        path = Path(make_url(value).database or "")
        if not path.exists():
            return _status(value, EMPTY, f"There is no order book at {path} yet; CSOS Desk creates it there.")
    try:
        engine = make_engine(value)
    except StorageError as exc:
        return _status(value, UNAVAILABLE, exc.message, error_code=exc.code)
    try:
        return _inspect(engine, value)
    except (SQLAlchemyError, OSError) as exc:
        explained = explain_storage_failure(exc, value)
        return _status(value, UNAVAILABLE, explained.message, error_code=explained.code)
    finally:
        engine.dispose()


test_connection.__test__ = False  # type: ignore[attr-defined]  # a service, not a pytest test


def database_status(url: str) -> DatabaseStatus:
    """Like ``test_connection`` (the name `db status` uses)."""
    return test_connection(url)


def _usable_status(url: str) -> DatabaseStatus:
    """The database's state, refusing the states neither init nor upgrade can work with."""
    status = test_connection(url)
    if status.state == UNAVAILABLE:
        raise StorageError(status.message, code=status.error_code or "storage.failed")
    if status.state == NEWER:
        raise StorageError(status.message, code="storage.newer_schema")
    if status.state == FOREIGN:
        raise StorageError(status.message, code="database.not_an_order_book")
    return status


def init_database(url: str) -> DatabaseStatus:
    """Set up the order book in an empty database (or confirm it is already there and current)."""
    status = _usable_status(url)
    if status.state == OLDER and status.engine == "postgresql":
        raise StorageError("This database already holds an order book of an older version; back it up and run "
                           "`csos-desk db upgrade` instead.", code="storage.older_schema")
    if status.state == READY:
        return status
    open_database(url).close()
    return test_connection(url)


def upgrade_database(url: str) -> DatabaseStatus:
    """Apply the pending schema changes (back the database up first; every workstation then needs this version)."""
    status = _usable_status(url)
    if status.state == EMPTY:
        raise StorageError("There is no order book in this database yet; set it up with `csos-desk db init`.",
                           code="database.empty")
    if status.state == READY:
        return status
    engine = make_engine(check_url(url))
    try:
        upgrade_schema(engine)
    except (SQLAlchemyError, OSError) as exc:
        raise explain_storage_failure(exc, url) from exc
    finally:
        engine.dispose()
    return test_connection(url)


def app_role_grants(role: str, database: str, *, schema: str = "public") -> list[str]:
    """SQL that gives the workstations' least-privilege role what the program needs, and no more.

    Run by the owner of the tables after `db init` and again after every `db upgrade` (new tables). The role reads
    and writes the order book, cannot change the schema, and can only add to the audit log (never rewrite or delete
    an event).
    """
    for what, name in (("role", role), ("database", database), ("schema", schema)):
        if not name or not name.replace("_", "").isalnum() or not name[0].isalpha():
            raise InvalidValue(f"A {what} name is letters, digits and _ (starting with a letter): “{name}”.",
                               code=f"database.{what}_name")
    return [
        f"GRANT CONNECT ON DATABASE {database} TO {role};",
        f"GRANT USAGE ON SCHEMA {schema} TO {role};",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};",
        f"REVOKE INSERT, UPDATE, DELETE ON {schema}.alembic_version FROM {role};",
        f"REVOKE UPDATE, DELETE ON {schema}.audit_events FROM {role};",
    ]


# ---------------------------------------------------------------------------------------------------------------------


def _inspect(engine: Engine, url: str) -> DatabaseStatus:
    head = head_revision()
    with engine.connect() as connection:
        server_version = _server_version(connection)
        tables = set(inspect(connection).get_table_names())
    if "alembic_version" not in tables:
        if tables:
            return _status(url, FOREIGN, "This database holds other tables and no CSOS Desk order book. Choose an "
                           "empty database for the order book.", server_version=server_version,
                           error_code="database.not_an_order_book")
        return _status(url, EMPTY, "Connected. The database is empty: set up the order book in it with "
                       "`csos-desk db init` (or switch to it and CSOS Desk sets it up).",
                       server_version=server_version)
    revision = schema_revision(engine)
    known = _known_revisions()
    if revision not in known:
        return _status(url, NEWER, "This order book was written by a newer version of CSOS Desk. Update the "
                       "program on this workstation.", revision=revision, server_version=server_version,
                       error_code="storage.newer_schema")
    orders = _count_orders(engine)
    if revision != head:
        if _backend(url) == "sqlite":
            message = (f"Order book found ({orders} orders) with an older layout ({revision}); CSOS Desk updates "
                       f"it to {head} when it opens it.")
            code = ""
        else:
            message = (f"The shared order book ({orders} orders) has an older layout ({revision}) than this version "
                       f"of CSOS Desk needs ({head}). Whoever looks after the server should back it up and run "
                       "`csos-desk db upgrade`; then update CSOS Desk on every workstation.")
            code = "storage.older_schema"
        return _status(url, OLDER, message, revision=revision, server_version=server_version, orders=orders,
                       error_code=code)
    where = "the database server" if _backend(url) == "postgresql" else "this file"
    return _status(url, READY, f"Connected. The order book on {where} is ready ({orders} orders).",
                   revision=revision, server_version=server_version, orders=orders)


def _count_orders(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(Order.__table__)).scalar_one()


def _server_version(connection: Any) -> str:
    if connection.dialect.name == "postgresql":
        return "PostgreSQL " + str(connection.execute(text("SHOW server_version")).scalar_one()).split()[0]
    return "SQLite " + str(connection.execute(text("SELECT sqlite_version()")).scalar_one())


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    from app.models.database import MIGRATIONS_DIR

    return {rev.revision for rev in ScriptDirectory(str(MIGRATIONS_DIR)).walk_revisions()}


def _backend(url: str) -> str:
    backend = make_url(engine_url(url)).get_backend_name()
    return "postgresql" if backend == "postgres" else backend


def _status(url: str, state: str, message: str, **fields: Any) -> DatabaseStatus:
    return DatabaseStatus(url=safe_url(url), engine=_backend(url), state=state, message=message,
                          head=head_revision(), checked_at=_now(), **fields)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

