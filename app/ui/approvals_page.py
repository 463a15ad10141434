"""Coordinator approvals (S3, S4): pending applications and renewals for the coordinator's registrations, with their
details and power-of-attorney documents; approve, or reject with a reason.

The coordinator signs in to the portal (password, then the one-time code from their e-mail). Every call goes through
the job runner; the list refreshes after each decision.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QKeyEvent, QShowEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.services.enrollment.authority import Application, EnrollmentAuthority, PortalSession
from app.services.enrollment.flows import ROLE_TEXT
from app.ui import messages, theme
from app.ui.jobs import JobRunner
from app.ui.widgets import FieldMessage, RowsTableModel, fit_on_show, make_table, training_banner


def _when(application: Application) -> str:
    return f"{application.created_at.astimezone():%Y-%m-%d %H:%M}" if application.created_at else ""


def approval_question(app: Application, *, opened: bool) -> str:
    """What the coordinator confirms: who, what for, and whether the documents were looked at."""
    who = f"{app.full_name} ({app.applicant_email})"
    what = ", ".join(app.awaiting_you_for or app.registrations)
    if not app.poa_attached:
        documents = "This application has no power-of-attorney document."
    elif opened:
        documents = "You opened the power of attorney."
    else:
        documents = ("You have NOT opened the power of attorney yet. Press “Not yet”, then “Open power of "
                     "attorney…” to read it before deciding.")
    return (f"Approve {who} for {what}? The certification authority then sends them the codes to get their "
            f"certificate.\n\n{documents}")


class ApprovalsPage(QWidget):
    decided = Signal(str, bool)  # application id, approved

    def __init__(self, authority: EnrollmentAuthority, jobs: JobRunner, *, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.authority = authority
        self.jobs = jobs
        self.session: PortalSession | None = None
        self.challenge_id: str | None = None
        self.pending: list[Application] = []
        self.busy = False
        self.opened_poa: set[str] = set()  # applications whose power of attorney was opened here
        self.practice_account: Any = None  # training: the practice coordinator the trainee plays
        self.mailbox_opener: Any = None  # training: opens the practice mailbox for an address
        self.setObjectName("approvalsPage")
        self.setWindowTitle("Coordinator approvals" + (" — TRAINING" if authority.training else ""))
        self.resize(900, 560)
        fit_on_show(self)  # a small screen: the window never runs past its edges (nor over the wizard's buttons)
        layout = QVBoxLayout(self)
        if authority.training:
            layout.addWidget(training_banner(self, "TRAINING — practice approvals on the training portal"))
        self.stack = QStackedWidget(self)
        layout.addWidget(self.stack, 1)
        self.status = QLabel(self)
        self.status.setObjectName("approvalsStatus")
        self.status.setWordWrap(True)
        self.status.setStyleSheet(theme.FIELD_ERROR_STYLE)
        layout.addWidget(self.status)
        self._build_sign_in()
        self._build_review()
        row = QHBoxLayout()
        row.addStretch(1)
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.close)
        row.addWidget(self.close_button)
        layout.addLayout(row)
        if not authority.automatic:
            self.stack.setCurrentIndex(0)
            self.status.setText(f"Coordinators review applications on DEA's CSOS portal: {authority.portal_url}")

    # -- sign in --------------------------------------------------------------------------------------------------

    def _build_sign_in(self) -> None:
        page = QWidget(self)
        form = QFormLayout(page)
        intro = QLabel("Sign in with your coordinator account. A one-time code is sent to your e-mail after the "
                       "password.", page)
        intro.setWordWrap(True)
        form.addRow(intro)
        self.practice_note = QLabel(page)
        self.practice_note.setWordWrap(True)
        self.practice_note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.practice_note.setStyleSheet("QLabel { background: #fff4d6; color: #1f1f1f; border: 1px solid #e0c77a;"
                                         " border-radius: 4px; padding: 8px; }")
        self.practice_button = QPushButton("Sign in as the practice coordinator", page)
        self.practice_button.clicked.connect(lambda: self.use_practice_coordinator())
        self.mailbox_button = QPushButton("Open the practice mailbox", page)
        self.mailbox_button.clicked.connect(self._open_mailbox)
        for widget in (self.practice_note, self.practice_button, self.mailbox_button):
            widget.setVisible(False)
        form.addRow(self.practice_note)
        practice_row = QHBoxLayout()
        practice_row.addWidget(self.practice_button)
        practice_row.addWidget(self.mailbox_button)
        practice_row.addStretch(1)
        form.addRow(practice_row)
        self.email = QLineEdit(page)
        self.email.setObjectName("coordinatorEmail")
        self.email.setAccessibleName("E-mail address")
        self.password = QLineEdit(page)
        self.password.setObjectName("coordinatorPassword")
        self.password.setAccessibleName("Password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.send_code = QPushButton("Send me the code", page)
        self.send_code.setObjectName("sendCode")
        self.code = QLineEdit(page)
        self.code.setObjectName("coordinatorCode")
        self.code.setAccessibleName("Sign-in code")
        self.code.setEnabled(False)
        self.sign_in = QPushButton("Sign in", page)
        self.sign_in.setObjectName("signIn")
        self.sign_in.setEnabled(False)
        form.addRow("E-mail address:", self.email)
        form.addRow("Password:", self.password)
        form.addRow("", self.send_code)
        form.addRow("Sign-in code:", self.code)
        form.addRow("", self.sign_in)
        self.send_code.clicked.connect(self._send_code)
        self.sign_in.clicked.connect(self._sign_in)
        self.stack.addWidget(page)
        if self.authority.training:
            self.practice_button.setVisible(True)
            self.practice_note.setText("TRAINING: the practice coordinator is played by you. Press “Sign in as the "
                                       "practice coordinator” to fill in their sign-in.")
            self.practice_note.setVisible(True)

    def use_practice_coordinator(self, registrations: Any = ()) -> Any:
        """Training only: fill in the sign-in of the practice coordinator (read from the sandbox seed)."""
        if not self.authority.training:
            return None
        from app.training import practice_coordinator_for

        account = practice_coordinator_for(tuple(registrations or ()))
        if account is None:
            self.status.setText("The practice coordinator's sign-in could not be read from the training data.")
            return None
        self.practice_account = account
        self.email.setText(account.email)
        self.password.setText(account.password)
        self.practice_note.setText(
            f"TRAINING: you now play {account.full_name}, the practice coordinator of {account.registration_name} "
            f"({account.registration}). Sign-in: e-mail {account.email}, password {account.password} (filled in). "
            "Press “Send me the code”; the code arrives in the practice mailbox.")
        self.practice_note.setVisible(True)
        self.mailbox_button.setVisible(True)
        self.send_code.setFocus()
        return account

    def _open_mailbox(self) -> None:
        if self.mailbox_opener is not None:
            self.mailbox_opener(self.email.text().strip())

    def _send_code(self) -> None:
        email, password = self.email.text().strip(), self.password.text()
        if not email or not password:
            self.status.setText("Enter your e-mail address and password.")
            return
        self._run("Signing in", lambda: self.authority.start_sign_in(email=email, password=password),
                  self._code_sent)

    def _code_sent(self, challenge: Any) -> None:
        self.challenge_id = challenge.challenge_id
        self.password.clear()
        self.code.setEnabled(True)
        self.sign_in.setEnabled(True)
        self.code.setFocus()
        self.status.setText(challenge.message or "A code was sent to your e-mail.")
        if self.authority.training:
            self.mailbox_button.setVisible(True)
            self.status.setText((challenge.message or "A code was sent.") + " In training it is in the practice "
                                "mailbox: press “Open the practice mailbox”.")

    def _sign_in(self) -> None:
        challenge, code = self.challenge_id, self.code.text().strip()
        if not challenge or not code:
            self.status.setText("Enter the code from the e-mail.")
            return
        self._run("Signing in", lambda: self.authority.finish_sign_in(challenge_id=challenge, code=code),
                  self._signed_in)

    def _signed_in(self, session: Any) -> None:
        self.session = session
        self.code.clear()
        self.stack.setCurrentIndex(1)
        self.who.setText(f"Signed in as {session.full_name} ({session.email}).")
        self.refresh()

    # -- review ---------------------------------------------------------------------------------------------------

    def _build_review(self) -> None:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        top = QHBoxLayout()
        self.who = QLabel(page)
        self.who.setObjectName("signedInAs")
        self.refresh_button = QPushButton("Refresh", page)
        self.refresh_button.setObjectName("refreshApprovals")
        top.addWidget(self.who, 1)
        top.addWidget(self.refresh_button)
        layout.addLayout(top)
        self.model = RowsTableModel(("Applicant", "Role", "Kind", "Registrations", "Submitted", "Power of attorney"),
                                    parent=page)
        self.table = make_table(page, self.model, name="approvalsTable", accessible_name="Pending applications",
                                stretch_column=0)
        layout.addWidget(self.table, 1)
        self.details = QLabel(page)
        self.details.setObjectName("applicationDetails")
        self.details.setWordWrap(True)
        layout.addWidget(self.details)
        actions = QHBoxLayout()
        self.open_poa = QPushButton("Open power of attorney…", page)
        self.open_poa.setObjectName("openPoa")
        self.approve_button = QPushButton("Approve", page)
        self.approve_button.setObjectName("approve")
        self.reason = QLineEdit(page)
        self.reason.setObjectName("rejectReason")
        self.reason.setAccessibleName("Reason for rejecting")
        self.reason.setPlaceholderText("Reason for rejecting (the applicant sees it)")
        self.reject_button = QPushButton("Reject", page)
        self.reject_button.setObjectName("reject")
        actions.addWidget(self.open_poa)
        actions.addStretch(1)
        actions.addWidget(self.approve_button)
        actions.addWidget(self.reason, 2)
        actions.addWidget(self.reject_button)
        layout.addLayout(actions)
        self.reason_problem = FieldMessage(self.reason, page, name="rejectReasonProblem")
        layout.addWidget(self.reason_problem)
        self.refresh_button.clicked.connect(self.refresh)
        self.approve_button.clicked.connect(lambda: self._decide(True))
        self.reject_button.clicked.connect(lambda: self._decide(False))
        self.open_poa.clicked.connect(self._open_poa)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._show_selected())
        self.stack.addWidget(page)
        self._show_selected()

    def refresh(self) -> None:
        if self.session is None:
            return
        session = self.session
        self._run("Loading pending applications", lambda: self.authority.pending_reviews(session), self._loaded)

    def _loaded(self, pending: Any) -> None:
        self.pending = list(pending)
        self.model.set_rows([(f"{a.full_name} <{a.applicant_email}>", ROLE_TEXT.get(a.role, (a.role,))[0],
                              "Renewal" if a.kind == "renewal" else "New certificate",
                              ", ".join(a.awaiting_you_for or a.registrations), _when(a),
                              "attached" if a.poa_attached else "—") for a in self.pending])
        self.status.setText("Nothing waits for you." if not self.pending else
                            f"{len(self.pending)} application(s) wait for your decision.")
        if self.pending:
            self.table.selectRow(0)
        self._show_selected()

    def selected(self) -> Application | None:
        rows = self.table.selectionModel().selectedRows()
        return self.pending[rows[0].row()] if rows and rows[0].row() < len(self.pending) else None

    def _show_selected(self) -> None:
        app = self.selected()
        for button in (self.approve_button, self.reject_button):
            button.setEnabled(app is not None and not self.busy)
        self.open_poa.setEnabled(app is not None and app.poa_attached and not self.busy)
        if app is None:
            self.details.setText("Select an application to see its details.")
            return
        proofing = app.identity_proofing or {}
        lines = [f"<b>{app.full_name}</b> ({app.applicant_email}) applies as "
                 f"<b>{ROLE_TEXT.get(app.role, (app.role,))[0]}</b> for {', '.join(app.registrations)}."]
        for key in ("title", "phone"):
            if app.person.get(key):
                lines.append(f"{key.title()}: {app.person[key]}")
        if app.kind == "renewal":
            lines.append(f"Renewal of certificate {app.renews_certificate}, signed with that certificate.")
        else:
            lines.append(f"Identity proofing: {proofing.get('status', 'unknown')} — {proofing.get('method', '')}"
                         + (f", {proofing.get('document_type')} ending {proofing.get('document_last4')}"
                            if proofing.get("document_last4") else ""))
        lines.append("Power of attorney: " + ("attached — open it before deciding." if app.poa_attached
                                              else "none"))
        self.details.setText("<br>".join(lines))

    def _decide(self, approve: bool) -> None:
        app, session = self.selected(), self.session
        if app is None or session is None:
            return
        reason = self.reason.text().strip()
        self.reason_problem.clear()
        if not approve and not reason:
            self.reason_problem.show_problem("Give the reason: the applicant sees it.")
            return
        if approve and not messages.confirm(self, "Approve this application?", approval_question(
                app, opened=app.id in self.opened_poa), yes_text="Approve", no_text="Not yet"):
            return

        def done(result: Any) -> None:
            self.reason.clear()
            self.decided.emit(app.id, approve)
            self.refresh()

        self._run("Recording your decision", lambda: self.authority.decide(session, app.id, approve=approve,
                                                                             reason=reason), done)

    def _open_poa(self) -> None:
        app, session = self.selected(), self.session
        if app is None or session is None:
            return

        def save(content: Any) -> Path:
            folder = Path(tempfile.mkdtemp(prefix="csos-poa-"))
            target = folder / f"power-of-attorney-{app.id[:8]}.pdf"
            target.write_bytes(content)
            target.chmod(0o600)
            return target

        def opened(path: Path) -> None:
            self.opened_poa.add(app.id)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

        self._run("Fetching the power of attorney", lambda: save(self.authority.poa_document(session, app.id)),
                  opened)

    def showEvent(self, event: QShowEvent) -> None:
        """A window of its own stays on the screen: no wider than it, and moved left or up when it would run past
        the right or bottom edge (a 1366-pixel laptop screen)."""
        super().showEvent(event)
        screen = self.screen()
        if not self.isWindow() or screen is None:
            return
        area = screen.availableGeometry()
        if self.width() > area.width() - 16 or self.height() > area.height() - 40:
            self.resize(min(self.width(), area.width() - 16), min(self.height(), area.height() - 40))
        frame = self.frameGeometry()
        x = min(max(frame.x(), area.x()), area.x() + area.width() - frame.width())
        y = min(max(frame.y(), area.y()), area.y() + area.height() - frame.height())
        if (x, y) != (frame.x(), frame.y()):
            self.move(x, y)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.isWindow():
            self.close()
            return
        super().keyPressEvent(event)

    # -- plumbing -------------------------------------------------------------------------------------------------

    def _run(self, title: str, work: Any, done: Any) -> None:
        self.busy = True
        self.status.setText(title + "…")
        self._show_selected()

        def ok(result: Any) -> None:
            self.busy = False
            done(result)
            self._show_selected()

        def failed(error: CsosError) -> None:
            self.busy = False
            self.status.setText(error.message)
            self._show_selected()

        self.jobs.run(title, lambda _c: work(), on_success=ok, on_failure=failed, owner=self)
