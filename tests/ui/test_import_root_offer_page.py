"""The import wizard's 'trust_root' page shows the root found in the file with its SHA-256 fingerprint, and its tick
box is what the flow reads (issue 17.3)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtWidgets import QCheckBox, QLabel  # noqa: E402

from app.services.certificates.trust import TrustCandidate, TrustStore, group_fingerprint  # noqa: E402
from app.ui.wizards.pages import TrustRootPage, page_for  # noqa: E402
from tests.unit.enrollment.test_import_flow_root_offer import FILE_PASSWORD, pki, setup  # noqa: E402,F401

pytestmark = pytest.mark.ui


def test_the_page_shows_the_fingerprint_and_the_tick_box_trusts_the_root(qtbot, db, tmp_path, pki):  # noqa: F811
    config, book, flow, path = setup(db, tmp_path, pki)
    with book:
        flow.next({"p12_file": str(path), "p12_password": FILE_PASSWORD})
        page = page_for(flow)
        qtbot.addWidget(page)
        assert isinstance(page, TrustRootPage)
        shown = " ".join(label.text() for label in page.findChildren(QLabel))
        fingerprint = TrustCandidate.of(pki.root.certificate).fingerprint
        assert group_fingerprint(fingerprint) in shown and "DEA publishes" in shown
        page.findChild(QCheckBox, "trust_root_confirmed").setChecked(True)
        assert flow.next(page.collect()) == "destination"
        assert [r.fingerprint for r in TrustStore(config.data_dir).roots()] == [fingerprint]
