"""The import wizard as a clinic meets it in production (issue 22 "a foreign certificate is called trusted"), by
visible text: with no CSOS trust roots nothing is imported and the page says how to add them; a self-made CN=Test
file is "not a CSOS certificate"; a foreign CA's CSOS certificate is refused; nothing is recorded or written."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QLabel

from app.services.certificates.book import CertificateBook
from tests.fixtures.hostile_certificates import foreign_csos_p12, p12, self_made_p12
from tests.pki import build_training_pki, new_key
from tests.ui.test_wizards import open_wizard, press_next, problems

pytestmark = pytest.mark.ui

FILE_PASSWORD = "File-pass-2026"


def page_text(dialog) -> str:
    return " ".join(label.text() for label in dialog.findChildren(QLabel) if label.isVisible())


def test_the_import_wizard_refuses_what_it_cannot_trust(qtbot, facade, tmp_path):
    from app.ui.wizards import open_import_wizard

    pki = build_training_pki(tmp_path / "pki")
    key = new_key("rsa")
    genuine = tmp_path / "mine.p12"
    genuine.write_bytes(p12(key, pki.issue(key=key).cert, [pki.sub.certificate], FILE_PASSWORD))
    self_made = tmp_path / "test.p12"
    self_made.write_bytes(self_made_p12(FILE_PASSWORD))
    foreign = tmp_path / "foreign.p12"
    foreign.write_bytes(foreign_csos_p12(tmp_path / "impostor", FILE_PASSWORD)[0])

    with CertificateBook(facade.db, facade.config, environ={}, actor="gui-test", trust_roots=[]) as empty:
        dialog = open_wizard(qtbot, open_import_wizard, facade, certificates=empty)
        press_next(qtbot, dialog, "file", p12_file=str(genuine), p12_password=FILE_PASSWORD)
        shown = page_text(dialog) + " ".join(problems(dialog).values())
        assert "No CSOS trust roots are set up" in shown and "CSOS trust roots → Add" in shown
        assert "trusted chain" not in shown
        dialog.close()
    with CertificateBook(facade.db, facade.config, environ={}, actor="gui-test",
                         trust_roots=pki.trust_roots) as certificates:
        dialog = open_wizard(qtbot, open_import_wizard, facade, certificates=certificates)
        press_next(qtbot, dialog, "file", p12_file=str(self_made), p12_password=FILE_PASSWORD)
        assert "is not a CSOS certificate" in page_text(dialog) + " ".join(problems(dialog).values())
        press_next(qtbot, dialog, "file", p12_file=str(foreign), p12_password=FILE_PASSWORD)
        shown = page_text(dialog) + " ".join(problems(dialog).values())
        assert "not a CSOS certification authority this computer trusts" in shown
        for text in (shown,):
            assert "K2" not in text and "docs/" not in text
        assert certificates.list() == []
        dialog.close()
