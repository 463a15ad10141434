"""What the order list shows, as plain values with no SQLAlchemy: ``OrderBook`` (app.services.orders.orderbook)
fills them from the database, and ``first_page`` fills the same ones from the SQLite file before the order book is
open, so the list shows one kind of row either way.

``SCHEMA_HEAD`` lives here for the same reason: the newest migration, read both by ``open_database`` (an order book
already at it never loads Alembic) and by ``first_page`` (it reads only a book at it).
tests/unit/orders/test_orderbook.py checks it equals Alembic's own head, so a new migration cannot be forgotten.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.models.states import OrderStatus

SCHEMA_HEAD = "0005_history_products_index"


@dataclass(frozen=True)
class OrderRow:
    """What one row of the order book table shows."""

    id: int
    order_number: str
    status: OrderStatus
    registration_dea: str
    supplier_name: str
    created_at: dt.datetime
    signed_at: dt.datetime | None
    line_count: int


@dataclass(frozen=True)
class PageKey:
    """Where a row stands in the list (keyset pagination by creation time, then id)."""

    created_at: dt.datetime
    id: int
