"""Back keeps what was chosen (issue 22): "Create my portal account" stays chosen, a sign-in code from before is not
left in its field once a new one is sent, and a page keeps its step number between visits. Real sandbox."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QRadioButton

from tests.integration.conftest import IDENTITY, PASSWORD, PHARMACY
from tests.ui.test_wizards import authority, certificates, client, open_wizard, press_next, sandbox  # noqa: F401

pytestmark = [pytest.mark.ui, pytest.mark.integration]


def test_back_keeps_the_account_choice_clears_an_old_code_and_step_numbers_stay(qtbot, facade, authority,  # noqa: F811
                                                                                 certificates):  # noqa: F811
    from app.ui.wizards import open_enrollment_wizard

    dialog = open_wizard(qtbot, open_enrollment_wizard, facade, authority=authority, certificates=certificates,
                         resume=False)
    press_next(qtbot, dialog, "role")
    press_next(qtbot, dialog, "person", role="registrant")
    press_next(qtbot, dialog, "registrations", full_name="Back Tester", email="back.tester@mainstreet.example")
    press_next(qtbot, dialog, "agreement", registrations=[PHARMACY["dea_number"]])
    press_next(qtbot, dialog, "identity", agreement_accepted=True)
    press_next(qtbot, dialog, "account", identity_document_type="drivers_license",
               identity_document_number=IDENTITY["document_number"], date_of_birth=IDENTITY["date_of_birth"])
    step_of_account = dialog.progress_label.text()
    press_next(qtbot, dialog, "sign_in_code", account_choice="new", password=PASSWORD, password_confirm=PASSWORD)
    press_next(qtbot, dialog, "sign_in_code", sign_in_code="000000")  # a wrong (or expired) code: refused
    qtbot.mouseClick(dialog.back_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.flow.view == "account" and dialog.page is not None, timeout=20_000)
    assert dialog.page.findChild(QRadioButton, "account_choice_new").isChecked()
    assert dialog.progress_label.text() == step_of_account
    press_next(qtbot, dialog, "sign_in_code", password=PASSWORD, password_confirm=PASSWORD)
    assert dialog.page.findChild(QLineEdit, "sign_in_code").text() == ""
    dialog.close()
