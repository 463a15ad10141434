"""The enrollment wizard window reopened part-way (issue 18, item 1): the page shown matches the step, what was never
kept is asked again before the step that needs it, Escape asks first, and a field's problem goes when it is fixed.

The authority is the in-memory one of the flow tests (real CA, real keys, real SQLite); the window is the real one.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QLineEdit

from app.services.certificates.book import CertificateBook
from app.services.enrollment.enroll_flow import EnrollmentFlow
from app.services.enrollment.wizard import WizardStateStore
from app.ui.wizards.host import WizardDialog
from tests.pki import build_training_pki
from tests.ui.test_wizards import fill, press_next, problems, wait_idle
from tests.unit.enrollment.test_resume import ANSWERS, IDENTITY, MemoryAuthority

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def certificates(db, training_config):
    made = CertificateBook(db, training_config, environ={})
    yield made
    made.close()


def shown(dialog: WizardDialog) -> tuple[str, str]:
    """What the person sees: the heading, and the page under it (the view it was made for)."""
    return dialog.heading.text(), dialog.page.view if dialog.page is not None else ""


def open_dialog(qtbot, facade, flow) -> WizardDialog:
    dialog = WizardDialog(flow, jobs=facade.jobs)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.begin()
    wait_idle(qtbot, dialog)
    return dialog


def test_reopened_at_the_sign_in_code_asks_again_and_each_page_matches_its_step(qtbot, facade, pki, certificates,
                                                                                  tmp_path, modal_boxes):
    store = WizardStateStore(tmp_path / "wizards")
    authority = MemoryAuthority(pki)
    first = EnrollmentFlow(authority=authority, certificates=certificates, store=store)
    first.start()
    for view in ("welcome", "role", "person", "registrations", "agreement", "identity", "account"):
        first.next(ANSWERS[view])
    assert first.view == "sign_in_code"

    dialog = open_dialog(qtbot, facade, EnrollmentFlow(authority=authority, certificates=certificates, store=store))
    assert shown(dialog) == ("Your portal account", "account")
    assert dialog.resume_note.isVisible() and "Sign-in code" in dialog.resume_note.text()
    press_next(qtbot, dialog, "sign_in_code", password=ANSWERS["account"]["password"],
               password_confirm=ANSWERS["account"]["password_confirm"])
    assert shown(dialog) == ("Sign-in code", "sign_in_code")
    press_next(qtbot, dialog, "identity", sign_in_code="123456")
    assert shown(dialog) == ("Identity proofing", "identity")  # never kept: asked before the application is sent
    press_next(qtbot, dialog, "submit", identity_document_number=IDENTITY["identity_document_number"],
               date_of_birth="04/02/1980")
    assert shown(dialog) == ("Check and send", "submit")
    assert "Driver's license ending 4567" in " ".join(
        label.text() for label in dialog.page.findChildren(type(dialog.heading)))
    assert f"step {len(dialog.flow.wizard.path)}" in dialog.progress_label.text()
    press_next(qtbot, dialog, "waiting")
    assert shown(dialog) == ("Waiting for approval", "waiting") and authority.sent == ["registrant"]

    # Escape asks first; "Stay here" keeps the window, "Close and continue later" closes it.
    modal_boxes.answers[:] = [False, True]
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert modal_boxes.questions[-1][0] == "Close and continue later?" and dialog.isVisible()
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and store.load("enrollment")["view"] == "waiting"


def test_a_field_problem_goes_when_the_field_is_changed(qtbot, facade, pki, certificates, tmp_path):
    flow = EnrollmentFlow(authority=MemoryAuthority(pki), certificates=certificates,
                          store=WizardStateStore(tmp_path / "wizards"),
                          data={"full_name": "Pat", "email": "p@example.test", "registrations": ["BJ6125341"]})
    flow.wizard.jump("identity")
    dialog = open_dialog(qtbot, facade, flow)
    press_next(qtbot, dialog, "identity", identity_document_number="D1", date_of_birth="2/30/1980")
    assert "04/02/1980" in problems(dialog)["date_of_birth"]
    qtbot.keyClicks(dialog.page.findChild(QLineEdit, "date_of_birth"), "x")
    assert "date_of_birth" not in problems(dialog)
    fill(dialog, date_of_birth="04/02/1980")
    press_next(qtbot, dialog, "account")


def test_the_access_code_can_be_shown_to_check_it(qtbot, facade, pki, certificates, tmp_path):
    flow = EnrollmentFlow(authority=MemoryAuthority(pki), certificates=certificates)
    flow.wizard.jump("codes")
    dialog = open_dialog(qtbot, facade, flow)
    code = dialog.page.findChild(QLineEdit, "access_code")
    assert code.echoMode() == QLineEdit.EchoMode.Password
    toggle = next(box for box in dialog.page.findChildren(QCheckBox) if box.text() == "Show the access code")
    toggle.setChecked(True)
    assert code.echoMode() == QLineEdit.EchoMode.Normal
