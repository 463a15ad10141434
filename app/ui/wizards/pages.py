"""One page class per wizard view. Pages only render ``flow.data`` / ``flow.context`` and collect what was entered.

Every entry widget's objectName is its data key, so the host can point at the entry a problem is about (and tests
and screen readers find it). Passwords, PINs and access codes are masked (K1).
"""

from __future__ import annotations

import datetime as dt
import html
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.services.enrollment.certificate_overview import certificate_id
from app.services.enrollment.enroll_flow import AGREEMENT_TEXT, ROLE_TEXT, application_summary
from app.services.enrollment.flow_common import (
    FIPS_NOTICE,
    KEY_CHOICE_SOFTWARE_TEXT,
    KEY_CHOICE_TOKEN_TEXT,
    Flow,
)
from app.services.enrollment.import_flow import K2_WARNING
from app.ui.widgets import FieldMessage

Values = dict[str, Any]


def _when(text: Any) -> str:
    if not text:
        return "—"
    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return f"{moment.astimezone():%Y-%m-%d}"


class WizardPage(QWidget):
    """A form: explanation text, entries (each with a problem line under it), collected into a dict."""

    view = ""
    #: emitted when the page needs the host (e.g. "open_mailbox", "test_order", "open_url:<url>", "restart")
    action_requested = Signal(str)
    #: emitted when the person changes an entry (the host clears its own message line)
    entry_changed = Signal()

    def __init__(self, flow: Flow, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.flow = flow
        self.data = flow.data
        self.context = flow.context
        self.setObjectName(f"page_{self.view or 'generic'}")
        self._getters: dict[str, Callable[[], Any]] = {}
        self.problems: dict[str, FieldMessage] = {}
        self.layout_ = QVBoxLayout(self)
        self.layout_.setContentsMargins(0, 0, 0, 0)
        self.layout_.setSpacing(8)
        self.build()
        self.layout_.addStretch(1)

    # -- building blocks ----------------------------------------------------------------------------------------------

    def build(self) -> None:
        """Subclasses add their text and entries here."""

    def text(self, content: str, *, rich: bool = False, name: str = "") -> QLabel:
        label = QLabel(content if rich else html.escape(content).replace("\n", "<br>"), self)
        label.setTextFormat(Qt.TextFormat.RichText)
        label.setWordWrap(True)
        label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        label.setOpenExternalLinks(False)
        label.linkActivated.connect(lambda url: self.action_requested.emit(f"open_url:{url}"))
        if name:
            label.setObjectName(name)
        self.layout_.addWidget(label)
        return label

    def notice(self, content: str, *, name: str = "notice") -> QLabel:
        label = self.text(content, name=name)
        label.setStyleSheet("QLabel { background: #fff4d6; color: #1f1f1f; border: 1px solid #e0c77a;"
                            " border-radius: 4px; padding: 8px; }")
        return label

    def details(self, button_text: str, content: str, *, name: str) -> QLabel:
        """Text one click away (regulation wording, technical details): hidden until the person asks."""
        toggle = QPushButton(button_text, self)
        toggle.setObjectName(f"{name}Toggle")
        toggle.setCheckable(True)
        toggle.setFlat(True)
        toggle.setStyleSheet("QPushButton { text-align: left; text-decoration: underline; }")
        row = QHBoxLayout()
        row.addWidget(toggle)
        row.addStretch(1)
        self.layout_.addLayout(row)
        label = self.notice(content, name=name)
        label.setVisible(False)
        toggle.toggled.connect(label.setVisible)
        return label

    def _problem(self, name: str, widget: QWidget) -> FieldMessage:
        """The problem line under an entry; it goes away as soon as the entry is changed (the person fixed it)."""
        message = FieldMessage(widget, self, name=f"{name}Problem")
        self.problems[name] = message
        signal = {QLineEdit: "textEdited", QCheckBox: "toggled", QComboBox: "currentIndexChanged",
                  QListWidget: "itemChanged"}
        for kind, name_of_signal in signal.items():
            if isinstance(widget, kind):
                getattr(widget, name_of_signal).connect(lambda *_: self._entry_changed(message))
        return message

    def _entry_changed(self, message: FieldMessage) -> None:
        message.clear()
        self.entry_changed.emit()

    def line(self, name: str, label: str, *, secret: bool = False, placeholder: str = "", hint: str = "",
             value: Any = None, show_toggle: str = "") -> QLineEdit:
        caption = QLabel(label, self)
        edit = QLineEdit(self)
        edit.setObjectName(name)
        edit.setAccessibleName(label.rstrip(":"))
        caption.setBuddy(edit)
        if secret:
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setInputMethodHints(Qt.InputMethodHint.ImhHiddenText | Qt.InputMethodHint.ImhSensitiveData
                                     | Qt.InputMethodHint.ImhNoPredictiveText)
        else:
            shown = self.data.get(name) if value is None else value
            edit.setText("" if shown is None else str(shown))
        edit.setPlaceholderText(placeholder)
        self.layout_.addWidget(caption)
        if secret and show_toggle:
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            toggle = QCheckBox(show_toggle, self)
            toggle.setObjectName(f"{name}Show")
            toggle.setAccessibleName(show_toggle)
            toggle.toggled.connect(lambda shown: edit.setEchoMode(
                QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password))
            row.addWidget(toggle)
            self.layout_.addLayout(row)
        else:
            self.layout_.addWidget(edit)
        if hint:
            small = QLabel(hint, self)
            small.setWordWrap(True)
            small.setStyleSheet("QLabel { color: palette(dark); }")
            self.layout_.addWidget(small)
        self.layout_.addWidget(self._problem(name, edit))
        self._getters[name] = lambda: edit.text().strip() if not secret else edit.text()
        return edit

    def check(self, name: str, label: str) -> QCheckBox:
        box = QCheckBox(label, self)
        box.setObjectName(name)
        box.setChecked(self.data.get(name) is True)
        self.layout_.addWidget(box)
        self.layout_.addWidget(self._problem(name, box))
        self._getters[name] = box.isChecked
        return box

    def choice(self, name: str, options: list[tuple[Any, str, str]], *, default: Any = None) -> QButtonGroup:
        """Radio buttons, each with a plain explanation under it."""
        group = QButtonGroup(self)
        buttons: dict[Any, QRadioButton] = {}
        current = self.data.get(name, default)
        container = QWidget(self)
        container.setObjectName(name)
        box = QVBoxLayout(container)
        box.setContentsMargins(0, 0, 0, 0)
        for value, title, explanation in options:
            button = QRadioButton(title, container)
            button.setObjectName(f"{name}_{value}")
            button.setChecked(value == current)
            group.addButton(button)
            buttons[value] = button
            box.addWidget(button)
            if explanation:
                detail = QLabel(explanation, container)
                detail.setWordWrap(True)
                detail.setContentsMargins(24, 0, 0, 6)
                box.addWidget(detail)
        self.layout_.addWidget(container)
        problem = self._problem(name, container)
        self.layout_.addWidget(problem)
        self._getters[name] = lambda: next((v for v, b in buttons.items() if b.isChecked()), None)
        group.buttonToggled.connect(lambda *_: self.changed())
        group.buttonToggled.connect(lambda *_: self._entry_changed(problem))
        return group

    def file(self, name: str, label: str, *, file_filter: str, save: bool = False) -> QLineEdit:
        caption = QLabel(label, self)
        row = QHBoxLayout()
        edit = QLineEdit(str(self.data.get(name) or ""), self)
        edit.setObjectName(name)
        edit.setAccessibleName(label.rstrip(":"))
        caption.setBuddy(edit)
        browse = QPushButton("Choose…", self)
        browse.setObjectName(f"{name}Browse")

        def pick() -> None:
            chooser = QFileDialog.getSaveFileName if save else QFileDialog.getOpenFileName
            path, _ = chooser(self, label.rstrip(":"), edit.text() or str(Path.home()), file_filter)
            if path:
                edit.setText(path)

        browse.clicked.connect(pick)
        row.addWidget(edit, 1)
        row.addWidget(browse)
        self.layout_.addWidget(caption)
        self.layout_.addLayout(row)
        self.layout_.addWidget(self._problem(name, edit))
        self._getters[name] = lambda: edit.text().strip()
        return edit

    def summary(self, rows: list[tuple[str, str]], *, name: str = "summary") -> QWidget:
        box = QWidget(self)
        box.setObjectName(name)
        form = QFormLayout(box)
        form.setContentsMargins(12, 4, 0, 4)
        for label, value in rows:
            shown = QLabel(value or "—", box)
            shown.setWordWrap(True)
            shown.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            form.addRow(f"{label}:", shown)
        self.layout_.addWidget(box)
        return box

    def button(self, text: str, action: str, *, name: str) -> QPushButton:
        push = QPushButton(text, self)
        push.setObjectName(name)
        push.clicked.connect(lambda: self.action_requested.emit(action))
        row = QHBoxLayout()
        row.addWidget(push)
        row.addStretch(1)
        self.layout_.addLayout(row)
        return push

    def mailbox_hint(self, what: str, *, verb: str = "arrives") -> None:
        if self.flow.authority.training:
            self.notice(f"TRAINING: {what} {verb} in the practice mailbox, not in real e-mail or post.",
                        name="mailboxHint")
            self.button("Open the practice mailbox", "open_mailbox", name="openMailbox")

    def changed(self) -> None:
        """An entry changed in a way that changes the page (subclasses refresh what depends on it)."""

    # -- the host's side ----------------------------------------------------------------------------------------------

    def collect(self) -> Values:
        return {name: get() for name, get in self._getters.items()}

    def show_problem(self, field: str | None, message: str) -> bool:
        """Show ``message`` under ``field`` if this page has it; False if the host must show it elsewhere."""
        target = self.problems.get(field or "")
        if target is None:
            return False
        target.show_problem(message)
        if target.field is not None:
            target.field.setFocus()
        return True

    def clear_problems(self) -> None:
        for message in self.problems.values():
            message.clear()


# ---------------------------------------------------------------------------------------------------------------------
# Shared pages


class AccountPage(WizardPage):
    view = "account"

    def build(self) -> None:
        if self.flow.name == "enrollment":
            self.text("Your application is sent through your account on the CSOS portal. Create one now, or sign in "
                      "if you have one. After the password, a one-time code is sent to your e-mail (second factor).")
            self.choice("account_choice", [("new", "Create my portal account", ""),
                                           ("existing", "I already have a portal account", "")], default="new")
        else:
            self.text("Without the key, you revoke the certificate through your portal account. Sign in with the "
                      "e-mail address and password of that account.")
        self.line("email", "E-mail address:", value=self.data.get("email") or
                  (self.data.get("certificate") or {}).get("email"))
        self.line("password", "Portal password:", secret=True,
                  hint="At least 12 characters; not your name, the pharmacy's name or DEA number.")
        self.confirm = self.line("password_confirm", "Portal password again (new account only):", secret=True) \
            if self.flow.name == "enrollment" else None
        self.mailbox_hint("The one-time sign-in code")
        self.changed()

    def changed(self) -> None:
        if getattr(self, "confirm", None) is not None:
            self.confirm.setEnabled(self.collect().get("account_choice", "new") == "new")


class SignInCodePage(WizardPage):
    view = "sign_in_code"

    def build(self) -> None:
        self.text(self.data.get("sign_in_message") or "A one-time sign-in code was sent to your e-mail.")
        self.line("sign_in_code", "Sign-in code (6 digits):", placeholder="123456")
        self.mailbox_hint("The code")


class KeyLocationPage(WizardPage):
    view = "key_location"

    def build(self) -> None:
        made = self.data.get("key_id") and self.data.get("csr_pem")
        if made:
            self.text(f"Your key is already made: {self.data.get('key_description', '')}. Press Next to go on.",
                      name="keyAlreadyMade")
        self.text("Your private key signs your orders. It is made here and never leaves the place you choose; only "
                  "you may use it, with a password or PIN you keep secret. Where will it live?")
        self.choice("key_store", [
            ("software", "This computer, with a password", KEY_CHOICE_SOFTWARE_TEXT),
            ("token", "A USB security token", KEY_CHOICE_TOKEN_TEXT),
        ], default="software")
        self.details("Why does this matter?", self.context.get("fips_notice") or FIPS_NOTICE, name="fipsNotice")
        self.password = self.line("key_password", "New key password:", secret=True,
                                  hint="At least 12 characters; not your name, the pharmacy's name or DEA "
                                       "number. Nobody can recover it: if it is lost, the certificate must be "
                                       "revoked and you enroll again.")
        self.password_confirm = self.line("key_password_confirm", "Key password again:", secret=True)
        caption = QLabel("Token:", self)
        self.tokens = QComboBox(self)
        self.tokens.setObjectName("token_serial")
        self.tokens.setAccessibleName("Token")
        caption.setBuddy(self.tokens)
        for token in self.context.get("tokens") or []:
            self.tokens.addItem(f"{token['label']} — {token['manufacturer']} {token['model']}, serial "
                                f"{token['serial']}" + (" (PIN pad)" if token["pin_pad"] else ""), token["serial"])
        wanted = self.data.get("token_serial")
        if wanted and self.tokens.findData(wanted) >= 0:
            self.tokens.setCurrentIndex(self.tokens.findData(wanted))
        self.layout_.addWidget(caption)
        self.layout_.addWidget(self.tokens)
        self.no_token: QLabel | None = None
        if not self.context.get("tokens"):
            self.no_token = self.text(self.context.get("token_problem") or "No token found. Insert your token, then "
                                      "go Back and Next to look again.", name="noToken")
        self.layout_.addWidget(self._problem("token_serial", self.tokens))
        self.pin = self.line("key_pin", "Token PIN:", secret=True)
        self.pin_pad_note = self.text("This reader has a PIN pad: type the PIN on the reader when it asks.",
                                      name="pinPadNote")
        self._getters["token_serial"] = lambda: self.tokens.currentData()
        self.tokens.currentIndexChanged.connect(lambda *_: self.changed())
        self.changed()

    def _token(self) -> dict[str, Any] | None:
        serial = self.tokens.currentData()
        return next((t for t in self.context.get("tokens") or [] if t["serial"] == serial), None)

    def changed(self) -> None:
        if not hasattr(self, "pin_pad_note"):
            return
        software = self.collect().get("key_store", "software") == "software"
        made = bool(self.data.get("key_id"))
        for widget in (self.password, self.password_confirm):
            widget.setEnabled(software and not made)
        token = self._token()
        pin_pad = bool(token and token.get("pin_pad"))
        self.tokens.setEnabled(not software and not made)
        self.pin.setEnabled(not software and not pin_pad)
        self.pin_pad_note.setVisible(not software and pin_pad)
        if self.no_token is not None:  # "No token found. Insert your token…" read as a problem when none was wanted
            self.no_token.setVisible(not software)


class UnlockPage(WizardPage):
    view = "unlock"

    def build(self) -> None:
        renewal = self.flow.name == "renewal"
        on_token = self.context.get("current_on_token" if renewal else "on_token")
        pin_pad = self.context.get("current_pin_pad" if renewal else "pin_pad")
        if renewal:
            self.text("The renewal request is signed with your current certificate, so the CA knows it is you. "
                      "Unlock the current key:")
        else:
            self.text("The revocation request is signed with the key itself; after the CA confirms, the key is "
                      "destroyed. Unlock it:")
        if pin_pad:
            self.text("Your reader has a PIN pad: press Next, then type the PIN on the reader.", name="pinPadNote")
        else:
            self.line("current_secret", "Token PIN:" if on_token else "Key password:", secret=True)


class InstalledPage(WizardPage):
    view = "installed"

    def build(self) -> None:
        installed = self.data.get("installed") or []
        for item in installed:
            self.summary([("Subscriber", item.get("subscriber", "")),
                          ("Certificate ID", certificate_id(item.get("fingerprint"))),
                          ("Kind", "Coordinator (cannot sign orders)" if item.get("kind") == "administrative"
                           else "Signing"),
                          ("Registration", f"{item.get('registration', '')} {item.get('registration_name', '')}"),
                          ("Schedules", (item.get("schedules") or "").replace(",", ", ")),
                          ("Valid until", _when(item.get("not_after"))),
                          ("Key", item.get("key_location", ""))], name="installedSummary")
        problems = self.data.get("check_problems") or []
        if problems:
            self.notice("The check found problems a supplier would also find:\n• " + "\n• ".join(problems),
                        name="checkResult")
        else:
            self.text("✔ Checked like a supplier checks it: trusted chain, not revoked, valid now.",
                      name="checkResult")
        if self.flow.name == "renewal":
            self.text("Your old certificate is now marked superseded. Orders use the new one by themselves: "
                      "nothing else to set up.", name="supersededNote")
        if self.data.get("test_order_registration"):
            self.text("Try it: prepare a test order and sign it with your new certificate.")
            self.button("Prepare a test order", "test_order", name="testOrder")


class RejectedPage(WizardPage):
    view = "rejected"

    def build(self) -> None:
        reason = self.data.get("application_reason") or self.data.get("renewal_reason") or "No reason was given."
        self.text("Your coordinator did not approve the request.")
        self.summary([("Reason", reason)], name="rejectionReason")
        self.text("Talk to your coordinator. When the problem is solved, start a new application.")


# ---------------------------------------------------------------------------------------------------------------------
# Enrollment


class WelcomePage(WizardPage):
    view = "welcome"

    def build(self) -> None:
        where = ("the training portal (practice only)" if self.flow.authority.training
                 else "DEA's CSOS portal, which opens in your web browser at the steps that need it")
        self.text(f"This wizard takes you from no certificate to a working CSOS signing certificate through {where}."
                  "\n\nHave ready:\n• your identity document (driver's license or passport)\n• the DEA "
                  "registration number(s) you will order for\n• for Power of Attorney: the signed power-of-attorney "
                  "document as a PDF\n• a USB token, if your pharmacy uses one\n\nYour coordinator approves the "
                  "application. You can close CSOS Desk while you wait; the wizard continues where it stopped.")
        if self.flow.authority.training:  # a new user wondered whether to fetch her real driver's license
            self.notice("TRAINING: made-up details will do — any name, e-mail address and document number; nothing "
                        "is checked against real records, and every message arrives in the practice mailbox.",
                        name="trainingWelcome")


class RolePage(WizardPage):
    view = "role"

    def build(self) -> None:
        self.text("Which role do you apply for?")
        self.choice("role", [(key, title, text) for key, (title, text) in ROLE_TEXT.items()])


class PersonPage(WizardPage):
    view = "person"

    def build(self) -> None:
        self.text("As on your identity document. The certificate will carry this name.")
        self.line("full_name", "Full name:")
        self.line("email", "E-mail address:", hint="The reference number is sent here." + (
            " In training it arrives in the practice mailbox, not in real e-mail." if self.flow.authority.training
            else ""))
        self.line("title", "Job title (optional):")
        self.line("phone", "Phone (optional):")


class RegistrationsPage(WizardPage):
    view = "registrations"

    def build(self) -> None:
        self.text("Tick each DEA registration you will sign orders for. You get one certificate per registration.")
        self.list = QListWidget(self)
        self.list.setObjectName("registrations")
        self.list.setAccessibleName("Registrations")
        chosen = set(self.data.get("registrations") or [])
        for reg in self.context.get("registrations") or []:
            expires = _when(reg.get("expires_at"))
            item = QListWidgetItem(f"{reg['dea_number']} — {reg['name']}, {reg.get('city', '')} "
                                   f"{reg.get('state', '')}\n     schedules {', '.join(reg.get('schedules') or [])}"
                                   f" · registration expires {expires}")
            item.setData(Qt.ItemDataRole.UserRole, reg["dea_number"])
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if reg["dea_number"] in chosen else Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.setMinimumHeight(120)
        self.layout_.addWidget(self.list)
        if self.context.get("registrations_problem"):
            self.notice(self.context["registrations_problem"], name="registrationsProblem")
        self.layout_.addWidget(self._problem("registrations", self.list))
        self._getters["registrations"] = self._checked
        if not self.list.count():
            self.text("No registration is listed yet. Add yours exactly as on your DEA registration certificate; "
                      "it appears here once saved.", name="noRegistrations")
        self.button("Add a registration…", "add_registration", name="addRegistration")

    def _checked(self) -> list[str]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]


class PoaPage(WizardPage):
    view = "poa"

    def build(self) -> None:
        self.text("Attach the power of attorney the registrant signed for you (a PDF, at most 5 MB). Your "
                  "coordinator sees it when reviewing your application.")
        edit = self.file("poa_file", "Power-of-attorney document:", file_filter="PDF files (*.pdf)")
        if self.flow.authority.training:
            from app.training import SAMPLE_POA

            self.notice("TRAINING: no real document is needed. Use the practice sample: a power of attorney in "
                        "DEA's wording, filled in for the practice pharmacy.", name="samplePoaHint")
            sample = QPushButton("Use the practice sample", self)
            sample.setObjectName("useSamplePoa")
            sample.clicked.connect(lambda: edit.setText(str(SAMPLE_POA)))
            row = QHBoxLayout()
            row.addWidget(sample)
            row.addStretch(1)
            self.layout_.addLayout(row)


class AgreementPage(WizardPage):
    view = "agreement"

    def build(self) -> None:
        box = QPlainTextEdit(AGREEMENT_TEXT, self)
        box.setObjectName("agreementText")
        box.setAccessibleName("Subscriber agreement")
        box.setReadOnly(True)
        box.setMinimumHeight(140)
        self.layout_.addWidget(box)
        self.check("agreement_accepted", "I have read and accept the subscriber agreement")


class IdentityPage(WizardPage):
    view = "identity"

    def build(self) -> None:
        if self.data.get("automatic"):
            self.notice("TRAINING: this identity check is simulated — nothing is checked against real records. "
                        "A document number ending in 0000 practises a failed check.", name="trainingIdentity")
            caption = QLabel("Identity document:", self)
            combo = QComboBox(self)
            combo.setObjectName("identity_document_type")
            combo.setAccessibleName("Identity document")
            for value, text in (("drivers_license", "Driver's license"), ("passport", "Passport"),
                                ("state_id", "State ID card")):
                combo.addItem(text, value)
            current = combo.findData(self.data.get("identity_document_type") or "drivers_license")
            combo.setCurrentIndex(max(current, 0))
            caption.setBuddy(combo)
            self.layout_.addWidget(caption)
            self.layout_.addWidget(combo)
            self.layout_.addWidget(self._problem("identity_document_type", combo))
            self._getters["identity_document_type"] = combo.currentData
            self.line("identity_document_number", "Document number:",
                      hint="Sent once with the application; CSOS Desk does not keep it.")
            self.line("date_of_birth", "Date of birth:", placeholder="04/02/1980",
                      hint="Month/day/year, e.g. 04/02/1980 (or 1980-04-02). Sent once; CSOS Desk does not keep it.")
        else:
            url = html.escape(self.flow.authority.portal_url)
            self.text(f"DEA checks your identity online. Steps:<br>1. Open <a href=\"{url}\">DEA's CSOS portal</a>."
                      "<br>2. Create your account (or sign in) and start a new CSOS application.<br>3. Follow the "
                      "identity-proofing steps; have your identity document at hand.<br>4. Come back here when the "
                      "portal says your identity is confirmed.", rich=True)
            self.button("Open DEA's portal", f"open_url:{self.flow.authority.portal_url}", name="openPortal")
            self.check("identity_done_on_portal", "The portal confirmed my identity")


class SubmitPage(WizardPage):
    view = "submit"

    def build(self) -> None:
        self.text("Check your application:")
        self.summary(self.context.get("summary") or application_summary(self.data))
        if self.data.get("automatic"):
            self.text("Press Next to send it. Your coordinator is told at once.")
        else:
            self.text("Enter exactly these details in the application on DEA's portal, attach the power of attorney "
                      "if asked, accept the agreement there, and send it.")
            self.button("Open DEA's portal", f"open_url:{self.flow.authority.portal_url}", name="openPortal")
            self.check("submitted_on_portal", "I sent the application on the portal")


class WaitingPage(WizardPage):
    view = "waiting"

    def build(self) -> None:
        if self.flow.name == "renewal":
            self.text("Your renewal request was sent, signed with your current certificate. This registration needs "
                      "your coordinator's approval. CSOS Desk checks every few seconds; you may close it and come "
                      "back later — the wizard continues here.")
            self.summary([("Renewal", self.data.get("renewal_id", "")),
                          ("Status", self.data.get("renewal_status", "pending"))], name="waitingStatus")
            if self.flow.authority.training:
                self._practice_coordinator()
            return
        if self.data.get("automatic"):
            self.text("Your application was sent. Your coordinator must approve it; then the CA sends a reference "
                      "number by e-mail and an access code by post. CSOS Desk checks every few seconds. You may close "
                      "it: next time, sign in again and the wizard continues here.")
            self.summary([("Application", self.data.get("application_id", "")),
                          ("Status", self.data.get("application_status", "pending")),
                          ("Sent", _when(self.data.get("submitted_at")))], name="waitingStatus")
            self._missing_approvals()
            if self.flow.authority.training:
                self._practice_coordinator()
            self.mailbox_hint("The approval")
        else:
            self.text("Your coordinator approves your application on DEA's portal. Then DEA sends a reference number "
                      "by e-mail and an access code by post (to the registered address). Keep both: you enter them "
                      "on DEA's portal when you retrieve the certificate.")
            self.check("codes_received", "I have both the reference number and the access code")


    def _missing_approvals(self) -> None:
        """Name the approvals still missing: one per registration, each from that registration's coordinator."""
        missing = self.data.get("approvals_missing")
        if missing is None:
            return
        names = self.data.get("registration_names") or {}
        who: dict[str, str] = {}
        if self.flow.authority.training:
            from app.training import practice_coordinator_for

            for dea in missing:
                account = practice_coordinator_for((dea,))
                who[dea] = account.full_name if account else ""
        lines = [f"• {dea} {names.get(dea, '')}".rstrip()
                 + (f": {who[dea]}, its coordinator" if who.get(dea) else ": its coordinator") for dea in missing]
        approved = [d for d in self.data.get("registrations") or [] if d not in missing]
        text = ("Still waiting for approval from:\n" + "\n".join(lines)) if missing else \
            "Every registration is approved; the codes are on their way."
        if approved and missing:
            text += "\nAlready approved: " + ", ".join(approved) + "."
        self.text(text, name="approvalsMissing")

    def _practice_coordinator(self) -> None:
        """Training: nobody else will approve — the trainee plays the practice coordinator too."""
        from app.training import practice_coordinator_for

        current = (self.data.get("current") or {}).get("registration")
        wanted = self.data.get("approvals_missing") or self.data.get("registrations") or ([current] if current else [])
        account = practice_coordinator_for(tuple(wanted))  # the coordinator whose approval is still missing
        who = (f"{account.full_name}, e-mail {account.email}, password {account.password}" if account else
               "the practice coordinator")
        self.notice("TRAINING: in training, the practice coordinator is played by you. Sign in as the practice "
                    f"coordinator ({who}) and approve your own request; then come back here.",
                    name="practiceCoordinator")
        self.button("Open approvals as the practice coordinator", "open_approvals", name="openApprovals")


class CodesPage(WizardPage):
    view = "codes"

    def build(self) -> None:
        self.text("Your application was approved. The CA sent two one-time codes by separate ways, so nobody who "
                  "gets one of them alone can take your certificate. They work once, within 30 days.")
        self.line("reference_number", "Reference number (from the e-mail):", placeholder="1234-5678-9012")
        self.line("access_code", "Access code (from the letter):", secret=True, placeholder="XXXX-XXXX-XXXX-XXXX",
                  show_toggle="Show the access code")
        self.mailbox_hint("Both codes (the e-mail and the letter)", verb="arrive")


class RequestPage(WizardPage):
    view = "request"

    def build(self) -> None:
        self.summary([("Key", self.data.get("key_description", ""))], name="requestSummary")
        if self.data.get("automatic"):
            self.text("Your key and the certificate request it signed are ready. Press Next to send the request "
                      "with your codes; the certificate is installed and checked at once.")
            self._fingerprint_details()
            return
        url = html.escape(self.context.get("portal_url") or self.flow.authority.portal_url)
        self.text(f"1. Save the certificate request below (or copy it).<br>2. Open <a href=\"{url}\">DEA's CSOS "
                  "portal</a> and choose to retrieve your certificate.<br>3. Enter the reference number and the "
                  "access code, and paste the request when asked.<br>4. Download the certificate file the portal "
                  "gives you and choose it below.", rich=True)
        box = QPlainTextEdit(self.data.get("csr_pem") or "", self)
        box.setObjectName("csrText")
        box.setAccessibleName("Certificate request")
        box.setReadOnly(True)
        box.setMaximumHeight(110)
        self.layout_.addWidget(box)
        row = QHBoxLayout()
        save = QPushButton("Save the request…", self)
        save.setObjectName("saveCsr")
        save.clicked.connect(self._save_csr)
        portal = QPushButton("Open DEA's portal", self)
        portal.setObjectName("openPortal")
        portal.clicked.connect(lambda: self.action_requested.emit(f"open_url:{self.context.get('portal_url') or ''}"))
        row.addWidget(save)
        row.addWidget(portal)
        row.addStretch(1)
        self.layout_.addLayout(row)
        self.saved_note = QLabel(self)
        self.saved_note.setObjectName("csrSaved")
        self.layout_.addWidget(self.saved_note)
        self.file("certificate_file", "Certificate file you downloaded:",
                  file_filter="Certificates (*.cer *.crt *.pem *.der *.p7b *.p7c);;All files (*)")
        self._fingerprint_details()

    def _fingerprint_details(self) -> None:
        """The request's SHA-256 one click away: a new user met it among the two lines of this page and stopped to
        wonder whether to note it (nothing asks for it)."""
        fingerprint = self.data.get("csr_sha256") or ""
        if fingerprint:
            self.details("Details", f"Request fingerprint (SHA-256): {fingerprint}", name="requestDetails")

    def _save_csr(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the certificate request",
                                              str(Path.home() / "csos-certificate-request.csr"),
                                              "Certificate requests (*.csr *.pem)")
        if path:
            try:
                Path(path).write_text(self.data.get("csr_pem") or "", encoding="ascii")
                self.saved_note.setText(f"Saved to {path}.")
            except OSError as exc:
                self.saved_note.setText(f"Could not save to {path}: {exc.strerror or exc}")


# ---------------------------------------------------------------------------------------------------------------------
# Import


class FilePage(WizardPage):
    view = "file"

    def build(self) -> None:
        self.text("Import a CSOS certificate you already have, with its key, from a .p12 or .pfx file.")
        self.file("p12_file", "Certificate file:", file_filter="Certificate files (*.p12 *.pfx);;All files (*)")
        self.line("p12_password", "The file's password:", secret=True)


class TrustRootPage(WizardPage):
    """The root found in the file, with its fingerprint to compare with DEA's (production, no root trusted yet)."""

    view = "trust_root"

    def build(self) -> None:
        offer = self.data.get("root_offer") or {}
        self.text("This computer does not trust any CSOS certification authority yet. The file holds the root "
                  "certificate below. Trust it only if its fingerprint is exactly the one DEA publishes for the CSOS "
                  "root certificate.")
        self.summary([("Root certificate", offer.get("name", "")),
                      ("Valid", f"{_when(offer.get('not_before'))} to {_when(offer.get('not_after'))}"),
                      ("SHA-256 fingerprint", offer.get("fingerprint_grouped", ""))], name="rootOffer")
        self.check("trust_root_confirmed", "I compared the fingerprint with DEA's and it is the same: trust this root")
        self.notice("If the fingerprint is not the same, do not trust it: close this window and ask your certification "
                    "authority for the right file.", name="rootOfferWarning")


class DestinationPage(KeyLocationPage):
    view = "destination"

    def build(self) -> None:
        found = self.data.get("p12_summary") or {}
        if found:
            self.summary([("Certificate", found.get("subject", "")), ("Valid until", _when(found.get("not_after")))],
                         name="p12Summary")
        self.notice(K2_WARNING, name="k2Warning")
        self.check("k2_acknowledged", "I understand, and I will delete or lock away the file")
        super().build()


class ImportDonePage(InstalledPage):
    view = "done"

    def build(self) -> None:
        self.text("The certificate and its key are imported.")
        super().build()
        self.notice(f"Now delete {Path(str(self.data.get('p12_file', ''))).name} or lock it away where only you "
                    "can reach it.", name="k2Reminder")


PAGES: dict[tuple[str, str], type[WizardPage]] = {}
for _flow in ("enrollment", "renewal", "revocation", "import_p12"):
    for _page in (AccountPage, SignInCodePage, KeyLocationPage, UnlockPage, InstalledPage, RejectedPage, WaitingPage,
                  RequestPage):
        PAGES[(_flow, _page.view)] = _page
for _page in (WelcomePage, RolePage, PersonPage, RegistrationsPage, PoaPage, AgreementPage, IdentityPage, SubmitPage,
              CodesPage):
    PAGES[("enrollment", _page.view)] = _page
for _page in (FilePage, TrustRootPage, DestinationPage, ImportDonePage):
    PAGES[("import_p12", _page.view)] = _page


def page_for(flow: Flow, parent: QWidget | None = None) -> WizardPage:
    """The page class for the flow's current view (renewal and revocation pages live in ``lifecycle_pages``)."""
    return PAGES.get((flow.name, flow.view), WizardPage)(flow, parent)
