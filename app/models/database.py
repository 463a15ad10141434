"""Opening the order book: engine, SQLite pragmas, Alembic migrations applied at start."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import StorageError
from app.models.integrity import install_integrity_rules

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 10}
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
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


def open_database(url: str, *, migrate: bool = True) -> Database:
    """Open (creating if needed) and migrate the order book at ``url``."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"The folder {path.parent} cannot be created ({exc.strerror}).",
                               code="storage.cannot_open") from None
    engine = make_engine(url)
    try:
        if migrate:
            _refuse_newer_schema(engine)
            upgrade_schema(engine)
    except (OperationalError, SQLAlchemyError) as exc:
        engine.dispose()
        raise explain_storage_failure(exc, url) from exc
    except OSError as exc:
        engine.dispose()
        raise explain_storage_failure(exc, url) from exc
    factory = sessionmaker(engine, expire_on_commit=False)
    install_integrity_rules(factory)
    return Database(url=url, engine=engine, session_factory=factory)


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
