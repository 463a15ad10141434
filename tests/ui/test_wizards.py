"""The certificate wizards driven like a person would, against the real training sandbox over HTTPS (pytest-qt).

A full enrollment with a software key (codes read from the training mailbox panel), a renewal, a revocation, a
coordinator approval and a rejection on the approvals page; and a screenshot of every wizard page.
"""

from __future__ import annotations

from pathlib import Path

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QLabel, QLineEdit, QListWidget, QPushButton, QRadioButton, QWidget


def fill(dialog: Any, **values: Any) -> None:
    page = dialog.page
    assert page is not None, "no page shown"
    for name, value in values.items():
        radio = page.findChild(QRadioButton, f"{name}_{value}")
        if radio is not None:
            radio.setChecked(True)
            continue
        widget = page.findChild(QWidget, name)
        assert widget is not None, f"page {dialog.flow.view} has no entry {name}"
        if isinstance(widget, QLineEdit):
            assert widget.isEnabled(), f"{name} is disabled"
            widget.setText(str(value))
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            index = widget.findData(value)
            assert index >= 0, f"{value} not offered in {name}"
            widget.setCurrentIndex(index)
        elif isinstance(widget, QListWidget):
            for i in range(widget.count()):
                item = widget.item(i)
                wanted = item.data(Qt.ItemDataRole.UserRole) in value
                item.setCheckState(Qt.CheckState.Checked if wanted else Qt.CheckState.Unchecked)
        else:
            raise AssertionError(f"cannot fill {name} ({type(widget).__name__})")


def wait_idle(qtbot: Any, dialog: Any, timeout: int = 60_000) -> None:
    qtbot.waitUntil(lambda: not dialog.busy and dialog.page is not None
                    and dialog.rendered_view == dialog.flow.view, timeout=timeout)


def press_next(qtbot: Any, dialog: Any, expect: str | None = None, **values: Any) -> None:
    if values:
        fill(dialog, **values)
    qtbot.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, dialog)
    if expect is not None:
        assert dialog.flow.view == expect, (dialog.flow.view, dialog.message.text(), problems(dialog))


def problems(dialog: Any) -> dict[str, str]:
    return {name: message.text for name, message in dialog.page.problems.items() if message.text}

import pytest  # noqa: E402

from app.models.orderbook import CertificateStatus  # noqa: E402
from app.sandbox import start_sandbox  # noqa: E402
from app.services.certificates.book import CertificateBook  # noqa: E402
from app.services.enrollment.authority import SandboxAuthority  # noqa: E402
from tests.integration.conftest import CLINIC, IDENTITY, PASSWORD, PHARMACY, SandboxClient, new_email  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "wizards"
KEY_PASSWORD = "Amber-Meadow-Compass-91"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    handle = start_sandbox(tmp_path_factory.mktemp("ui-sandbox"), sntp=False)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def client(sandbox) -> SandboxClient:
    return SandboxClient(sandbox)


@pytest.fixture
def authority(sandbox) -> SandboxAuthority:
    return SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle, trust_bundle=sandbox.trust_bundle)


@pytest.fixture
def certificates(facade):
    book = CertificateBook(facade.db, facade.config, environ={}, actor="gui-test")
    yield book
    book.close()


def open_wizard(qtbot, opener, *args, **kwargs):
    dialog = opener(None, *args, **kwargs)
    assert dialog is not None
    qtbot.addWidget(dialog)
    wait_idle(qtbot, dialog)
    return dialog


def enroll_in_gui(qtbot, facade, authority, certificates, client, registration, *, email, key_store="software",
                  token=None):
    from app.ui.wizards import open_enrollment_wizard

    dialog = open_wizard(qtbot, open_enrollment_wizard, facade, authority=authority, certificates=certificates)
    assert dialog.flow.view == "welcome" and dialog.findChild(object, "trainingBanner") is not None
    press_next(qtbot, dialog, "role")
    press_next(qtbot, dialog, "person", role="registrant")
    press_next(qtbot, dialog, "person", full_name="Sam Screen", email="not-an-address")
    assert "e-mail" in problems(dialog)["email"]
    press_next(qtbot, dialog, "registrations", email=email)
    press_next(qtbot, dialog, "agreement", registrations=[registration["dea_number"]])
    press_next(qtbot, dialog, "agreement")  # not ticked: stays, says why
    assert "accept" in problems(dialog)["agreement_accepted"]
    press_next(qtbot, dialog, "identity", agreement_accepted=True)
    press_next(qtbot, dialog, "account", identity_document_type="drivers_license",
               identity_document_number=IDENTITY["document_number"], date_of_birth=IDENTITY["date_of_birth"])
    press_next(qtbot, dialog, "sign_in_code", account_choice="new", password=PASSWORD, password_confirm=PASSWORD)

    # The code comes from the training mailbox panel the page opens.
    opened = []
    dialog.mailbox_opener = lambda address: opened.append(_mailbox(qtbot, authority, facade, address))
    qtbot.mouseClick(dialog.page.findChild(QPushButton, "openMailbox"), Qt.MouseButton.LeftButton)
    panel = opened[0]
    qtbot.waitUntil(lambda: "sign-in code" in panel.body.toPlainText(), timeout=20_000)
    code = panel.body.toPlainText().split("sign-in code is ")[1][:6]
    panel.close()
    press_next(qtbot, dialog, "submit", sign_in_code=code)
    assert any(registration["dea_number"] in label.text()
               for label in dialog.page.findChild(QWidget, "summary").findChildren(QLabel))
    press_next(qtbot, dialog, "waiting")
    assert dialog.next_button.text() == "Check now" and not dialog.back_button.isEnabled()
    practice = dialog.page.findChild(QLabel, "practiceCoordinator").text()
    assert "practice coordinator is played by you" in practice and "password" in practice
    asked = []
    dialog.approvals_opener = asked.append
    qtbot.mouseClick(next(b for b in dialog.page.findChildren(QPushButton)
                          if b.text() == "Open approvals as the practice coordinator"), Qt.MouseButton.LeftButton)
    assert asked == [[registration["dea_number"]]]
    assert dialog.poll_timer.isActive()
    return dialog


def _mailbox(qtbot, authority, facade, address):
    from app.ui.mailbox_panel import MailboxPanel

    panel = MailboxPanel(authority, facade.jobs, email=address)
    qtbot.addWidget(panel)
    panel.show()
    return panel


def test_full_enrollment_with_a_software_key_then_renewal_then_revocation(qtbot, facade, authority, certificates,
                                                                           client):
    from app.ui.wizards import open_renewal_wizard, open_revocation_wizard, wizard_state_store

    email = new_email("gui")
    dialog = enroll_in_gui(qtbot, facade, authority, certificates, client, PHARMACY, email=email)
    saved = wizard_state_store(facade.config).path("enrollment").read_text()
    assert PASSWORD not in saved and IDENTITY["document_number"] not in saved
    assert client.approve(client.coordinator_token(PHARMACY), dialog.flow.data["application_id"]).status_code == 200
    dialog.poll_now()
    qtbot.waitUntil(lambda: dialog.flow.view == "codes", timeout=20_000)
    wait_idle(qtbot, dialog)
    reference, access = client.codes(email)
    press_next(qtbot, dialog, "key_location", reference_number=reference, access_code=access)
    press_next(qtbot, dialog, "request", key_store="software", key_password=KEY_PASSWORD,
               key_password_confirm=KEY_PASSWORD)
    press_next(qtbot, dialog, "installed")
    assert "✔" in dialog.page.findChild(QLabel, "checkResult").text()
    qtbot.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    assert wizard_state_store(facade.config).saved() == []
    record = certificates.signing_certificate_for(PHARMACY["dea_number"])

    # Renewal: prefilled from the current certificate, new key, request signed with the current one.
    renewal = open_wizard(qtbot, open_renewal_wizard, facade, record.fingerprint, authority=authority,
                          certificates=certificates)
    assert any("Sam Screen" in label.text() for label in renewal.page.findChildren(QLabel))
    press_next(qtbot, renewal, "key_location", early_reason="schedules")
    new_password = "Velvet-Orchard-Signal-58"
    press_next(qtbot, renewal, "unlock", key_store="software", key_password=new_password,
               key_password_confirm=new_password)
    assert renewal.page.findChild(QLineEdit, "current_secret").echoMode() == QLineEdit.EchoMode.Password
    press_next(qtbot, renewal, "unlock", current_secret="wrong password here")
    assert problems(renewal)["current_secret"]
    press_next(qtbot, renewal, "waiting", current_secret=KEY_PASSWORD)
    assert any(b.text() == "Open approvals as the practice coordinator"
               for b in renewal.page.findChildren(QPushButton))  # training: the trainee plays the coordinator
    assert client.approve(client.coordinator_token(PHARMACY), renewal.flow.data["renewal_id"]).status_code == 200
    renewal.poll_now()
    qtbot.waitUntil(lambda: renewal.flow.view == "installed", timeout=20_000)
    wait_idle(qtbot, renewal)
    assert renewal.page.findChild(QLabel, "supersededNote") is not None
    assert certificates.get(record.fingerprint).status is CertificateStatus.SUPERSEDED
    renewed = certificates.signing_certificate_for(PHARMACY["dea_number"])
    assert renewed.fingerprint != record.fingerprint
    renewal.close()

    # Revocation with the key: reason, K3 deadline shown, unlock, confirm; the key is destroyed after the CA confirms.
    revocation = open_wizard(qtbot, open_revocation_wizard, facade, renewed.fingerprint, authority=authority,
                             certificates=certificates)
    press_next(qtbot, revocation, "reason", key_available=True)
    assert not revocation.page.findChild(QLabel, "deadline").isVisibleTo(revocation.page)  # no reason yet
    fill(revocation, reason="employment_ended")
    assert "6 hours" in revocation.page.findChild(QLabel, "deadline").text()
    fill(revocation, reason="key_compromise")
    assert "24 hours" in revocation.page.findChild(QLabel, "deadline").text()
    press_next(qtbot, revocation, "unlock")
    press_next(qtbot, revocation, "confirm", current_secret=new_password)
    press_next(qtbot, revocation, "confirm")  # not confirmed: stays
    assert problems(revocation)["confirmed"]
    press_next(qtbot, revocation, "done", confirmed=True)
    assert revocation.page.findChild(QLabel, "keyDestroyed") is not None
    assert certificates.get(renewed.fingerprint).status is CertificateStatus.REVOKED


def test_coordinator_approves_one_application_and_rejects_another(qtbot, facade, authority, client, modal_boxes):
    from app.ui.approvals_page import ApprovalsPage

    approve_email, approve_token, approve_id = _application(client, "Avery Approve")
    reject_email, _, reject_id = _application(client, "Riley Reject")
    page = ApprovalsPage(authority, facade.jobs)
    qtbot.addWidget(page)
    page.show()
    coordinator = CLINIC["coordinator"]
    page.email.setText(coordinator["email"])
    page.password.setText(coordinator["password"])
    assert page.password.echoMode() == QLineEdit.EchoMode.Password
    qtbot.mouseClick(page.send_code, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.code.isEnabled(), timeout=20_000)
    page.code.setText(client.last_message(coordinator["email"], "login_code", "email")["data"]["code"])
    qtbot.mouseClick(page.sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.stack.currentIndex() == 1 and not page.busy and bool(page.pending), timeout=20_000)
    ids = [a.id for a in page.pending]
    assert approve_id in ids and reject_id in ids

    page.table.selectRow(ids.index(reject_id))
    assert "Riley Reject" in page.details.text() and "Power of attorney: attached" in page.details.text()
    qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)
    assert page.reason_problem.text  # a rejection needs a reason
    page.reason.setText("Not on our staff list")
    qtbot.mouseClick(page.reject_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not page.busy and reject_id not in [a.id for a in page.pending], timeout=20_000)

    page.table.selectRow([a.id for a in page.pending].index(approve_id))
    modal_boxes.answers[:] = [False]  # "Not yet": the power of attorney was not opened
    qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
    title, question = modal_boxes.questions[-1]
    assert title == "Approve this application?" and "Avery Approve" in question
    assert "NOT opened the power of attorney" in question and approve_id in [a.id for a in page.pending]
    page.opened_poa.add(approve_id)  # as "Open power of attorney…" does once the document is shown
    qtbot.mouseClick(page.approve_button, Qt.MouseButton.LeftButton)
    assert "You opened the power of attorney." in modal_boxes.questions[-1][1]
    qtbot.waitUntil(lambda: not page.busy and approve_id not in [a.id for a in page.pending], timeout=20_000)

    assert client.last_message(reject_email, "enrollment_rejected")["data"]["reason"] == "Not on our staff list"
    reference, access = client.codes(approve_email)
    assert reference and access
    applicant_view = client.get(f"/applications/{approve_id}", approve_token).json()["application"]
    assert applicant_view["status"] == "approved"


def _application(client: SandboxClient, full_name: str) -> tuple[str, str, str]:
    from tests.integration.conftest import PDF

    email = new_email("review")
    client.create_account(email, full_name)
    token = client.login(email)
    applied = client.apply(token, registrations=[CLINIC["dea_number"]], role="power_of_attorney",
                           full_name=full_name, poa=PDF)
    assert applied.status_code == 201, applied.text
    return email, token, applied.json()["application"]["id"]


def test_rejected_application_shows_the_reason_in_the_wizard(qtbot, facade, authority, certificates, client):
    email = new_email("gui-reject")
    dialog = enroll_in_gui(qtbot, facade, authority, certificates, client, CLINIC, email=email)
    token = client.coordinator_token(CLINIC)
    decided = client.post(f"/reviews/{dialog.flow.data['application_id']}", token,
                          json={"decision": "reject", "reason": "Registration number not ours"})
    assert decided.status_code == 200
    dialog.poll_now()
    qtbot.waitUntil(lambda: dialog.flow.view == "rejected", timeout=20_000)
    wait_idle(qtbot, dialog)
    assert any("Registration number not ours" in label.text()
               for label in dialog.page.findChild(QWidget, "rejectionReason").findChildren(QLabel))
    assert dialog.next_button.text() == "Finish"


def test_closing_while_waiting_resumes_at_sign_in_in_a_new_window(qtbot, facade, authority, certificates, client):
    from app.ui.wizards import open_enrollment_wizard

    email = new_email("gui-resume")
    dialog = enroll_in_gui(qtbot, facade, authority, certificates, client, CLINIC, email=email)
    dialog.close()
    again = open_wizard(qtbot, open_enrollment_wizard, facade, authority=authority, certificates=certificates)
    assert again.flow.view == "account" and "continued" in again.progress_label.text()
    assert again.page.findChild(QLineEdit, "email").text() == email
    press_next(qtbot, again, "sign_in_code", account_choice="existing", password=PASSWORD)
    code = client.last_message(email, "login_code", "email")["data"]["code"]
    press_next(qtbot, again, "waiting", sign_in_code=code)


def test_every_wizard_page_renders_to_a_screenshot(qtbot):
    from PySide6.QtGui import QImage

    from app.ui.wizards import render_wizard_screenshots

    written = render_wizard_screenshots(SCREENSHOTS)
    names = {p.name for p in written}
    assert len(written) >= 38
    for expected in ("enrollment-13-key_location.png", "revocation-02-reason.png", "import_p12-03-destination.png",
                     "enrollment-14-request-production.png", "renewal-04-unlock.png"):
        assert expected in names
    image = QImage(str(SCREENSHOTS / "enrollment-13-key_location.png"))
    assert image.width() >= 700 and image.height() >= 600


def test_in_training_the_trainee_plays_the_practice_coordinator(qtbot, facade, authority, client):
    """From the waiting page's "Open approvals as the practice coordinator": the sign-in is filled in from the
    sandbox's seed, the code is in the practice mailbox, whose first letter explains who plays whom."""
    from app.ui.wizards import open_approvals

    opened = []
    page = open_approvals(None, facade, authority=authority, registrations=[PHARMACY["dea_number"]])
    qtbot.addWidget(page)
    page.mailbox_opener = lambda address: opened.append(_mailbox(qtbot, authority, facade, address))
    coordinator = PHARMACY["coordinator"]
    assert page.email.text() == coordinator["email"] and page.password.text() == coordinator["password"]
    assert "played by you" in page.practice_note.text() or "you now play" in page.practice_note.text()
    assert coordinator["full_name"] in page.practice_note.text()
    qtbot.mouseClick(page.send_code, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.code.isEnabled(), timeout=20_000)
    assert "practice mailbox" in page.status.text() and page.mailbox_button.isVisible()
    qtbot.mouseClick(page.mailbox_button, Qt.MouseButton.LeftButton)
    panel = opened[0]
    qtbot.waitUntil(lambda: "sign-in code is " in panel.body.toPlainText(), timeout=20_000)
    assert panel.windowTitle() == "Practice mailbox — TRAINING"
    welcome = panel.messages[-1]
    assert welcome.subject == "Welcome to the practice mailbox"
    assert "YOU also play the practice coordinator" in welcome.body and coordinator["password"] in welcome.body
    page.code.setText(panel.body.toPlainText().split("sign-in code is ")[1][:6])
    qtbot.mouseClick(page.sign_in, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: page.stack.currentIndex() == 1 and not page.busy, timeout=20_000)
    assert coordinator["email"] in page.who.text()
    qtbot.keyClick(panel, Qt.Key.Key_Escape)
    assert not panel.isVisible()
