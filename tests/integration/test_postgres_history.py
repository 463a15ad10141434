"""The ordering-history and notice tests of tests/unit/orders/test_history.py, run again on PostgreSQL.

Same functions, ``db`` overridden to a fresh PostgreSQL database: the one query per chart (history_days kept by
plpgsql triggers, the split days' lines, month CASE over UTC boundaries) must give the same figures on both engines.
The history_days tests of tests/unit/orders/test_history_days.py run here too (``book_url``).
"""

from __future__ import annotations

import pytest

from app.models.database import open_database
from tests.unit.orders.test_history import (  # noqa: F401 - re-collected by pytest on this engine
    test_a_limit_the_pharmacy_entered_replaces_the_usual,
    test_cancelled_not_accepted_lost_and_draft_orders_are_not_counted,
    test_every_ndc_of_a_substance_counts_together_in_dosage_units,
    test_months_are_the_pharmacys_local_months,
    test_no_notice_without_history_or_controlled_lines,
    test_notice_when_this_month_would_pass_twice_the_usual,
    test_partial_receipts_are_fulfilled_beside_ordered,
    test_the_notice_reads_the_same_months_as_the_charts,
    test_the_records_export_hands_the_history_page_to_the_pdf,
    test_window_is_the_last_months_and_filters_narrow,
    test_zone_and_limits_come_from_the_registrations_settings,
    world,
)
from tests.unit.orders.test_history_days import (  # noqa: F401 - re-collected by pytest on this engine
    test_history_days_equals_a_fresh_aggregation_after_random_changes,
    test_history_equals_the_lines_summed_in_python_in_every_zone,
    upgrade_fills_history_days,
)


@pytest.fixture
def db(postgres_url):
    database = open_database(postgres_url)
    assert database.engine.dialect.name == "postgresql"
    yield database
    database.close()


@pytest.fixture
def book_url(postgres_url):
    return postgres_url


def test_upgrade_fills_history_days_on_postgresql(postgres_server):
    url = postgres_server.new_database(migrated=False)
    try:
        upgrade_fills_history_days(url)
    finally:
        postgres_server.drop(url)
