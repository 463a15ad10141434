"""Fixtures shared by every test layer: a real SQLite order book in a temp folder."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from app.models.database import open_database, sqlite_url  # noqa: E402
from app.services.orderbook import OrderBook  # noqa: E402


@pytest.fixture
def db(tmp_path):
    database = open_database(sqlite_url(tmp_path / "orderbook.sqlite3"))
    yield database
    database.close()


@pytest.fixture
def book(db):
    return OrderBook(db, actor="test")
