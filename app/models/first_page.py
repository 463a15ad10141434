"""The first page of the order list, read with Python's own ``sqlite3`` while the order book is still opening.

Start-up (issue 20): opening the order book means importing SQLAlchemy, the models and the services (about half a
second on a slow two-core computer). The person's first question, "where are my orders?", needs none of it: this
module reads, from an existing SQLite order book, exactly what the order list shows first — the newest
``limit`` orders (number, status, registration, supplier, created, signed, lines) and how many there are — in one
read transaction, so the window can show them at once. The full opening continues behind the list; when it is done
the window swaps in the real list model and enables its commands (app/ui/main_window.py, ``attach``).

Exactly the same rows as ``OrderBook.order_ids_page`` / ``order_rows`` / ``count_orders`` with no filter, newest
first (tests/unit/orders/test_first_page.py compares them), or nothing at all:

* only a SQLite file that exists, opened read-only (``mode=ro``): this never creates, migrates or writes anything;
* only an order book at the schema this program writes (``SCHEMA_HEAD``): anything older or newer is left to the
  full opening, which migrates it or explains why it cannot;
* any problem reading (locked, damaged, a stored value this program does not know) gives ``None``; the full opening
  then reports it in plain words as before.

No SQLAlchemy here: that is the point. PostgreSQL order books always take the full path.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from app.models.order_rows import SCHEMA_HEAD, OrderRow, PageKey
from app.models.states import OrderStatus

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class FirstPage:
    """The newest orders (``keys`` newest first, each with its row) and how many orders the book holds."""

    keys: tuple[PageKey, ...]
    rows: dict[int, OrderRow]
    total: int


def sqlite_path(url: str | None) -> Path | None:
    """The file of a plain ``sqlite:///`` order book URL; None for anything else (PostgreSQL, memory, URI forms)."""
    if not url or not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:" or "?" in path or path.startswith("file:"):
        return None
    return Path(path)


def _utc(value: str | None) -> dt.datetime | None:
    """A stored timestamp as ``UtcDateTime`` gives it: SQLite keeps naive UTC text ('2025-09-01 13:00:00.000000')."""
    if value is None:
        return None
    return dt.datetime.fromisoformat(value).replace(tzinfo=dt.timezone.utc)


_KEYS = "SELECT created_at, id FROM orders ORDER BY created_at DESC, id DESC LIMIT ?"
_COUNT = "SELECT count(id) FROM orders"
_ROWS = """
SELECT orders.id, orders.order_number, orders.status, registrations.dea_number, suppliers.name,
       orders.created_at, orders.signed_at, coalesce(line_counts.n, 0)
FROM orders
JOIN registrations ON registrations.id = orders.registration_id
JOIN suppliers ON suppliers.id = orders.supplier_id
LEFT OUTER JOIN (SELECT order_id, count(id) AS n FROM order_lines WHERE order_id IN ({ids}) GROUP BY order_id)
    AS line_counts ON line_counts.order_id = orders.id
WHERE orders.id IN ({ids})
"""


def read_first_page(path: Path, *, limit: int = 200) -> FirstPage | None:
    """The newest ``limit`` orders of the SQLite order book at ``path``, or None (see the module docstring)."""
    try:
        if not path.is_file():
            return None
        connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, timeout=1,
                                     isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        log.info("first page not read: %s", type(exc).__name__)
        return None
    try:
        connection.execute("BEGIN")  # one snapshot: the page, its rows and the count agree
        version = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        if version != [(SCHEMA_HEAD,)]:
            return None
        keys = tuple(PageKey(_utc(created), order_id)  # type: ignore[arg-type]
                     for created, order_id in connection.execute(_KEYS, (limit,)))
        total = int(connection.execute(_COUNT).fetchone()[0])
        rows: dict[int, OrderRow] = {}
        if keys:
            ids = [key.id for key in keys]
            marks = ", ".join("?" * len(ids))
            for (order_id, number, status, dea, supplier, created, signed,
                 lines) in connection.execute(_ROWS.format(ids=marks), ids + ids):
                rows[order_id] = OrderRow(order_id, number, OrderStatus(status), dea, supplier,
                                              _utc(created), _utc(signed), int(lines))  # type: ignore[arg-type]
        return FirstPage(keys=keys, rows=rows, total=total)
    except (sqlite3.Error, ValueError, TypeError) as exc:  # locked, damaged, a value this program does not know
        log.info("first page not read: %s", type(exc).__name__)
        return None
    finally:
        connection.close()
