"""The outbox and transport tests (tests/integration/test_lifecycle_transport.py), run again on PostgreSQL.

Every test there that works on the order book (it takes ``book``, ``db`` or ``world``) is re-collected here with
``db`` overridden to a fresh PostgreSQL database; tests added there later run here too. Tests that never touch the
database stay single-engine. (The order-lifecycle twin is test_postgres_lifecycle.py: both modules name a fixture
``world``.)
"""

from __future__ import annotations

import inspect

import pytest

from app.models.database import open_database
from tests.integration import test_lifecycle_transport as _transport

DATABASE_FIXTURES = {"db", "book", "world"}


def rerun_here(module, namespace: dict) -> None:
    """Re-collect ``module``'s order-book tests in ``namespace`` (with the fixtures and helpers they use)."""
    for name, value in vars(module).items():
        if name.startswith("__") or name in ("db", "book"):
            continue
        if name.startswith("test_"):
            if callable(value) and DATABASE_FIXTURES & set(inspect.signature(value).parameters):
                namespace[name] = value
        else:
            namespace.setdefault(name, value)  # its fixtures and helpers, so the tests find them


rerun_here(_transport, globals())


@pytest.fixture
def db(postgres_url):
    database = open_database(postgres_url)
    assert database.engine.dialect.name == "postgresql"
    yield database
    database.close()
