"""The practice mailbox: the sandbox's "e-mail" and "postal" messages, so a trainee sees where the codes come from.

Training only: in production the codes arrive in real e-mail and by post. The panel refreshes by itself while shown.
Its first message is a welcome letter (made here, from ``app.training``): who plays whom in training, and the
practice coordinator's sign-in.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QHideEvent, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.services.enrollment.authority import EnrollmentAuthority, MailMessage
from app.ui.jobs import JobRunner
from app.ui.widgets import RowsTableModel, fit_on_show, make_table, training_banner

REFRESH_MS = 3000
CHANNEL_TEXT = {"email": "E-mail", "postal": "Letter (post)"}


class MailboxPanel(QWidget):
    def __init__(self, authority: EnrollmentAuthority, jobs: JobRunner, *, email: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.authority = authority
        self.jobs = jobs
        self.messages: list[MailMessage] = []
        self._loading = False
        self.setObjectName("mailboxPanel")
        self.setWindowTitle("Practice mailbox — TRAINING")
        self.resize(760, 480)
        fit_on_show(self)  # a small screen: the window never runs past its edges (nor over the wizard's buttons)
        layout = QVBoxLayout(self)
        layout.addWidget(training_banner(self, "TRAINING — the practice mailbox stands in for the e-mails and "
                                               "letters DEA's CA sends. The reference number comes by e-mail and "
                                               "the access code by post, separately, on purpose."))
        row = QHBoxLayout()
        row.addWidget(QLabel("Messages for:", self))
        self.email = QLineEdit(email, self)
        self.email.setObjectName("mailboxEmail")
        self.email.setAccessibleName("E-mail address")
        self.email.setPlaceholderText("your e-mail address")
        self.channel = QComboBox(self)
        self.channel.setObjectName("mailboxChannel")
        self.channel.setAccessibleName("Channel")
        self.channel.addItem("E-mail and post", None)
        self.channel.addItem("E-mail only", "email")
        self.channel.addItem("Post only", "postal")
        self.refresh_button = QPushButton("Refresh", self)
        self.refresh_button.setObjectName("mailboxRefresh")
        row.addWidget(self.email, 1)
        row.addWidget(self.channel)
        row.addWidget(self.refresh_button)
        layout.addLayout(row)
        self.model = RowsTableModel(("Received", "Channel", "Subject"), parent=self)
        splitter = QSplitter(Qt.Orientation.Vertical, self)
        self.table = make_table(splitter, self.model, name="mailboxTable", accessible_name="Messages",
                                stretch_column=2)
        self.body = QPlainTextEdit(splitter)
        self.body.setObjectName("mailboxBody")
        self.body.setAccessibleName("Message")
        self.body.setReadOnly(True)
        splitter.addWidget(self.table)
        splitter.addWidget(self.body)
        layout.addWidget(splitter, 1)
        self.status = QLabel(self)
        self.status.setObjectName("mailboxStatus")
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.close)
        bottom.addWidget(self.close_button)
        layout.addLayout(bottom)
        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        self.refresh_button.clicked.connect(self.refresh)
        self.email.returnPressed.connect(self.refresh)
        self.channel.currentIndexChanged.connect(lambda *_: self.refresh())
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())

    def set_email(self, email: str) -> None:
        self.email.setText(email)
        self.refresh()

    def refresh(self) -> None:
        email = self.email.text().strip().lower()
        if not email:
            self._loaded([])
            self.status.setText("Enter the e-mail address you applied with.")
            return
        if self._loading:
            return
        self._loading = True
        channel = self.channel.currentData()
        self.jobs.run("Reading the practice mailbox", lambda _c: self.authority.mailbox(email, channel),
                      on_success=self._loaded, on_failure=self._failed, owner=self)

    def _loaded(self, messages: Any) -> None:
        self._loading = False
        selected = self._selected_id()
        self.messages = list(reversed(messages)) + [welcome_message(self.email.text().strip())]  # newest first
        rows = [(f"{m.created_at.astimezone():%Y-%m-%d %H:%M}" if m.created_at else "",
                 CHANNEL_TEXT.get(m.channel, m.channel), m.subject) for m in self.messages]
        self.model.set_rows(rows, tooltips=rows)
        for column in (0, 1):  # the date and the channel always whole; the subject takes the rest
            self.table.resizeColumnToContents(column)
        self.status.setText(f"{len(self.messages)} message(s), the welcome letter included.")
        row = next((i for i, m in enumerate(self.messages) if m.id == selected), 0 if self.messages else None)
        if row is not None:
            self.table.selectRow(row)
        self._show_selected()

    def _failed(self, error: CsosError) -> None:
        self._loading = False
        self.status.setText(error.message)

    def _selected_id(self) -> int | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return self.messages[rows[0].row()].id if rows and rows[0].row() < len(self.messages) else None

    def _show_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows and rows[0].row() < len(self.messages):
            message = self.messages[rows[0].row()]
            self.body.setPlainText(f"To: {message.to}\nBy: {CHANNEL_TEXT.get(message.channel, message.channel)}\n"
                                   f"Subject: {message.subject}\n\n{message.body}")
        else:
            self.body.clear()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.timer.start()
        self.refresh()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        super().hideEvent(event)


def welcome_message(to: str) -> MailMessage:
    """The first letter of the practice mailbox (not from the sandbox: it explains the sandbox)."""
    from app.training import welcome_letter

    subject, body = welcome_letter()
    return MailMessage(id=0, to=to or "you", channel="email", kind="welcome", subject=subject, body=body,
                       created_at=None)
