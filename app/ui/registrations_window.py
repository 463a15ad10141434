"""The DEA registrations screen: list, add, change, and remove (while nothing refers to it) the registrations orders
are made for; each row says whether an installed certificate was issued for it.

The rules are the order book's (``OrderBook.add_registration`` / ``update_registration`` / ``remove_registration``
and ``parties.check_registration``): this screen shows their problems under the field they are about, and the DEA
number's check-digit message as it is typed. Reading and writing run on the job runner.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.ui import messages
from app.ui.widgets import FieldMessage, RowsTableModel, fit_on_show, make_table, training_banner

log = logging.getLogger(__name__)

SCHEDULES = (("II", "II"), ("IIN", "II non-narcotic"), ("III", "III"), ("IIIN", "III non-narcotic"), ("IV", "IV"),
             ("V", "V"))
FIELDS = ("dea_number", "name", "address1", "address2", "city", "state", "postal_code", "schedules", "expires_on")


def parse_date(text: str) -> dt.date | None:
    """04/02/2028 (month/day/year) or 2028-04-02; None when empty; ValueError when it is neither."""
    text = text.strip()
    if not text:
        return None
    for pattern in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    raise ValueError(text)


class RegistrationsWindow(QWidget):
    """One window: the list on top, the selected (or new) registration's form under it."""

    enroll_requested = Signal()
    saved = Signal(str)

    def __init__(self, facade: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.rows: list[Any] = []
        self.editing: str | None = None  # DEA number of the registration in the form; None = a new one
        self.busy = False
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setObjectName("registrationsWindow")
        self.setWindowTitle("DEA registrations" + (" — TRAINING" if facade.is_training else ""))
        self.resize(900, 600)
        fit_on_show(self)
        outer = QVBoxLayout(self)
        if facade.is_training:
            outer.addWidget(training_banner(self, "TRAINING — practice registrations"))
        intro = QLabel("Orders are made for one of your DEA registrations. Add each registration you order for, "
                       "exactly as on your DEA registration certificate.", self)
        intro.setWordWrap(True)
        outer.addWidget(intro)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        outer.addWidget(splitter, 1)
        self.model = RowsTableModel(("DEA number", "Name", "Place", "Schedules", "Expires", "Certificate"),
                                    parent=self)
        self.table = make_table(splitter, self.model, name="registrationsTable",
                                accessible_name="DEA registrations", stretch_column=1)
        header = self.table.horizontalHeader()
        for column in (0, 2, 3, 4):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        splitter.addWidget(self.table)
        splitter.addWidget(self._build_form(splitter))
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Status")
        outer.addWidget(self.status)
        buttons = QHBoxLayout()
        self.new_button = QPushButton("Add a registration", self)
        self.save_button = QPushButton("Save", self)
        self.remove_button = QPushButton("Remove", self)
        self.enroll_button = QPushButton("Enroll for a certificate…", self)
        self.close_button = QPushButton("Close", self)
        for button in (self.new_button, self.save_button, self.remove_button, self.enroll_button):
            button.setAccessibleName(button.text().rstrip("…"))
            buttons.addWidget(button)
        buttons.addStretch(1)
        self.close_button.setAccessibleName("Close")
        buttons.addWidget(self.close_button)
        outer.addLayout(buttons)
        self.new_button.clicked.connect(self.start_new)
        self.save_button.clicked.connect(self.save)
        self.remove_button.clicked.connect(self.remove)
        self.enroll_button.clicked.connect(self.enroll_requested.emit)
        self.close_button.clicked.connect(self.close)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._selection_changed())
        self.start_new()
        self.refresh()

    # -- building -----------------------------------------------------------------------------------------------------

    def _build_form(self, parent: QWidget) -> QWidget:
        box = QWidget(parent)
        form = QFormLayout(box)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.form_title = QLabel(box)
        self.form_title.setStyleSheet("QLabel { font-weight: 600; }")
        form.addRow(self.form_title)
        self.edits: dict[str, QLineEdit] = {}
        self.problems: dict[str, FieldMessage] = {}
        labels = {"dea_number": "DEA number", "name": "Name (as registered)", "address1": "Street address",
                  "address2": "Address line 2", "city": "City", "state": "State", "postal_code": "ZIP code",
                  "expires_on": "Registration expires"}
        for key, label in labels.items():
            edit = QLineEdit(box)
            edit.setAccessibleName(label)
            self.edits[key] = edit
            problem = FieldMessage(edit, box, name=f"{key}Problem")
            self.problems[key] = problem
            holder = QWidget(box)
            column = QVBoxLayout(holder)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(2)
            column.addWidget(edit)
            column.addWidget(problem)
            form.addRow(f"{label}:", holder)
            edit.textEdited.connect(lambda _text, p=problem: p.clear())
        self.edits["state"].setMaxLength(2)
        self.edits["expires_on"].setPlaceholderText("06/30/2028")
        self.edits["dea_number"].setPlaceholderText("e.g. BJ6125341")
        self.edits["dea_number"].textEdited.connect(self._check_dea)
        schedules = QWidget(box)
        row = QHBoxLayout(schedules)
        row.setContentsMargins(0, 0, 0, 0)
        self.schedule_boxes: dict[str, QCheckBox] = {}
        for value, text in SCHEDULES:
            check = QCheckBox(text, schedules)
            check.setAccessibleName(f"Schedule {text}")
            self.schedule_boxes[value] = check
            row.addWidget(check)
        row.addStretch(1)
        self.problems["schedules"] = FieldMessage(schedules, box, name="schedulesProblem")
        form.addRow("Schedules:", schedules)
        form.addRow("", self.problems["schedules"])
        self.certificate_label = QLabel(box)
        self.certificate_label.setWordWrap(True)
        self.certificate_label.setAccessibleName("Certificate for this registration")
        form.addRow("Certificate:", self.certificate_label)
        return box

    # -- reading ------------------------------------------------------------------------------------------------------

    def refresh(self, select: str | None = None) -> None:
        facade = self.facade

        def work(_context: Any) -> Any:
            from app.services.getting_started import registration_rows

            return registration_rows(facade.db, now=facade.clock())

        self._run("Reading the registrations", work, lambda rows: self._loaded(rows, select))

    def _loaded(self, rows: Any, select: str | None) -> None:
        self.rows = list(rows)
        shown = [(r.dea_number, r.name, f"{r.city}, {r.state}", ", ".join(r.schedules),
                  f"{r.expires_on:%m/%d/%Y}" if r.expires_on else "—", r.certificate or "none installed")
                 for r in self.rows]
        self.model.set_rows(shown, shown)  # each cell's whole text is its tooltip too (a narrow window elides)
        note, self._note = getattr(self, "_note", ""), ""
        if not self.rows:
            self.status.setText(note or "No registration yet: fill in the form below and press Save.")
        else:
            self.status.setText(note or f"{len(self.rows)} registration(s).")
        wanted = select or self.editing
        index = next((i for i, r in enumerate(self.rows) if r.dea_number == wanted), None)
        if index is not None:
            self.table.selectRow(index)
        self._update_buttons()

    def selected(self) -> Any:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def _selection_changed(self) -> None:
        row = self.selected()
        if row is not None:
            self._fill(row)
        self._update_buttons()

    def _fill(self, row: Any) -> None:
        self.editing = row.dea_number
        self.form_title.setText(f"Registration {row.dea_number}")
        lines = list(row.address_lines) + ["", ""]
        values = {"dea_number": row.dea_number, "name": row.name, "address1": lines[0], "address2": lines[1],
                  "city": row.city, "state": row.state, "postal_code": row.postal_code,
                  "expires_on": f"{row.expires_on:%m/%d/%Y}" if row.expires_on else ""}
        for key, value in values.items():
            self.edits[key].setText(value)
        self.edits["dea_number"].setReadOnly(True)
        for value, box in self.schedule_boxes.items():
            box.setChecked(value in row.schedules)
        self.certificate_label.setText(
            f"✔ {row.certificate}" if row.certificate else
            "No installed certificate was issued for this DEA number. Enroll for one, or import your .p12 file.")
        self._clear_problems()

    def start_new(self) -> None:
        self.editing = None
        self.table.clearSelection()
        self.form_title.setText("New registration")
        for edit in self.edits.values():
            edit.clear()
        self.edits["dea_number"].setReadOnly(False)
        for box in self.schedule_boxes.values():
            box.setChecked(False)
        self.certificate_label.setText("—")
        self._clear_problems()
        self.edits["dea_number"].setFocus()
        self._update_buttons()

    def _clear_problems(self) -> None:
        for problem in self.problems.values():
            problem.clear()

    def _update_buttons(self) -> None:
        row = self.selected()
        idle = not self.busy
        self.save_button.setEnabled(idle)
        self.new_button.setEnabled(idle)
        self.remove_button.setEnabled(idle and row is not None and not row.in_use)
        self.remove_button.setToolTip("Orders or certificates refer to this registration: it can be changed, not "
                                      "removed." if row is not None and row.in_use else "")

    # -- checking and writing -----------------------------------------------------------------------------------------

    def _check_dea(self, text: str) -> None:
        """The check-digit rule as it is typed (once the number is complete)."""
        from app.errors import InvalidValue
        from app.models.values import DeaNumber

        problem = self.problems["dea_number"]
        if len(text.strip()) < 9:
            problem.clear()
            return
        try:
            DeaNumber.parse(text)
            problem.clear()
        except InvalidValue as exc:
            problem.show_problem(exc.message)

    def _form(self) -> dict[str, Any]:
        return {"dea_number": self.edits["dea_number"].text().strip().upper(),
                "name": self.edits["name"].text().strip(),
                "address_lines": [t for t in (self.edits["address1"].text().strip(),
                                              self.edits["address2"].text().strip()) if t],
                "city": self.edits["city"].text().strip(), "state": self.edits["state"].text().strip().upper(),
                "postal_code": self.edits["postal_code"].text().strip(),
                "schedules": [v for v, box in self.schedule_boxes.items() if box.isChecked()]}

    def save(self) -> None:
        from app.services.orders.parties import RegistrationForm, check_registration

        self._clear_problems()
        values = self._form()
        try:
            expires = parse_date(self.edits["expires_on"].text())
        except ValueError:
            self.problems["expires_on"].show_problem("Type the date as month/day/year (06/30/2028) or 2028-06-30.")
            return
        problems = check_registration(RegistrationForm(**{**values, "address_lines": tuple(values["address_lines"]),
                                                          "schedules": tuple(values["schedules"])}))
        if not values["schedules"]:
            self.problems["schedules"].show_problem("Tick the schedules on your DEA registration.")
            return
        if problems:
            for problem in problems:
                target = self.problems.get(problem.field) or self.problems.get(
                    "address1" if problem.field.startswith("address") else "")
                if target is not None and not target.text:
                    target.show_problem(problem.message)
            if not any(self.problems.get(p.field) for p in problems):
                self.status.setText(problems[0].message)
            return
        book, editing = self.facade.book, self.editing

        def work(_context: Any) -> str:
            if editing is None:
                book.add_registration(expires_on=expires, **values)
            else:
                changes = {k: v for k, v in values.items() if k != "dea_number"}
                book.update_registration(editing, expires_on=expires, **changes)
            return values["dea_number"] if editing is None else editing

        def done(dea: str) -> None:
            self.editing = dea
            self._note = f"Registration {dea} saved."
            self.facade.parties_changed.emit()
            self.saved.emit(dea)
            self.refresh(select=dea)

        self._run("Saving the registration", work, done)

    def remove(self) -> None:
        row = self.selected()
        if row is None or row.in_use:
            return
        if not messages.confirm(self, "Remove this registration?",
                                f"Remove registration {row.dea_number} ({row.name}) from this order book? No order "
                                "refers to it.", yes_text="Remove", no_text="Keep it"):
            return
        book = self.facade.book

        def done(_result: Any) -> None:
            self._note = f"Registration {row.dea_number} removed."
            self.facade.parties_changed.emit()
            self.start_new()
            self.refresh()

        self._run("Removing the registration", lambda _c: book.remove_registration(row.dea_number), done)

    def _run(self, title: str, work: Any, done: Any) -> None:
        self.busy = True
        self._update_buttons()

        def ok(result: Any) -> None:
            self.busy = False
            done(result)
            self._update_buttons()

        def failed(error: CsosError) -> None:
            self.busy = False
            field = {"registration.duplicate": "dea_number", "registration.in_use": None}.get(error.code)
            if field and field in self.problems:
                self.problems[field].show_problem(error.message)
            else:
                self.status.setText(error.message)
            self._update_buttons()

        self.facade.jobs.run(title, work, on_success=ok, on_failure=failed, owner=self)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)


__all__ = ["RegistrationsWindow", "parse_date"]
