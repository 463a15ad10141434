"""One writer at a time on the shared order book (PostgreSQL); SQLite already serialises writers itself.

Its own module so that both the database set-up and the integrity rules can use it without importing each other.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

# PostgreSQL advisory-lock key that write transactions of the order book hold until they end ("CSOSWRIT").
WRITER_LOCK_KEY = 0x43534F5357524954


def lock_writers(session: Session | Connection) -> None:
    """On PostgreSQL, wait until no other write transaction of the order book is running, for this transaction.

    SQLite lets one writer in at a time by itself; PostgreSQL does not, and two workstations reading the tip of
    the audit chain at the same moment would both try to append after it (the loser fails on the UNIQUE
    ``previous_hash``). Taking this lock first, before any row lock, also rules out deadlocks between writers.
    Writes are short (nothing waits on the network inside one), so serialising them costs nothing noticeable.
    """
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK_KEY})
