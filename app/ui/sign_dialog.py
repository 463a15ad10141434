"""Sign & send: the order as the supplier will see it, the checks a supplier will make, then sign and send.

The rules are the verifier's (``OrderSigningService.check``); this screen only groups its reason codes into the
sentences a pharmacy technician reads (``presign_rules``). Signing and sending run on a background job; the password
or PIN goes straight to the key store and is not kept (K1). The unlocked key lives in the window's signing session,
which locks after 10 minutes without use (K4) — then this screen asks again.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QFontDatabase, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.models.states import OrderStatus
from app.ui import theme
from app.ui.order_detail import plain_summary
from app.ui.widgets import FieldMessage, fit_on_show, heading_label, training_banner

log = logging.getLogger(__name__)

# What a person reads for each group of the verifier's reason codes (presentation only: the verifier decides).
PRESIGN_RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("certificate", "There is a CSOS signing certificate for this registration", ("certificate.",)),
    ("trust", "The certificate comes from the CSOS certification authority", ("untrusted_chain", "malformed")),
    ("validity", "The certificate is valid today", ("certificate_expired", "certificate_not_yet_valid")),
    ("revocation", "The certificate has not been revoked (checked against the authority's list)",
     ("certificate_revoked", "revocation_unknown")),
    ("kind", "It is a signing certificate (a coordinator's certificate cannot sign)", ("not_signing_certificate",)),
    ("dea", "The certificate is for this order's DEA registration", ("dea_number_mismatch",)),
    ("schedules", "The certificate covers the schedule of every line", ("schedule_not_authorized",)),
    ("products", "Every product is in the catalog, so its schedule is known", ("unknown_product",)),
    ("complete", "The order has everything a supplier needs (order number, lines, names and addresses)",
     ("missing_field:", "order_number_invalid", "signed_in_future", "order_expired")),
)
CLOCK_RULE = "The computer's clock is right (within 5 minutes of official time)"


@dataclass
class RuleResult:
    key: str
    text: str
    passed: bool | None  # None: could not be checked (does not block)
    details: list[str] = field(default_factory=list)


def presign_rules(reasons: Sequence[Any], *, certificate_problem: str | None = None,
                  clock: Any = None) -> list[RuleResult]:
    """Every rule with passed/failed and the verifier's own words for each failure."""
    results: list[RuleResult] = []
    if clock is None:
        results.append(RuleResult("clock", CLOCK_RULE, None, ["The clock was not checked (no time server set)."]))
    else:
        # Verified passes; off, or unverified in production, fails; unverified in training is a warning.
        passed = True if clock.state.value == "ok" else (False if clock.blocks_signing else None)
        results.append(RuleResult("clock", CLOCK_RULE, passed, [] if passed else [clock.message]))
    rest = [(reason.code, reason.message) for reason in reasons]
    for key, text, codes in PRESIGN_RULES:
        mine = [message for code, message in rest if any(code == c or (c.endswith((":", ".")) and code.startswith(c))
                                                        for c in codes)]
        if key == "certificate" and certificate_problem:
            mine.append(certificate_problem)
        rest = [(code, message) for code, message in rest if message not in mine]
        if certificate_problem and key != "certificate":
            results.append(RuleResult(key, text, None, ["Not checked: there is no certificate to check."]))
            continue
        results.append(RuleResult(key, text, not mine, mine))
    if rest:
        results.append(RuleResult("other", "Other checks", False, [message for _code, message in rest]))
    return results


@dataclass
class Preparation:
    """What the dialog shows before signing (built on a worker thread)."""

    order_id: int
    order_number: str
    status: OrderStatus
    supplier_name: str
    registration_dea: str
    order_html: str
    x12_text: str
    record: Any  # CertificateRecord or None
    certificate_text: str
    pin_pad: bool
    on_token: bool
    rules: list[RuleResult]
    # The unusual quantities (issue 21): told, never a block; signing records these (order_signing.ShownNotices).
    shown_notices: Any = None
    pin_notice: str = ""  # from the token's PIN flags, e.g. one try left before it locks (issue 19)

    @property
    def notices(self) -> list[Any]:
        return list(self.shown_notices.notices) if self.shown_notices is not None else []

    @property
    def needs_signing(self) -> bool:
        return self.status is OrderStatus.DRAFT

    @property
    def can_go(self) -> bool:
        if not self.needs_signing:
            return self.status in (OrderStatus.SIGNED, OrderStatus.QUEUED)
        return self.record is not None and all(rule.passed is not False for rule in self.rules)


@dataclass
class Outcome:
    order_number: str
    status: OrderStatus
    sent: bool
    message: str


def purchase_order_html(po: Any) -> str:
    """The 850 content in readable form: what the supplier's system will show."""
    def party(title: str, p: Any) -> str:
        address = "<br>".join(html.escape(x) for x in p.address_lines)
        place = " ".join(x for x in (f"{p.city}," if p.city else "", p.state or "", p.postal_code or "") if x)
        return (f"<td style='padding-right:18px; vertical-align:top'><b>{html.escape(title)}</b><br>"
                f"{html.escape(p.name)}<br>DEA {html.escape(p.dea_number or 'to be completed by the supplier')}"
                + (f"<br>{address}<br>{html.escape(place)}" if address else
                   "<br><i>address to be completed by the supplier</i>") + "</td>")

    rows = "".join(
        f"<tr><td align='right'>{line.line_number}</td><td>{html.escape(line.description)}</td>"
        f"<td>{line.ndc[:5]}-{line.ndc[5:9]}-{line.ndc[9:]}</td><td align='right'>{line.package_quantity} "
        f"{line.unit.value}</td><td align='right'><b>{line.packages}</b></td></tr>" for line in po.lines)
    return (f"<h3 style='margin:0'>Purchase order {html.escape(po.order_number)}</h3>"
            f"<p style='margin-top:2px'>Date signed: {po.date_signed:%B} {po.date_signed.day}, "
            f"{po.date_signed.year} (the day you sign)</p>"
            f"<table><tr>{party('Purchaser', po.purchaser)}{party('Supplier', po.supplier)}</tr></table>"
            "<table cellspacing='0' cellpadding='3' border='1' style='border-collapse:collapse; margin-top:8px'>"
            "<tr><th>Line</th><th>Product and strength</th><th>NDC</th><th>In one package</th><th>Packages</th></tr>"
            f"{rows}</table>")


def prepare(facade: Any, order_id: int) -> Preparation:
    """Runs on a worker: read the order, find the certificate whose DEA hash matches, run every check."""
    from app.services.certificates.book import CertificateBookError, record_key_ref
    from app.services.signing.order_signing import OrderSigningService, interchange_ids, purchase_order_from
    from app.services.signing.usage_indicator import for_profile
    from app.services.signing.x12 import write_850

    now = facade.clock()
    order = facade.book.get_order(order_id)
    po = purchase_order_from(order, signed_on=now.date())
    x12_text = write_850(po, created_at=now,  # type: ignore[arg-type]
                         **interchange_ids(order, test_indicator=for_profile(facade.config))).decode("ascii", "replace")
    record, certificate_problem, pin_pad, on_token, reasons, clock = None, None, False, False, [], None
    pin_notice = ""
    shown_notices = None
    certificate_text = ""
    if order.status is OrderStatus.DRAFT:
        try:
            record = facade.certificates.signing_certificate_for(order.registration.dea_number, at=now)
        except CertificateBookError as exc:
            certificate_problem = exc.message
        if record is not None:
            ref = record_key_ref(record)
            on_token = ref.token is not None
            if on_token:
                try:
                    mine = [t for t in facade.certificates.list_tokens() if t.serial == ref.token.serial]
                    pin_pad = any(t.pin_pad for t in mine)
                    pin_notice = next((t.pin_notice for t in mine if t.pin_notice), "")
                except CsosError as exc:
                    log.info("token list failed: %s", exc.code)
            where = "on this computer (key file)" if not on_token else f"on the {ref.token.describe()}"
            certificate_text = (f"<b>{html.escape(record.subscriber_name or 'Certificate')}</b> — signs for "
                                f"{html.escape(order.registration.dea_number)}, schedules "
                                f"{html.escape((record.schedules or '').replace(',', ', '))}<br>valid until "
                                f"{record.not_after:%B} {record.not_after.day}, {record.not_after.year}; "
                                f"key {html.escape(where)}")
            certificate, intermediates = facade.certificates.chain(record)
            service = OrderSigningService(facade.book, facade.verifier(), clock=facade.clock,
                                          on_revoked=facade.certificates.record_crl_revocation)
            reasons = service.check(order_id, certificate=certificate, intermediates=intermediates, now=now).reasons
        shown_notices = OrderSigningService(facade.book, facade.verifier(), clock=facade.clock,
                                            usage_settings=facade.settings).notices_to_show(order_id, now)
        check = facade.clock_check()
        clock = check() if check is not None else None
    rules = presign_rules(reasons, certificate_problem=certificate_problem, clock=clock) \
        if order.status is OrderStatus.DRAFT else []
    return Preparation(order_id=order.id, order_number=order.order_number, status=order.status,
                       supplier_name=order.supplier.name, registration_dea=order.registration.dea_number,
                       order_html=purchase_order_html(po), x12_text=x12_text, record=record,
                       certificate_text=certificate_text, pin_pad=pin_pad, on_token=on_token, rules=rules,
                       pin_notice=pin_notice,
                       shown_notices=shown_notices)


def send_order(facade: Any, order_id: int) -> Outcome:
    """Queue a signed order and try to send it now; the answer is recorded when the supplier gives one at once."""
    from app.models.outbox import OutboxState
    from app.services.orders import details as order_details

    entry_state = facade.outbox().send_now(order_id)
    return describe_outcome(facade, order_id, entry_state=entry_state, details_module=order_details,
                            failed_state=OutboxState.FAILED)


def describe_outcome(facade: Any, order_id: int, *, entry_state: Any = None, details_module: Any = None,
                     failed_state: Any = None) -> Outcome:
    from app.services.orders import details as order_details

    shown = (details_module or order_details).order_details(facade.db, order_id)
    supplier = shown.supplier_name
    answers = [r for r in shown.timeline if r.direction == "from supplier" or r.direction == "in"]
    latest = answers[-1].summary if answers else ""
    status = shown.status
    if status is OrderStatus.QUEUED:
        if failed_state is not None and entry_state == failed_state:
            message = (f"{supplier} refused to take the order. Open the order's timeline for the reason; the signed "
                       "order is kept.")
        else:
            message = (f"The order is signed but {supplier} could not be reached. It waits in the outbox and is sent "
                       "automatically; nothing needs to be signed again.")
        return Outcome(shown.order_number, status, False, message)
    if status is OrderStatus.TRANSMITTED:
        return Outcome(shown.order_number, status, True,
                       f"Sent to {supplier}. Their answer will appear here and in the order's timeline when it "
                       "arrives.")
    words = {OrderStatus.ACCEPTED: f"{supplier} accepted the order.",
             OrderStatus.PARTIALLY_ACCEPTED: f"{supplier} accepted the order with changes; see the lines.",
             OrderStatus.NOT_ACCEPTED: f"{supplier} did not accept the order. Nobody corrects a refused order: "
                                       "issue a new one (Order → New order from this one)."}
    message = words.get(status, f"The order is now {status.label.lower()}.")
    latest = plain_summary(latest)  # "(324 bytes kept exactly as received)" was on screen after every send
    if latest and latest != "Kept exactly as received":
        message += f" ({latest})"
    return Outcome(shown.order_number, status, True, message)


class KeyUnlockBox(QGroupBox):
    """The password or token PIN for a certificate's key, masked; nothing to type on a PIN-pad reader or while the
    signing session is still unlocked."""

    def __init__(self, facade: Any, parent: QWidget | None = None) -> None:
        super().__init__("Your key", parent)
        self.facade = facade
        self.record: Any = None
        self.on_token = False
        self.pin_pad = False
        self.pin_notice = ""
        self.setObjectName("keyUnlockBox")
        layout = QVBoxLayout(self)
        self.state_label = QLabel(self)
        self.state_label.setObjectName("keyState")
        self.state_label.setWordWrap(True)
        layout.addWidget(self.state_label)
        row = QHBoxLayout()
        self.secret_label = QLabel("&Password:", self)
        self.secret_edit = QLineEdit(self)
        self.secret_edit.setObjectName("secretEdit")
        self.secret_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret_edit.setAccessibleName("Password")
        self.secret_label.setBuddy(self.secret_edit)
        row.addWidget(self.secret_label)
        row.addWidget(self.secret_edit, 1)
        layout.addLayout(row)
        self.message = FieldMessage(self.secret_edit, self)
        layout.addWidget(self.message)
        facade.sessions.locked.connect(self._on_locked)
        self.set_record(None)

    def set_record(self, record: Any, *, on_token: bool = False, pin_pad: bool = False, pin_notice: str = "") -> None:
        self.record, self.on_token, self.pin_pad, self.pin_notice = record, on_token, pin_pad, pin_notice
        self.refresh()

    @property
    def needs_secret(self) -> bool:
        return self.record is not None and not self.pin_pad and not self.facade.sessions.is_unlocked(self.record)

    def refresh(self, reason: str = "") -> None:
        what = "PIN" if self.on_token else "password"
        self.secret_label.setText("Token &PIN:" if self.on_token else "&Password:")
        self.secret_edit.setAccessibleName("Token PIN" if self.on_token else "Key password")
        if self.record is None:
            text, ask = "No key is needed for this step.", False
        elif self.facade.sessions.is_unlocked(self.record):
            minutes = max(1, round(self.facade.sessions.seconds_left(self.record) / 60))
            text, ask = (f"Your key is unlocked; it locks by itself after 10 minutes without use (about {minutes} "
                         "min left).", False)
        elif self.pin_pad:
            text, ask = ("Your card reader has its own keypad: when you press the button below, type your PIN on the "
                         "reader, not on the keyboard.", False)
            if self.pin_notice:
                text = f"{self.pin_notice} {text}"
        else:
            text = (reason + " " if reason else "") + f"Type the {what} of your key. It is used once and not kept."
            if self.on_token and self.pin_notice and self.pin_notice not in text:
                text = f"{self.pin_notice} {text}"
            ask = True
        self.state_label.setText(text)
        self.secret_label.setVisible(ask)
        self.secret_edit.setVisible(ask)
        if not ask:
            self.secret_edit.clear()

    def take_secret(self) -> str | None:
        """The typed secret (cleared from the field at once); None when none is needed."""
        if not self.needs_secret:
            return None
        secret = self.secret_edit.text()
        self.secret_edit.clear()
        return secret

    def show_problem(self, message: str) -> None:
        self.message.show_problem(message)
        self.refresh()
        if self.secret_edit.isVisible():
            self.secret_edit.setFocus()

    @Slot(str)
    def _on_locked(self, fingerprint: str) -> None:
        if self.record is not None and fingerprint == self.record.fingerprint:
            self.refresh("Your key was locked after 10 minutes without use.")


class SignAndSendDialog(QDialog):
    """``finished_order(order_id)`` after the order was signed (and sent or queued)."""

    finished_order = Signal(int)
    # No certificate can sign: the person chose the next step (the main window opens the wizard).
    enroll_requested = Signal()
    import_requested = Signal()

    def __init__(self, facade: Any, order_id: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.order_id = order_id
        self.preparation: Preparation | None = None
        self.outcome: Outcome | None = None
        self.job: Any = None
        self.setObjectName("signDialog")
        self.setWindowTitle("Sign and send")
        self.setAccessibleName("Sign and send")
        self.resize(QSize(1040, 720))
        fit_on_show(self)
        self._build()
        facade.orders_changed.connect(self._on_orders_changed)
        facade.order_book_changed.connect(self._refresh_answer)
        self.check()

    # -- building ------------------------------------------------------------------------------------------------

    def _build(self) -> None:
        outer = QVBoxLayout(self)
        self.heading = heading_label(self, "Sign and send", name="signHeading")
        outer.addWidget(self.heading)
        if self.facade.is_training:
            outer.addWidget(training_banner(self, "TRAINING — signed with a practice certificate and sent to a "
                                                  "practice supplier"))

        body = QHBoxLayout()
        self.preview_tabs = QTabWidget(self)
        self.preview_tabs.setObjectName("supplierView")
        self.preview_tabs.setAccessibleName("The order as the supplier will see it")
        self.preview = QTextBrowser(self.preview_tabs)
        self.preview.setObjectName("orderPreview")
        self.preview.setAccessibleName("Order as the supplier will see it")
        self.preview_tabs.addTab(self.preview, "&What the supplier will see")
        self.x12_view = QPlainTextEdit(self.preview_tabs)
        self.x12_view.setObjectName("x12Text")
        self.x12_view.setReadOnly(True)
        self.x12_view.setAccessibleName("The X12 850 text that will be signed")
        self.x12_view.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.preview_tabs.addTab(self.x12_view, "X&12 text")
        body.addWidget(self.preview_tabs, 3)

        side = QVBoxLayout()
        self.certificate_box = QGroupBox("Certificate", self)
        cert_layout = QVBoxLayout(self.certificate_box)
        self.certificate_label = QLabel("Looking for the certificate of this registration…", self.certificate_box)
        self.certificate_label.setObjectName("certificateText")
        self.certificate_label.setWordWrap(True)
        self.certificate_label.setTextFormat(Qt.TextFormat.RichText)
        cert_layout.addWidget(self.certificate_label)
        get_one = QHBoxLayout()
        self.enroll_button = QPushButton("Enroll…", self.certificate_box)
        self.enroll_button.setAccessibleName("Enroll for a certificate")
        self.import_button = QPushButton("Import a .p12…", self.certificate_box)
        self.import_button.setAccessibleName("Import a .p12 file")
        self.enroll_button.clicked.connect(self.enroll_requested.emit)
        self.import_button.clicked.connect(self.import_requested.emit)
        get_one.addWidget(self.enroll_button)
        get_one.addWidget(self.import_button)
        get_one.addStretch(1)
        cert_layout.addLayout(get_one)
        for button in (self.enroll_button, self.import_button):
            button.setVisible(False)
        side.addWidget(self.certificate_box)
        self.rules_box = QGroupBox("Checks a supplier will make", self)
        rules_layout = QVBoxLayout(self.rules_box)
        self.rules_list = QListWidget(self.rules_box)
        self.rules_list.setObjectName("presignRules")
        self.rules_list.setAccessibleName("Checks before signing")
        self.rules_list.setWordWrap(True)
        self.rules_list.setIconSize(QSize(18, 18))
        rules_layout.addWidget(self.rules_list)
        side.addWidget(self.rules_box, 1)
        self.usage_notice = QLabel(self)
        self.usage_notice.setObjectName("usageNotice")
        self.usage_notice.setAccessibleName("Unusual quantity notice")
        self.usage_notice.setWordWrap(True)
        self.usage_notice.setStyleSheet("QLabel#usageNotice { background: #fff4d6; border: 1px solid #d9a400; "
                                        "padding: 6px; }")
        self.usage_notice.setVisible(False)
        side.addWidget(self.usage_notice)
        self.unlock = KeyUnlockBox(self.facade, self)
        side.addWidget(self.unlock)
        body.addLayout(side, 2)
        outer.addLayout(body, 1)

        self.progress = QProgressBar(self)
        self.progress.setObjectName("signProgress")
        self.progress.setAccessibleName("Progress")
        self.progress.setVisible(False)
        outer.addWidget(self.progress)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("signStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        outer.addWidget(self.status_label)

        self.buttons = QDialogButtonBox(self)
        self.go_button = QPushButton("&Sign and send", self)
        self.go_button.setObjectName("signButton")
        self.go_button.setDefault(True)
        self.go_button.setEnabled(False)
        self.go_button.clicked.connect(self.sign_and_send)
        self.buttons.addButton(self.go_button, QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        self.close_button.clicked.connect(self.reject)
        outer.addWidget(self.buttons)
        QShortcut(QKeySequence("Ctrl+Return"), self, activated=self.sign_and_send)
        self.setTabOrder(self.preview_tabs, self.rules_list)
        self.setTabOrder(self.rules_list, self.unlock.secret_edit)
        self.setTabOrder(self.unlock.secret_edit, self.go_button)

    # -- checking ------------------------------------------------------------------------------------------------

    @Slot()
    def check(self) -> None:
        self.status_label.setText("Checking the order as the supplier will…")
        facade, order_id = self.facade, self.order_id
        self.job = facade.jobs.run("Checking the order before signing", lambda _c: prepare(facade, order_id),
                                   on_success=self._on_prepared, on_failure=self._on_check_failed,
                                   owner=self)

    def _on_prepared(self, preparation: Preparation) -> None:
        self.job = None
        self.preparation = preparation
        self.heading.setText(("Sign and send order " if preparation.needs_signing else "Send order ")
                             + preparation.order_number)
        self.setWindowTitle(f"Sign and send {preparation.order_number}")
        self.preview.setHtml(preparation.order_html)
        self.x12_view.setPlainText(preparation.x12_text.replace("~", "~\n"))
        self.rules_list.clear()
        if preparation.needs_signing:
            self.certificate_label.setText(preparation.certificate_text or (
                f"No CSOS certificate on this computer can sign for {preparation.registration_dea}. Get one "
                "first: enroll for a certificate, or import the .p12 file you already have. This order stays a "
                "draft meanwhile." if preparation.record is None else
                f"No certificate can sign for {preparation.registration_dea}."))
            for button in (self.enroll_button, self.import_button):
                button.setVisible(preparation.record is None)
            for rule in preparation.rules:
                self._add_rule(rule)
            self.usage_notice.setText("\n".join(["⚠ " + n.message for n in preparation.notices]
                                                 + ["This is a notice only: you can still sign and send."]))
            self.usage_notice.setVisible(bool(preparation.notices))
            self.unlock.set_record(preparation.record, on_token=preparation.on_token, pin_pad=preparation.pin_pad,
                                   pin_notice=preparation.pin_notice)
        else:
            self.certificate_label.setText("This order is already signed; it only has to be sent.")
            self.rules_box.setVisible(False)
            self.unlock.setVisible(False)
            self.go_button.setText("&Send")
        self.go_button.setEnabled(preparation.can_go)
        if preparation.can_go:
            self.status_label.setText("Every check passed. " + ("Type your password and press Sign and send."
                                                                 if self.unlock.needs_secret else
                                                                 "Press Sign and send."))
            if self.unlock.needs_secret:
                self.unlock.secret_edit.setFocus()
            else:
                self.go_button.setFocus()
        elif preparation.needs_signing:
            self.status_label.setText("The order cannot be signed yet: a supplier would refuse it. Fix what is "
                                      "marked with a cross, then open this screen again.")
        else:
            self.status_label.setText(f"This order is {preparation.status.label.lower()}; there is nothing to send.")

    def _add_rule(self, rule: RuleResult) -> None:
        state = {True: "passed", False: "failed", None: "not checked"}[rule.passed]
        text = rule.text + {True: "", False: " — NO", None: " — not checked"}[rule.passed]
        if rule.details:
            text += "\n" + "\n".join(rule.details)
        item = QListWidgetItem(text, self.rules_list)
        item.setIcon(theme.icon({True: "ok", False: "error", None: "warning"}[rule.passed]))
        item.setData(Qt.ItemDataRole.AccessibleTextRole, f"{rule.text}: {state}. " + " ".join(rule.details))
        item.setData(Qt.ItemDataRole.UserRole, rule.passed)
        if rule.passed is False:
            item.setForeground(Qt.GlobalColor.darkRed)

    def _on_check_failed(self, error: CsosError) -> None:
        self.job = None
        self.status_label.setText(f"The order could not be checked: {error.message} Close this window and try "
                                  "again; nothing was signed.")

    # -- signing and sending ---------------------------------------------------------------------------------------

    @Slot()
    def sign_and_send(self) -> None:
        preparation = self.preparation
        if preparation is None or self.job is not None or not self.go_button.isEnabled():
            return
        facade, order_id = self.facade, self.order_id
        if not preparation.needs_signing:
            self._start("Sending the order", lambda context: self._send(context, facade, order_id))
            return
        if self.unlock.needs_secret and not self.unlock.secret_edit.text():
            self.unlock.show_problem(f"Type the {'PIN' if preparation.on_token else 'password'} of your key first.")
            return
        secret = self.unlock.take_secret()
        record = preparation.record
        self.unlock.message.clear()

        def work(context: Any) -> Outcome:
            from app.services.signing.order_signing import OrderSigningService
            from app.services.signing.usage_indicator import for_profile

            context.progress(0, 3, "Opening your key…" if not preparation.pin_pad else
                             "Type your PIN on the card reader's keypad…")
            signer = facade.sessions.unlocked_signer(record, secret)
            context.progress(1, 3, "Signing the order…")
            certificate, intermediates = facade.certificates.chain(record)
            service = OrderSigningService(facade.book, facade.verifier(), clock_check=facade.clock_check(),
                                          clock=facade.clock, on_revoked=facade.certificates.record_crl_revocation,
                                          usage_settings=facade.settings, test_indicator=for_profile(facade.config))
            # The notices recorded with the signing are the ones shown above, while they still hold.
            service.sign(order_id, signer=signer, certificate=certificate, intermediates=intermediates,
                         shown_notices=preparation.shown_notices)
            return self._send(context, facade, order_id)

        self._start("Signing and sending the order", work)

    @staticmethod
    def _send(context: Any, facade: Any, order_id: int) -> Outcome:
        context.progress(2, 3, "Sending the order to the supplier…")
        outcome = send_order(facade, order_id)
        context.progress(3, 3, "Done")
        return outcome

    def _start(self, title: str, work: Any) -> None:
        self.go_button.setEnabled(False)
        self.close_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 3)
        self.progress.setValue(0)
        self.job = self.facade.jobs.run(title, work, on_success=self._on_done, on_failure=self._on_failed,
                                        owner=self)
        self.job.progress.connect(self._on_progress)

    def _on_progress(self, done: int, total: int, text: str) -> None:
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)
        if text:
            self.status_label.setText(text)

    def _on_done(self, outcome: Outcome) -> None:
        self.job = None
        self.outcome = outcome
        self.progress.setValue(self.progress.maximum())
        self.close_button.setEnabled(True)
        self.close_button.setFocus()
        self.go_button.setEnabled(False)
        self.unlock.refresh()
        self.status_label.setText(("✓ " if outcome.status is not OrderStatus.NOT_ACCEPTED else "") + outcome.message)
        self.facade.notify_orders_changed([self.order_id])
        self.facade.wake_outbox()
        self.finished_order.emit(self.order_id)

    def _on_failed(self, error: CsosError) -> None:
        self.job = None
        self.progress.setVisible(False)
        self.close_button.setEnabled(True)
        self.facade.notify_orders_changed([self.order_id])
        if error.code.startswith("key.") or error.code in ("key.wrong_password", "key.wrong_pin"):
            self.unlock.show_problem(error.message)
            self.go_button.setEnabled(True)
            self.status_label.setText("Nothing was signed.")
            return
        self.status_label.setText(f"{error.message} Nothing was sent; check the order and try again.")
        self.check()

    # -- answers that arrive later ---------------------------------------------------------------------------------

    @Slot(list)
    def _on_orders_changed(self, ids: list) -> None:
        if self.order_id in ids and self.outcome is not None and self.job is None:
            self._refresh_answer()

    @Slot()
    def _refresh_answer(self) -> None:
        if self.outcome is None or self.job is not None or self.outcome.status not in (OrderStatus.TRANSMITTED,
                                                                                       OrderStatus.QUEUED):
            return
        try:
            outcome = describe_outcome(self.facade, self.order_id)
        except CsosError as exc:
            log.info("answer refresh failed: %s", exc.code)
            return
        if outcome.status is not self.outcome.status:
            self.outcome = outcome
            self.status_label.setText(outcome.message)

    def reject(self) -> None:
        if self.job is not None:
            return  # signing or sending: closing now would hide the outcome
        super().reject()
