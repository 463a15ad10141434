"""Small widgets and models the screens share: a problem message beside a field, a read-only table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from PySide6.QtCore import QAbstractTableModel, QEvent, QModelIndex, QObject, QPersistentModelIndex, QSize
from PySide6.QtGui import QFontMetrics, QFontMetricsF
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from app.ui import theme
from app.ui.lazy_qt import DISPLAY_ROLE, Qt

if TYPE_CHECKING:  # imported where used: the main window's frame is painted before PySide6 builds these classes
    from PySide6.QtWidgets import QTableView

AnyIndex = QModelIndex | QPersistentModelIndex


class FieldMessage(QWidget):
    """A problem shown right next to the field it is about (hidden when there is none).

    Screen readers get the text as the accessible description of the field too, so the problem is announced where
    the focus is.
    """

    def __init__(self, field: QWidget | None, parent: QWidget | None = None, *, name: str = "") -> None:
        super().__init__(parent)
        self.field = field
        self.setObjectName(name or (f"{field.objectName()}Problem" if field is not None else "problem"))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(5)
        self.icon_label = QLabel(self)
        size = QFontMetrics(self.font()).height()
        self.icon_label.setPixmap(theme.icon("error").pixmap(QSize(size, size)))
        self.icon_label.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.text_label = QLabel(self)
        self.text_label.setObjectName(self.objectName() + "Text")
        self.text_label.setWordWrap(True)
        self.text_label.setProperty("role", "fieldError")
        self.text_label.setStyleSheet(theme.FIELD_ERROR_STYLE)
        self.text_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.icon_label, 0, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.text_label, 1)
        self.setAccessibleName("Problem")
        self.setVisible(False)

    @property
    def text(self) -> str:
        return self.text_label.text() if not self.isHidden() else ""

    def show_problem(self, message: str) -> None:
        self.text_label.setText(message)
        self.setAccessibleDescription(message)
        if self.field is not None:
            self.field.setAccessibleDescription(message)
            self.field.setProperty("invalid", True)
        self.setVisible(True)

    def clear(self) -> None:
        self.text_label.clear()
        if self.field is not None:
            self.field.setAccessibleDescription("")
            self.field.setProperty("invalid", False)
        self.setVisible(False)

    def set_problem(self, message: str | None) -> None:
        if message:
            self.show_problem(message)
        else:
            self.clear()


class RowsTableModel(QAbstractTableModel):
    """Read-only rows of text (the detail pane's lines, timeline, receipts and audit trail)."""

    def __init__(self, headers: Sequence[str], *, numeric_columns: Sequence[int] = (), parent: Any = None) -> None:
        super().__init__(parent)
        self.headers = tuple(headers)
        self.numeric_columns = frozenset(numeric_columns)
        self._rows: list[tuple[str, ...]] = []
        self._tooltips: list[tuple[str, ...] | None] = []

    def set_rows(self, rows: Sequence[Sequence[Any]], tooltips: Sequence[Sequence[str] | None] | None = None) -> None:
        self.beginResetModel()
        self._rows = [tuple("" if value is None else str(value) for value in row) for row in rows]
        self._tooltips = [tuple(t) if t else None for t in (tooltips or [None] * len(self._rows))]
        self.endResetModel()

    def row_values(self, row: int) -> tuple[str, ...]:
        return self._rows[row]

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.headers)

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY_ROLE) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.headers):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(self._alignment(section))
        return None

    def _alignment(self, column: int) -> Qt.AlignmentFlag:
        horizontal = Qt.AlignmentFlag.AlignRight if column in self.numeric_columns else Qt.AlignmentFlag.AlignLeft
        return horizontal | Qt.AlignmentFlag.AlignVCenter

    def data(self, index: AnyIndex, role: int = DISPLAY_ROLE) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows) or not 0 <= index.column() < len(self.headers):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._rows[index.row()][index.column()]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(self._alignment(index.column()))
        if role == Qt.ItemDataRole.ToolTipRole:
            tips = self._tooltips[index.row()] if index.row() < len(self._tooltips) else None
            if tips and index.column() < len(tips) and tips[index.column()]:
                return tips[index.column()]
            return None
        return None


def make_table(parent: QWidget, model: QAbstractTableModel, *, name: str, accessible_name: str,
               stretch_column: int | None = None) -> QTableView:
    from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView

    table = QTableView(parent)
    table.setObjectName(name)
    table.setAccessibleName(accessible_name)
    table.setModel(model)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setAlternatingRowColors(True)
    table.setShowGrid(False)
    table.setWordWrap(False)
    table.setTabKeyNavigation(False)  # Tab leaves the table: keyboard users move between fields, arrows move rows
    table.setStyleSheet(theme.FOCUS_STYLE)
    table.verticalHeader().setVisible(False)
    table.verticalHeader().setDefaultSectionSize(QFontMetrics(table.font()).height() + 8)
    header = table.horizontalHeader()
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
    header.setHighlightSections(False)
    if stretch_column is not None:
        header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    return table


def heading_label(parent: QWidget, text: str = "", *, scale: float = 1.25, name: str = "") -> QLabel:
    """A screen's bold title, a little larger than body text (one definition for every dialog)."""
    from PySide6.QtGui import QFont

    label = QLabel(text, parent)
    if name:
        label.setObjectName(name)
    font = QFont(label.font())
    font.setPointSizeF(font.pointSizeF() * scale)
    font.setBold(True)
    label.setFont(font)
    return label


def training_banner(parent: QWidget, text: str) -> QLabel:
    """The yellow TRAINING strip every practice screen carries, so nobody mistakes practice for real orders."""
    from app.ui import theme

    banner = QLabel(text, parent)
    banner.setObjectName("trainingBanner")
    banner.setWordWrap(True)
    banner.setStyleSheet(theme.TRAINING_BANNER_STYLE)
    banner.setAccessibleName("Training mode")
    return banner


def elide_right(metrics: QFontMetricsF, text: str, room: float) -> str:
    """``text`` cut short with "…" so it takes at most ``room`` pixels, as ``QFontMetrics.elidedText`` with
    ``Qt.TextElideMode.ElideRight`` does, without Qt's namespace of enums: a filter of the main window may be elided
    in its first paint, before which that namespace is not made (app/ui/lazy_qt.py)."""
    if len(text) <= 1 or metrics.horizontalAdvance(text) <= room:
        return text
    room -= metrics.horizontalAdvance("…")
    kept, too_long = 0, len(text)  # the longest start of the text that fits beside the "…": kept ≤ it < too_long
    while too_long - kept > 1:
        middle = (kept + too_long) // 2
        if metrics.horizontalAdvance(text[:middle]) <= room:
            kept = middle
        else:
            too_long = middle
    return text[:kept] + "…" if room >= 0 else ""


class ElidingComboBox(QComboBox):
    """A combo box that may be narrower than its longest entry (a small screen): the shown text ends in "…" and the
    whole of it is the tooltip; the open list stays wide enough to read every entry."""

    # Room for the frame and the arrow beside the text (Fusion and Windows styles take about 25 pixels): asked for by
    # ``sizeHint``; a combo box at least this much wider than its text shows it whole.
    TEXT_ALLOWANCE = 48

    def __init__(self, parent: QWidget | None = None, *, minimum_characters: int = 10) -> None:
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(minimum_characters)
        self.currentTextChanged.connect(self.setToolTip)
        self.currentTextChanged.connect(lambda _text: self.updateGeometry())

    def sizeHint(self) -> QSize:  # as wide as the chosen entry when there is room (the layout shares by what shows)
        hint = super().sizeHint()
        return QSize(max(hint.width(), self.fontMetrics().horizontalAdvance(self.currentText()) + self.TEXT_ALLOWANCE),
                     hint.height())

    def showPopup(self) -> None:
        widest = max((self.fontMetrics().horizontalAdvance(self.itemText(i)) for i in range(self.count())),
                     default=0)
        self.view().setMinimumWidth(widest + 48)  # the open list shows every entry whole
        super().showPopup()

    def shown_text(self) -> str:
        """The text as painted (elided to the room there is)."""
        from PySide6.QtWidgets import QStyle, QStyleOptionComboBox

        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        room = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                           QStyle.SubControl.SC_ComboBoxEditField, self).width() - 4
        return elide_right(QFontMetricsF(self.fontMetrics()), self.currentText(), max(room, 0))

    def paintEvent(self, event: Any) -> None:
        if self.fontMetrics().horizontalAdvance(self.currentText()) + self.TEXT_ALLOWANCE <= self.width():
            # The whole text fits: Qt paints it as it is (the window's first paint then needs none of PySide6's
            # style classes, ~10 ms to make).
            super().paintEvent(event)
            return
        from PySide6.QtWidgets import QStyle, QStyleOptionComboBox, QStylePainter

        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        option.currentText = self.shown_text()
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


def keep_on_screen(window: QWidget) -> None:
    """A window is made no larger than the screen it opens on and moved left or up so none of it runs past the right
    or bottom edge: its size in code is for a big screen, and a 1024×600 laptop (or 200% scaling) would otherwise
    hide the status bar, the last column and the buttons at the bottom. Call it from ``showEvent``."""
    screen = window.screen()
    if not window.isWindow() or screen is None:
        return
    area = screen.availableGeometry()
    room_w, room_h = area.width() - 16, area.height() - 40  # the window manager's frame and title bar
    if window.width() > room_w or window.height() > room_h:
        window.resize(max(min(window.width(), room_w), window.minimumWidth()),
                      max(min(window.height(), room_h), window.minimumHeight()))
    frame = window.frameGeometry()
    x = max(min(frame.x(), area.x() + area.width() - frame.width()), area.x())
    y = max(min(frame.y(), area.y() + area.height() - frame.height()), area.y())
    if (x, y) != (frame.x(), frame.y()):
        window.move(x, y)


class _FitOnShow(QObject):
    """Event filter of one window: ``keep_on_screen`` each time it is shown by the program."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Show and not event.spontaneous() and isinstance(watched, QWidget):
            keep_on_screen(watched)
        return False


def fit_on_show(window: QWidget) -> None:
    """Keep ``window`` on its screen whenever it opens (see ``keep_on_screen``); one line in a window's ``__init__``."""
    fitter = _FitOnShow(window)
    window.installEventFilter(fitter)
