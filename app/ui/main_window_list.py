"""The main window's order list: search box, filters, the order book table and what stands in its place (the
"no orders" hint, the "Opening the order book…" page), sorting, and keeping the selection when the list changes.

A mixin of ``MainWindow`` (app/ui/main_window.py), which builds the frame and calls ``_build_order_list``; it needs
the frame's ``config``, ``book``, ``model``, ``detail`` and ``show_error``. Imports no SQLAlchemy at module level:
the order filter comes from the services when the list is filtered (start-up rule, issue 9/10).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QItemSelection, QModelIndex, QTimer, Slot
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.models.states import OrderStatus
from app.ui import theme
from app.ui.lazy_qt import Qt, set_properties
from app.ui.main_window_status import describe_location
from app.ui.order_table_model import OrderTableModel
from app.ui.widgets import ElidingComboBox

if TYPE_CHECKING:  # imported with the order book or the list, not with the window's frame
    from PySide6.QtWidgets import QDateEdit, QTableView

    from app.models.first_page import FirstPage
    from app.models.order_rows import OrderRow, PageKey
    from app.services.orders.orderbook import OrderFilter

SEARCH_DELAY_MS = 250
CREATED_RANGES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30),
                  ("Last 60 days", 60), ("This year", "year"), ("Between dates…", "between"))
LOADING_TITLE = "Opening the order book…"
LOADING_STYLE = ("QWidget#loadingPage QLabel#loadingTitle { font-size: 14pt; font-weight: 600; }"
                 " QWidget#loadingPage QLabel#loadingText { font-size: 11pt; color: palette(dark); }")


def _local_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()).astimezone().astimezone(dt.timezone.utc)


class FirstPageSource:
    """``OrderSource`` over the first page read at start-up: its orders, newest first, and the book's total.

    Asked for more (scrolling past it, the other sort order), it has nothing: the real list replaces it as soon as
    the order book is open, and the filters and sorting are disabled until then."""

    EVERY_ORDER = "every order"  # the only filter it answers (the list's filters are disabled meanwhile)

    def __init__(self, page: FirstPage) -> None:
        self._page = page

    def page(self, order_filter: Any, *, after: Any, limit: int, newest_first: bool) -> list[PageKey]:
        if after is not None or not newest_first or order_filter is not self.EVERY_ORDER:
            return []
        return list(self._page.keys[:limit])

    def count(self, order_filter: Any) -> int:
        return self._page.total if order_filter is self.EVERY_ORDER else 0

    def rows(self, ids: Any) -> dict[int, OrderRow]:
        return {order_id: self._page.rows[order_id] for order_id in ids if order_id in self._page.rows}


def first_page_selection(table: QTableView, first_page: OrderTableModel | None) -> int | None:
    """The order selected in the first page's list, if it is still the table's model."""
    if first_page is None or table.model() is not first_page:
        return None
    rows = table.selectionModel().selectedRows()
    return first_page.order_id(rows[0].row()) if rows else None


class OrderListMixin:
    """The order list and its filters; ``model`` is None until the order book is attached."""

    config: Any
    book: Any
    model: OrderTableModel | None
    first_page_model: OrderTableModel | None

    # -- building ------------------------------------------------------------------------------------------------

    def _combo(self, parent: QWidget, name: str, accessible: str, caption: str,
               layout: QHBoxLayout) -> QComboBox:
        combo = ElidingComboBox(parent, minimum_characters=6)  # a small screen elides it (tooltip: whole text)
        combo.setObjectName(name)
        combo.setAccessibleName(accessible)
        label = QLabel(caption, parent)
        label.setBuddy(combo)
        layout.addWidget(label)
        layout.addWidget(combo)
        layout.addSpacing(6)
        return combo

    def _build_order_list(self, body: QWidget, body_layout: QVBoxLayout) -> None:
        """Search row and filters into ``body_layout``; the table, the hint and the loading page into
        ``view_stack``, which the frame puts in its splitter above the detail pane."""
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filter)

        search_row = QHBoxLayout()
        self.search_box = QLineEdit(body)
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search order number, NDC or product…")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setAccessibleName("Search orders")
        self.search_box.addAction(theme.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.search_box.textChanged.connect(lambda _text: self._search_timer.start())
        self.search_box.returnPressed.connect(self.apply_filter)
        search_row.addWidget(self.search_box, 1)
        self.clear_filters_button = QPushButton("C&lear filters", body)
        self.clear_filters_button.setObjectName("clearFilters")
        self.clear_filters_button.setAccessibleName("Clear filters")
        self.clear_filters_button.clicked.connect(self.clear_filters)
        search_row.addWidget(self.clear_filters_button)
        body_layout.addLayout(search_row)

        filters = QHBoxLayout()
        filters.setSpacing(4)
        self.status_combo = self._combo(body, "statusFilter", "Status filter", "&Status:", filters)
        self.status_combo.addItem("All statuses", None)
        for status in OrderStatus:
            self.status_combo.addItem(status.label, status)
        self.registration_combo = self._combo(body, "registrationFilter", "Registration filter",
                                              "Re&gistration:", filters)
        self.supplier_combo = self._combo(body, "supplierFilter", "Supplier filter", "Su&pplier:", filters)
        self.schedule_combo = self._combo(body, "scheduleFilter", "Schedule filter", "Sche&dule:", filters)
        self.schedule_combo.addItem("Any schedule", None)  # the schedules come with the order book (attach)
        self.created_combo = self._combo(body, "createdFilter", "Created filter", "Crea&ted:", filters)
        for text, value in CREATED_RANGES:
            self.created_combo.addItem(text, value)
        # "Between dates…" shows two date fields, made when first needed (``_date_fields``: ~7 ms before the first
        # paint otherwise); they go here, before the stretch.
        self._filters_row = filters
        self._date_widgets: tuple[QDateEdit, QLabel, QDateEdit] | None = None
        filters.addStretch(1)
        body_layout.addLayout(filters)
        for combo in (self.status_combo, self.registration_combo, self.supplier_combo, self.schedule_combo,
                      self.created_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filter())

        self._order_table: QTableView | None = None  # made when first needed (``table``)

        self.empty_hint = QLabel(body)
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setStyleSheet(theme.EMPTY_HINT_STYLE)
        self.empty_hint.setWordWrap(True)
        set_properties(self.empty_hint, alignment="AlignCenter", textFormat="RichText")  # no Qt.* before the paint

        self.loading_page = self._build_loading_page(body)

        self.view_stack = QStackedWidget(body)
        self.view_stack.addWidget(self.loading_page)  # the first is shown
        self.view_stack.addWidget(self.empty_hint)

    @property
    def from_date(self) -> QDateEdit:
        return self._date_fields()[0]

    @property
    def date_dash(self) -> QLabel:
        return self._date_fields()[1]

    @property
    def to_date(self) -> QDateEdit:
        return self._date_fields()[2]

    def made_date_fields(self) -> tuple[QWidget, ...]:
        """The date fields if they were made (``_set_book_enabled`` does not make them)."""
        return () if self._date_widgets is None else (self._date_widgets[0], self._date_widgets[2])

    def _date_fields(self) -> tuple[QDateEdit, QLabel, QDateEdit]:
        """From, "to", until: made hidden, enabled as the other filters are, after "Created:" in the tab order."""
        if self._date_widgets is not None:
            return self._date_widgets
        from PySide6.QtCore import QDate
        from PySide6.QtWidgets import QDateEdit

        parent = self.created_combo.parentWidget()
        today = QDate.currentDate()
        from_date, to_date = QDateEdit(today.addDays(-30), parent), QDateEdit(today, parent)
        dash = QLabel("to", parent)
        dash.setVisible(False)
        for edit, name, accessible in ((from_date, "fromDate", "Created from"), (to_date, "toDate", "Created until")):
            edit.setObjectName(name)
            edit.setAccessibleName(accessible)
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("MMM d, yyyy")
            edit.setVisible(False)
            edit.setEnabled(self.created_combo.isEnabled())
            edit.dateChanged.connect(lambda _d: self.apply_filter())
        at = self._filters_row.count() - 1  # before the stretch
        for offset, widget in enumerate((from_date, dash, to_date)):
            self._filters_row.insertWidget(at + offset, widget)
        self._date_widgets = (from_date, dash, to_date)
        self.setTabOrder(self.created_combo, from_date)
        self.setTabOrder(from_date, to_date)
        return self._date_widgets

    @property
    def table(self) -> QTableView:
        """The order list's table, made when first needed — the first page or the order book, never before the
        window's first paint (Qt's first item view costs ~6 ms to make)."""
        if self._order_table is None:
            self._order_table = self._build_table()
        return self._order_table

    def _build_table(self) -> QTableView:
        from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

        table = QTableView(self.view_stack)
        table.setObjectName("orderTable")
        table.setAccessibleName("Order book")
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setAlternatingRowColors(True)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setTabKeyNavigation(False)
        table.setWordWrap(False)
        table.setShowGrid(False)
        table.setStyleSheet(theme.FOCUS_STYLE)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        table.verticalHeader().setDefaultSectionSize(QFontMetrics(table.font()).height() + 10)
        header = table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.sectionClicked.connect(self._on_header_clicked)  # columns are sized when the model comes (attach)
        self.view_stack.insertWidget(0, table)
        last = self._date_widgets[2] if self._date_widgets is not None else self.created_combo
        self.setTabOrder(last, table)  # the end of the chain (``_set_tab_order``)
        return table

    def _build_loading_page(self, parent: QWidget) -> QWidget:
        """What the order list's place shows while the order book is being opened: says so, and that it is busy."""
        page = QWidget(parent)
        page.setObjectName("loadingPage")
        page.setStyleSheet(LOADING_STYLE)
        page.setAccessibleName("Opening the order book")
        column = QVBoxLayout(page)
        column.setContentsMargins(24, 24, 24, 24)
        column.setSpacing(12)
        column.addStretch(2)
        self.loading_title = QLabel(LOADING_TITLE, page)
        self.loading_title.setObjectName("loadingTitle")
        set_properties(self.loading_title, alignment="AlignCenter")  # no Qt.* value before the first paint (lazy_qt)
        column.addWidget(self.loading_title)
        self.loading_bar = QProgressBar(page)
        self.loading_bar.setObjectName("loadingBar")
        self.loading_bar.setAccessibleName("Opening the order book")
        self.loading_bar.setRange(0, 0)  # busy: how long it takes is not known
        self.loading_bar.setTextVisible(False)
        self.loading_bar.setFixedWidth(320)
        centred = QHBoxLayout()
        centred.addStretch(1)
        centred.addWidget(self.loading_bar)
        centred.addStretch(1)
        column.addLayout(centred)
        self.loading_text = QLabel(page)
        self.loading_text.setObjectName("loadingText")
        self.loading_text.setWordWrap(True)
        set_properties(self.loading_text, alignment="AlignCenter", textInteractionFlags="TextSelectableByMouse")
        url = str(self.config.database_url or "")
        where = f" from {describe_location(url)}" if url.startswith("sqlite:///") else ""
        self.loading_text.setText(f"Reading your orders{where}.\nYour orders, filters and the order commands "
                                  "appear here in a moment.")
        column.addWidget(self.loading_text)
        column.addStretch(3)
        return page

    def show_first_page(self, page: FirstPage) -> bool:
        """While the order book is still opening: its newest orders, read without SQLAlchemy at start-up
        (``app.models.first_page``), in the list's place — the same rows, formatted by the same model, as the full
        list shows. Search, filters and commands stay disabled until ``attach`` swaps in the real list. Returns
        whether it was shown (not for an empty book, whose checklist needs the book; not once attached)."""
        if self.model is not None or self.first_page_model is not None or getattr(self, "closing", False) \
                or not page.keys:
            return False
        self.first_page_model = OrderTableModel(FirstPageSource(page), order_filter=FirstPageSource.EVERY_ORDER,
                                                parent=self.table)
        self.table.setModel(self.first_page_model)
        self._size_columns()
        self.table.horizontalHeader().setSortIndicator(OrderTableModel.COL_CREATED, Qt.SortOrder.DescendingOrder)
        self._on_total_changed(page.total)
        self.view_stack.setCurrentWidget(self.table)
        self._hold_detail_place()
        self._watch_list_paint()
        return True

    def _hold_detail_place(self) -> None:
        """Where the detail pane comes with the order book: the pane's own empty look meanwhile, so the list keeps
        its height when the real pane replaces it (``attach``)."""
        holder = QFrame(self.splitter)
        holder.setObjectName("detailPane")
        holder.setStyleSheet(theme.DETAIL_PANE_STYLE)
        column = QVBoxLayout(holder)
        column.setContentsMargins(2, 8, 2, 2)
        title = QLabel("Select an order to see its details.", holder)
        title.setProperty("role", "heading")
        column.addWidget(title)
        self.splitter.addWidget(holder)
        self.splitter.setStretchFactor(1, 2)
        height = self.splitter.height()
        if self.splitter.isVisible() and height > 0:  # as the pane's own (``_build_detail``): list 3, details 2
            self.splitter.setSizes([height * 3 // 5, height - height * 3 // 5])
        self.detail_place_holder: QFrame | None = holder

    def _release_detail_place(self) -> None:
        holder = getattr(self, "detail_place_holder", None)
        if holder is not None:
            self.detail_place_holder = None
            holder.hide()
            holder.setParent(None)
            holder.deleteLater()

    def show_loading_failed(self, message: str) -> None:
        """The order book could not be opened: the placeholder stops looking busy and says why."""
        self.loading_title.setText("The order book could not be opened")
        self.loading_bar.setVisible(False)
        self.loading_text.setText(message)

    def _size_columns(self) -> None:
        """Fixed widths from sample text: resizing to contents would read every row and defeat lazy loading."""
        from PySide6.QtWidgets import QHeaderView

        metrics = QFontMetrics(self.table.font())
        padding = 28
        samples = {
            OrderTableModel.COL_NUMBER: "Order number",
            OrderTableModel.COL_STATUS: max((s.label for s in OrderStatus), key=len),
            OrderTableModel.COL_REGISTRATION: "Registration",
            OrderTableModel.COL_CREATED: "Sep 30, 2025 23:59",
            OrderTableModel.COL_SIGNED: "Sep 30, 2025 23:59",
            OrderTableModel.COL_LINES: "Lines",
        }
        header = self.table.horizontalHeader()
        for column, text in samples.items():
            header.resizeSection(column, metrics.horizontalAdvance(text) + padding)
        header.setMinimumSectionSize(metrics.horizontalAdvance("Lines") + padding)
        header.setSectionResizeMode(OrderTableModel.COL_SUPPLIER, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)

    def _set_tab_order(self) -> None:
        chain = [self.search_box, self.clear_filters_button, self.status_combo, self.registration_combo,
                 self.supplier_combo, self.schedule_combo, self.created_combo, *self.made_date_fields()]
        if self._order_table is not None:
            chain.append(self._order_table)  # else it joins the chain when it is made
        for first, second in zip(chain, chain[1:]):
            self.setTabOrder(first, second)

    # -- filtering and sorting -----------------------------------------------------------------------------------

    def _fill_schedule_choices(self) -> None:
        """The schedule filter's entries (the DEA value module is not needed before the window's first paint)."""
        from app.models.values import Schedule

        if self.schedule_combo.count() == 1:
            for schedule in Schedule:
                self.schedule_combo.addItem(schedule.label, schedule)

    def _reload_filter_choices(self) -> None:
        """Registration and supplier filters list what the order book has (after Settings changed it too)."""
        if self.book is None:
            return
        try:
            registrations = self.book.list_registrations()
            suppliers = self.book.list_suppliers()
        except CsosError as exc:
            self.show_error(exc)
            return
        for combo, everything, items in (
                (self.registration_combo, "All registrations",
                 [(f"{r.dea_number} — {r.name}", r.id) for r in registrations]),
                (self.supplier_combo, "All suppliers", [(s.name, s.id) for s in suppliers])):
            current = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, None)
            for text, value in items:
                combo.addItem(text, value)
            found = combo.findData(current) if current is not None else 0
            combo.setCurrentIndex(max(found, 0))
            combo.blockSignals(False)
            combo.setToolTip(combo.currentText())
            combo.updateGeometry()  # refilled with signals blocked: without this the row kept "All regist…" cut

    def _created_range(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        choice = self.created_combo.currentData()
        today = dt.date.today()
        if choice is None:
            return None, None
        if choice == "between":
            start, end = self.from_date.date().toPython(), self.to_date.date().toPython()
            if end < start:
                start, end = end, start
            return _local_midnight_utc(start), _local_midnight_utc(end + dt.timedelta(days=1))
        if choice == "year":
            return _local_midnight_utc(dt.date(today.year, 1, 1)), None
        return _local_midnight_utc(today - dt.timedelta(days=int(choice))), None

    def current_filter(self) -> OrderFilter:
        from app.services.orders.orderbook import OrderFilter

        status = self.status_combo.currentData()
        created_from, created_to = self._created_range()
        return OrderFilter(statuses=frozenset({status}) if isinstance(status, OrderStatus) else frozenset(),
                           supplier_id=self.supplier_combo.currentData(),
                           registration_id=self.registration_combo.currentData(),
                           created_from=created_from, created_to=created_to,
                           schedule=self.schedule_combo.currentData(),
                           text=self.search_box.text().strip())

    @Slot()
    def apply_filter(self) -> None:
        self._search_timer.stop()
        if self.model is None:
            return
        between = self.created_combo.currentData() == "between"
        if between or self._date_widgets is not None:
            for widget in self._date_fields():
                widget.setVisible(between)
        wanted = self.current_filter()
        if wanted != self.model.order_filter:
            self.model.set_filter(wanted)

    @Slot()
    def clear_filters(self) -> None:
        for combo in (self.status_combo, self.registration_combo, self.supplier_combo, self.schedule_combo,
                      self.created_combo):
            combo.blockSignals(True)
            combo.setCurrentIndex(0)
            combo.blockSignals(False)
        self.search_box.blockSignals(True)
        self.search_box.clear()
        self.search_box.blockSignals(False)
        self.apply_filter()
        self.search_box.setFocus()

    @Slot()
    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    @Slot(int)
    def _on_header_clicked(self, column: int) -> None:
        if self.model is None:
            return
        header = self.table.horizontalHeader()
        if column != OrderTableModel.COL_CREATED:  # only Created sorts; keep the indicator where it means something
            header.setSortIndicator(OrderTableModel.COL_CREATED, self._sort_order())
            return
        newest_first = not self.model.newest_first
        self.model.sort(OrderTableModel.COL_CREATED,
                        Qt.SortOrder.DescendingOrder if newest_first else Qt.SortOrder.AscendingOrder)
        header.setSortIndicator(OrderTableModel.COL_CREATED, self._sort_order())

    def _sort_order(self) -> Qt.SortOrder:
        return Qt.SortOrder.DescendingOrder if self.model.newest_first else Qt.SortOrder.AscendingOrder

    # -- reacting to the model -----------------------------------------------------------------------------------

    def _filtered(self) -> bool:
        if self.model is None:  # not attached yet (the first page is never filtered): no service to import
            return False
        from app.services.orders.orderbook import OrderFilter

        return self.model.order_filter != OrderFilter()

    @Slot(int)
    def _on_total_changed(self, total: int) -> None:
        noun = "order" if total == 1 else "orders"
        if self._filtered():
            self.count_label.setText(f"{total:,} {noun} " + ("matches" if total == 1 else "match"))
        else:
            self.count_label.setText(f"{total:,} {noun}")

    @Slot()
    def _update_empty_state(self) -> None:
        if self.model is None:
            return
        if self.model.rowCount() > 0:
            self.view_stack.setCurrentWidget(self.table)
            self.detail.setVisible(True)
            return
        if not self._filtered():
            # An empty order book: the getting-started checklist says what comes first (certificate, registration
            # and suppliers, first order), each step with its button.
            panel = self.getting_started_panel()
            panel.refresh()
            self.view_stack.setCurrentWidget(panel)
            self.detail.setVisible(False)
            return
        title, text = ("No orders match these filters.",
                       "Clear the search box or press “Clear filters” to see every order.")
        import html

        self.empty_hint.setText(f"<p style='font-size:14pt; font-weight:600'>{html.escape(title)}</p>"
                                f"<p>{html.escape(text)}</p>")
        self.view_stack.setCurrentWidget(self.empty_hint)
        self.detail.setVisible(False)

    def getting_started_panel(self) -> Any:
        """The checklist in the order list's place (made the first time the book is empty)."""
        panel = getattr(self, "_getting_started", None)
        if panel is None:
            from app.ui.getting_started import GettingStartedPanel

            panel = GettingStartedPanel(self.facade, self.view_stack)
            panel.action_requested.connect(self.on_getting_started_action)
            self.view_stack.addWidget(panel)
            self._getting_started = panel
        return panel

    @Slot(QItemSelection, QItemSelection)
    def _on_selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_selected()

    @Slot(QModelIndex, QModelIndex)
    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex) -> None:
        row = self.selected_row()
        if row is not None and top_left.row() <= row <= bottom_right.row():
            self._show_selected()

    def selected_row(self) -> int | None:
        if self.model is None:
            return None
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def selected_order_id(self) -> int | None:
        row = self.selected_row()
        return self.model.order_id(row) if row is not None else None

    @Slot()
    def _on_order_book_changed(self) -> None:
        if self.model is None:
            return
        selected = self.selected_order_id()
        self.model.refresh()
        if selected is not None:
            self.select_order(selected)
        self.refresh_status()

    @Slot(list)
    def _on_orders_changed(self, ids: list[int]) -> None:
        if self.model is None:
            return
        if all(self.model.row_of(order_id) is not None for order_id in ids):
            self.model.orders_changed(ids)
        else:
            self.model.refresh()
        self.refresh_status()

    def select_order(self, order_id: int) -> bool:
        if self.model is None:
            return False
        row = self.model.row_of(order_id)
        while row is None and self.model.canFetchMore(QModelIndex()):
            self.model.fetchMore(QModelIndex())
            row = self.model.row_of(order_id)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True
