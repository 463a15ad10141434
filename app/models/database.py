"""Opening the order book: engine, SQLite pragmas, Alembic migrations applied at start."""

from __future__ import annotations

import errno
import os
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import StorageError
from app.models.integrity import install_integrity_rules
from app.models.order_rows import SCHEMA_HEAD

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# PostgreSQL advisory-lock key held while migrating (any constant unique to this program: "CSOSMIGR" as digits).
MIGRATION_LOCK_KEY = 0x43534F534D494752


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the program acts on it (sends the order, tells the person it is saved).
    # With NORMAL a power cut could undo a commit whose order had already left for the supplier (DESIGN §8).
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _postgresql_session_settings(dbapi_connection: Any, connection_record: Any) -> None:
    # Like SQLite's busy_timeout: a write that waits this long for another workstation fails with an explained
    # "busy" error instead of hanging the window.
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '30s'")
    dbapi_connection.commit()


def engine_url(url: str) -> str:
    """The URL SQLAlchemy is given: a plain ``postgresql://`` (as people write it) means psycopg 3, our driver."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 10}
    elif url.startswith(("postgresql", "postgres")):
        # A shared server restarts or drops idle connections; test each pooled connection before use and give up
        # on an unreachable server after a few seconds instead of hanging the window.
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": 10, "application_name": "csos-desk"}
    try:
        engine = create_engine(engine_url(url), **kwargs)
    except (ImportError, NoSuchModuleError) as exc:
        raise StorageError("The database driver for this address is not installed with CSOS Desk "
                           f"({type(exc).__name__}). Reinstall the program, or check the address.",
                           code="storage.missing_driver") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_session_settings)
    return engine


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["engine"] = engine
    return config


def upgrade_schema(engine: Engine) -> None:
    """Apply every pending migration (idempotent)."""
    from alembic import command

    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Workstations starting at the same moment migrate one after the other (the lock ends with the
            # transaction); the second finds the schema current and does nothing.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        config = _alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]


@dataclass
class Database:
    """An opened, migrated order book."""

    url: str
    engine: Engine
    session_factory: sessionmaker[Session]

    def session(self) -> Session:
        return self.session_factory()

    def close(self) -> None:
        self.engine.dispose()


def explain_storage_failure(exc: BaseException, url: str) -> StorageError:
    """Turn a driver error into a message a pharmacist can act on."""
    text = str(getattr(exc, "orig", exc)).lower()
    where = url.split("///")[-1] if url.startswith("sqlite") else "the database server"
    if not url.startswith("sqlite"):
        server = _explain_server_failure(text)
        if server is not None:
            return server
    if "disk" in text and "full" in text or getattr(getattr(exc, "orig", None), "errno", None) == errno.ENOSPC:
        return StorageError(f"The disk holding {where} is full. Free some space; nothing was saved from this step.",
                            code="storage.disk_full")
    if "readonly" in text or "read-only" in text or "permission" in text:
        return StorageError(f"{where} cannot be written (read-only or no permission).", code="storage.read_only")
    if "locked" in text or "busy" in text:
        return StorageError("The order book is busy in another window or workstation; try again in a moment.",
                            code="storage.locked")
    if "unable to open" in text:
        return StorageError(f"The order book at {where} cannot be opened (folder missing or not allowed).",
                            code="storage.cannot_open")
    if "file is not a database" in text or "malformed" in text:
        return StorageError(f"{where} is not a valid CSOS Desk order book (damaged or another kind of file). "
                            "Restore it from a backup.", code="storage.corrupt")
    return StorageError(f"The order book could not be used: {type(exc).__name__}.", code="storage.failed")


def _explain_server_failure(text: str) -> StorageError | None:
    """What a PostgreSQL client error means for the person who typed the address (never echoes the password)."""
    if "password authentication failed" in text or "no password supplied" in text or \
            ("role" in text and "does not exist" in text):
        return StorageError("The database server refused the user name or password. Check both in the database "
                            "address (ask whoever set up the server).", code="storage.wrong_credentials")
    if "database" in text and "does not exist" in text:
        return StorageError("The database server is reachable, but the database named in the address does not "
                            "exist. Check its name, or create it first (see docs/multi-workstation.md).",
                            code="storage.no_such_database")
    if "pg_hba.conf" in text or "ssl" in text and ("required" in text or "unsupported" in text
                                                  or "not support" in text):
        return StorageError("The database server does not accept connections from this workstation in this way "
                            "(its pg_hba.conf or TLS settings). Ask whoever set up the server.",
                            code="storage.not_allowed")
    if "lock timeout" in text or "deadlock detected" in text:
        return StorageError("The order book is busy in another window or workstation; try again in a moment.",
                            code="storage.locked")
    if "permission denied" in text:
        return StorageError("The database user in the address may not do this (missing privileges on the "
                            "database). Ask whoever set up the server.", code="storage.permission_denied")
    if any(sign in text for sign in ("connection refused", "could not connect", "timeout expired", "timed out",
                                     "no route to host", "name or service not known", "could not translate host",
                                     "server closed the connection", "connection is bad", "network is unreachable",
                                     "failed to resolve host", "connection failed")):
        return StorageError("The database server cannot be reached. Check that it is switched on and that this "
                            "workstation is on the pharmacy network, then try again.", code="storage.server_down")
    return None


def _create_private(path: Path) -> None:
    """A new order book file is created 0600: SQLite gives its -wal and -shm files the same mode."""
    if str(path) in ("", ":memory:") or str(path).startswith("file:") or "?" in str(path):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists already (or cannot be made: opening it reports that in plain words)


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) and migrate the order book at ``url``."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"The folder {path.parent} cannot be created ({exc.strerror}).",
                               code="storage.cannot_open") from None
        _create_private(path)
    engine = make_engine(url)
    try:
        if migrate and not _already_at_head(engine):
            _refuse_newer_schema(engine)
            _refuse_older_shared_schema(engine)
            upgrade_schema(engine)
    except StorageError:
        engine.dispose()
        raise
    except (OperationalError, SQLAlchemyError) as exc:
        engine.dispose()
        raise explain_storage_failure(exc, url) from exc
    except OSError as exc:
        engine.dispose()
        raise explain_storage_failure(exc, url) from exc
    factory = sessionmaker(engine, expire_on_commit=False)
    install_integrity_rules(factory)
    return Database(url=url, engine=engine, session_factory=factory)


# The newest migration (app.models.order_rows): an up-to-date order book never loads Alembic (a fifth of start-up).


def _already_at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == SCHEMA_HEAD
    except SQLAlchemyError:
        return False  # the full path below explains whatever is wrong


def _refuse_newer_schema(engine: Engine) -> None:
    from alembic.script import ScriptDirectory

    if not inspect(engine).has_table("alembic_version"):
        return
    current = schema_revision(engine)
    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise StorageError(
            "This order book was written by a newer version of CSOS Desk. Update the program on this workstation.",
            code="storage.newer_schema",
        )


def _refuse_older_shared_schema(engine: Engine) -> None:
    """A shared (PostgreSQL) order book is upgraded on purpose, never as a side effect of one workstation starting.

    Upgrading it locks out every workstation still running the older program, so it is a step for whoever looks
    after the server (`csos-desk db upgrade`, after a backup). An empty database is set up at first use.
    """
    if engine.dialect.name != "postgresql" or not inspect(engine).has_table("alembic_version"):
        return
    current = schema_revision(engine)
    if current is not None and current != head_revision():
        raise StorageError(
            f"The shared order book on the server has an older layout ({current}) than this version of CSOS Desk "
            f"needs ({head_revision()}). Whoever looks after the server should back it up and run "
            "`csos-desk db upgrade`; then update CSOS Desk on every workstation.",
            code="storage.older_schema",
        )
