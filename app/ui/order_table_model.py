"""The order book table model (DESIGN.md §2: ids only, rows loaded lazily, keyset pagination).

The model keeps two things:

* the ordered list of ``PageKey(created_at, id)`` for the current filter, fetched a page at a time through
  ``canFetchMore``/``fetchMore`` (keyset pagination: every page costs the same however deep it is);
* a bounded LRU cache of ``OrderRow`` objects. ``data()`` for a row that is not cached loads that row's
  neighbourhood (one ``order_rows`` call for a batch of ids), so only rows a view actually shows are read.

Sorting: only the *Created* column sorts (newest first / oldest first); it is the keyset the pagination walks.
Sorting by other columns would need another keyset per column and is deliberately not offered: ``sort()`` on any
other column does nothing.

Rows already shown update in place through ``orders_changed(ids)``. New orders, or an order that no longer matches
the filter after a change, appear/disappear on ``refresh()``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Signal, Slot
from PySide6.QtGui import QColor

from app.errors import CsosError
from app.models.states import OrderStatus
from app.ui import theme
from app.ui.lazy_qt import DISPLAY_ROLE, USER_ROLE, Qt

if TYPE_CHECKING:  # the order book service (SQLAlchemy) is imported when a model is built, not with the window
    from app.services.orders.orderbook import OrderFilter, OrderRow, PageKey

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex


class OrderSource(Protocol):
    """What the model needs from the order book. The real one is ``OrderBookSource``; tests may wrap it."""

    def page(self, order_filter: OrderFilter, *, after: PageKey | None, limit: int,
             newest_first: bool) -> list[PageKey]: ...

    def count(self, order_filter: OrderFilter) -> int: ...

    def rows(self, ids: Sequence[int]) -> dict[int, OrderRow]: ...


class OrderBookSource:
    """``OrderSource`` over an ``OrderBook``: one short read session per call, driver failures as StorageError."""

    def __init__(self, book: Any, db: Any) -> None:
        self.book = book
        self.db = db

    def _read(self, call: Any) -> Any:
        from sqlalchemy.exc import SQLAlchemyError

        from app.models.database import explain_storage_failure

        try:
            with self.db.session() as session:
                return call(session)
        except SQLAlchemyError as exc:
            raise explain_storage_failure(exc, self.db.url) from exc

    def page(self, order_filter: OrderFilter, *, after: PageKey | None, limit: int,
             newest_first: bool) -> list[PageKey]:
        return self._read(lambda s: self.book.order_ids_page(s, order_filter, after=after, limit=limit,
                                                             newest_first=newest_first))

    def count(self, order_filter: OrderFilter) -> int:
        return self._read(lambda s: self.book.count_orders(s, order_filter))

    def rows(self, ids: Sequence[int]) -> dict[int, OrderRow]:
        return self._read(lambda s: self.book.order_rows(s, list(ids)))


def format_local(moment: dt.datetime | None, *, tz: dt.tzinfo | None = None) -> str:
    """A stored UTC time as the person at the counter reads it: local time, 'Mar 07, 2025 14:03'."""
    if moment is None:
        return ""
    if moment.tzinfo is None:  # stored values are UTC; be safe with naive ones
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(tz).strftime("%b %d, %Y %H:%M")


def format_local_full(moment: dt.datetime | None, *, tz: dt.tzinfo | None = None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    local = moment.astimezone(tz)
    return f"{local:%A %B %d, %Y %H:%M:%S} {local.tzname() or ''}".strip()


class OrderTableModel(QAbstractTableModel):
    COL_NUMBER, COL_STATUS, COL_REGISTRATION, COL_SUPPLIER, COL_CREATED, COL_SIGNED, COL_LINES = range(7)
    HEADERS = ("Order number", "Status", "Registration", "Supplier", "Created", "Signed", "Lines")
    SORTABLE_COLUMNS = frozenset({COL_CREATED})

    OrderIdRole = USER_ROLE + 1

    # Emitted after a reset/refresh with the number of orders matching the filter.
    total_changed = Signal(int)
    # A CsosError raised while reading (e.g. the database is locked); the view shows its message.
    load_failed = Signal(object)

    def __init__(self, source: OrderSource, *, page_size: int = 200, batch_size: int = 100,
                 cache_limit: int = 2000, order_filter: Any = None, parent: QObject | None = None) -> None:
        """``order_filter``: what the source is asked for first; None = every order (``OrderFilter()``, which
        imports the order book service). The start-up's first page passes its own, as it needs no service."""
        super().__init__(parent)
        if batch_size > cache_limit:
            raise ValueError("batch_size must not exceed cache_limit")
        self._source = source
        self._page_size = page_size
        self._batch_size = batch_size
        self._cache_limit = cache_limit
        if order_filter is None:
            from app.services.orders.orderbook import OrderFilter

            order_filter = OrderFilter()
        self._filter = order_filter
        self._newest_first = True
        self._keys: list[PageKey] = []
        self._row_of: dict[int, int] = {}
        self._exhausted = False
        self._cache: OrderedDict[int, OrderRow | None] = OrderedDict()  # None: the order has gone since listing
        self._total = 0
        self._rows_unreadable = False  # a row read failed: do not retry on every paint, refresh() retries
        self._reload(0)

    @classmethod
    def for_book(cls, book: Any, db: Any, **kwargs: Any) -> "OrderTableModel":
        return cls(OrderBookSource(book, db), **kwargs)

    # -- state the view reads ------------------------------------------------------------------------------------

    @property
    def order_filter(self) -> OrderFilter:
        return self._filter

    @property
    def newest_first(self) -> bool:
        return self._newest_first

    @property
    def total(self) -> int:
        """Orders matching the filter (all of them, not just the ids fetched so far)."""
        return self._total

    @property
    def loaded_count(self) -> int:
        return len(self._keys)

    @property
    def cached_count(self) -> int:
        return len(self._cache)

    def all_loaded(self) -> bool:
        return self._exhausted

    def order_id(self, row: int) -> int | None:
        if 0 <= row < len(self._keys):
            return self._keys[row].id
        return None

    def row_of(self, order_id: int) -> int | None:
        return self._row_of.get(order_id)

    def order_row(self, row: int) -> OrderRow | None:
        """The displayed data of ``row`` (loads it if needed)."""
        if not 0 <= row < len(self._keys):
            return None
        return self._row(row)

    # -- changing what is listed ---------------------------------------------------------------------------------

    def set_filter(self, order_filter: OrderFilter) -> None:
        self._filter = order_filter
        self._reload(0)

    def refresh(self) -> None:
        """Re-read the ids (keeping as many loaded as before, so a scrolled view stays put) and drop the cache."""
        self._reload(len(self._keys))

    def _reload(self, at_least: int) -> None:
        self.beginResetModel()
        self._keys = []
        self._row_of = {}
        self._cache.clear()
        self._exhausted = False
        self._rows_unreadable = False
        self._total = 0
        try:
            self._fetch_page()
            while not self._exhausted and len(self._keys) < at_least:
                self._fetch_page()
            self._total = self._source.count(self._filter)
        except CsosError as exc:
            self._failed(exc, stop_paging=True)
        finally:
            self.endResetModel()
        self.total_changed.emit(self._total)

    def _next_page(self) -> list[PageKey]:
        """The next page of ids after the last one listed (not yet added)."""
        after = self._keys[-1] if self._keys else None
        page = self._source.page(self._filter, after=after, limit=self._page_size,
                                 newest_first=self._newest_first)
        if len(page) < self._page_size:
            self._exhausted = True
        # Defensive: an order created with an older timestamp between pages must not appear twice.
        return [key for key in page if key.id not in self._row_of]

    def _append(self, page: list[PageKey]) -> None:
        start = len(self._keys)
        for offset, key in enumerate(page):
            self._row_of[key.id] = start + offset
        self._keys.extend(page)

    def _fetch_page(self) -> None:
        self._append(self._next_page())

    def _failed(self, exc: CsosError, *, stop_paging: bool = False) -> None:
        log.warning("order book read failed: %s", exc.code)
        if stop_paging:
            self._exhausted = True  # stop the view from asking again in a loop; refresh() retries
        self.load_failed.emit(exc)

    @Slot(list)
    def orders_changed(self, ids: Iterable[int]) -> None:
        """Reload just these orders' rows (those currently listed) and tell the views."""
        listed = [order_id for order_id in dict.fromkeys(ids) if order_id in self._row_of]
        if not listed:
            return
        try:
            fresh = self._source.rows(listed)
        except CsosError as exc:
            self._failed(exc)
            return
        last = self.columnCount() - 1
        for order_id in listed:
            self._remember(order_id, fresh.get(order_id))
            row = self._row_of[order_id]
            self.dataChanged.emit(self.index(row, 0), self.index(row, last))

    # -- lazy loading --------------------------------------------------------------------------------------------

    def canFetchMore(self, parent: AnyIndex = QModelIndex()) -> bool:
        return not parent.isValid() and not self._exhausted

    def fetchMore(self, parent: AnyIndex = QModelIndex()) -> None:
        if parent.isValid() or self._exhausted:
            return
        try:
            page = self._next_page()
        except CsosError as exc:
            self._failed(exc, stop_paging=True)
            return
        if not page:
            return
        start = len(self._keys)
        self.beginInsertRows(QModelIndex(), start, start + len(page) - 1)
        self._append(page)
        self.endInsertRows()

    def _row(self, row: int) -> OrderRow | None:
        order_id = self._keys[row].id
        if order_id in self._cache:
            self._cache.move_to_end(order_id)
            return self._cache[order_id]
        self._load_around(row)
        return self._cache.get(order_id)

    def _load_around(self, row: int) -> None:
        if self._rows_unreadable:
            return
        # Views ask row by row, mostly scrolling forward: load a batch that starts a little before ``row``.
        start = max(0, row - self._batch_size // 4)
        end = min(len(self._keys), start + self._batch_size)
        start = max(0, end - self._batch_size)
        wanted = [key.id for key in self._keys[start:end] if key.id not in self._cache]
        try:
            loaded = self._source.rows(wanted)
        except CsosError as exc:
            self._rows_unreadable = True
            self._failed(exc)
            return
        for order_id in wanted:
            self._remember(order_id, loaded.get(order_id))

    def _remember(self, order_id: int, row: OrderRow | None) -> None:
        self._cache[order_id] = row
        self._cache.move_to_end(order_id)
        while len(self._cache) > self._cache_limit:
            self._cache.popitem(last=False)

    # -- QAbstractTableModel -------------------------------------------------------------------------------------

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._keys)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = DISPLAY_ROLE) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.HEADERS):
            if role == Qt.ItemDataRole.DisplayRole:
                return self.HEADERS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                horizontal = Qt.AlignmentFlag.AlignRight if section == self.COL_LINES else Qt.AlignmentFlag.AlignLeft
                return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
            if role == Qt.ItemDataRole.ToolTipRole and section == self.COL_CREATED:
                return "Click to sort newest first / oldest first"
        return None

    def data(self, index: AnyIndex, role: int = DISPLAY_ROLE) -> Any:
        if not index.isValid() or index.row() >= len(self._keys) or not 0 <= index.column() < len(self.HEADERS):
            return None
        column = index.column()
        if role == self.OrderIdRole:
            return self._keys[index.row()].id
        if role == Qt.ItemDataRole.TextAlignmentRole:
            if column == self.COL_LINES:
                return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            return int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.ForegroundRole):
            return None
        order = self._row(index.row())
        if order is None:
            gone = self._keys[index.row()].id in self._cache  # cached as None: deleted since it was listed
            if gone and role == Qt.ItemDataRole.DisplayRole:
                return "(no longer in the order book)" if column == self.COL_NUMBER else ""
            return None
        if role == Qt.ItemDataRole.ForegroundRole:
            if column == self.COL_STATUS:
                return QColor(theme.status_colour(order.status))
            return None
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.COL_CREATED:
                return format_local_full(order.created_at)
            if column == self.COL_SIGNED:
                return format_local_full(order.signed_at) or "Not signed yet"
            return None
        return self._display(order, column)

    def _display(self, order: OrderRow, column: int) -> str:
        if column == self.COL_NUMBER:
            return order.order_number
        if column == self.COL_STATUS:
            status = order.status
            return status.label if isinstance(status, OrderStatus) else str(status)
        if column == self.COL_REGISTRATION:
            return order.registration_dea
        if column == self.COL_SUPPLIER:
            return order.supplier_name
        if column == self.COL_CREATED:
            return format_local(order.created_at)
        if column == self.COL_SIGNED:
            return format_local(order.signed_at)
        return str(order.line_count)

    def sort(self, column: int, order: Qt.SortOrder | None = None) -> None:
        """Created column only: descending = newest first, else (or no order given) oldest first. Other columns are
        not sortable (see module doc)."""
        if column not in self.SORTABLE_COLUMNS:
            return
        newest_first = order == Qt.SortOrder.DescendingOrder
        if newest_first == self._newest_first:
            return
        self._newest_first = newest_first
        self._reload(0)
