"""The main window's frame: title, menus, toolbar and actions, the training banner, the layout the parts sit in, the
start-up sequence, error reporting, settings, records and the training sandbox.

What the window shows lives beside it, one module per part, mixed into ``MainWindow``:
``main_window_list`` (search, filters, the order list), ``main_window_detail`` (the detail pane and the commands on
the selected order), ``main_window_status`` (status bar, reminders bar, busy indicator) and
``main_window_certificates`` (the certificate windows and wizards). Widgets only render and collect input; what they
show comes from services through the facade they are given.

Start-up (issue 9/10): the window can be built before the order book is open — ``MainWindow(config, facade=...)``
shows its menus, toolbar and an "Opening the order book…" placeholder at once, with the actions that need the order
book disabled; ``show_first_page(page)`` may show the newest orders read at start-up meanwhile (issue 20), and
``attach(book, db)`` fills it in once a worker has opened the book. ``MainWindow(config, book, db)`` attaches at once.
These modules import no SQLAlchemy and no service that does: those come with ``attach``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QSize, QTimer, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QSplitter, QToolBar, QVBoxLayout, QWidget

from app.errors import CsosError
from app.ui import messages, theme
from app.ui.facade import AppFacade
from app.ui.jobs import Job
from app.ui.lazy_qt import Qt, set_properties
from app.ui.main_window_certificates import CertificateWindowsMixin
from app.ui.main_window_detail import SelectedOrderMixin
from app.ui.main_window_help import HelpMixin
from app.ui.main_window_list import OrderListMixin, first_page_selection
from app.ui.main_window_status import StatusBarMixin
from app.ui.order_table_model import OrderBookSource, OrderSource, OrderTableModel
from app.ui.widgets import fit_on_show

if TYPE_CHECKING:  # imported with the order book (``attach``), not with the window's frame
    from app.services.orders.details import Notice

log = logging.getLogger(__name__)

APP_TITLE = "CSOS Desk"
TRAINING_TEXT = "TRAINING — practice orders, nothing is sent to real suppliers"


def _load_status_services() -> None:
    """On a worker: import what the status bar's certificate reading needs (cryptography, ~70 ms), so the GUI
    thread does not wait for it later."""
    importlib.import_module("app.services.certificates.book")


class MainWindow(OrderListMixin, SelectedOrderMixin, StatusBarMixin, CertificateWindowsMixin, HelpMixin,
                 QMainWindow):
    """The frame; the parts it shows come from the mixins (one module each, see the module docstring)."""

    # The order list (or its "no orders yet" hint) was painted for the first time after attaching.
    order_list_shown = Signal()
    # The status bar was read and the background work (clock check, outbox) started; the sandbox may follow.
    checks_started = Signal()
    # The order book was attached: the real list, search, filters and commands (``attach``).
    book_attached = Signal()

    def __init__(self, config: Any, book: Any = None, db: Any = None, *, source: OrderSource | None = None,
                 facade: AppFacade | None = None, start_checks: bool = True,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade or AppFacade(config, book, db, parent=self)
        self.config = config
        self.book: Any = None
        self.db: Any = None
        self.model: OrderTableModel | None = None
        self.first_page_model: OrderTableModel | None = None  # shown before the book is attached (show_first_page)
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
        self.setAcceptDrops(True)  # supplier answer files dropped on the window are imported (dropEvent)
        self.setWindowTitle(APP_TITLE + (" — TRAINING" if config.is_training else ""))
        self.resize(1180, 760)
        fit_on_show(self)  # a 1024×600 screen kept the status bar and the last columns past its edges

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
                self.backup_action, self.history_action, self.registrations_action, self.suppliers_action,
                self.getting_started_action)

    def _set_book_enabled(self, enabled: bool) -> None:
        for action in self.book_actions:
            action.setEnabled(enabled)
        for widget in (self.search_box, self.clear_filters_button, self.status_combo, self.registration_combo,
                       self.supplier_combo, self.schedule_combo, self.created_combo, *self.made_date_fields()):
            widget.setEnabled(enabled)

    def attach(self, book: Any, db: Any, *, source: OrderSource | None = None) -> None:
        """Show the opened order book: the order list and filters, then (once it is painted) the status bar
        readings and the background checks (clock, outbox). Runs on the GUI thread; the opening itself does not."""
        if self.model is not None:
            raise RuntimeError("this window already shows an order book")
        if self.facade.book is None:
            self.facade.attach(book, db)
        self.book, self.db = book, db
        self._release_detail_place()
        self._build_detail()
        # The first page shown while the book was opening (show_first_page) gives way to the real list, keeping
        # the selected order and where the list was scrolled to.
        first_page, self.first_page_model = self.first_page_model, None
        was_selected = first_page_selection(self.table, first_page)
        scrolled = self.table.verticalScrollBar().value()
        self.model = OrderTableModel(source or OrderBookSource(book, db), parent=self)
        self.table.setModel(self.model)
        self._size_columns()
        self.table.horizontalHeader().setSortIndicator(OrderTableModel.COL_CREATED, Qt.SortOrder.DescendingOrder)
        if first_page is not None:
            first_page.deleteLater()
        self.model.total_changed.connect(self._on_total_changed)
        self.model.modelReset.connect(self._update_empty_state)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.load_failed.connect(self.show_error)
        self.model.dataChanged.connect(self._on_data_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.model.modelReset.connect(self._show_selected)
        self.table.activated.connect(self._on_row_activated)
        self._show_location(db.url)
        self._fill_schedule_choices()
        self._reload_filter_choices()
        self._set_book_enabled(True)

        self._on_total_changed(self.model.total)
        self._update_empty_state()
        if was_selected is not None:
            self.select_order(was_selected)
            self.table.verticalScrollBar().setValue(scrolled)
        self._show_selected()
        if self.isVisible():
            self.search_box.setFocus()
        if not self._list_shown:
            self._watch_list_paint()
        if not self._start_checks:
            self._started = True
            self.refresh_status()
        elif self._list_shown:  # its first page was painted already: the checks need not wait for a paint
            QTimer.singleShot(0, self._after_first_paint)
        else:
            # The status bar (certificates, reminders) and the background work start once the order list has been
            # painted: neither the window's nor the list's first paint waits for them (start-up benchmark, issue
            # 9/10). A window that is never shown starts them after a second anyway.
            QTimer.singleShot(1000, self._after_first_paint)
        self.book_attached.emit()

    def _watch_list_paint(self) -> None:
        """``order_list_shown`` once what stands in the list's place (the list, or its hint) is painted."""
        shown = self.view_stack.currentWidget()
        self._list_target = self.table.viewport() if shown is self.table else shown
        self._list_target.installEventFilter(self)

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
            # As setShortcut sets it (one sequence), which would have PySide6 make Qt's namespace (app/ui/lazy_qt.py)
            action.setShortcuts([QKeySequence(shortcut)])
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
        self.reorder_action = self._action("Re&order…", "copy-order", "Ctrl+Shift+R", self.reorder_selected,
                                           "Copy this order's lines into a new draft (the order stays as it is)")
        self.find_action = self._action("&Find…", "search", QKeySequence.StandardKey.Find, self.focus_search,
                                        "Search by order number, NDC or product")
        self.refresh_action = self._action("&Refresh", "refresh", QKeySequence.StandardKey.Refresh, self.refresh,
                                           "Read the order book again")
        if self.refresh_action.shortcut().isEmpty():
            self.refresh_action.setShortcuts([QKeySequence("F5")])
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
        self.import_answer_action = self._action("Import supplier's &answer…", "folder", None, self.import_answer,
                                                 "Link the supplier's answer files (855, 856, 865), checked against "
                                                 "the orders")
        self.answer_by_hand_action = self._action("Record the supplier's answer by &hand…", "info", None,
                                                  self.record_answer_selected,
                                                  "The supplier answered by e-mail, PDF or phone")
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
        self.mailbox_action = self._action("Practice &mailbox…", "info", None, self.open_mailbox,
                                           "The practice e-mails and letters of the training CA")
        self.mailbox_action.setVisible(bool(self.config.is_training))
        self.export_action = self._action("&Export for an inspection…", "folder", "Ctrl+Shift+E",
                                          lambda: self.open_records(0), "Export the records of a period")
        self.check_action = self._action("&Check integrity…", "ok", None, lambda: self.open_records(1),
                                         "Verify every signature, linked record and the audit trail")
        self.backup_action = self._action("&Back up the order book…", "folder", None, lambda: self.open_records(2),
                                          "Copy the order book to a file (keys are never included)")
        self.history_action = self._action("Ordering &history…", "info", "Ctrl+Shift+H", self.open_history,
                                           "Controlled substances ordered and received, month by month")
        self._build_help_actions()
        self.edit_order_action.setEnabled(False)
        self.copy_order_action.setEnabled(False)
        self.reorder_action.setEnabled(False)
        for action in self.order_actions:
            action.setEnabled(False)

    @property
    def order_actions(self) -> tuple[QAction, ...]:
        return (self.sign_action, self.receive_action, self.answer_by_hand_action, self.lost_action,
                self.cancel_action, self.print_action, self.pdf_action)

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addAction(self.new_order_action)
        file_menu.addAction(self.import_answer_action)
        file_menu.addSeparator()
        file_menu.addAction(self.registrations_action)
        file_menu.addAction(self.suppliers_action)
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
        order_menu.addAction(self.reorder_action)
        order_menu.addAction(self.copy_order_action)
        order_menu.addSeparator()
        order_menu.addAction(self.sign_action)
        order_menu.addAction(self.receive_action)
        order_menu.addAction(self.import_answer_action)
        order_menu.addAction(self.answer_by_hand_action)
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
        for action in (self.history_action, self.export_action, self.check_action, self.backup_action):
            records_menu.addAction(action)
        help_menu = bar.addMenu("&Help")
        for action in (self.getting_started_action, self.user_guide_action, self.shortcuts_action):
            help_menu.addAction(action)
        help_menu.addSeparator()
        help_menu.addAction(self.restart_training_action)
        help_menu.addSeparator()
        help_menu.addAction(self.about_action)

    def _build_toolbar(self) -> None:
        self.toolbar = QToolBar("Main tools", self)
        self.toolbar.setObjectName("mainToolBar")
        self.toolbar.setAccessibleName("Main tools")
        self.toolbar.setMovable(False)
        self.toolbar.setIconSize(QSize(22, 22))
        # By name, as the other enum properties the frame sets before its first paint (app/ui/lazy_qt.py).
        set_properties(self.toolbar, toolButtonStyle="ToolButtonTextBesideIcon")
        for action in (self.new_order_action, self.edit_order_action, self.reorder_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        for action in (self.sign_action, self.receive_action, self.sync_action):
            self.toolbar.addAction(action)
        self.toolbar.addSeparator()
        self.toolbar.addAction(self.certificates_action)
        self.toolbar.addAction(self.settings_action)  # Refresh (F5) and the rest are in the menus
        for action in self.toolbar.actions():
            if action.isSeparator():
                # Its widget is of a class private to Qt: PySide6 would look through, and set up, every widget class
                # it knows (about 50 Python enums, ~15 ms before the first paint) to name its type.
                continue
            button = self.toolbar.widgetForAction(action)
            if button is not None:
                button.setAccessibleName(action.text().replace("&", "").rstrip("…"))
        self.addToolBar(self.toolbar)  # at the top

    def _build_central(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        self.training_banner = QLabel(TRAINING_TEXT, central)
        self.training_banner.setObjectName("trainingBanner")
        self.training_banner.setStyleSheet(theme.TRAINING_BANNER_STYLE)
        set_properties(self.training_banner, alignment="AlignCenter")
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
        self._build_order_list(body, body_layout)

        self.splitter = QSplitter(parent=body)  # by keyword: QSplitter(body) tries the (Qt.Orientation, …) overload
        set_properties(self.splitter, orientation="Vertical")
        self.splitter.setObjectName("mainSplitter")
        self.splitter.setChildrenCollapsible(False)
        self.splitter.addWidget(self.view_stack)
        self.splitter.setStretchFactor(0, 3)
        body_layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)
        self.search_box.setFocus()

    # -- errors, refresh, settings, about, supplier answers ------------------------------------------------------

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

    # -- records -------------------------------------------------------------------------------------------------

    @Slot()
    def open_records(self, tab: int = 0) -> Any:
        from app.ui.records_dialog import RecordsDialog

        dialog = RecordsDialog(self.facade, tab=tab, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog = dialog
        dialog.open()
        return dialog

    @Slot()
    def open_history(self) -> Any:
        from app.ui.history_window import HistoryWindow

        window = HistoryWindow(self.facade, parent=self)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.history_window = window
        window.show()
        return window

    # -- training sandbox ----------------------------------------------------------------------------------------

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
