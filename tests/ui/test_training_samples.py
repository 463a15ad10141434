"""The practice power of attorney: drawn by Qt's PDF writer, committed in resources/training/, accepted by the
enrollment's power-of-attorney step, and offered by that page in training."""

from __future__ import annotations

import pytest

from app.services.enrollment.enroll_flow import read_poa
from app.training import SAMPLE_POA
from app.ui.training_samples import POA_TEXT, sample_poa_html, write_sample_poa

pytestmark = pytest.mark.ui


def test_the_committed_sample_is_a_pdf_the_poa_step_accepts(qapp, tmp_path):
    assert read_poa(SAMPLE_POA)[:5] == b"%PDF-"
    fresh = write_sample_poa(tmp_path / "poa.pdf")
    assert read_poa(fresh)[:5] == b"%PDF-" and abs(fresh.stat().st_size - SAMPLE_POA.stat().st_size) < 4096
    text = sample_poa_html()
    assert "Main Street Pharmacy" in text and "BJ6125341" in text and "TRAINING SAMPLE" in text
    assert "to sign orders for Schedule I and II controlled substances" in POA_TEXT


def test_the_poa_page_offers_the_sample_in_training(qtbot, facade, tmp_path):
    from PySide6.QtWidgets import QLineEdit, QPushButton

    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards.host import WizardDialog

    authority = SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "unused.pem")
    flow = EnrollmentFlow(authority=authority, certificates=None, store=None,
                          data={"role": "power_of_attorney", "registrations": ["BJ6125341"]})
    flow.wizard.view = "poa"
    dialog = WizardDialog(flow, jobs=facade.jobs)
    qtbot.addWidget(dialog)
    dialog.render()
    button = next(b for b in dialog.page.findChildren(QPushButton) if b.text() == "Use the practice sample")
    button.click()
    assert dialog.page.findChild(QLineEdit, "poa_file").text() == str(SAMPLE_POA)
