"""The supplier's answer when it does not arrive over https (issue 17.1): "Import supplier's answer…" (855/856/865
files, plain or signed, one or several documents each) and "Record the supplier's answer by hand…" (e-mail, PDF,
phone).

The rules — matching by order number and purchaser, the checks against the signed order, what is linked or refused —
live in ``app.services.orders.answer_entry``; these dialogs collect the files or the answer, show the result per file
in plain words, and keep what was typed when a step is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QSize, Signal, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.ui.widgets import FieldMessage, heading_label, training_banner

log = logging.getLogger(__name__)

ANSWER_FILE_FILTER = "Supplier answers (*.x12 *.edi *.855 *.856 *.865 *.txt *.p7m *.p7s *.csos);;All files (*)"


def _banner(parent: QWidget, facade: Any, layout: QVBoxLayout) -> None:
    if facade.is_training:
        layout.addWidget(training_banner(parent, "TRAINING — practice order"))


def describe_imports(reports: Sequence[Any]) -> str:
    """What each file did, in plain words (the dialog's result and the tests' check)."""
    parts = []
    for report in reports:
        head = f"{report.file}: " + (f"{len(report.linked)} linked" if report.linked else "nothing linked")
        if report.refused:
            head += f", {len(report.refused)} refused"
        parts.append(head)
        for item in report.linked:
            status = item.status_after.replace("_", " ")
            parts.append(f"  • order {item.order_number}: {'already had it' if item.duplicate else 'linked'}; "
                         f"now {status}")
            parts.extend(f"    ⚠ {flag.message}" for flag in item.flags)
        parts.extend(f"  ✗ {refused['message']}" for refused in report.refused)
    return "\n".join(parts)


class ImportAnswerDialog(QDialog):
    """Choose answer files; each document is matched to its order, checked and linked, or refused with why."""

    imported = Signal(list)  # order ids that changed

    def __init__(self, facade: Any, parent: QWidget | None = None, *, order_number: str | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.job: Any = None
        self.paths: list[Path] = []
        self.reports: list[Any] = []
        self.setObjectName("importAnswerDialog")
        self.setWindowTitle("Import supplier's answer" + (f" — order {order_number}" if order_number else ""))
        self.setAccessibleName(self.windowTitle())
        self.resize(QSize(760, 480))
        layout = QVBoxLayout(self)
        layout.addWidget(heading_label(self, "Import the supplier's answer", scale=1.2))
        _banner(self, facade, layout)
        intro = QLabel("Choose the files the supplier sent or that you downloaded from its website: acknowledgements, "
                       "shipment notices and void notices (X12 855, 856, 865), plain or signed. Each answer is "
                       "matched to its order and checked against what you signed; anything that does not match is "
                       "shown here and kept with the order.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        self.files_label = QLabel("No file chosen.", self)
        self.files_label.setObjectName("answerFiles")
        self.files_label.setWordWrap(True)
        self.choose_button = QPushButton("&Choose files…", self)
        self.choose_button.setObjectName("chooseAnswerFiles")
        self.choose_button.clicked.connect(self.choose)
        row.addWidget(self.files_label, 1)
        row.addWidget(self.choose_button)
        layout.addLayout(row)
        self.result_view = QPlainTextEdit(self)
        self.result_view.setObjectName("importResult")
        self.result_view.setAccessibleName("What was linked and what was refused")
        self.result_view.setReadOnly(True)
        self.result_view.setPlaceholderText("What was linked and what was refused shows here.")
        layout.addWidget(self.result_view, 1)
        self.problem = FieldMessage(self.choose_button, self, name="importProblem")
        layout.addWidget(self.problem)
        buttons = QDialogButtonBox(self)
        self.import_button = QPushButton("&Import", self)
        self.import_button.setObjectName("importAnswers")
        self.import_button.setDefault(True)
        self.import_button.setEnabled(False)
        self.import_button.clicked.connect(self.run_import)
        buttons.addButton(self.import_button, QDialogButtonBox.ButtonRole.AcceptRole)
        close = buttons.addButton(QDialogButtonBox.StandardButton.Close)
        close.clicked.connect(self.reject)
        layout.addWidget(buttons)

    @Slot()
    def choose(self) -> None:
        names, _ = QFileDialog.getOpenFileNames(self, "Supplier's answer files", "", ANSWER_FILE_FILTER)
        if names:
            self.set_paths([Path(n) for n in names])

    def set_paths(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.files_label.setText(", ".join(p.name for p in self.paths) or "No file chosen.")
        self.import_button.setEnabled(bool(self.paths))
        self.problem.clear()

    @Slot()
    def run_import(self) -> None:
        if self.job is not None or not self.paths:
            return
        lifecycle, paths = self.facade.lifecycle(), list(self.paths)
        self.import_button.setEnabled(False)
        self.result_view.setPlainText("Reading the files…")
        self.job = self.facade.jobs.run("Importing the supplier's answer",
                                        lambda _c: lifecycle.import_answer_files(paths),
                                        on_success=self._on_done, on_failure=self._on_failed, owner=self)

    def _on_done(self, reports: list[Any]) -> None:
        self.job = None
        self.reports = reports
        self.result_view.setPlainText(describe_imports(reports))
        changed = sorted({item.order_id for report in reports for item in report.linked})
        if changed:
            self.facade.notify_orders_changed(changed)
            self.imported.emit(changed)
        if any(report.refused for report in reports):
            self.problem.show_problem("Refused answers changed nothing. Check them with the supplier; a corrected "
                                      "file can be imported again.")
        self.import_button.setEnabled(True)

    def _on_failed(self, error: CsosError) -> None:
        self.job = None
        self.import_button.setEnabled(True)
        self.result_view.setPlainText("")
        self.problem.show_problem(error.message)


class AnswerByHandDialog(QDialog):
    """The supplier answered by e-mail, PDF or phone: accepted (line by line) or not accepted, with its reason."""

    recorded = Signal(int)

    def __init__(self, facade: Any, order_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.order_id = order_id
        self.job: Any = None
        self.attachment: Path | None = None
        order = facade.book.get_order(order_id)
        self.order_number = order.order_number
        self.setObjectName("answerByHandDialog")
        self.setWindowTitle(f"Record the supplier's answer — order {order.order_number}")
        self.setAccessibleName(self.windowTitle())
        self.resize(QSize(680, 520))
        layout = QVBoxLayout(self)
        layout.addWidget(heading_label(self, f"What did {order.supplier.name} say about order "
                                             f"{order.order_number}?", scale=1.2))
        _banner(self, facade, layout)
        verdict_row = QHBoxLayout()
        self.accepted_radio = QRadioButton("&Accepted", self)
        self.accepted_radio.setObjectName("answerAccepted")
        self.not_accepted_radio = QRadioButton("&Not accepted", self)
        self.not_accepted_radio.setObjectName("answerNotAccepted")
        self.accepted_radio.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.accepted_radio)
        group.addButton(self.not_accepted_radio)
        verdict_row.addWidget(self.accepted_radio)
        verdict_row.addWidget(self.not_accepted_radio)
        verdict_row.addStretch(1)
        layout.addLayout(verdict_row)
        form = QFormLayout()
        self.line_boxes: dict[int, QComboBox] = {}
        for line in order.lines:
            box = QComboBox(self)
            box.setObjectName(f"answerLine{line.line_number}")
            box.addItem("accepted", "accepted")
            box.addItem("rejected", "rejected")
            box.setAccessibleName(f"Line {line.line_number} answer")
            self.line_boxes[line.line_number] = box
            form.addRow(f"Line {line.line_number} — {line.description} ({line.packages} package"
                        f"{'s' if line.packages != 1 else ''}):", box)
        self.not_accepted_radio.toggled.connect(self._verdict_changed)
        layout.addLayout(form)
        reason_label = QLabel("What the supplier &said (its reason or reference):", self)
        self.reason_edit = QLineEdit(self)
        self.reason_edit.setObjectName("answerReason")
        self.reason_edit.setAccessibleName("What the supplier said")
        self.reason_edit.setPlaceholderText("e.g. “e-mail from Acme 3 May: line 2 discontinued”")
        reason_label.setBuddy(self.reason_edit)
        layout.addWidget(reason_label)
        layout.addWidget(self.reason_edit)
        self.reason_message = FieldMessage(self.reason_edit, self)
        layout.addWidget(self.reason_message)
        attach_row = QHBoxLayout()
        self.attach_label = QLabel("No file attached (optional: the e-mail, PDF or a note).", self)
        self.attach_label.setObjectName("answerAttachment")
        self.attach_label.setWordWrap(True)
        attach = QPushButton("A&ttach the supplier's file…", self)
        attach.setObjectName("attachAnswerFile")
        attach.clicked.connect(self.choose_attachment)
        attach_row.addWidget(self.attach_label, 1)
        attach_row.addWidget(attach)
        layout.addLayout(attach_row)
        self.problem = FieldMessage(None, self, name="answerProblem")
        layout.addWidget(self.problem)
        layout.addStretch(1)
        buttons = QDialogButtonBox(self)
        self.record_button = QPushButton("&Record the answer", self)
        self.record_button.setObjectName("recordAnswer")
        self.record_button.setDefault(True)
        self.record_button.clicked.connect(self.record)
        buttons.addButton(self.record_button, QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.addButton(QDialogButtonBox.StandardButton.Cancel).clicked.connect(self.reject)
        layout.addWidget(buttons)
        self.reason_edit.setFocus()

    @Slot(bool)
    def _verdict_changed(self, not_accepted: bool) -> None:
        for box in self.line_boxes.values():
            box.setEnabled(not not_accepted)

    @Slot()
    def choose_attachment(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "The supplier's e-mail, PDF or note", "", "All files (*)")
        if name:
            self.set_attachment(Path(name))

    def set_attachment(self, path: Path | None) -> None:
        self.attachment = path
        self.attach_label.setText(f"Attached: {path.name}" if path else "No file attached.")

    def line_answers(self) -> dict[int, str]:
        return {number: str(box.currentData()) for number, box in self.line_boxes.items()}

    @Slot()
    def record(self) -> None:
        if self.job is not None:
            return
        self.reason_message.clear()
        self.problem.clear()
        lifecycle, order_id = self.facade.lifecycle(), self.order_id
        accepted, lines = self.accepted_radio.isChecked(), self.line_answers()
        reason, attachment = self.reason_edit.text(), self.attachment
        self.record_button.setEnabled(False)
        self.job = self.facade.jobs.run(
            "Recording the supplier's answer",
            lambda _c: lifecycle.record_answer_by_hand(order_id, accepted=accepted, lines=lines, reason=reason,
                                                       attachment=attachment, recorded_by="gui"),
            on_success=self._on_done, on_failure=self._on_failed, owner=self)

    def _on_done(self, _result: Any) -> None:
        self.job = None
        self.facade.notify_orders_changed([self.order_id])
        self.recorded.emit(self.order_id)
        self.accept()

    def _on_failed(self, error: CsosError) -> None:
        self.job = None
        self.record_button.setEnabled(True)
        if error.code == "answer.reason_required":
            self.reason_message.show_problem(error.message)
            self.reason_edit.setFocus()
        else:
            self.problem.show_problem(error.message)
