"""The certificates page (issue item 6): every certificate with status, registration (and its expiry), schedules,
key location, days to expiry and the next action; buttons open the enrollment, import, renewal and revocation wizards.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QShowEvent
from PySide6.QtWidgets import QHBoxLayout, QHeaderView, QLabel, QPushButton, QVBoxLayout, QWidget

from app.errors import CsosError
from app.services.enrollment.flows import CertificateRow, certificate_rows
from app.ui import theme
from app.ui.widgets import RowsTableModel, make_table

HEADERS = ("Subscriber", "Certificate ID", "Kind", "Status", "Registration", "Registration expires", "Schedules",
           "Key", "Certificate expires", "Days left", "Next action")


def _date(day: dt.date | None) -> str:
    return f"{day:%Y-%m-%d}" if day else "—"


class CertificatesPage(QWidget):
    """``open_wizard(kind, fingerprint)`` asks the window to open a wizard: enroll, import, renew, revoke, approvals."""

    open_wizard = Signal(str, str)

    def __init__(self, facade: Any, *, certificates: Any = None,
                 today: Callable[[], dt.date] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self._certificates = certificates
        self.today = today or facade.today
        self.rows: list[CertificateRow] = []
        self.setObjectName("certificatesPage")
        layout = QVBoxLayout(self)
        title = QLabel("CSOS certificates", self)
        title.setStyleSheet("QLabel { font-size: 13pt; font-weight: bold; }")
        layout.addWidget(title)
        self.model = RowsTableModel(HEADERS, numeric_columns=(9,), parent=self)
        self.table = make_table(self, self.model, name="certificatesTable", accessible_name="Certificates",
                                stretch_column=10)
        layout.addWidget(self.table, 1)
        self.empty = QLabel("No certificate yet. Enroll for one (about 15 minutes, plus your coordinator's "
                            "approval), or import the .p12 file you already have.", self)
        self.empty.setObjectName("emptyHint")
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet(theme.EMPTY_HINT_STYLE)
        layout.addWidget(self.empty)
        self.status = QLabel(self)
        self.status.setObjectName("certificatesStatus")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QHBoxLayout()
        self.buttons: dict[str, QPushButton] = {}
        for kind, text in (("enroll", "Enroll…"), ("import", "Import .p12…"), ("renew", "Renew…"),
                           ("revoke", "Revoke…"), ("refresh", "Refresh"), ("close", "Close")):
            button = QPushButton(text, self)
            button.setObjectName(f"{kind}Button")
            self.buttons[kind] = button
            buttons.addWidget(button)
            if kind == "revoke":
                buttons.addStretch(1)
        layout.addLayout(buttons)
        self.buttons["refresh"].clicked.connect(self.refresh)
        self.buttons["close"].clicked.connect(self.close)
        for button in self.buttons.values():
            button.setAccessibleName(button.text().rstrip("…"))
        for kind in ("enroll", "import"):
            self.buttons[kind].clicked.connect(lambda _=False, k=kind: self.open_wizard.emit(k, ""))
        for kind in ("renew", "revoke"):
            self.buttons[kind].clicked.connect(lambda _=False, k=kind: self._for_selected(k))
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._update_buttons())
        # "Next action" wraps: its rows grow again whenever the columns change width (shown, resized).
        self.table.horizontalHeader().sectionResized.connect(lambda *_: self.table.resizeRowsToContents())
        self.table.doubleClicked.connect(lambda *_: self._next_action())
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.table.resizeRowsToContents()  # the columns have their real widths only now

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.isWindow():
            self.close()
            return
        super().keyPressEvent(event)

    @property
    def certificates(self) -> Any:
        if self._certificates is None:
            from app.services.certificates.book import CertificateBook

            self._certificates = CertificateBook(self.facade.db, self.facade.config, actor="gui")
        return self._certificates

    def refresh(self) -> None:
        """Read the records (a local database query: quick) and show them."""
        try:
            self.certificates.refresh_statuses()
            self.rows = certificate_rows(self.certificates, today=self.today())
        except CsosError as exc:
            self.status.setText(exc.message)
            return
        cells = [(r.subscriber, r.certificate_id or "—", r.kind, r.status,
                  f"{r.registration} {r.registration_name}".strip() or "—", _date(r.registration_expires),
                  r.schedules or "—", r.key_location, _date(r.not_after),
                  "" if r.days_left is None else str(r.days_left), r.next_action) for r in self.rows]
        # A cell narrower than its text shows the whole text on hover (never a cut word with no way to read it).
        self.model.set_rows(cells, tooltips=[tuple(str(c) for c in row) for row in cells])
        self.table.resizeColumnsToContents()
        # "Next action" is the column people read: it takes the room left and wraps instead of scrolling sideways.
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(header.count() - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(True)
        self.table.resizeRowsToContents()
        self.empty.setVisible(not self.rows)
        self.table.setVisible(bool(self.rows))
        self.status.setText("" if self.rows else "")
        self._update_buttons()

    def selected(self) -> CertificateRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self.rows[rows[0].row()] if rows and rows[0].row() < len(self.rows) else None

    def select_fingerprint(self, fingerprint: str) -> bool:
        for index, row in enumerate(self.rows):
            if row.fingerprint.startswith(fingerprint):
                self.table.selectRow(index)
                return True
        return False

    def _update_buttons(self) -> None:
        row = self.selected()
        self.buttons["renew"].setEnabled(row is not None and row.status == "active")
        # A replaced (superseded) certificate can still be revoked: its key may sit on a lost computer.
        self.buttons["revoke"].setEnabled(row is not None and row.status in ("active", "expired", "superseded"))

    def _for_selected(self, kind: str) -> None:
        row = self.selected()
        if row is not None:
            self.open_wizard.emit(kind, row.fingerprint)

    def _next_action(self) -> None:
        row = self.selected()
        if row is None:
            return
        if row.action in ("renew", "enroll", "approvals"):
            self.open_wizard.emit(row.action, row.fingerprint if row.action == "renew" else "")
