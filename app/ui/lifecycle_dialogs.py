"""Receiving goods (O4), reporting a lost order (O7) and cancelling an order before it leaves (issue 6/10 item 4).

The rules live in ``app.services.orders.lifecycle``: what may be received, when a reason is needed, what can be reported lost
or cancelled. These dialogs show the numbers, collect the person's answers and show the service's refusal next to the
field it is about; nothing typed is lost when a step is refused.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from PySide6.QtCore import QAbstractTableModel, QDate, QModelIndex, QPersistentModelIndex, QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.ui.widgets import FieldMessage, fit_on_show, heading_label, make_table, training_banner

log = logging.getLogger(__name__)

AnyIndex = QModelIndex | QPersistentModelIndex
MAX_PACKAGES = 99_999


def _heading(parent: QWidget, text: str) -> QLabel:
    return heading_label(parent, text, scale=1.2)


def _banner(parent: QWidget, facade: Any, layout: QVBoxLayout) -> None:
    if facade.is_training:
        layout.addWidget(training_banner(parent, "TRAINING — practice order"))


class PackagesModel(QAbstractTableModel):
    """Lines of an order with one editable count per line (packages received now, or packages not received)."""

    def __init__(self, headers: Sequence[str], *, parent: Any = None) -> None:
        super().__init__(parent)
        self.headers = tuple(headers)  # the last column is the editable count
        self._rows: list[list[Any]] = []

    @property
    def edit_column(self) -> int:
        return len(self.headers) - 1

    def set_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self.beginResetModel()
        self._rows = [list(row) for row in rows]
        self.endResetModel()

    def counts(self) -> dict[int, int]:
        """Line number → count entered (every line, zeros too)."""
        return {int(row[0]): int(row[-1]) for row in self._rows}

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.headers)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(self.headers) \
                and role == Qt.ItemDataRole.DisplayRole:
            return self.headers[section]
        return None

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        flags = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren
        if index.column() == self.edit_column:
            flags |= Qt.ItemFlag.ItemIsEditable
        return flags

    def data(self, index: AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows) \
                or not 0 <= index.column() < len(self.headers):
            return None
        value = self._rows[index.row()][index.column()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return value if index.column() == self.edit_column and role == Qt.ItemDataRole.EditRole else str(value)
        if role == Qt.ItemDataRole.TextAlignmentRole:
            numeric = isinstance(value, int)
            return int((Qt.AlignmentFlag.AlignRight if numeric else Qt.AlignmentFlag.AlignLeft)
                       | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole and index.column() == self.edit_column:
            return "Press F2 or start typing to change the number"
        return None

    def setData(self, index: AnyIndex, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() != self.edit_column:
            return False
        try:
            count = int(value)
        except (TypeError, ValueError):
            return False
        if not 0 <= count <= MAX_PACKAGES:
            return False
        self._rows[index.row()][index.column()] = count
        self.dataChanged.emit(index, index, [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole])
        return True


class _SpinDelegate(QStyledItemDelegate):
    def createEditor(self, parent: QWidget, option: QStyleOptionViewItem, index: AnyIndex) -> QWidget:
        spin = QSpinBox(parent)
        spin.setRange(0, MAX_PACKAGES)
        spin.setAccessibleName("Packages")
        return spin


def _counts_table(parent: QWidget, model: PackagesModel, name: str, accessible: str) -> QTableView:
    table = make_table(parent, model, name=name, accessible_name=accessible, stretch_column=1)
    table.setEditTriggers(QAbstractItemView.EditTrigger.AllEditTriggers)
    table.setItemDelegateForColumn(model.edit_column, _SpinDelegate(table))
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
    return table


def _commit(table: QTableView) -> None:
    """An edit still open in the table counts (the person typed a number and pressed the button)."""
    if table.state() == QAbstractItemView.State.EditingState:
        editor = table.indexWidget(table.currentIndex())
        if editor is not None:
            table.commitData(editor)
            table.closeEditor(editor, QStyledItemDelegate.EndEditHint.NoHint)


# =====================================================================================================================
# Receiving


RECEIVING_HEADERS = ("Line", "Product", "NDC", "Ordered", "Expected", "Shipped", "Received so far", "Receive now")


class ReceivingDialog(QDialog):
    """Packages received per line and the date (O4); the counts start from what was shipped and not yet received."""

    received = Signal(int)

    def __init__(self, facade: Any, order_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from app.services.orders.lifecycle import receivable_lines

        self.facade = facade
        self.order_id = order_id
        self.job: Any = None
        order = facade.book.get_order(order_id)
        self.order_number = order.order_number
        self.setObjectName("receivingDialog")
        self.setWindowTitle(f"Receive goods — order {order.order_number}")
        self.setAccessibleName(self.windowTitle())
        self.resize(QSize(940, 520))
        fit_on_show(self)
        layout = QVBoxLayout(self)
        layout.addWidget(_heading(self, f"Receive goods for order {order.order_number}"))
        _banner(self, facade, layout)
        intro = QLabel(f"From {order.supplier.name}. Count what is in the delivery and enter the packages received "
                       "per line; the numbers start from the supplier's shipment notices.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.lines = receivable_lines(order)
        has_shipments = any(line["shipped"] for line in self.lines)
        self.model = PackagesModel(RECEIVING_HEADERS, parent=self)
        self.model.set_rows([
            [line["line_number"], line["description"], f"{line['ndc'][:5]}-{line['ndc'][5:9]}-{line['ndc'][9:]}",
             line["ordered"], line["expected"], line["shipped"], line["received"], line["default"]]
            for line in self.lines])  # never more than ordered, whatever a shipment notice claims
        self.table = _counts_table(self, self.model, "receivingLines", "Packages received per line")
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, self.table.horizontalHeader().ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.lines_message = FieldMessage(self.table, self, name="receivingLinesProblem")
        layout.addWidget(self.lines_message)

        form = QFormLayout()
        self.date_edit = QDateEdit(QDate.currentDate(), self)
        self.date_edit.setObjectName("receivedOn")
        self.date_edit.setAccessibleName("Date received")
        self.date_edit.setCalendarPopup(True)
        self.date_edit.setDisplayFormat("MMM d, yyyy")
        self.date_edit.setMaximumDate(QDate.currentDate())
        self.date_message = FieldMessage(self.date_edit, self)
        date_label = QLabel("&Date received:", self)
        date_label.setBuddy(self.date_edit)
        form.addRow(date_label, self.date_edit)
        form.addRow("", self.date_message)
        self.reason_edit = QLineEdit(self)
        self.reason_edit.setObjectName("receivingReason")
        self.reason_edit.setAccessibleName("Reason")
        self.reason_edit.setPlaceholderText("Only when you receive more than was shipped or ordered, against a "
                                            "flagged shipment, or before its ship date (e.g. “supplier sent an "
                                            "extra box, invoice to follow”)")
        self.reason_message = FieldMessage(self.reason_edit, self)
        reason_label = QLabel("&Reason:", self)
        reason_label.setBuddy(self.reason_edit)
        form.addRow(reason_label, self.reason_edit)
        form.addRow("", self.reason_message)
        layout.addLayout(form)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("receivingStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        buttons = QDialogButtonBox(self)
        self.record_button = QPushButton("&Record receipt", self)
        self.record_button.setObjectName("recordReceipt")
        self.record_button.setDefault(True)
        self.record_button.clicked.connect(self.record)
        buttons.addButton(self.record_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel).clicked.connect(self.reject)
        layout.addWidget(buttons)
        if not has_shipments:
            self.status_label.setText("No shipment notice has arrived for this order yet: the numbers start from "
                                      "what the supplier accepted.")
        from app.services.orders.answers import discrepancies

        found = discrepancies(order)
        if found:  # the supplier's claims that do not match the order, before anything is counted
            self.status_label.setText("⚠ Check before you count: " + " ".join(found))
        self.table.setFocus()
        if self.model.rowCount():
            self.table.setCurrentIndex(self.model.index(0, self.model.edit_column))

    def counts(self) -> dict[int, int]:
        return {n: c for n, c in self.model.counts().items() if c}

    @Slot()
    def record(self) -> None:
        if self.job is not None:
            return
        _commit(self.table)
        for message in (self.lines_message, self.date_message, self.reason_message):
            message.clear()
        lifecycle = self.facade.lifecycle()
        packages, received_on = self.counts(), self.date_edit.date().toPython()
        reason, order_id = self.reason_edit.text(), self.order_id
        self.record_button.setEnabled(False)
        self.status_label.setText("Recording…")
        self.job = self.facade.jobs.run(
            "Recording the receipt",
            lambda _c: lifecycle.receive(order_id, packages=packages, received_on=received_on, reason=reason,
                                         recorded_by="gui"),
            on_success=self._on_recorded, on_failure=self._on_refused, owner=self)

    def _on_recorded(self, result: Any) -> None:
        self.job = None
        self.facade.notify_orders_changed([self.order_id])
        self.received.emit(self.order_id)
        self.accept()

    def _on_refused(self, error: CsosError) -> None:
        self.job = None
        self.record_button.setEnabled(True)
        self.status_label.setText("Nothing was recorded. Your numbers are still here.")
        target = {"receiving.more_than_shipped": self.reason_message, "receiving.order_expired": self.reason_message,
                  "receiving.more_than_ordered": self.reason_message,
                  "receiving.flagged_shipment": self.reason_message,
                  "receiving.before_ship_date": self.reason_message,
                  "receiving.future_date": self.date_message,
                  "receiving.before_signing": self.date_message}.get(error.code, self.lines_message)
        target.show_problem(error.message)
        if target.field is not None:
            target.field.setFocus()


# =====================================================================================================================
# Lost order


LOST_HEADERS = ("Line", "Product", "NDC", "Ordered", "Received", "Not received")


class LostOrderDialog(QDialog):
    """A signed statement of the goods not received goes to the supplier; a replacement draft is opened (O7)."""

    reported = Signal(int, object)  # order id, replacement order id (or None)

    def __init__(self, facade: Any, order_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from app.services.orders.lifecycle import receivable_lines
        from app.ui.sign_dialog import KeyUnlockBox

        self.facade = facade
        self.order_id = order_id
        self.job: Any = None
        self.result: Any = None
        order = facade.book.get_order(order_id)
        self.order_number = order.order_number
        self.registration_dea = order.registration.dea_number
        self.setObjectName("lostOrderDialog")
        self.setWindowTitle(f"Report order {order.order_number} lost")
        self.setAccessibleName(self.windowTitle())
        self.resize(QSize(900, 620))
        fit_on_show(self)
        layout = QVBoxLayout(self)
        layout.addWidget(_heading(self, f"Order {order.order_number} did not arrive"))
        _banner(self, facade, layout)
        intro = QLabel(
            f"You will sign a statement for {order.supplier.name} saying which goods were not received. The supplier "
            "then refuses the original order if it turns up later, and a replacement order with the same products "
            "opens for you to check and sign. Everything stays linked to this order.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        lines = receivable_lines(order)
        self.model = PackagesModel(LOST_HEADERS, parent=self)
        self.model.set_rows([[line["line_number"], line["description"],
                              f"{line['ndc'][:5]}-{line['ndc'][5:9]}-{line['ndc'][9:]}", line["ordered"],
                              line["received"], max(0, line["expected"] - line["received"])] for line in lines])
        self.table = _counts_table(self, self.model, "lostLines", "Packages not received per line")
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(1, self.table.horizontalHeader().ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        self.lines_message = FieldMessage(self.table, self, name="lostLinesProblem")
        layout.addWidget(self.lines_message)
        form = QFormLayout()
        self.date_edit = QDateEdit(QDate.currentDate(), self)
        self.date_edit.setObjectName("statementDate")
        self.date_edit.setAccessibleName("Date of the statement")
        self.date_edit.setCalendarPopup(True)
        self.date_edit.setDisplayFormat("MMM d, yyyy")
        date_label = QLabel("Statement &date:", self)
        date_label.setBuddy(self.date_edit)
        form.addRow(date_label, self.date_edit)
        layout.addLayout(form)
        self.unlock = KeyUnlockBox(facade, self)
        layout.addWidget(self.unlock)
        self.progress = QProgressBar(self)
        self.progress.setVisible(False)
        self.progress.setAccessibleName("Progress")
        layout.addWidget(self.progress)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("lostStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        buttons = QDialogButtonBox(self)
        self.go_button = QPushButton("&Sign statement and send", self)
        self.go_button.setObjectName("signStatement")
        self.go_button.setDefault(True)
        self.go_button.clicked.connect(self.report)
        buttons.addButton(self.go_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self.cancel_button.clicked.connect(self.reject)
        layout.addWidget(buttons)
        self.record: Any = None
        try:
            self.record = facade.certificates.signing_certificate_for(self.registration_dea, at=facade.clock())
        except CsosError as exc:
            self.status_label.setText(f"{exc.message} The statement must be signed by a certificate holder.")
            self.go_button.setEnabled(False)
        if self.record is not None:
            from app.services.certificates.book import record_key_ref

            ref = record_key_ref(self.record)
            pin_pad = False
            if ref.token is not None:
                try:
                    pin_pad = any(t.pin_pad for t in facade.certificates.list_tokens() if t.serial == ref.token.serial)
                except CsosError as exc:
                    log.info("token list failed: %s", exc.code)
            self.unlock.set_record(self.record, on_token=ref.token is not None, pin_pad=pin_pad)
        self.table.setFocus()

    @Slot()
    def report(self) -> None:
        if self.job is not None or self.record is None:
            return
        _commit(self.table)
        self.lines_message.clear()
        missing = {n: c for n, c in self.model.counts().items() if c}
        if not missing:
            self.lines_message.show_problem("Enter how many packages did not arrive on at least one line.")
            return
        if self.unlock.needs_secret and not self.unlock.secret_edit.text():
            self.unlock.show_problem("Type the password or PIN of your key first.")
            return
        secret = self.unlock.take_secret()
        facade, record, order_id = self.facade, self.record, self.order_id
        statement_date = self.date_edit.date().toPython()

        def work(context: Any) -> Any:
            context.progress(0, 3, "Opening your key…")
            signer = facade.sessions.unlocked_signer(record, secret)
            certificate, intermediates = facade.certificates.chain(record)
            context.progress(1, 3, "Signing the statement…")
            result = facade.lifecycle().report_lost(order_id, signer=signer, certificate=certificate,
                                                    intermediates=intermediates, statement_date=statement_date,
                                                    lines_not_received=missing)
            context.progress(2, 3, "Sending the statement to the supplier…")
            facade.outbox().run_until_idle(order_ids=[order_id])
            context.progress(3, 3, "Done")
            return result

        self.go_button.setEnabled(False)
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 3)
        self.job = facade.jobs.run("Reporting the order lost", work, on_success=self._on_reported,
                                   on_failure=self._on_failed, owner=self)
        self.job.progress.connect(lambda done, total, text: (self.progress.setValue(done),
                                                             self.status_label.setText(text)))

    def _on_reported(self, result: Any) -> None:
        self.job = None
        self.result = result
        ids = [self.order_id] + ([result.replacement_order_id] if result.replacement_order_id else [])
        self.facade.notify_orders_changed(ids)
        self.facade.wake_outbox()
        self.reported.emit(self.order_id, result.replacement_order_id)
        self.accept()

    def _on_failed(self, error: CsosError) -> None:
        self.job = None
        self.progress.setVisible(False)
        self.go_button.setEnabled(True)
        self.cancel_button.setEnabled(True)
        if error.code.startswith("key."):
            self.unlock.show_problem(error.message)
        else:
            self.lines_message.show_problem(error.message)
        self.status_label.setText("Nothing was signed or sent.")

    def reject(self) -> None:
        if self.job is None:
            super().reject()


# =====================================================================================================================
# Cancel


class CancelOrderDialog(QDialog):
    """Cancel an order that has not left the pharmacy; the reason is kept with the order."""

    cancelled = Signal(int)

    def __init__(self, facade: Any, order_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.order_id = order_id
        self.job: Any = None
        order = facade.book.get_order(order_id)
        self.setObjectName("cancelOrderDialog")
        self.setWindowTitle(f"Cancel order {order.order_number}")
        self.setAccessibleName(self.windowTitle())
        self.resize(QSize(560, 300))
        fit_on_show(self)
        layout = QVBoxLayout(self)
        layout.addWidget(_heading(self, f"Cancel order {order.order_number}?"))
        _banner(self, facade, layout)
        text = QLabel(f"The order is {order.status.label.lower()} and has not been sent to {order.supplier.name}. "
                      "Cancelling keeps it in the order book, marked cancelled, with your reason. It cannot be "
                      "undone; you can issue a new order from it afterwards.", self)
        text.setWordWrap(True)
        layout.addWidget(text)
        label = QLabel("&Why is it cancelled?", self)
        self.reason_edit = QPlainTextEdit(self)
        self.reason_edit.setObjectName("cancelReason")
        self.reason_edit.setAccessibleName("Reason for cancelling")
        self.reason_edit.setTabChangesFocus(True)
        self.reason_edit.setPlaceholderText("e.g. ordered twice by mistake")
        label.setBuddy(self.reason_edit)
        layout.addWidget(label)
        layout.addWidget(self.reason_edit, 1)
        self.reason_message = FieldMessage(self.reason_edit, self)
        layout.addWidget(self.reason_message)
        buttons = QDialogButtonBox(self)
        self.go_button = QPushButton("Cancel the &order", self)
        self.go_button.setObjectName("confirmCancel")
        self.go_button.clicked.connect(self.cancel_order)
        buttons.addButton(self.go_button, QDialogButtonBox.ButtonRole.DestructiveRole)
        keep = buttons.addButton("&Keep the order", QDialogButtonBox.ButtonRole.RejectRole)
        keep.setDefault(True)
        keep.clicked.connect(self.reject)
        layout.addWidget(buttons)
        self.reason_edit.setFocus()

    @Slot()
    def cancel_order(self) -> None:
        if self.job is not None:
            return
        lifecycle, order_id, reason = self.facade.lifecycle(), self.order_id, self.reason_edit.toPlainText()
        self.go_button.setEnabled(False)
        self.job = self.facade.jobs.run("Cancelling the order", lambda _c: lifecycle.cancel(order_id, reason=reason),
                                        on_success=self._on_done, on_failure=self._on_failed, owner=self)

    def _on_done(self, _order: Any) -> None:
        self.job = None
        self.facade.notify_orders_changed([self.order_id])
        self.cancelled.emit(self.order_id)
        self.accept()

    def _on_failed(self, error: CsosError) -> None:
        self.job = None
        self.go_button.setEnabled(True)
        self.reason_message.show_problem(error.message)
        self.reason_edit.setFocus()


