"""The main window: training banner, search and status filter, the order book table, a detail pane.

Widgets only render and collect input; everything they show comes from the order book through the table model.
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import QItemSelection, QModelIndex, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QCloseEvent, QFontMetrics, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.models.states import OrderStatus
from app.services.orderbook import OrderFilter
from app.ui import theme
from app.ui.order_table_model import OrderBookSource, OrderSource, OrderTableModel, format_local

log = logging.getLogger(__name__)

APP_TITLE = "CSOS Desk"
TRAINING_TEXT = "TRAINING — practice orders, nothing is sent to real suppliers"
SEARCH_DELAY_MS = 250


def describe_location(url: str) -> str:
    """Where the order book lives, for the status bar; never shows a password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an odd URL must not stop the window; the database already opened with it
        return url.split("@")[-1]


class MainWindow(QMainWindow):
    def __init__(self, config: Any, book: Any, db: Any, *, source: OrderSource | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.book = book
        self.db = db
        self.setObjectName("mainWindow")
        self.setWindowTitle(APP_TITLE + (" — TRAINING" if config.is_training else ""))
        self.resize(1100, 680)

        self.model = OrderTableModel(source or OrderBookSource(book, db), parent=self)
        self._search_timer = QTimer(self)
        self._search_timer.setSingleShot(True)
        self._search_timer.setInterval(SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self.apply_filter)

        self._build_menus()
        self._build_central()
        self._build_status_bar()

        self.model.total_changed.connect(self._on_total_changed)
        self.model.modelReset.connect(self._update_empty_state)
        self.model.rowsInserted.connect(self._update_empty_state)
        self.model.load_failed.connect(self.show_error)
        self.model.dataChanged.connect(self._on_data_changed)
        self.table.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self.model.modelReset.connect(self._show_selected)

        self._on_total_changed(self.model.total)
        self._update_empty_state()
        self._show_selected()

    # -- building ------------------------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self.quit_action = QAction("&Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = QAction("&About CSOS Desk", self)
        self.about_action.setMenuRole(QAction.MenuRole.AboutRole)
        self.about_action.triggered.connect(self.show_about)
        help_menu.addAction(self.about_action)

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

        body = QWidget(central)
        body_layout = QVBoxLayout(body)
        body_layout.setContentsMargins(10, 8, 10, 6)
        body_layout.setSpacing(6)
        layout.addWidget(body, 1)

        filters = QHBoxLayout()
        self.search_box = QLineEdit(body)
        self.search_box.setObjectName("searchBox")
        self.search_box.setPlaceholderText("Search order number, NDC or product…")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.setAccessibleName("Search orders")
        self.search_box.textChanged.connect(lambda _text: self._search_timer.start())
        self.search_box.returnPressed.connect(self.apply_filter)
        filters.addWidget(self.search_box, 3)

        self.status_combo = QComboBox(body)
        self.status_combo.setObjectName("statusFilter")
        self.status_combo.setAccessibleName("Status filter")
        self.status_combo.addItem("All statuses", None)
        for status in OrderStatus:
            self.status_combo.addItem(status.label, status)
        self.status_combo.currentIndexChanged.connect(lambda _i: self.apply_filter())
        status_label = QLabel("&Status:", body)
        status_label.setBuddy(self.status_combo)
        filters.addSpacing(8)
        filters.addWidget(status_label)
        filters.addWidget(self.status_combo, 1)
        body_layout.addLayout(filters)

        self.table = QTableView(body)
        self.table.setObjectName("orderTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
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
        body_layout.addWidget(self.view_stack, 1)

        self.detail_pane = self._build_detail_pane(body)
        body_layout.addWidget(self.detail_pane)
        self.setCentralWidget(central)
        self.search_box.setFocus()

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

    def _build_detail_pane(self, parent: QWidget) -> QFrame:
        pane = QFrame(parent)
        pane.setObjectName("detailPane")
        pane.setStyleSheet(theme.DETAIL_PANE_STYLE)
        layout = QVBoxLayout(pane)
        layout.setContentsMargins(2, 8, 2, 2)
        self.detail_title = QLabel(pane)
        self.detail_title.setObjectName("detailTitle")
        self.detail_title.setProperty("role", "heading")
        self.detail_title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.detail_title)

        self.detail_fields: dict[str, QLabel] = {}
        columns = QHBoxLayout()
        left, right = QFormLayout(), QFormLayout()
        for f in (left, right):
            f.setHorizontalSpacing(12)
            f.setVerticalSpacing(2)
            f.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        for target, key, caption in ((left, "status", "Status"), (left, "supplier", "Supplier"),
                                     (left, "registration", "Registration"), (right, "created", "Created"),
                                     (right, "signed", "Signed"), (right, "lines", "Lines")):
            label = QLabel(pane)
            label.setObjectName(f"detail_{key}")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            caption_label = QLabel(caption + ":", pane)
            caption_label.setProperty("role", "caption")
            target.addRow(caption_label, label)
            self.detail_fields[key] = label
        columns.addLayout(left, 1)
        columns.addSpacing(24)
        columns.addLayout(right, 1)
        self.detail_form = QWidget(pane)
        self.detail_form.setLayout(columns)
        policy = self.detail_form.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # selecting a row must not make the table jump
        self.detail_form.setSizePolicy(policy)
        layout.addWidget(self.detail_form)
        return pane

    def _build_status_bar(self) -> None:
        self.count_label = QLabel(self)
        self.count_label.setObjectName("orderCount")
        self.count_label.setContentsMargins(6, 0, 0, 0)
        self.location_label = QLabel(self)
        self.location_label.setObjectName("databaseLocation")
        location = describe_location(self.db.url)
        shown = QFontMetrics(self.location_label.font()).elidedText(location, Qt.TextElideMode.ElideMiddle, 520)
        self.location_label.setText(f"Order book: {shown}")
        self.location_label.setToolTip(location)
        self.location_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.statusBar().addWidget(self.count_label)
        self.statusBar().addPermanentWidget(self.location_label)

    # -- filtering and sorting -----------------------------------------------------------------------------------

    def current_filter(self) -> OrderFilter:
        status = self.status_combo.currentData()
        return OrderFilter(statuses=frozenset({status}) if isinstance(status, OrderStatus) else frozenset(),
                           text=self.search_box.text().strip())

    @Slot()
    def apply_filter(self) -> None:
        self._search_timer.stop()
        wanted = self.current_filter()
        if wanted != self.model.order_filter:
            self.model.set_filter(wanted)

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
            self.detail_pane.setVisible(True)
            return
        if self.model.order_filter != OrderFilter():
            title, text = ("No orders match this search or status.",
                           "Clear the search box or choose “All statuses” to see every order.")
        elif self.config.is_training:
            title, text = ("No orders yet.",
                           "This is the training order book: practise freely, nothing here is sent to a real "
                           "supplier. New orders will appear in this list.")
        else:
            title, text = ("No orders yet.", "Orders you prepare, sign and send will appear in this list.")
        self.empty_hint.setText(f"<p style='font-size:14pt; font-weight:600'>{html.escape(title)}</p>"
                                f"<p>{html.escape(text)}</p>")
        self.view_stack.setCurrentWidget(self.empty_hint)
        self.detail_pane.setVisible(False)

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

    @Slot()
    def _show_selected(self) -> None:
        row = self.selected_row()
        order = self.model.order_row(row) if row is not None else None
        if order is None:
            self.detail_title.setText("Select an order to see its details.")
            self.detail_form.setVisible(False)
            return
        self.detail_title.setText(f"Order {order.order_number}")
        values = {
            "status": order.status.label,
            "supplier": order.supplier_name,
            "registration": order.registration_dea,
            "created": format_local(order.created_at),
            "signed": format_local(order.signed_at) or "not signed yet",
            "lines": str(order.line_count),
        }
        for key, value in values.items():
            self.detail_fields[key].setText(value)
        self.detail_form.setVisible(True)

    # -- actions -------------------------------------------------------------------------------------------------

    @Slot(object)
    def show_error(self, error: CsosError) -> None:
        """The message for the person; the code for the log. Never a traceback."""
        log.info("shown to user: %s", getattr(error, "code", type(error).__name__))
        self.statusBar().showMessage(getattr(error, "message", str(error)), 15_000)

    @Slot()
    def show_about(self) -> None:
        from app import __version__

        profile = "training (practice orders only)" if self.config.is_training else "production"
        QMessageBox.about(
            self, "About CSOS Desk",
            f"<h3>CSOS Desk {__version__}</h3>"
            "<p>Electronic ordering of controlled substances under the DEA Controlled Substance Ordering System "
            "(CSOS).</p>"
            f"<p>Profile: {profile}<br>Data folder: {self.config.data_dir}</p>",
        )

    def closeEvent(self, event: QCloseEvent) -> None:
        self._search_timer.stop()
        super().closeEvent(event)
