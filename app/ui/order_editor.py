"""The order editor: pick registration and supplier, find products as you type, set packages, save the draft.

Every rule comes from ``app.services.orders.drafts``; this screen shows each problem next to the field it is about and
saves only when there is none. Keyboard first: Tab moves through the fields in reading order, Enter in the product
box picks the product, Enter in Packages adds the line, Delete removes the selected line, Ctrl+S saves.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from PySide6.QtCore import (
    QAbstractListModel,
    QAbstractTableModel,
    QEvent,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QSize,
    Qt,
    QTimer,
    Signal,
    Slot,
)
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QCompleter,
    QDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError, InvalidValue
from app.models.states import OrderStatus
from app.services.catalog import catalog_is_empty
from app.services.orders import drafts
from app.services.orders.drafts import DraftLine, Problem
from app.ui import messages, theme
from app.ui.widgets import FieldMessage, fit_on_show, heading_label, training_banner

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex
SUGGEST_DELAY_MS = 150


class ProductSuggestionModel(QAbstractListModel):
    """What the catalog offers for the text typed so far (the completer's popup)."""

    NdcRole = Qt.ItemDataRole.UserRole + 1
    CompletionRole = Qt.ItemDataRole.UserRole + 2

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._products: list[Any] = []

    def set_products(self, products: Sequence[Any]) -> None:
        self.beginResetModel()
        self._products = list(products)
        self.endResetModel()

    def product(self, row: int) -> Any:
        return self._products[row] if 0 <= row < len(self._products) else None

    def product_by_ndc(self, ndc: str) -> Any:
        return next((p for p in self._products if p.ndc == ndc), None)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._products)

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._products) or index.column() != 0:
            return None
        product = self._products[index.row()]
        line = DraftLine.from_product(product)
        if role == Qt.ItemDataRole.DisplayRole:
            return f"{line.description}  ·  NDC {line.ndc_display}  ·  {line.per_package}  ·  " \
                   f"{drafts.schedule_label(line.schedule)}"
        if role in (Qt.ItemDataRole.EditRole, self.CompletionRole):
            return f"{line.description} ({line.ndc_display})"
        if role == Qt.ItemDataRole.ToolTipRole:
            return product.package_description or None
        if role == self.NdcRole:
            return product.ndc
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren


class DraftLinesModel(QAbstractTableModel):
    """The lines being prepared; only the number of packages is edited in place."""

    COL_LINE, COL_PRODUCT, COL_NDC, COL_SCHEDULE, COL_PER_PACKAGE, COL_PACKAGES, COL_CHECK = range(7)
    HEADERS = ("Line", "Product", "NDC", "Schedule", "Per package", "Packages", "Check")
    lines_changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._lines: list[DraftLine] = []
        self._problems: dict[int, list[Problem]] = {}

    @property
    def lines(self) -> list[DraftLine]:
        return list(self._lines)

    def set_lines(self, lines: Sequence[DraftLine]) -> None:
        self.beginResetModel()
        self._lines = list(lines)
        self._problems = {}
        self.endResetModel()
        self.lines_changed.emit()

    def append(self, line: DraftLine) -> int:
        row = len(self._lines)
        self.beginInsertRows(QModelIndex(), row, row)
        self._lines.append(line)
        self.endInsertRows()
        self.lines_changed.emit()
        return row

    def remove(self, row: int) -> None:
        if not 0 <= row < len(self._lines):
            return
        self.beginRemoveRows(QModelIndex(), row, row)
        del self._lines[row]
        self.endRemoveRows()
        self._problems = {}
        self.lines_changed.emit()

    def row_of_ndc(self, ndc: str) -> int | None:
        return next((row for row, line in enumerate(self._lines) if line.ndc == ndc), None)

    def set_problems(self, problems: Sequence[Problem]) -> None:
        self._problems = {}
        for problem in problems:
            if problem.line_index is not None:
                self._problems.setdefault(problem.line_index, []).append(problem)
        if self._lines:
            self.dataChanged.emit(self.index(0, self.COL_CHECK), self.index(len(self._lines) - 1, self.COL_CHECK))

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._lines)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == self.COL_PACKAGES:
            return "Number of packages to order. Select the cell and type a number (or press F2)."
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.column() == self.COL_PACKAGES:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._lines) or \
                not 0 <= index.column() < len(self.HEADERS):
            return None
        line, column = self._lines[index.row()], index.column()
        problems = self._problems.get(index.row(), [])
        if role == Qt.ItemDataRole.DisplayRole:
            return {
                self.COL_LINE: str(index.row() + 1), self.COL_PRODUCT: line.description,
                self.COL_NDC: line.ndc_display, self.COL_SCHEDULE: line.schedule,
                self.COL_PER_PACKAGE: line.per_package, self.COL_PACKAGES: str(line.packages),
                self.COL_CHECK: (problems[0].short or problems[0].message) if problems else "OK",
            }[column]
        if role == Qt.ItemDataRole.EditRole and column == self.COL_PACKAGES:
            return line.packages
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == self.COL_CHECK and problems:
                return "\n".join(p.message for p in problems)
            if column == self.COL_SCHEDULE:
                return drafts.schedule_label(line.schedule)
            return None
        if role == Qt.ItemDataRole.DecorationRole and column == self.COL_CHECK:
            return theme.icon("error" if problems else "ok")
        if role == Qt.ItemDataRole.TextAlignmentRole:
            right = column in (self.COL_LINE, self.COL_PACKAGES)
            return int((Qt.AlignmentFlag.AlignRight if right else Qt.AlignmentFlag.AlignLeft)
                       | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.AccessibleTextRole and column == self.COL_CHECK:
            return "; ".join(p.message for p in problems) if problems else "No problem"
        return None

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() != self.COL_PACKAGES:
            return False
        try:
            packages = int(value)
        except (TypeError, ValueError):
            return False
        if packages < 0:
            return False
        row = index.row()
        self._lines[row] = self._lines[row].with_packages(packages)
        self.dataChanged.emit(self.index(row, 0), self.index(row, self.columnCount() - 1))
        self.lines_changed.emit()
        return True


class PackagesDelegate(QStyledItemDelegate):
    """A spin box for the number of packages (0 is allowed so the problem can be shown, not silently fixed)."""

    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: AnyIndex) -> QWidget:
        spin = QSpinBox(parent)
        spin.setRange(0, drafts.MAX_PACKAGES)
        spin.setAccessibleName("Number of packages")
        spin.setFrame(False)
        return spin


class OrderEditor(QDialog):
    """A new order (``order_id=None``) or a saved draft. Emits ``saved(order_id)`` after a successful save."""

    saved = Signal(int)

    def __init__(self, facade: Any, *, order_id: int | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.db = facade.db
        self.order_id = order_id
        self.chosen_product: Any = None
        self.saving_job: Any = None
        self.setObjectName("orderEditor")
        self.setWindowTitle("New order" if order_id is None else "Draft order")
        self.setAccessibleName(self.windowTitle())
        self.setMinimumSize(QSize(760, 440))  # 600 high never fitted a 1024×600 screen: Save draft was below it
        self.resize(900, 600)
        fit_on_show(self)

        self.registrations, self.suppliers = drafts.registrations_and_suppliers(self.db)
        state = drafts.load_draft(self.db, order_id) if order_id is not None else None
        if state is not None and state.status is not OrderStatus.DRAFT:
            raise InvalidValue(f"Order {state.order_number} is {state.status.label.lower()}; only draft orders can "
                               "be changed.", code="order.not_draft")
        self.state = state
        self._suggest_timer = QTimer(self)
        self._suggest_timer.setSingleShot(True)
        self._suggest_timer.setInterval(SUGGEST_DELAY_MS)
        self._suggest_timer.timeout.connect(self.update_suggestions)
        self._build()
        self._fill(state)
        self._saved_snapshot = self.snapshot()
        self.validate_live()

    # -- building ------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        outer.setSpacing(10)
        self.heading = heading_label(self, name="editorHeading")
        outer.addWidget(self.heading)
        if self.facade.is_training:
            outer.addWidget(training_banner(self, "TRAINING — this order is practice and never reaches a real "
                                                  "supplier"))

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.registration_combo = QComboBox(self)
        self.registration_combo.setObjectName("registrationPicker")
        self.registration_combo.setAccessibleName("Registration")
        self.registration_message = FieldMessage(self.registration_combo, self)
        self.supplier_combo = QComboBox(self)
        self.supplier_combo.setObjectName("supplierPicker")
        self.supplier_combo.setAccessibleName("Supplier")
        self.supplier_message = FieldMessage(self.supplier_combo, self)
        registration_label = QLabel("&Registration:", self)
        registration_label.setBuddy(self.registration_combo)
        supplier_label = QLabel("S&upplier:", self)
        supplier_label.setBuddy(self.supplier_combo)
        form.addRow(registration_label, self._stack(self.registration_combo, self.registration_message))
        form.addRow(supplier_label, self._stack(self.supplier_combo, self.supplier_message))
        self.order_number_label = QLabel(self)
        self.order_number_label.setObjectName("orderNumber")
        self.order_number_label.setAccessibleName("Order number")
        self.order_number_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form.addRow("Order number:", self.order_number_label)
        outer.addLayout(form)

        add_box = QGroupBox("Add a product", self)
        add_layout = QVBoxLayout(add_box)
        row = QHBoxLayout()
        product_label = QLabel("&Product:", add_box)
        self.product_edit = QLineEdit(add_box)
        self.product_edit.setObjectName("productSearch")
        self.product_edit.setAccessibleName("Product name or NDC")
        self.product_edit.setPlaceholderText("Type a product name or NDC, then choose it from the list")
        self.product_edit.setClearButtonEnabled(True)
        self.product_edit.addAction(theme.icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        product_label.setBuddy(self.product_edit)
        packages_label = QLabel("Pac&kages:", add_box)
        self.packages_spin = QSpinBox(add_box)
        self.packages_spin.setObjectName("packagesSpin")
        self.packages_spin.setAccessibleName("Number of packages")
        self.packages_spin.setRange(0, drafts.MAX_PACKAGES)
        self.packages_spin.setValue(1)
        self.packages_spin.setMinimumWidth(90)
        packages_label.setBuddy(self.packages_spin)
        self.add_button = QPushButton(theme.icon("add"), "&Add line", add_box)
        self.add_button.setObjectName("addLine")
        self.add_button.setAccessibleName("Add line")
        self.add_button.setAutoDefault(False)
        row.addWidget(product_label)
        row.addWidget(self.product_edit, 1)
        row.addSpacing(8)
        row.addWidget(packages_label)
        row.addWidget(self.packages_spin)
        row.addWidget(self.add_button)
        add_layout.addLayout(row)
        self.product_info = QLabel(add_box)
        self.product_info.setObjectName("productInfo")
        self.product_info.setAccessibleName("Chosen product")
        self.product_info.setWordWrap(True)
        add_layout.addWidget(self.product_info)
        self.product_message = FieldMessage(self.product_edit, add_box)
        self.packages_message = FieldMessage(self.packages_spin, add_box)
        add_layout.addWidget(self.product_message)
        add_layout.addWidget(self.packages_message)
        # Empty lists offer the step that fills them (issue 22): no registration yet, no product list yet.
        fill_row = QHBoxLayout()
        self.add_registration_button = QPushButton("Add your DEA registration…", add_box)
        self.add_registration_button.setAutoDefault(False)
        self.add_registration_button.clicked.connect(self._open_registrations)
        self.import_catalog_button = QPushButton("Import the FDA product list…", add_box)
        self.import_catalog_button.setAutoDefault(False)
        self.import_catalog_button.clicked.connect(self._open_catalog_import)
        fill_row.addWidget(self.add_registration_button)
        self.add_supplier_button = QPushButton("Add a supplier…", add_box)
        self.add_supplier_button.setAutoDefault(False)
        self.add_supplier_button.clicked.connect(self._open_suppliers)
        fill_row.addWidget(self.add_supplier_button)
        fill_row.addWidget(self.import_catalog_button)
        fill_row.addStretch(1)
        add_layout.addLayout(fill_row)
        self.add_registration_button.setVisible(not self.registrations)
        self.add_supplier_button.setVisible(not self.suppliers)
        self.import_catalog_button.setVisible(False)
        changed = getattr(self.facade, "parties_changed", None)
        if changed is not None:  # a registration or supplier added while this editor was open
            changed.connect(self._parties_changed)
        outer.addWidget(add_box)

        self.suggestions = ProductSuggestionModel(self)
        self.completer = QCompleter(self.suggestions, self)
        self.completer.setCompletionMode(QCompleter.CompletionMode.UnfilteredPopupCompletion)
        self.completer.setCompletionRole(ProductSuggestionModel.CompletionRole)
        self.completer.setMaxVisibleItems(10)
        self.completer.setWidget(self.product_edit)
        self.completer.popup().setObjectName("productSuggestions")
        self.completer.popup().setAccessibleName("Matching products")
        self.completer.activated[QModelIndex].connect(self._on_suggestion_activated)

        lines_label = QLabel("&Lines of this order:", self)
        outer.addWidget(lines_label)
        lines_row = QHBoxLayout()
        self.lines_model = DraftLinesModel(self)
        self.lines_table = QTableView(self)
        self.lines_table.setObjectName("draftLines")
        self.lines_table.setAccessibleName("Lines of this order")
        self.lines_table.setModel(self.lines_model)
        self.lines_table.setItemDelegateForColumn(DraftLinesModel.COL_PACKAGES, PackagesDelegate(self.lines_table))
        self.lines_table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.lines_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.lines_table.setEditTriggers(QAbstractItemView.EditTrigger.AnyKeyPressed |
                                         QAbstractItemView.EditTrigger.EditKeyPressed |
                                         QAbstractItemView.EditTrigger.DoubleClicked)
        self.lines_table.setTabKeyNavigation(False)
        self.lines_table.setAlternatingRowColors(True)
        self.lines_table.setStyleSheet(theme.FOCUS_STYLE)  # where the keyboard is, visibly
        self.lines_table.setShowGrid(False)
        self.lines_table.verticalHeader().setVisible(False)
        header = self.lines_table.horizontalHeader()
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(DraftLinesModel.COL_PRODUCT, QHeaderView.ResizeMode.Stretch)
        lines_label.setBuddy(self.lines_table)
        lines_row.addWidget(self.lines_table, 1)
        self.remove_button = QPushButton(theme.icon("remove"), "Re&move line", self)
        self.remove_button.setObjectName("removeLine")
        self.remove_button.setAccessibleName("Remove the selected line")
        self.remove_button.setAutoDefault(False)
        side = QVBoxLayout()
        side.addWidget(self.remove_button)
        side.addStretch(1)
        lines_row.addLayout(side)
        outer.addLayout(lines_row, 1)
        self.lines_message = FieldMessage(self.lines_table, self)
        outer.addWidget(self.lines_message)

        self.form_message = FieldMessage(None, self, name="formMessage")
        outer.addWidget(self.form_message)
        buttons = QHBoxLayout()
        self.status_label = QLabel(self)
        self.status_label.setObjectName("editorStatus")
        buttons.addWidget(self.status_label, 1)
        self.save_button = QPushButton("&Save draft", self)
        self.save_button.setObjectName("saveDraft")
        self.save_button.setAccessibleName("Save draft")
        self.save_button.setToolTip("Save this order as a draft (Ctrl+S). Signing comes next.")
        self.save_button.setAutoDefault(False)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelEditor")
        self.cancel_button.setAccessibleName("Cancel")
        self.cancel_button.setAutoDefault(False)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.cancel_button)
        outer.addLayout(buttons)

        QShortcut(QKeySequence.StandardKey.Save, self, activated=self.save)
        remove_shortcut = QShortcut(QKeySequence.StandardKey.Delete, self.lines_table, activated=self.remove_selected)
        remove_shortcut.setContext(Qt.ShortcutContext.WidgetShortcut)

        self.registration_combo.currentIndexChanged.connect(lambda _i: self.validate_live())
        self.supplier_combo.currentIndexChanged.connect(lambda _i: self.validate_live())
        self.product_edit.textEdited.connect(self._on_product_typed)
        self.product_edit.returnPressed.connect(self._on_product_return)
        self.packages_spin.valueChanged.connect(lambda _v: self._check_packages_field())
        self.packages_spin.installEventFilter(self)
        self.add_button.clicked.connect(self.add_line)
        self.remove_button.clicked.connect(self.remove_selected)
        self.save_button.clicked.connect(self.save)
        self.cancel_button.clicked.connect(self.reject)
        self.lines_model.lines_changed.connect(self.validate_live)

        for first, second in ((self.registration_combo, self.supplier_combo), (self.supplier_combo, self.product_edit),
                              (self.product_edit, self.packages_spin), (self.packages_spin, self.add_button),
                              (self.add_button, self.lines_table), (self.lines_table, self.remove_button),
                              (self.remove_button, self.save_button), (self.save_button, self.cancel_button)):
            self.setTabOrder(first, second)

    def _stack(self, field: QWidget, message: FieldMessage) -> QWidget:
        holder = QWidget(self)
        layout = QVBoxLayout(holder)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(field)
        layout.addWidget(message)
        return holder

    def _fill(self, state: drafts.DraftState | None) -> None:
        combo = self.registration_combo
        if len(self.registrations) != 1:
            combo.addItem("Choose a registration…", None)
        for registration in self.registrations:
            combo.addItem(f"{registration.dea_number} — {registration.name}", registration.dea_number)
        combo = self.supplier_combo
        if len(self.suppliers) != 1:
            combo.addItem("Choose a supplier…", None)
        for supplier in self.suppliers:
            combo.addItem(supplier.name, supplier.name)
        if state is None:
            self.heading.setText("New order")
            self.order_number_label.setText("given when you save")
            return
        self.heading.setText(f"Draft order {state.order_number}")
        self.setWindowTitle(f"Draft order {state.order_number}")
        self.order_number_label.setText(state.order_number)
        self.registration_combo.setCurrentIndex(max(self.registration_combo.findData(state.registration_dea), 0))
        self.registration_combo.setEnabled(False)
        self.registration_combo.setToolTip("The order number belongs to this registration. For another "
                                           "registration, start a new order.")
        self.supplier_combo.setCurrentIndex(max(self.supplier_combo.findData(state.supplier_name), 0))
        self.lines_model.set_lines(state.lines)

    def _fit_suggestions(self) -> None:
        """The suggestion list is as wide as its longest line (up to the screen), so a schedule such as "Schedule II
        (narcotic)" is never cut; the completer's own rect would be only as wide as the entry."""
        popup = self.completer.popup()
        needed = popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 2 * popup.frameWidth() + 8
        screen = self.screen().availableGeometry().width() if self.screen() is not None else needed
        width = max(self.product_edit.width(), min(needed, screen - 40))
        rect = self.product_edit.rect()
        rect.setWidth(width)
        self.completer.complete(rect)

    def _open_registrations(self) -> None:
        """The registrations window of the main window (the editor refills its list when it is saved)."""
        opener = getattr(self.parent(), "open_registrations", None)
        window = opener() if opener is not None else None
        if window is not None and hasattr(window, "saved"):
            window.saved.connect(lambda _dea: self._reload_registrations())

    def _open_suppliers(self) -> None:
        """Settings at its Suppliers tab; the list here is read again once a supplier is saved."""
        opener = getattr(self.parent(), "open_settings_tab", None)
        if opener is not None:
            opener(0)

    def _parties_changed(self) -> None:
        if self.state is None and (not self.registrations or not self.suppliers):
            self._reload_registrations()

    def _reload_registrations(self) -> None:
        """Read the registrations and suppliers again (one was added from the buttons an empty list offers)."""
        self.registrations, self.suppliers = drafts.registrations_and_suppliers(self.db)
        supplier = self.supplier_combo.currentData()
        self.supplier_combo.clear()
        if len(self.suppliers) != 1:
            self.supplier_combo.addItem("Choose a supplier…", None)
        for item in self.suppliers:
            self.supplier_combo.addItem(item.name, item.name)
        self.supplier_combo.setCurrentIndex(max(self.supplier_combo.findData(supplier), 0))
        self.add_supplier_button.setVisible(not self.suppliers)
        current = self.registration_combo.currentData()
        self.registration_combo.clear()
        if len(self.registrations) != 1:
            self.registration_combo.addItem("Choose a registration…", None)
        for registration in self.registrations:
            self.registration_combo.addItem(f"{registration.dea_number} — {registration.name}",
                                            registration.dea_number)
        self.registration_combo.setCurrentIndex(max(self.registration_combo.findData(current), 0))
        self.add_registration_button.setVisible(not self.registrations)

    def _open_catalog_import(self) -> None:
        from app.ui.catalog_import_dialog import CatalogImportDialog

        dialog = CatalogImportDialog(self.facade, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.imported.connect(lambda _n: (self.import_catalog_button.setVisible(False), self.update_suggestions()))
        dialog.show()

    # -- state ---------------------------------------------------------------------------------------------------

    def registration(self) -> Any:
        dea = self.registration_combo.currentData()
        return next((r for r in self.registrations if r.dea_number == dea), None)

    def supplier(self) -> Any:
        name = self.supplier_combo.currentData()
        return next((s for s in self.suppliers if s.name == name), None)

    def snapshot(self) -> tuple[Any, ...]:
        return (self.registration_combo.currentData(), self.supplier_combo.currentData(),
                tuple((line.ndc, line.packages) for line in self.lines_model.lines))

    @property
    def dirty(self) -> bool:
        return self.snapshot() != self._saved_snapshot

    # -- product search ------------------------------------------------------------------------------------------

    @Slot(str)
    def _on_product_typed(self, _text: str) -> None:
        self.chosen_product = None
        self.product_info.clear()
        self.product_message.clear()
        self._suggest_timer.start()

    @Slot()
    def update_suggestions(self) -> None:
        text = self.product_edit.text().strip()
        try:
            found = drafts.product_suggestions(self.db, text)
        except CsosError as exc:
            self.product_message.show_problem(exc.message)
            return
        self.suggestions.set_products(found)
        if found:
            self.product_message.clear()
            self._fit_suggestions()
        else:
            self.completer.popup().hide()
            if len(text) >= 3 and catalog_is_empty(self.db):
                self.product_message.show_problem("The product list is empty: import FDA's product list first, "
                                                  "then search again.")
                self.import_catalog_button.setVisible(True)
            elif len(text) >= 3 and self.facade.is_training:
                examples = ", ".join(drafts.catalog_examples(self.db))
                self.product_message.show_problem(
                    f"“{text}” is not in the practice catalog, which holds a few dozen products — for example "
                    f"{examples}. Type the start of one of those, or an NDC.")
            elif len(text) >= 3:
                self.product_message.show_problem(
                    f"No product in the catalog matches “{text}”. Check the spelling, or type the NDC from the "
                    "package.")

    @Slot(QModelIndex)
    def _on_suggestion_activated(self, index: QModelIndex) -> None:
        ndc = index.data(ProductSuggestionModel.NdcRole)
        product = self.suggestions.product_by_ndc(ndc) if ndc else None
        if product is not None:
            self.choose_product(product)

    def choose_product(self, product: Any) -> None:
        self._suggest_timer.stop()
        self.chosen_product = product
        line = DraftLine.from_product(product)
        self.product_edit.setText(f"{line.description} ({line.ndc_display})")
        info = (f"{line.description} — NDC {line.ndc_display} — {line.per_package} per package — "
                f"{drafts.schedule_label(line.schedule)}")
        catalog_text = " ".join(part for part in (product.name, product.strength) if part)
        if catalog_text != line.description:
            # The order carries (and signs) the shortened, plain-letter text; the NDC names the product exactly.
            info += f"\nIn the catalog: {catalog_text}"
        self.product_info.setText(info)
        self.product_message.clear()
        problems = drafts.check_lines(self.registration(), [line])
        schedule_problem = next((p for p in problems if p.code == "line.schedule_not_registered"), None)
        if schedule_problem is not None:
            self.product_message.show_problem(schedule_problem.message.split(": ", 1)[-1])
        QTimer.singleShot(0, self._focus_packages)

    def _focus_packages(self) -> None:
        self.packages_spin.setFocus(Qt.FocusReason.OtherFocusReason)
        self.packages_spin.selectAll()

    @Slot()
    def _on_product_return(self) -> None:
        if self.completer.popup().isVisible():
            return  # the popup handles Enter (activated)
        if self.chosen_product is not None:
            self._focus_packages()
            return
        try:
            product = drafts.product_for_entry(self.db, self.product_edit.text())
        except CsosError as exc:
            self.product_message.show_problem(exc.message)
            return
        self.choose_product(product)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.packages_spin and event.type() == QEvent.Type.KeyPress and \
                event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.packages_spin.interpretText()
            self.add_line()
            return True
        return super().eventFilter(watched, event)

    # -- lines ---------------------------------------------------------------------------------------------------

    def _check_packages_field(self) -> bool:
        problem = drafts.check_packages(self.packages_spin.value())
        self.packages_message.set_problem(problem.message if problem else None)
        return problem is None

    @Slot()
    def add_line(self) -> None:
        if self.chosen_product is None:
            text = self.product_edit.text().strip()
            if not text:
                self.product_message.show_problem("Type a product name or NDC, then choose the product from the "
                                                  "list.")
                self.product_edit.setFocus()
                return
            try:
                self.choose_product(drafts.product_for_entry(self.db, text))
            except CsosError as exc:
                self.product_message.show_problem(exc.message)
                self.product_edit.setFocus()
                return
        if not self._check_packages_field():
            self.packages_spin.setFocus()
            return
        existing = self.lines_model.row_of_ndc(self.chosen_product.ndc)
        if existing is not None:
            self.product_message.show_problem(f"This product is already on line {existing + 1}. Change the number "
                                              "of packages there instead.")
            self.lines_table.selectRow(existing)
            return
        row = self.lines_model.append(DraftLine.from_product(self.chosen_product, self.packages_spin.value()))
        self.lines_table.selectRow(row)
        self.chosen_product = None
        self.product_edit.clear()
        self.product_info.clear()
        self.product_message.clear()
        self.packages_spin.setValue(1)
        self.product_edit.setFocus()

    @Slot()
    def remove_selected(self) -> None:
        rows = self.lines_table.selectionModel().selectedRows()
        if rows:
            self.lines_model.remove(rows[0].row())
            if self.lines_model.rowCount():
                self.lines_table.selectRow(min(rows[0].row(), self.lines_model.rowCount() - 1))

    # -- validation and saving -----------------------------------------------------------------------------------

    @Slot()
    def validate_live(self) -> list[Problem]:
        """Problems that can be shown while typing (not yet the 'missing' ones: those appear on Save)."""
        registration = self.registration()
        problem = drafts.check_registration(registration, today=self.facade.today()) if registration else None
        self.registration_message.set_problem(problem.message if problem else None)
        if self.supplier() is not None:
            self.supplier_message.clear()
        line_problems = drafts.check_lines(registration, self.lines_model.lines)
        self.lines_model.set_problems(line_problems)
        self.lines_message.set_problem("\n".join(p.message for p in line_problems) or None)
        if not line_problems and self.lines_model.rowCount() and \
                self.product_message.text.startswith("Add at least one"):
            self.product_message.clear()
        self.form_message.clear()
        count = self.lines_model.rowCount()
        self.status_label.setText(f"{count} line{'s' if count != 1 else ''}")
        return line_problems

    def show_problems(self, problems: Sequence[Problem]) -> None:
        targets = {"registration": (self.registration_message, self.registration_combo),
                   "supplier": (self.supplier_message, self.supplier_combo),
                   "product": (self.product_message, self.product_edit),
                   "packages": (self.packages_message, self.packages_spin),
                   "line": (self.lines_message, self.lines_table)}
        for message, _field in targets.values():
            message.clear()
        self.lines_model.set_problems(problems)
        by_field: dict[str, list[str]] = {}
        for problem in problems:
            by_field.setdefault(problem.field, []).append(problem.message)
        for field, texts in by_field.items():
            message, _ = targets.get(field, (self.form_message, None))
            message.show_problem("\n".join(texts))
        if problems:
            first = targets.get(problems[0].field, (None, None))[1]
            if first is not None and first.isEnabled():
                first.setFocus()

    @Slot()
    def save(self) -> None:
        if self.saving_job is not None:
            return
        if self.lines_table.state() == QAbstractItemView.State.EditingState:
            editor = self.lines_table.indexWidget(self.lines_table.currentIndex())
            if editor is not None:
                self.lines_table.commitData(editor)
                self.lines_table.closeEditor(editor, QStyledItemDelegate.EndEditHint.NoHint)
        problems = drafts.check_draft(self.registration(), self.supplier(), self.lines_model.lines,
                                      today=self.facade.today())
        if problems:
            self.show_problems(problems)
            return
        registration_dea = self.registration().dea_number
        supplier_name = self.supplier().name
        lines = self.lines_model.lines
        order_id = self.order_id
        book = self.facade.book

        def work(_context: Any) -> int:
            return drafts.save_draft(book, order_id=order_id, registration_dea=registration_dea,
                                     supplier_name=supplier_name, lines=lines)

        self._set_busy(True)
        self.status_label.setText("Saving…")
        self.saving_job = self.facade.jobs.run("Saving the draft order", work, on_success=self._on_saved,
                                               on_failure=self._on_save_failed, owner=self)

    def _set_busy(self, busy: bool) -> None:
        for widget in (self.save_button, self.add_button, self.remove_button, self.lines_table, self.product_edit,
                       self.packages_spin, self.supplier_combo):
            widget.setEnabled(not busy)
        self.registration_combo.setEnabled(not busy and self.state is None)

    def _on_saved(self, order_id: int) -> None:
        self.saving_job = None
        self._set_busy(False)
        self.order_id = order_id
        self._saved_snapshot = self.snapshot()
        log.info("draft order %s saved", order_id)
        self.facade.notify_orders_changed([order_id])
        self.saved.emit(order_id)
        self.accept()

    def _on_save_failed(self, error: CsosError) -> None:
        self.saving_job = None
        self._set_busy(False)
        self.validate_live()
        self.status_label.setText("Not saved")
        self.form_message.show_problem(f"The draft was not saved: {error.message} Your lines are still here; fix "
                                       "the problem and save again.")

    def reject(self) -> None:
        if self.saving_job is not None:
            return  # wait for the save to finish: closing now would hide its outcome
        if self.dirty and not messages.confirm(self, "Discard this order?",
                                               "The changes to this order have not been saved. Discard them?",
                                               yes_text="Discard changes", no_text="Keep editing"):
            return
        super().reject()
