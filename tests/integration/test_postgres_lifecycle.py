"""The order-lifecycle tests (tests/unit/orders/test_lifecycle.py: acknowledgements, shipments, receipts, voids, lost orders,
cancellation, the linked records of each), run again on PostgreSQL with ``db`` overridden to a fresh database."""

from __future__ import annotations

import pytest

from app.models.database import open_database
from tests.integration.test_postgres_outbox import rerun_here
from tests.unit.orders import test_lifecycle as _lifecycle

rerun_here(_lifecycle, globals())


@pytest.fixture
def db(postgres_url):
    database = open_database(postgres_url)
    assert database.engine.dialect.name == "postgresql"
    yield database
    database.close()
