"""The catalog-import tests of tests/unit/test_catalog.py, run again on PostgreSQL (its upsert path).

The functions are imported and re-collected here with ``db`` overridden to a fresh PostgreSQL database: what depends
on the engine (upsert, one-transaction rollback, prefix search through the lower(name) indexes). The parser's many
cases (malformed rows, schedule mapping) and the SQLite driver's executemany fast path run on SQLite only.
"""

from __future__ import annotations

import pytest

from app.models.database import open_database
from tests.unit.test_catalog import (  # noqa: F401 - re-collected by pytest on this engine
    imported,
    test_bundled_sample_imports_with_counts_matching_the_files,
    test_find_product_by_any_layout,
    test_product_fields,
    test_progress_callback_raising_cancels_and_rolls_back,
    test_reimport_updates_without_duplicating,
    test_search_orders_name_prefix_first_and_respects_limit,
    test_source_label_is_stored,
    test_tables_come_from_migrations,
)


@pytest.fixture
def db(postgres_url):
    database = open_database(postgres_url)
    assert database.engine.dialect.name == "postgresql"
    yield database
    database.close()
