"""The main window: training banner, reminders, filters and search, the order book table, the detail pane.

Widgets only render and collect input; what they show comes from services through the facade they are given.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import Any

from PySide6.QtCore import QDate, QItemSelection, QModelIndex, QSize, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QFontMetrics, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDateEdit,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTableView,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.models.states import OrderStatus
from app.models.values import Schedule
from app.services import order_details as details_service
from app.services.app_settings import reminder_days, sntp_server
from app.services.orderbook import OrderFilter
from app.ui import messages, theme
from app.ui.facade import AppFacade
from app.ui.jobs import Job
from app.ui.order_detail import OrderDetailPane
from app.ui.order_table_model import OrderBookSource, OrderSource, OrderTableModel, format_local

log = logging.getLogger(__name__)

APP_TITLE = "CSOS Desk"
TRAINING_TEXT = "TRAINING — practice orders, nothing is sent to real suppliers"
SEARCH_DELAY_MS = 250
CREATED_RANGES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30),
                  ("Last 60 days", 60), ("This year", "year"), ("Between dates…", "between"))


def describe_location(url: str) -> str:
    """Where the order book lives, for the status bar; never shows a password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an odd URL must not stop the window; the database already opened with it
        return url.split("@")[-1]


def _local_midnight_utc(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time()).astimezone().astimezone(dt.timezone.utc)


class MainWindow(QMainWindow):
    def __init__(self, config: Any, book: Any, db: Any, *, source: OrderSource | None = None,
                 facade: AppFacade | None = None, start_checks: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade or AppFacade(config, book, db, parent=self)
        self.config = config
        self.book = book
        self.db = db
        self.editor: Any = None
        self.settings_dialog: Any = None
        self.clock_result: Any = None
        self.notices: list[details_service.Notice] = []
        self._shown_job: Job | None = None
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE + (" — TRAINING" if config.is_training else ""))
        self.resize(1180, 760)

        self.model = OrderTableModel(source or OrderBookSource(book, db), parent=self)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filter)

        self._build_actions()
        self._build_menus()
        self._build_toolbar()
        self._build_central()
        self._build_status_bar()
        self._set_tab_order()

        self.model.total_changed.connect(self._on_total_changed)
        self.model.modelReset.connect(self._update_empty_state)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.load_failed.connect(self.show_error)
        self.model.dataChanged.connect(self._on_data_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.model.modelReset.connect(self._show_selected)
        self.table.activated.connect(self._on_row_activated)

        jobs = self.facade.jobs
        jobs.slow_job.connect(self._show_job)
        jobs.unhandled_failure.connect(self.report_failure)
        self.facade.orders_changed.connect(self._on_orders_changed)
        self.facade.parties_changed.connect(self._reload_filter_choices)
        self.facade.settings_changed.connect(self.refresh_status)

        self._on_total_changed(self.model.total)
        self._update_empty_state()
        self._show_selected()
        self.refresh_status()
        if start_checks:
            self.check_clock()

    # -- building ------------------------------------------------------------------------------------------------

    def _action(self, text: str, icon: str, shortcut: str | QKeySequence.StandardKey | None, slot: Any,
                tip: str) -> QAction:
        action = QAction(theme.icon(icon), text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        shown = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        action.setToolTip(f"{tip} ({shown})" if shown else tip)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.new_order_action = self._action("&New order…", "new-order", "Ctrl+N", lambda: self.open_editor(None),
                                             "Prepare a new order")
        self.edit_order_action = self._action("&Open draft…", "edit-order", "Ctrl+E", self.open_selected_draft,
                                              "Change the selected draft order")
        self.copy_order_action = self._action("New order from &this one…", "copy-order", "Ctrl+Shift+N",
                                              self.new_order_from_selected,
                                              "The supplier did not accept this order: make a new draft with the "
                                              "same lines (the old order stays as it is)")
        self.find_action = self._action("&Find…", "search", QKeySequence.StandardKey.Find, self.focus_search,
                                        "Search by order number, NDC or product")
        self.refresh_action = self._action("&Refresh", "refresh", QKeySequence.StandardKey.Refresh, self.refresh,
                                           "Read the order book again")
        if self.refresh_action.shortcut().isEmpty():
            self.refresh_action.setShortcut(QKeySequence("F5"))
        self.settings_action = self._action("&Settings…", "settings", "Ctrl+,", self.open_settings,
                                            "Suppliers, signing devices, data location, clock and reminders")
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.quit_action = self._action("&Quit", "quit", "Ctrl+Q", self.close, "Close CSOS Desk")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.about_action = self._action("&About CSOS Desk", "about", None, self.show_about,
                                         "Version, profile and data folder")
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.edit_order_action.setEnabled(False)
        self.copy_order_action.setEnabled(False)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.new_order_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        edit_menu = bar.addMenu("&Edit")
        edit_menu.addAction(self.find_action)
        view_menu = bar.addMenu("&View")
        view_menu.addAction(self.refresh_action)
        order_menu = bar.addMenu("&Order")
        order_menu.addAction(self.new_order_action)
        order_menu.addAction(self.edit_order_action)
        order_menu.addAction(self.copy_order_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self.about_action)

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Main tools", self)
        self.toolbar.setObjectName("mainToolBar")
        self.toolbar.setAccessibleName("Main tools")
        self.toolbar.setMovable(False)
        self.toolbar.setIconSize(QSize(22, 22))
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (self.new_order_action, self.edit_order_action, self.copy_order_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.refresh_action)
        self.toolbar.addAction(self.settings_action)
        for action in self.toolbar.actions():
            button = self.toolbar.widgetForAction(action)
            if button is not None:
                button.setAccessibleName(action.text().replace("&", "").rstrip("…"))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, self.toolbar)

    def _combo(self, parent: QWidget, name: str, accessible: str, caption: str,
               layout: QHBoxLayout) -> QComboBox:
        combo = QComboBox(parent)
        combo.setObjectName(name)
        combo.setAccessibleName(accessible)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        label = QLabel(caption, parent)
        label.setBuddy(combo)
        layout.addWidget(label)
        layout.addWidget(combo)
        layout.addSpacing(10)
        return combo

    def _build_central(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        self.training_banner = QLabel(TRAINING_TEXT, central)
        self.training_banner.setObjectName("trainingBanner")
        self.training_banner.setStyleSheet(theme.TRAINING_BANNER_STYLE)
        self.training_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.training_banner.setAccessibleName("Training mode")
        self.training_banner.setVisible(bool(self.config.is_training))
        layout.addWidget(self.training_banner)

        self.notice_bar = self._build_notice_bar(central)
        layout.addWidget(self.notice_bar)

        body = QWidget(central)
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(10, 8, 10, 6)
        body_layout.setSpacing(6)
        layout.addWidget(body, 1)

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
        self.schedule_combo.addItem("Any schedule", None)
        for schedule in Schedule:
            self.schedule_combo.addItem(schedule.label, schedule)
        self.created_combo = self._combo(body, "createdFilter", "Created filter", "Crea&ted:", filters)
        for text, value in CREATED_RANGES:
            self.created_combo.addItem(text, value)
        today = QDate.currentDate()
        self.from_date = QDateEdit(today.addDays(-30), body)
        self.to_date = QDateEdit(today, body)
        for edit, name, accessible in ((self.from_date, "fromDate", "Created from"),
                                       (self.to_date, "toDate", "Created until")):
            edit.setObjectName(name)
            edit.setAccessibleName(accessible)
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("MMM d, yyyy")
            edit.setVisible(False)
            edit.dateChanged.connect(lambda _d: self.apply_filter())
        self.date_dash = QLabel("to", body)
        self.date_dash.setVisible(False)
        filters.addWidget(self.from_date)
        filters.addWidget(self.date_dash)
        filters.addWidget(self.to_date)
        filters.addStretch(1)
        body_layout.addLayout(filters)
        self._reload_filter_choices()
        for combo in (self.status_combo, self.registration_combo, self.supplier_combo, self.schedule_combo,
                      self.created_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filter())

        self.table = QTableView(body)
        self.table.setObjectName("orderTable")
        self.table.setAccessibleName("Order book")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setTabKeyNavigation(False)
        self.table.setWordWrap(False)
        self.table.setShowGrid(False)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        self.table.verticalHeader().setDefaultSectionSize(QFontMetrics(self.table.font()).height() + 10)
        self._size_columns()
        header = self.table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.setSortIndicator(OrderTableModel.COL_CREATED, Qt.SortOrder.DescendingOrder)
        header.sectionClicked.connect(self._on_header_clicked)

        self.empty_hint = QLabel(body)
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setStyleSheet(theme.EMPTY_HINT_STYLE)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setTextFormat(Qt.TextFormat.RichText)

        self.view_stack = QStackedWidget(body)
        self.view_stack.addWidget(self.table)
        self.view_stack.addWidget(self.empty_hint)

        self.detail = OrderDetailPane(body)
        self.detail_pane = self.detail
        self.detail_title = self.detail.title
        self.detail_fields = self.detail.fields
        self.detail_form = self.detail.tabs

        self.splitter = QSplitter(Qt.Orientation.Vertical, body)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.view_stack)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        body_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.search_box.setFocus()

    def _build_notice_bar(self, parent: QWidget) -> QFrame:
        bar = QFrame(parent)
        bar.setObjectName("noticeBar")
        bar.setStyleSheet(theme.NOTICE_STYLE)
        bar.setAccessibleName("Reminders")
        row = QHBoxLayout(bar)
        row.setContentsMargins(12, 6, 8, 6)
        self.notice_icon = QLabel(bar)
        self.notice_icon.setPixmap(theme.icon("warning").pixmap(QSize(22, 22)))
        row.addWidget(self.notice_icon, 0, Qt.AlignmentFlag.AlignTop)
        self.notice_text = QLabel(bar)
        self.notice_text.setObjectName("noticeText")
        self.notice_text.setWordWrap(True)
        self.notice_text.setTextFormat(Qt.TextFormat.RichText)
        self.notice_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.notice_text, 1)
        self.notice_dismiss = QToolButton(bar)
        self.notice_dismiss.setObjectName("noticeDismiss")
        self.notice_dismiss.setText("Remind me &later")
        self.notice_dismiss.setAccessibleName("Remind me later")
        self.notice_dismiss.setToolTip("Hide these reminders until the next reminder date")
        self.notice_dismiss.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.notice_dismiss.setIcon(theme.icon("close"))
        self.notice_dismiss.clicked.connect(self.dismiss_reminders)
        row.addWidget(self.notice_dismiss, 0, Qt.AlignmentFlag.AlignTop)
        bar.setVisible(False)
        return bar

    def _size_columns(self) -> None:
        """Fixed widths from sample text: resizing to contents would read every row and defeat lazy loading."""
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

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.count_label = QLabel(self)
        self.count_label.setObjectName("orderCount")
        self.count_label.setContentsMargins(6, 0, 0, 0)
        bar.addWidget(self.count_label)
        self.clock_label = self._status_label("clockStatus", "Clock check")
        self.certificate_label = self._status_label("certificateStatus", "Signing certificate")
        self.outbox_label = self._status_label("outboxStatus", "Outbox")
        for label in (self.clock_label, self.certificate_label, self.outbox_label):
            bar.addWidget(label)

        self.busy = QWidget(self)
        self.busy.setObjectName("busyIndicator")
        busy_row = QHBoxLayout(self.busy)
        busy_row.setContentsMargins(0, 0, 0, 0)
        self.busy_label = QLabel(self.busy)
        self.busy_bar = QProgressBar(self.busy)
        self.busy_bar.setAccessibleName("Progress")
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setTextVisible(False)
        self.busy_cancel = QPushButton("Cancel", self.busy)
        self.busy_cancel.setAccessibleName("Cancel the running task")
        self.busy_cancel.clicked.connect(self._cancel_shown_job)
        busy_row.addWidget(self.busy_label)
        busy_row.addWidget(self.busy_bar)
        busy_row.addWidget(self.busy_cancel)
        self.busy.setVisible(False)
        bar.addPermanentWidget(self.busy)

        self.location_label = QLabel(self)
        self.location_label.setObjectName("databaseLocation")
        location = describe_location(self.db.url)
        shown = QFontMetrics(self.location_label.font()).elidedText(location, Qt.TextElideMode.ElideMiddle, 360)
        self.location_label.setText(f"Order book: {shown}")
        self.location_label.setToolTip(location)
        self.location_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bar.addPermanentWidget(self.location_label)

    def _status_label(self, name: str, accessible: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setAccessibleName(accessible)
        label.setContentsMargins(10, 0, 0, 0)
        label.setTextFormat(Qt.TextFormat.RichText)
        return label

    def _set_tab_order(self) -> None:
        chain = [self.search_box, self.clear_filters_button, self.status_combo, self.registration_combo,
                 self.supplier_combo, self.schedule_combo, self.created_combo, self.from_date, self.to_date,
                 self.table, self.detail.tabs, self.detail.lines_table]
        for first, second in zip(chain, chain[1:]):
            self.setTabOrder(first, second)

    # -- filtering and sorting -----------------------------------------------------------------------------------

    def _reload_filter_choices(self) -> None:
        """Registration and supplier filters list what the order book has (after Settings changed it too)."""
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
        between = self.created_combo.currentData() == "between"
        for widget in (self.from_date, self.date_dash, self.to_date):
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

    @Slot(int)
    def _on_total_changed(self, total: int) -> None:
        noun = "order" if total == 1 else "orders"
        if self.model.order_filter != OrderFilter():
            self.count_label.setText(f"{total:,} {noun} " + ("matches" if total == 1 else "match"))
        else:
            self.count_label.setText(f"{total:,} {noun}")

    @Slot()
    def _update_empty_state(self) -> None:
        if self.model.rowCount() > 0:
            self.view_stack.setCurrentWidget(self.table)
            self.detail.setVisible(True)
            return
        if self.model.order_filter != OrderFilter():
            title, text = ("No orders match these filters.",
                           "Clear the search box or press “Clear filters” to see every order.")
        elif self.config.is_training:
            title, text = ("No orders yet.",
                           "This is the training order book: practise freely, nothing here is sent to a real "
                           "supplier. Press Ctrl+N to prepare your first order.")
        else:
            title, text = ("No orders yet.", "Press Ctrl+N to prepare an order. Orders you prepare, sign and send "
                                             "will appear in this list.")
        self.empty_hint.setText(f"<p style='font-size:14pt; font-weight:600'>{html.escape(title)}</p>"
                                f"<p>{html.escape(text)}</p>")
        self.view_stack.setCurrentWidget(self.empty_hint)
        self.detail.setVisible(False)

    @Slot(QItemSelection, QItemSelection)
    def _on_selection_changed(self, _selected: QItemSelection, _deselected: QItemSelection) -> None:
        self._show_selected()

    @Slot(QModelIndex, QModelIndex)
    def _on_data_changed(self, top_left: QModelIndex, bottom_right: QModelIndex) -> None:
        row = self.selected_row()
        if row is not None and top_left.row() <= row <= bottom_right.row():
            self._show_selected()

    def selected_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def selected_order_id(self) -> int | None:
        row = self.selected_row()
        return self.model.order_id(row) if row is not None else None

    @Slot()
    def _show_selected(self) -> None:
        order_id = self.selected_order_id()
        shown = None
        if order_id is not None:
            try:
                shown = details_service.order_details(self.db, order_id)
            except CsosError as exc:
                self.show_error(exc)
        self.detail.show_order(shown)
        self.edit_order_action.setEnabled(shown is not None and shown.status is OrderStatus.DRAFT)
        self.copy_order_action.setEnabled(shown is not None and shown.can_be_copied)

    @Slot(list)
    def _on_orders_changed(self, ids: list[int]) -> None:
        if all(self.model.row_of(order_id) is not None for order_id in ids):
            self.model.orders_changed(ids)
        else:
            self.model.refresh()
        self.refresh_status()

    def select_order(self, order_id: int) -> bool:
        row = self.model.row_of(order_id)
        while row is None and self.model.canFetchMore(QModelIndex()):
            self.model.fetchMore(QModelIndex())
            row = self.model.row_of(order_id)
        if row is None:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    # -- status bar and reminders --------------------------------------------------------------------------------

    @Slot()
    def refresh_status(self) -> None:
        """Certificate, outbox and reminders: small reads, done again after anything changed."""
        try:
            certificate = details_service.active_certificate(self.db, self.config, now=self.facade.clock())
            waiting = details_service.orders_waiting_to_send(self.db)
            self.notices = details_service.due_notices(self.db, today=self.facade.today(),
                                                       days=reminder_days(self.facade.settings),
                                                       dismissed=self._dismissed())
        except CsosError as exc:
            self.show_error(exc)
            return
        if certificate is None:
            self.certificate_label.setText("Certificate: none")
            self.certificate_label.setToolTip("No CSOS signing certificate is set up on this computer yet. Orders "
                                              "can be prepared, but only a certificate holder can sign them.")
        else:
            colour = theme.CLOCK_COLOURS["ok" if certificate.days_left > 30 else "unknown"]
            who = html.escape(certificate.subscriber_name or "certificate")
            self.certificate_label.setText(f"Certificate: {who}, <span style='color:{colour}'>"
                                           f"{certificate.days_left} days left</span>")
            self.certificate_label.setToolTip(f"Expires {format_local(certificate.not_after)}"
                                              f" (registration {certificate.registration_dea})")
        self.outbox_label.setText(f"Outbox: {waiting} waiting" if waiting else "Outbox: empty")
        self.outbox_label.setToolTip("Signed orders that have not been sent to the supplier yet")
        self._show_reminders()

    def _dismissed(self) -> dict[str, int]:
        value = self.facade.settings.get("dismissed_reminders")
        return value if isinstance(value, dict) else {}

    def _show_reminders(self) -> None:
        shown = self.notices
        if not shown:
            self.notice_bar.setVisible(False)
            return
        lines = [f"<b>{html.escape(n.message)}</b> {html.escape(n.action)}" for n in shown[:3]]
        if len(shown) > 3:
            lines.append(f"…and {len(shown) - 3} more.")
        self.notice_text.setText("<br>".join(lines))
        self.notice_bar.setAccessibleDescription(" ".join(f"{n.message} {n.action}" for n in shown))
        self.notice_bar.setProperty("urgent", any(n.urgent for n in shown))
        self.notice_bar.style().unpolish(self.notice_bar)
        self.notice_bar.style().polish(self.notice_bar)
        self.notice_bar.setVisible(True)

    @Slot()
    def dismiss_reminders(self) -> None:
        """Hide until each reminder reaches its next step (e.g. 30 → 14 days)."""
        dismissed = dict(self._dismissed())
        for notice in self.notices:
            dismissed[notice.key] = notice.stage
        try:
            self.facade.save_settings({"dismissed_reminders": dismissed})
        except CsosError as exc:
            self.report_failure(exc)
        self.notice_bar.setVisible(False)
        self.search_box.setFocus()

    def clock_server(self) -> tuple[str, int] | None:
        """Where to check the clock; None in training mode when no practice time server is configured."""
        configured = self.facade.settings.get("sntp_server")
        if self.config.is_training and not configured:
            return None
        host, _, port = sntp_server(self.facade.settings).partition(":")
        return host, int(port or 123)

    @Slot()
    def check_clock(self) -> None:
        server = self.clock_server()
        if server is None:
            self._set_clock("unchecked", "Clock: not checked",
                            "Training mode without the practice time server: the clock was not checked.")
            return
        host, port = server
        self._set_clock("unchecked", "Clock: checking…", f"Asking {host} for the official time")

        def work(_context: Any) -> Any:
            from app.services.clock import check_clock

            return check_clock(host, port=port)

        self.facade.jobs.run("Checking the clock", work, on_success=self._on_clock_checked,
                             on_failure=lambda error: self._set_clock("unknown", "Clock: not checked",
                                                                      error.message))

    def _on_clock_checked(self, result: Any) -> None:
        self.clock_result = result
        state = result.state.value
        text = {"ok": "Clock: right", "off": "Clock: WRONG — signing blocked", "unknown": "Clock: not checked"}[state]
        self._set_clock(state, text, result.message)

    def _set_clock(self, state: str, text: str, tip: str) -> None:
        colour = theme.CLOCK_COLOURS.get(state, theme.CLOCK_COLOURS["unchecked"])
        self.clock_label.setText(f"<span style='color:{colour}'>●</span> {html.escape(text)}")
        self.clock_label.setToolTip(tip)
        self.clock_label.setAccessibleDescription(f"{text}. {tip}")
        self.clock_label.setProperty("state", state)

    # -- background work indicator -------------------------------------------------------------------------------

    @Slot(object)
    def _show_job(self, job: Job) -> None:
        self._shown_job = job
        self.busy_label.setText(job.title + "…")
        self.busy_bar.setRange(0, 0)
        self.busy_cancel.setVisible(job.cancellable)
        self.busy_cancel.setEnabled(True)
        job.progress.connect(self._on_job_progress)
        job.finished.connect(lambda: self._job_done(job))
        self._on_job_progress(*job.last_progress)  # what it reported before it counted as slow
        self.busy.setVisible(True)

    def _on_job_progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.busy_bar.setRange(0, total)
            self.busy_bar.setValue(min(done, total))
        if text:
            self.busy_label.setText(text)

    def _job_done(self, job: Job) -> None:
        if job is self._shown_job:
            self._shown_job = None
            self.busy.setVisible(False)

    def _cancel_shown_job(self) -> None:
        if self._shown_job is not None:
            self._shown_job.cancel()
            self.busy_cancel.setEnabled(False)
            self.busy_label.setText("Stopping…")

    # -- actions -------------------------------------------------------------------------------------------------

    @Slot(object)
    def show_error(self, error: CsosError) -> None:
        """A problem reading: the message in the status bar for the person, the code in the log. Never a traceback."""
        log.info("shown to user: %s", getattr(error, "code", type(error).__name__))
        self.statusBar().showMessage(getattr(error, "message", str(error)), 15_000)

    @Slot(object)
    def report_failure(self, error: CsosError) -> None:
        """Something the person asked for failed: say so where it cannot be missed."""
        self.show_error(error)
        messages.alert(self, "CSOS Desk", getattr(error, "message", str(error)))

    @Slot()
    def refresh(self) -> None:
        self._reload_filter_choices()
        self.model.refresh()
        self.refresh_status()

    def open_editor(self, order_id: int | None) -> Any:
        from app.ui.order_editor import OrderEditor

        if self.editor is not None and self.editor.isVisible():
            self.editor.raise_()
            self.editor.activateWindow()
            return self.editor
        try:
            editor = OrderEditor(self.facade, order_id=order_id, parent=self)
        except CsosError as exc:
            self.report_failure(exc)
            return None
        editor.saved.connect(self._on_order_saved)
        self.editor = editor
        editor.open()
        return editor

    def _on_order_saved(self, order_id: int) -> None:
        self.select_order(order_id)
        self.activateWindow()
        self.table.setFocus(Qt.FocusReason.OtherFocusReason)

    @Slot()
    def open_selected_draft(self) -> None:
        order_id = self.selected_order_id()
        if order_id is not None and self.edit_order_action.isEnabled():
            self.open_editor(order_id)

    @Slot(QModelIndex)
    def _on_row_activated(self, _index: QModelIndex) -> None:
        if self.edit_order_action.isEnabled():
            self.open_selected_draft()
        else:
            self.detail.tabs.setFocus()

    @Slot()
    def new_order_from_selected(self) -> None:
        order_id = self.selected_order_id()
        if order_id is None or not self.copy_order_action.isEnabled():
            return
        from app.services.drafts import new_order_from

        try:
            new_id = new_order_from(self.book, order_id)
        except CsosError as exc:
            self.report_failure(exc)
            return
        self.facade.notify_orders_changed([order_id, new_id])
        self.select_order(new_id)
        self.open_editor(new_id)

    @Slot()
    def open_settings(self) -> None:
        from app.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self.facade, parent=self)
        self.settings_dialog = dialog
        dialog.open()

    @Slot()
    def show_about(self) -> None:
        from app import __version__

        profile = "training (practice orders only)" if self.config.is_training else "production"
        QMessageBox.about(
            self, "About CSOS Desk",
            f"<h3>CSOS Desk {__version__}</h3>"
            "<p>Electronic ordering of controlled substances under the DEA Controlled Substance Ordering System "
            "(CSOS).</p>"
            f"<p>Profile: {profile}<br>Data folder: {html.escape(str(self.config.data_dir))}</p>",
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self._search_timer.stop()
        self.facade.shutdown()
        super().closeEvent(event)
