"""The main window: training banner, reminders, filters and search, the order book table, the detail pane.

Widgets only render and collect input; what they show comes from services through the facade they are given.

Start-up (issue 9/10): the window can be built before the order book is open — ``MainWindow(config, facade=...)``
shows its menus, toolbar and an "Opening the order book…" placeholder at once, with the actions that need the order
book disabled, and ``attach(book, db)`` fills it in once a worker has opened the book. ``MainWindow(config, book,
db)`` attaches at once. This module imports no SQLAlchemy and no service that does: those come with ``attach``.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QDate, QEvent, QItemSelection, QModelIndex, QSize, Qt, QTimer, Signal, Slot
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
from app.models.states import SHIPPABLE_STATUSES, TRANSITIONS, OrderStatus
from app.models.values import Schedule
from app.ui import messages, theme
from app.ui.facade import AppFacade
from app.ui.jobs import Job
from app.ui.order_table_model import OrderBookSource, OrderSource, OrderTableModel, format_local

if TYPE_CHECKING:  # imported with the order book (``attach``), not with the window's frame
    from app.services.orders.details import Notice
    from app.services.orders.orderbook import OrderFilter
    from app.ui.order_detail import OrderDetailPane

log = logging.getLogger(__name__)

APP_TITLE = "CSOS Desk"
TRAINING_TEXT = "TRAINING — practice orders, nothing is sent to real suppliers"
SEARCH_DELAY_MS = 250
CREATED_RANGES = (("Any time", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30),
                  ("Last 60 days", 60), ("This year", "year"), ("Between dates…", "between"))
LOADING_TITLE = "Opening the order book…"
LOADING_STYLE = ("QWidget#loadingPage QLabel#loadingTitle { font-size: 14pt; font-weight: 600; }"
                 " QWidget#loadingPage QLabel#loadingText { font-size: 11pt; color: palette(dark); }")


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


def _load_status_services() -> None:
    """On a worker: what the status bar's certificate reading imports."""
    import app.services.certificates.book  # noqa: F401


class MainWindow(QMainWindow):
    # The order list (or its "no orders yet" hint) was painted for the first time after attaching.
    order_list_shown = Signal()
    # The status bar was read and the background work (clock check, outbox) started; the sandbox may follow.
    checks_started = Signal()

    def __init__(self, config: Any, book: Any = None, db: Any = None, *, source: OrderSource | None = None,
                 facade: AppFacade | None = None, start_checks: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade or AppFacade(config, book, db, parent=self)
        self.config = config
        self.book: Any = None
        self.db: Any = None
        self.model: OrderTableModel | None = None
        self.editor: Any = None
        self.settings_dialog: Any = None
        self.dialog: Any = None  # the last sign/receive/lost/cancel/records dialog opened (tests look at it)
        self.windows: dict[str, Any] = {}  # certificates, approvals, mailbox: one window each
        self.training_job: Job | None = None
        self.training_notice: Notice | None = None
        self.clock_result: Any = None
        self.notices: list[Notice] = []
        self.closing = False
        self._shown_job: Job | None = None
        self._start_checks = start_checks
        self._started = False
        self._list_shown = False
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE + (" — TRAINING" if config.is_training else ""))
        self.resize(1180, 760)

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

        jobs = self.facade.jobs
        jobs.slow_job.connect(self._show_job)
        jobs.unhandled_failure.connect(self.report_failure)
        self.facade.orders_changed.connect(self._on_orders_changed)
        self.facade.order_book_changed.connect(self._on_order_book_changed)
        self.facade.parties_changed.connect(self._reload_filter_choices)
        self.facade.settings_changed.connect(self.refresh_status)

        self._set_book_enabled(False)
        if book is not None:
            self.attach(book, db, source=source)

    @property
    def is_attached(self) -> bool:
        return self.model is not None

    @property
    def book_actions(self) -> tuple[QAction, ...]:
        """What needs the order book (or the services over it): disabled until it is attached."""
        return (self.new_order_action, self.find_action, self.refresh_action, self.settings_action,
                self.sync_action, self.certificates_action, self.enroll_action, self.import_action,
                self.approvals_action, self.mailbox_action, self.export_action, self.check_action,
                self.backup_action)

    def _set_book_enabled(self, enabled: bool) -> None:
        for action in self.book_actions:
            action.setEnabled(enabled)
        for widget in (self.search_box, self.clear_filters_button, self.status_combo, self.registration_combo,
                       self.supplier_combo, self.schedule_combo, self.created_combo, self.from_date, self.to_date):
            widget.setEnabled(enabled)

    def attach(self, book: Any, db: Any, *, source: OrderSource | None = None) -> None:
        """Show the opened order book: the order list and filters, then (once it is painted) the status bar
        readings and the background checks (clock, outbox). Runs on the GUI thread; the opening itself does not."""
        if self.model is not None:
            raise RuntimeError("this window already shows an order book")
        if self.facade.book is None:
            self.facade.attach(book, db)
        self.book, self.db = book, db
        self._build_detail()
        self.model = OrderTableModel(source or OrderBookSource(book, db), parent=self)
        self.table.setModel(self.model)
        self._size_columns()
        self.table.horizontalHeader().setSortIndicator(OrderTableModel.COL_CREATED, Qt.SortOrder.DescendingOrder)
        self.model.total_changed.connect(self._on_total_changed)
        self.model.modelReset.connect(self._update_empty_state)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.load_failed.connect(self.show_error)
        self.model.dataChanged.connect(self._on_data_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.model.modelReset.connect(self._show_selected)
        self.table.activated.connect(self._on_row_activated)
        self._show_location(db.url)
        self._reload_filter_choices()
        self._set_book_enabled(True)

        self._on_total_changed(self.model.total)
        self._update_empty_state()
        self._show_selected()
        if self.isVisible():
            self.search_box.setFocus()
        shown = self.view_stack.currentWidget()
        self._list_target = self.table.viewport() if shown is self.table else shown
        self._list_target.installEventFilter(self)
        if not self._start_checks:
            self._started = True
            self.refresh_status()
        else:
            # The status bar (certificates, reminders) and the background work start once the order list has been
            # painted: neither the window's nor the list's first paint waits for them (start-up benchmark, issue
            # 9/10). A window that is never shown starts them after a second anyway.
            QTimer.singleShot(1000, self._after_first_paint)

    def eventFilter(self, watched: Any, event: Any) -> bool:
        if event.type() == QEvent.Type.Paint and not self._list_shown \
                and watched is getattr(self, "_list_target", None):
            self._list_shown = True
            watched.removeEventFilter(self)
            QTimer.singleShot(0, self._on_list_shown)
        return super().eventFilter(watched, event)

    def _on_list_shown(self) -> None:
        self.order_list_shown.emit()
        self._after_first_paint()

    def _after_first_paint(self) -> None:
        if self._started or self.closing or self.model is None:
            return
        self._started = True
        # The certificate reading needs cryptography (~70 ms to import): loaded on a worker, so neither the list
        # nor the GUI thread waits for it; then the readings and checks start here.
        self.facade.jobs.run("Reading certificates and reminders", lambda _context: _load_status_services(),
                             on_success=self._start_checks_now, on_failure=self._start_checks_now, announce=False,
                             owner=self)

    def _start_checks_now(self, _result: Any = None) -> None:
        if self.closing:
            return
        self.refresh_status()
        self.check_clock()
        self.facade.start_outbox()
        self.checks_started.emit()

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
        self.sign_action = self._action("&Sign and send…", "certificate", "Ctrl+Shift+S", self.sign_selected,
                                        "Check, sign and send the selected order")
        self.receive_action = self._action("&Receive goods…", "ok", "Ctrl+R", self.receive_selected,
                                           "Record the packages received for the selected order")
        self.lost_action = self._action("Report &lost…", "warning", None, self.report_selected_lost,
                                        "The goods never arrived: sign a lost-order statement and reorder")
        self.cancel_action = self._action("&Cancel order…", "remove", None, self.cancel_selected,
                                          "Cancel the selected order before it is sent")
        self.sync_action = self._action("Check for supplier &answers", "outbox", "F6", self.sync_now,
                                        "Send what waits in the outbox and fetch suppliers' answers and shipments")
        self.print_action = self._action("&Print order…", "info", QKeySequence.StandardKey.Print,
                                         self.print_selected, "Print the selected order")
        self.pdf_action = self._action("Save order as P&DF…", "folder", "Ctrl+Shift+P", self.save_selected_pdf,
                                       "Save the selected order as a PDF file")
        self.certificates_action = self._action("&Certificates…", "certificate", "Ctrl+Shift+C",
                                                self.open_certificates, "Your CSOS certificates and what to do next")
        self.enroll_action = self._action("&Enroll for a certificate…", "certificate", None,
                                          self.open_enrollment, "Apply for a CSOS signing certificate")
        self.import_action = self._action("&Import a .p12 file…", "folder", None, self.open_import,
                                          "Use a CSOS certificate you already have")
        self.approvals_action = self._action("&Approvals (coordinator)…", "ok", None, self.open_approvals,
                                             "Approve or decline applications for your registrations")
        self.mailbox_action = self._action("Training &mailbox…", "info", None, self.open_mailbox,
                                           "The practice e-mails and letters of the training CA")
        self.mailbox_action.setVisible(bool(self.config.is_training))
        self.export_action = self._action("&Export for an inspection…", "folder", "Ctrl+Shift+E",
                                          lambda: self.open_records(0), "Export the records of a period")
        self.check_action = self._action("&Check integrity…", "ok", None, lambda: self.open_records(1),
                                         "Verify every signature, linked record and the audit trail")
        self.backup_action = self._action("&Back up the order book…", "folder", None, lambda: self.open_records(2),
                                          "Copy the order book to a file (keys are never included)")
        self.edit_order_action.setEnabled(False)
        self.copy_order_action.setEnabled(False)
        for action in self.order_actions:
            action.setEnabled(False)

    @property
    def order_actions(self) -> tuple[QAction, ...]:
        return (self.sign_action, self.receive_action, self.lost_action, self.cancel_action, self.print_action,
                self.pdf_action)

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
        order_menu.addSeparator()
        order_menu.addAction(self.sign_action)
        order_menu.addAction(self.receive_action)
        order_menu.addAction(self.sync_action)
        order_menu.addSeparator()
        order_menu.addAction(self.lost_action)
        order_menu.addAction(self.cancel_action)
        order_menu.addSeparator()
        order_menu.addAction(self.print_action)
        order_menu.addAction(self.pdf_action)
        certificates_menu = bar.addMenu("&Certificates")
        for action in (self.certificates_action, self.enroll_action, self.import_action, self.approvals_action,
                       self.mailbox_action):
            certificates_menu.addAction(action)
        records_menu = bar.addMenu("Rec&ords")
        for action in (self.export_action, self.check_action, self.backup_action):
            records_menu.addAction(action)
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
        for action in (self.sign_action, self.receive_action, self.sync_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.certificates_action)
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
        for combo in (self.status_combo, self.registration_combo, self.supplier_combo, self.schedule_combo,
                      self.created_combo):
            combo.currentIndexChanged.connect(lambda _i: self.apply_filter())

        self.table = QTableView(body)
        self.table.setObjectName("orderTable")
        self.table.setAccessibleName("Order book")
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
        header = self.table.horizontalHeader()
        header.setSectionsClickable(True)
        header.setSortIndicatorShown(True)
        header.sectionClicked.connect(self._on_header_clicked)  # columns are sized when the model comes (attach)

        self.empty_hint = QLabel(body)
        self.empty_hint.setObjectName("emptyHint")
        self.empty_hint.setStyleSheet(theme.EMPTY_HINT_STYLE)
        self.empty_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_hint.setWordWrap(True)
        self.empty_hint.setTextFormat(Qt.TextFormat.RichText)

        self.loading_page = self._build_loading_page(body)

        self.view_stack = QStackedWidget(body)
        self.view_stack.addWidget(self.table)
        self.view_stack.addWidget(self.empty_hint)
        self.view_stack.addWidget(self.loading_page)
        self.view_stack.setCurrentWidget(self.loading_page)

        self.splitter = QSplitter(Qt.Orientation.Vertical, body)
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.view_stack)
        self.splitter.setStretchFactor(0, 3)
        body_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.search_box.setFocus()

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
        self.loading_title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        column.addWidget(self.loading_title)
        self.loading_bar = QProgressBar(page)
        self.loading_bar.setObjectName("loadingBar")
        self.loading_bar.setAccessibleName("Opening the order book")
        self.loading_bar.setRange(0, 0)  # busy: how long it takes is not known
        self.loading_bar.setTextVisible(False)
        self.loading_bar.setFixedWidth(320)
        column.addWidget(self.loading_bar, 0, Qt.AlignmentFlag.AlignHCenter)
        self.loading_text = QLabel(page)
        self.loading_text.setObjectName("loadingText")
        self.loading_text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.loading_text.setWordWrap(True)
        self.loading_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        url = str(self.config.database_url or "")
        where = f" from {describe_location(url)}" if url.startswith("sqlite:///") else ""
        self.loading_text.setText(f"Reading your orders{where}.\nYour orders, filters and the order commands "
                                  "appear here in a moment.")
        column.addWidget(self.loading_text)
        column.addStretch(3)
        return page

    def show_loading_failed(self, message: str) -> None:
        """The order book could not be opened: the placeholder stops looking busy and says why."""
        self.loading_title.setText("The order book could not be opened")
        self.loading_bar.setVisible(False)
        self.loading_text.setText(message)

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
        self.location_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.location_label.setText("Order book: opening…")
        bar.addPermanentWidget(self.location_label)

    def _show_location(self, url: str) -> None:
        location = describe_location(url)
        shown = QFontMetrics(self.location_label.font()).elidedText(location, Qt.TextElideMode.ElideMiddle, 360)
        self.location_label.setText(f"Order book: {shown}")
        self.location_label.setToolTip(location)

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
                 self.table]
        for first, second in zip(chain, chain[1:]):
            self.setTabOrder(first, second)

    def _build_detail(self) -> None:
        """The detail pane under the list: built with the order book (nothing to show before it is attached)."""
        from app.ui.order_detail import OrderDetailPane

        self.detail: OrderDetailPane = OrderDetailPane(self.splitter)
        self.detail_pane = self.detail
        self.detail_title = self.detail.title
        self.detail_fields = self.detail.fields
        self.detail_form = self.detail.tabs
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(1, 2)
        height = self.splitter.height()
        if self.splitter.isVisible() and height > 0:  # laid out already (the deferred start): list 3, details 2
            self.splitter.setSizes([height * 3 // 5, height - height * 3 // 5])
        for first, second in ((self.table, self.detail.tabs), (self.detail.tabs, self.detail.lines_table)):
            self.setTabOrder(first, second)

    # -- filtering and sorting -----------------------------------------------------------------------------------

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
        from app.services.orders.orderbook import OrderFilter

        return self.model is not None and self.model.order_filter != OrderFilter()

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
        if self._filtered():
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
        if self.model is None:
            return None
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
            from app.services.orders.details import order_details

            try:
                shown = order_details(self.db, order_id)
            except CsosError as exc:
                self.show_error(exc)
        self.detail.show_order(shown)
        self.edit_order_action.setEnabled(shown is not None and shown.status is OrderStatus.DRAFT)
        self.copy_order_action.setEnabled(shown is not None and shown.can_be_copied)
        status = shown.status if shown is not None else None
        self.sign_action.setEnabled(status in (OrderStatus.DRAFT, OrderStatus.SIGNED, OrderStatus.QUEUED))
        self.receive_action.setEnabled(status in SHIPPABLE_STATUSES or status is OrderStatus.EXPIRED)
        self.lost_action.setEnabled(status is not None and OrderStatus.LOST in TRANSITIONS[status])
        self.cancel_action.setEnabled(status is not None and OrderStatus.CANCELLED in TRANSITIONS[status])
        self.print_action.setEnabled(status is not None)
        self.pdf_action.setEnabled(status is not None)

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

    # -- status bar and reminders --------------------------------------------------------------------------------

    @Slot()
    def refresh_status(self) -> None:
        """Certificate, outbox and reminders: small reads, done again after anything changed."""
        if self.db is None:
            return  # not attached yet: attach reads them
        from app.services.orders import details as details_service
        from app.services.app_settings import reminder_days

        try:
            certificate = details_service.active_certificate(self.db, self.config, now=self.facade.clock())
            waiting = details_service.orders_waiting_to_send(self.db)
            self.notices = details_service.due_notices(self.db, today=self.facade.today(),
                                                       days=reminder_days(self.facade.settings),
                                                       dismissed=self._dismissed())
            self.notices = ([self.training_notice] if self.training_notice else []) + self._revocation_notices() \
                + self.notices
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

    def _revocation_notices(self) -> list[Notice]:
        """K3: a revocation started and not finished keeps reminding with its deadline (never dismissed)."""
        from pathlib import Path

        if not (Path(self.config.data_dir) / "wizards").is_dir():
            return []  # no wizard was ever started: nothing to import or read
        from app.services.enrollment.flows import unfinished_revocation_reminders
        from app.services.orders.details import Notice
        from app.ui.wizards import wizard_state_store

        try:
            reminders = unfinished_revocation_reminders(wizard_state_store(self.config), now=self.facade.clock())
        except (CsosError, OSError, ValueError) as exc:
            log.info("revocation reminders unreadable: %s", getattr(exc, "code", type(exc).__name__))
            return []
        return [Notice(key=f"incident:{r.reference}", stage=0, message=r.headline,
                                       action=r.action + " (Certificates → Certificates…, then Revoke.)", urgent=True)
                for r in reminders]

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
        from app.services.app_settings import sntp_server

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
            from app.services.signing.clock import check_clock

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
        if self.model is None:
            return
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
        from app.services.orders.drafts import new_order_from

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
        from app.ui.about_dialog import AboutDialog

        profile = "training (practice orders only)" if self.config.is_training else "production"
        dialog = AboutDialog(self, profile_text=profile, data_dir=self.config.data_dir)
        self.dialog = dialog
        dialog.exec()

    # -- order life: sign and send, receive, lost, cancel, print ----------------------------------------------------

    def _open_order_dialog(self, factory: Any) -> Any:
        order_id = self.selected_order_id()
        if order_id is None:
            return None
        try:
            dialog = factory(order_id)
        except CsosError as exc:
            self.report_failure(exc)
            return None
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog = dialog
        dialog.open()
        return dialog

    @Slot()
    def sign_selected(self) -> Any:
        if not self.sign_action.isEnabled():
            return None
        from app.ui.sign_dialog import SignAndSendDialog

        return self._open_order_dialog(lambda order_id: SignAndSendDialog(self.facade, order_id, parent=self))

    @Slot()
    def receive_selected(self) -> Any:
        if not self.receive_action.isEnabled():
            return None
        from app.ui.lifecycle_dialogs import ReceivingDialog

        return self._open_order_dialog(lambda order_id: ReceivingDialog(self.facade, order_id, parent=self))

    @Slot()
    def report_selected_lost(self) -> Any:
        if not self.lost_action.isEnabled():
            return None
        from app.ui.lifecycle_dialogs import LostOrderDialog

        def make(order_id: int) -> Any:
            dialog = LostOrderDialog(self.facade, order_id, parent=self)
            dialog.reported.connect(self._on_reported_lost)
            return dialog

        return self._open_order_dialog(make)

    def _on_reported_lost(self, _order_id: int, replacement_id: Any) -> None:
        if replacement_id:
            self.select_order(int(replacement_id))
            self.open_editor(int(replacement_id))

    @Slot()
    def cancel_selected(self) -> Any:
        if not self.cancel_action.isEnabled():
            return None
        from app.ui.lifecycle_dialogs import CancelOrderDialog

        return self._open_order_dialog(lambda order_id: CancelOrderDialog(self.facade, order_id, parent=self))

    @Slot()
    def sync_now(self) -> None:
        runner = self.facade.outbox_runner
        facade = self.facade

        def work(_context: Any) -> Any:
            facade.outbox().run_until_idle()
            if runner is not None:
                return runner.sync_once()
            return facade.lifecycle().sync(facade.connector)

        def done(report: Any) -> None:
            self.facade.order_book_changed.emit()
            found = len(report.applied)
            problems = "; ".join(e.get("message", "") for e in report.errors[:2])
            text = (f"{found} new supplier record(s) recorded." if found else "Nothing new from suppliers.")
            self.statusBar().showMessage(text + (f" Some could not be reached: {problems}" if problems else ""),
                                         15_000)

        self.facade.jobs.run("Checking for supplier answers", work, on_success=done)

    @Slot()
    def print_selected(self) -> None:
        order_id = self.selected_order_id()
        if order_id is None:
            return
        from app.ui.printing import print_order

        try:
            if print_order(self, self.facade, order_id):
                self.statusBar().showMessage("Sent to the printer.", 8000)
        except CsosError as exc:
            self.report_failure(exc)

    @Slot()
    def save_selected_pdf(self, path: Any = None) -> Any:
        order_id = self.selected_order_id()
        if order_id is None:
            return None
        from app.ui.printing import ask_pdf_path, save_order_pdf

        try:
            number = self.facade.book.get_order(order_id).order_number
            target = path or ask_pdf_path(self, number)
            if target is None:
                return None
            saved = save_order_pdf(self.facade, order_id, target)
        except CsosError as exc:
            self.report_failure(exc)
            return None
        self.statusBar().showMessage(f"Order {number} saved as {saved}", 15_000)
        return saved

    # -- records -------------------------------------------------------------------------------------------------

    @Slot()
    def open_records(self, tab: int = 0) -> Any:
        from app.ui.records_dialog import RecordsDialog

        dialog = RecordsDialog(self.facade, tab=tab, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog = dialog
        dialog.open()
        return dialog

    # -- certificates (the wizards and pages of issue 7/10) ------------------------------------------------------

    def _window(self, key: str, make: Any) -> Any:
        window = self.windows.get(key)
        if window is not None:
            try:
                window.show()
                window.raise_()
                window.activateWindow()
                return window
            except RuntimeError:  # closed and deleted by Qt
                self.windows.pop(key, None)
        try:
            window = make()
        except CsosError as exc:
            self.report_failure(exc)
            return None
        if window is None:
            return None
        window.setWindowFlag(Qt.WindowType.Window, True)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(lambda *_a, k=key: self.windows.pop(k, None))
        self.windows[key] = window
        window.show()
        return window

    @Slot()
    def open_certificates(self) -> Any:
        from app.ui.certificates_page import CertificatesPage

        def make() -> Any:
            page = CertificatesPage(self.facade, parent=self)
            page.setWindowTitle("CSOS certificates" + (" — TRAINING" if self.config.is_training else ""))
            page.resize(1320, 460)  # every column, with "next action" wrapping, and no sideways scrolling
            page.open_wizard.connect(self.open_wizard)
            return page

        return self._window("certificates", make)

    @Slot(str, str)
    def open_wizard(self, kind: str, fingerprint: str = "") -> Any:
        from app.ui import wizards

        openers = {
            "enroll": lambda: wizards.open_enrollment_wizard(self, self.facade),
            "import": lambda: wizards.open_import_wizard(self, self.facade),
            "renew": lambda: wizards.open_renewal_wizard(self, self.facade, fingerprint),
            "revoke": lambda: wizards.open_revocation_wizard(self, self.facade, fingerprint),
        }
        if kind == "approvals":
            return self.open_approvals()
        opener = openers.get(kind)
        if opener is None:
            log.info("unknown wizard asked for: %s", kind)
            return None
        dialog = opener()
        if dialog is not None:
            self.dialog = dialog
            dialog.test_order_requested.connect(self.open_test_order)
            dialog.enrollment_requested.connect(self.open_enrollment)
            dialog.flow_finished.connect(lambda _name: self._after_certificates_changed())
        return dialog

    def _after_certificates_changed(self) -> None:
        self.refresh_status()
        page = self.windows.get("certificates")
        if page is not None and hasattr(page, "refresh"):
            try:
                page.refresh()
            except RuntimeError:
                self.windows.pop("certificates", None)

    @Slot()
    def open_enrollment(self) -> Any:
        return self.open_wizard("enroll")

    @Slot()
    def open_import(self) -> Any:
        return self.open_wizard("import")

    @Slot(str)
    def open_test_order(self, registration_dea: str) -> Any:
        """After a certificate was installed: a first (practice) order for that registration."""
        editor = self.open_editor(None)
        if editor is not None:
            found = editor.registration_combo.findData(registration_dea)
            if found >= 0 and editor.registration_combo.isEnabled():
                editor.registration_combo.setCurrentIndex(found)
        return editor

    @Slot()
    def open_approvals(self) -> Any:
        from app.services.enrollment.authority import authority_for
        from app.ui.approvals_page import ApprovalsPage

        def make() -> Any:
            page = ApprovalsPage(authority_for(self.config), self.facade.jobs, parent=self)
            page.setWindowTitle("Approvals" + (" — TRAINING" if self.config.is_training else ""))
            page.resize(900, 520)
            return page

        return self._window("approvals", make)

    @Slot()
    def open_mailbox(self) -> Any:
        from app.ui.wizards import open_mailbox

        panel = open_mailbox(self, self.facade)
        if panel is not None:
            self.windows["mailbox"] = panel
        return panel

    # -- training sandbox ------------------------------------------------------------------------------------------

    def start_training(self, starter: Any = None) -> Job | None:
        """Start the practice CA and suppliers in the background; the window stays usable meanwhile."""
        if not self.config.is_training or self.training_job is not None or self.book is None:
            return None
        if starter is None:
            from app.training import start_training_environment as starter
        config, book = self.config, self.book
        self.training_banner.setText(TRAINING_TEXT + " · starting the practice suppliers…")

        def work(context: Any) -> Any:
            environment = starter(config, book)
            if context.cancelled:  # the window closed meanwhile: do not leave the sandbox running
                environment.stop()
                context.check_cancelled()
            return environment

        self.training_job = self.facade.jobs.run("Starting the training sandbox", work,
                                                 on_success=self._on_training_started,
                                                 on_failure=self._on_training_failed)
        return self.training_job

    def _on_training_started(self, environment: Any) -> None:
        self.training_job = None
        self.facade.training_environment = environment
        self.training_banner.setText(TRAINING_TEXT)
        self.training_banner.setToolTip(f"Practice CA and suppliers at {environment.sandbox.base_url}")
        self.facade.settings_changed.emit()
        self.facade.parties_changed.emit()
        if self.facade.outbox_runner is not None and self.facade.outbox_runner.running:
            self.facade.outbox_runner.restart()  # suppliers may have moved to the sandbox's new port
        self.check_clock()
        self.refresh()

    def _on_training_failed(self, error: CsosError) -> None:
        self.training_job = None
        self.training_banner.setText(TRAINING_TEXT + " · the practice suppliers could not start")
        self.training_banner.setToolTip(error.message)
        from app.services.orders.details import Notice

        self.training_notice = Notice(
            key="training:sandbox", stage=0, message="The training sandbox did not start: " + error.message,
            action="You can still prepare orders; signing and sending need the sandbox. Restart CSOS Desk to try "
                   "again.", urgent=True)
        self.notices = [self.training_notice] + [n for n in self.notices if n.key != "training:sandbox"]
        self._show_reminders()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closing = True
        self._search_timer.stop()
        self.facade.shutdown()
        super().closeEvent(event)
