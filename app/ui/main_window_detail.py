"""The main window's detail pane and the commands on the selected order: what the pane under the list shows, which
order commands are enabled for it, and the editor and dialogs they open (sign and send, receive, lost, cancel, print,
PDF, a new order from this one).

A mixin of ``MainWindow`` (app/ui/main_window.py), which calls ``_build_detail`` when the order book is attached; it
needs the frame's actions, ``splitter``, ``facade``, ``book``, ``db``, the list's ``table``, ``selected_order_id``
and ``select_order``, and ``report_failure``. The pane, the dialogs and the services they use are imported when
first needed, not with the window's frame (start-up rule, issue 9/10).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, Slot

from app.errors import CsosError
from app.models.states import SHIPPABLE_STATUSES, TRANSITIONS, OrderStatus
from app.ui.lazy_qt import Qt

if TYPE_CHECKING:
    from app.ui.order_detail import OrderDetailPane


class SelectedOrderMixin:
    """The detail pane (``detail``) and the commands on the order selected in the list."""

    facade: Any
    book: Any
    db: Any
    editor: Any
    dialog: Any

    # -- the detail pane -----------------------------------------------------------------------------------------

    def _build_detail(self) -> None:
        """The detail pane under the list: built with the order book (nothing to show before it is attached)."""
        from app.ui import order_detail

        self.detail: OrderDetailPane = order_detail.OrderDetailPane(self.splitter)
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
        self.reorder_action.setEnabled(shown is not None and bool(shown.lines))
        status = shown.status if shown is not None else None
        self.sign_action.setEnabled(status in (OrderStatus.DRAFT, OrderStatus.SIGNED, OrderStatus.QUEUED))
        self.receive_action.setEnabled(status in SHIPPABLE_STATUSES or status in (OrderStatus.EXPIRED,
                                                                                  OrderStatus.TRANSMITTED))
        self.answer_by_hand_action.setEnabled(status is OrderStatus.TRANSMITTED)
        self.lost_action.setEnabled(status is not None and OrderStatus.LOST in TRANSITIONS[status])
        self.cancel_action.setEnabled(status is not None and OrderStatus.CANCELLED in TRANSITIONS[status])
        self.print_action.setEnabled(status is not None)
        self.pdf_action.setEnabled(status is not None)

    # -- the editor ----------------------------------------------------------------------------------------------

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
    def reorder_selected(self) -> Any:
        """Reorder: the selected order's lines (any order, received ones too) in a new draft for the same
        registration and supplier; the order itself stays as it is (not the replacement of an unaccepted one)."""
        order_id = self.selected_order_id()
        if order_id is None or not self.reorder_action.isEnabled():
            return None
        from app.services.orders.drafts import load_draft

        try:
            state = load_draft(self.book.db, order_id)
            draft = self.book.new_order(registration_dea=state.registration_dea, supplier_name=state.supplier_name)
            for line in state.lines:
                self.book.add_line(draft.id, ndc=line.ndc, packages=line.packages)
        except CsosError as exc:
            self.report_failure(exc)
            return None
        self.facade.notify_orders_changed([draft.id])
        self.select_order(draft.id)
        return self.open_editor(draft.id)

    # -- order life: sign and send, receive, lost, cancel, print, PDF --------------------------------------------

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

        dialog = self._open_order_dialog(lambda order_id: SignAndSendDialog(self.facade, order_id, parent=self))
        if dialog is not None:
            dialog.enroll_requested.connect(lambda: (dialog.reject(), self.open_enrollment()))
            dialog.import_requested.connect(lambda: (dialog.reject(), self.open_import()))
        return dialog

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
    def import_answer(self) -> Any:
        """File → Import supplier's answer… (any order; the files say which)."""
        from app.ui.answer_dialogs import ImportAnswerDialog

        dialog = ImportAnswerDialog(self.facade, parent=self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog = dialog
        dialog.open()
        return dialog

    def import_answer_files(self, paths: list[Path]) -> Any:
        """Files dropped on the window: the import dialog with those files, already importing (same as choosing
        them in File → Import supplier's answer… and pressing Import)."""
        dialog = self.import_answer()
        dialog.set_paths(paths)
        dialog.run_import()
        return dialog

    def _dropped_files(self, event: Any) -> list[Path]:
        mime = event.mimeData()
        if not (self.is_attached and self.import_answer_action.isEnabled() and mime.hasUrls()):
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [path for path in paths if path.is_file()]

    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        if self._dropped_files(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        self.dragEnterEvent(event)

    def dropEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        paths = self._dropped_files(event)
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.import_answer_files(paths)

    @Slot()
    def record_answer_selected(self) -> Any:
        if not self.answer_by_hand_action.isEnabled():
            return None
        from app.ui.answer_dialogs import AnswerByHandDialog

        return self._open_order_dialog(lambda order_id: AnswerByHandDialog(self.facade, order_id, parent=self))

    @Slot()
    def cancel_selected(self) -> Any:
        if not self.cancel_action.isEnabled():
            return None
        from app.ui.lifecycle_dialogs import CancelOrderDialog

        return self._open_order_dialog(lambda order_id: CancelOrderDialog(self.facade, order_id, parent=self))


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
