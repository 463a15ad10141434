"""The order book table model over a real SQLite order book: ids only, keyset pages, rows loaded lazily."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import QModelIndex, Qt

from app.errors import StorageError
from app.models.states import OrderStatus
from app.services.orders.orderbook import OrderFilter
from app.ui.order_table_model import OrderTableModel, format_local, format_local_full
from tests.ui.conftest import STATUS_CYCLE, CountingSource, add_book_parties, bulk_orders, expected_ids

pytestmark = pytest.mark.ui

M = OrderTableModel


def all_ids(model: OrderTableModel) -> list[int]:
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
    return [model.order_id(row) for row in range(model.rowCount())]


def text(model: OrderTableModel, row: int, column: int) -> str:
    return model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)


def test_model_tester_on_an_empty_order_book(qtmodeltester, source):
    model = OrderTableModel(source)
    qtmodeltester.check(model)
    assert model.rowCount() == 0 and model.total == 0
    assert not model.canFetchMore(QModelIndex())
    assert model.columnCount() == 7


def test_model_tester_on_a_thousand_orders(qtmodeltester, db, source):
    bulk_orders(db, 1000)
    model = OrderTableModel(source)
    qtmodeltester.check(model)
    assert model.total == 1000


def test_headers():
    assert M.HEADERS == ("Order number", "Status", "Registration", "Supplier", "Created", "Signed", "Lines")


def test_fetch_more_brings_pages_until_every_id_is_loaded(db, source):
    ids = bulk_orders(db, 1000)
    model = OrderTableModel(source, page_size=200)
    assert model.rowCount() == 200 and model.total == 1000
    assert model.canFetchMore(QModelIndex())
    pages = 1
    while model.canFetchMore(QModelIndex()):
        before = model.rowCount()
        model.fetchMore(QModelIndex())
        assert model.rowCount() - before <= 200
        pages += 1
    assert model.rowCount() == 1000 and model.all_loaded()
    assert pages in (5, 6)  # the last (empty or short) page tells the model it is done
    # Newest first, every id once, and no row was read while only ids were fetched.
    assert [model.order_id(row) for row in range(1000)] == list(reversed(ids))
    assert source.row_calls == []


def test_fetch_more_emits_row_inserts(qtbot, db, source):
    bulk_orders(db, 250)
    model = OrderTableModel(source, page_size=200)
    with qtbot.waitSignal(model.rowsInserted) as blocker:
        model.fetchMore(QModelIndex())
    assert blocker.args[1:] == [200, 249]


def test_only_the_rows_asked_for_are_loaded(db, source):
    ids = bulk_orders(db, 1000)
    model = OrderTableModel(source, page_size=200, batch_size=50)
    all_ids(model)
    assert source.row_calls == [] and model.cached_count == 0

    assert text(model, 500, M.COL_NUMBER) == f"25X{ids[499]:06d}"
    assert len(source.row_calls) == 1 and len(source.row_calls[0]) == 50
    assert model.order_id(500) in source.row_calls[0]
    assert model.cached_count == 50

    # Neighbours come from the cache: the view scrolling a little reads nothing.
    for row in range(495, 530):
        for column in range(model.columnCount()):
            model.data(model.index(row, column), Qt.ItemDataRole.DisplayRole)
    assert len(source.row_calls) == 1


def test_the_row_cache_is_bounded(db, source):
    bulk_orders(db, 1000)
    model = OrderTableModel(source, page_size=200, batch_size=50, cache_limit=150)
    all_ids(model)
    for row in range(1000):
        assert text(model, row, M.COL_NUMBER)
        assert model.cached_count <= 150
    assert source.rows_loaded >= 1000
    # Batches, not one query per row: each batch starts a quarter batch before the row asked for.
    assert len(source.row_calls) <= 1000 // (50 - 50 // 4) + 2


def test_display_values(db, source):
    bulk_orders(db, 4)  # the newest (index 3) is a draft, the one before it (index 2) is transmitted
    model = OrderTableModel(source)
    row = model.order_row(0)
    assert row is not None and row.status is OrderStatus.DRAFT
    assert text(model, 0, M.COL_NUMBER) == row.order_number
    assert text(model, 0, M.COL_STATUS) == "Draft"
    assert text(model, 0, M.COL_REGISTRATION) == row.registration_dea
    assert text(model, 0, M.COL_SUPPLIER) == row.supplier_name
    assert text(model, 0, M.COL_CREATED) == format_local(row.created_at)
    assert text(model, 0, M.COL_SIGNED) == ""
    assert text(model, 0, M.COL_LINES) == "2"
    assert text(model, 1, M.COL_STATUS) == "Transmitted"
    assert text(model, 1, M.COL_SIGNED) == format_local(model.order_row(1).signed_at) != ""
    assert model.data(model.index(0, M.COL_LINES), Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight
    assert model.data(model.index(0, M.COL_STATUS), Qt.ItemDataRole.ForegroundRole) is not None
    assert model.data(model.index(0, M.COL_SIGNED), Qt.ItemDataRole.ToolTipRole) == "Not signed yet"
    assert model.data(model.index(0, 0), M.OrderIdRole) == model.order_id(0)
    assert model.order_id(99) is None and model.order_row(-1) is None


def test_dates_are_shown_in_local_time():
    moment = dt.datetime(2025, 3, 7, 18, 3, tzinfo=dt.timezone.utc)
    new_york = dt.timezone(dt.timedelta(hours=-5), "EST")
    assert format_local(moment, tz=new_york) == "Mar 07, 2025 13:03"
    assert format_local_full(moment, tz=new_york) == "Friday March 07, 2025 13:03:00 EST"
    assert format_local(None) == "" and format_local_full(None) == ""


def test_filter_by_status_narrows_rows(db, source):
    ids = bulk_orders(db, 240)
    model = OrderTableModel(source)
    model.set_filter(OrderFilter(statuses=frozenset({OrderStatus.RECEIVED})))
    want = expected_ids(ids, lambda i: STATUS_CYCLE[i % 12] is OrderStatus.RECEIVED)
    assert set(all_ids(model)) == want and model.total == len(want) == 40
    assert all(text(model, row, M.COL_STATUS) == "Received" for row in range(model.rowCount()))

    model.set_filter(OrderFilter(statuses=frozenset({OrderStatus.DRAFT, OrderStatus.SIGNED})))
    assert model.total == 40


def test_search_text_narrows_rows(db, source):
    ids = bulk_orders(db, 240)
    model = OrderTableModel(source)

    model.set_filter(OrderFilter(text="alpraz"))  # product name, any case; order i has product i%4 (+ (i+1)%4)
    want = expected_ids(ids, lambda i: i % 4 == 1 or (i % 2 == 1 and (i + 1) % 4 == 1))
    assert set(all_ids(model)) == want and model.total == len(want)

    model.set_filter(OrderFilter(text="00406-0552-62"))  # NDC with dashes: Oxycodone
    want = expected_ids(ids, lambda i: i % 4 == 0 or (i % 2 == 1 and (i + 1) % 4 == 0))
    assert set(all_ids(model)) == want

    number = f"25X{ids[17]:06d}"
    model.set_filter(OrderFilter(text=number.lower()))
    assert all_ids(model) == [ids[17]] and text(model, 0, M.COL_NUMBER) == number

    model.set_filter(OrderFilter(text="no such product"))
    assert model.rowCount() == 0 and model.total == 0

    model.set_filter(OrderFilter())
    assert model.total == 240


def test_set_filter_resets_the_model(qtbot, db, source):
    bulk_orders(db, 10)
    model = OrderTableModel(source)
    with qtbot.waitSignals([model.modelReset, model.total_changed]):
        model.set_filter(OrderFilter(statuses=frozenset({OrderStatus.DRAFT})))


def test_orders_changed_reloads_just_those_rows(qtbot, book, source):
    add_book_parties(book)
    orders = [book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug") for _ in range(5)]
    model = OrderTableModel(source)
    target = orders[2].id
    row = model.row_of(target)
    assert row is not None and text(model, row, M.COL_STATUS) == "Draft"
    for r in range(model.rowCount()):
        text(model, r, M.COL_STATUS)
    calls_before = len(source.row_calls)

    book.transition(target, OrderStatus.CANCELLED)
    assert text(model, row, M.COL_STATUS) == "Draft"  # cached until told
    with qtbot.waitSignal(model.dataChanged) as blocker:
        model.orders_changed([target, 999_999])  # ids not listed are ignored
    assert blocker.args[0].row() == row and blocker.args[1].row() == row
    assert source.row_calls[calls_before:] == [[target]]
    assert text(model, row, M.COL_STATUS) == "Cancelled"


def test_orders_changed_with_nothing_listed_reads_nothing(book, source):
    model = OrderTableModel(source)
    model.orders_changed([1, 2, 3])
    assert source.row_calls == []


def test_refresh_sees_new_orders_and_keeps_the_loaded_extent(db, source):
    bulk_orders(db, 450)
    model = OrderTableModel(source, page_size=200)
    model.fetchMore(QModelIndex())
    assert model.rowCount() == 400
    newer = bulk_orders(db, 1, start=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    model.refresh()
    assert model.total == 451 and model.rowCount() >= 400
    assert model.order_id(0) == newer[0]


def test_sort_by_created_newest_or_oldest_first(db, source):
    ids = bulk_orders(db, 300)
    model = OrderTableModel(source)
    assert model.order_id(0) == ids[-1]
    model.sort(M.COL_CREATED, Qt.SortOrder.AscendingOrder)
    assert not model.newest_first and all_ids(model) == ids
    model.sort(M.COL_SUPPLIER, Qt.SortOrder.DescendingOrder)  # other columns do not sort
    assert model.order_id(0) == ids[0]
    model.sort(M.COL_CREATED, Qt.SortOrder.DescendingOrder)
    assert model.order_id(0) == ids[-1]


class FailingSource(CountingSource):
    def page(self, *args, **kwargs):
        raise StorageError("The order book is busy in another window or workstation; try again in a moment.",
                           code="storage.locked")


def test_a_storage_failure_is_reported_not_raised(qtbot, source):
    failing = FailingSource(source.inner)
    model = OrderTableModel(failing)
    assert model.rowCount() == 0 and not model.canFetchMore(QModelIndex())
    with qtbot.waitSignal(model.load_failed) as blocker:
        model.refresh()
    assert blocker.args[0].code == "storage.locked"


class FailingRowsSource(CountingSource):
    def rows(self, ids):
        self.row_calls.append(list(ids))
        raise StorageError("The order book is busy.", code="storage.locked")


def test_a_row_read_failure_is_reported_once_until_refresh(qtbot, db, source):
    bulk_orders(db, 5)
    failing = FailingRowsSource(source.inner)
    model = OrderTableModel(failing)
    with qtbot.waitSignal(model.load_failed):
        assert model.data(model.index(0, 0)) is None
    for row in range(5):  # a repaint does not hammer the database
        model.data(model.index(row, 1))
    assert len(failing.row_calls) == 1
    model.refresh()
    model.data(model.index(0, 0))
    assert len(failing.row_calls) == 2
