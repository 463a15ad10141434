"""The Settings supplier form for an AS2 supplier: address, AS2 ID and certificate, problems at their fields, the
certificate on file kept (and shown by fingerprint) when other details change."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from app.services.transport.as2 import create_identity
from app.services.transport.as2_mime import fingerprint
from app.ui.settings_dialog import SettingsDialog

pytestmark = pytest.mark.ui


@pytest.fixture
def open_settings(qtbot, facade, catalog_book):
    def make() -> SettingsDialog:
        dialog = SettingsDialog(facade)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        dialog.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=3000)
        return dialog

    return make


def test_an_as2_supplier_from_the_settings_form(qtbot, open_settings, catalog_book, tmp_path):
    partner = create_identity(tmp_path / "supplier", "WHOLESALE-WEST")  # stands in for the supplier's certificate
    cert_file = tmp_path / "wholesale-west-as2.pem"
    cert_file.write_bytes(partner.certificate_pem)
    dialog = open_settings()
    dialog.new_supplier_button.click()
    qtbot.keyClicks(dialog.supplier_fields["name"], "Wholesale West")
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("as2"))
    fields, messages = dialog.supplier_fields, dialog.supplier_messages
    assert fields["url"].isVisible() and fields["as2_partner_id"].isVisible() and fields["as2_certificate"].isVisible()
    assert not fields["tls_bundle"].isVisible() and not fields["folder"].isVisible()
    qtbot.keyClicks(fields["url"], "https://as2.wholesale-west.example/as2")
    assert not dialog.save()
    assert messages["as2_partner_id"].text.startswith("Enter the supplier's AS2 ID")
    assert messages["as2_certificate"].text.startswith("Choose the AS2 certificate file")
    qtbot.keyClicks(fields["as2_partner_id"], "WHOLESALE-WEST")
    qtbot.keyClicks(fields["as2_certificate"], str(tmp_path / "missing.pem"))
    assert not dialog.save()
    assert "cannot be read" in messages["as2_certificate"].text
    fields["as2_certificate"].clear()
    qtbot.keyClicks(fields["as2_certificate"], str(cert_file))
    assert dialog.save()
    connector = catalog_book.supplier("Wholesale West").connector
    assert connector["kind"] == "as2" and connector["partner_as2_id"] == "WHOLESALE-WEST"
    assert connector["url"] == "https://as2.wholesale-west.example/as2"
    assert connector["partner_certificate"] == partner.certificate_pem.decode("ascii")

    # Opened again: the certificate on file shows by its fingerprint and stays when something else changes.
    dialog = open_settings()
    row = next(i for i, e in enumerate(dialog.supplier_model.entries) if e.form.name == "Wholesale West")
    dialog.supplier_list.setCurrentIndex(dialog.supplier_model.index(row))
    shown = dialog.supplier_fields["as2_certificate"].text()
    assert shown.startswith("On file: SHA-256 " + fingerprint(partner.certificate)[:23])
    qtbot.keyClicks(dialog.supplier_fields["city"], "Memphis")
    assert dialog.save()
    supplier = catalog_book.supplier("Wholesale West")
    assert supplier.city == "Memphis"
    assert supplier.connector["partner_certificate"] == partner.certificate_pem.decode("ascii")
    assert supplier.connector["encryption"] == "aes256_cbc"


def test_the_pharmacys_as2_identity_is_created_and_its_certificate_saved_from_the_form(qtbot, open_settings,
                                                                                      monkeypatch, tmp_path,
                                                                                      modal_boxes):
    from PySide6.QtWidgets import QFileDialog, QInputDialog

    dialog = open_settings()
    dialog.new_supplier_button.click()
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("as2"))
    assert dialog.as2_identity_label.isVisible()
    assert "no AS2 identity yet" in dialog.as2_identity_label.text()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("MAIN ST", True))  # a space: refused
    dialog.as2_identity_button.click()
    assert modal_boxes.alerts and "cannot be used as an AS2 ID" in str(modal_boxes.alerts[-1])
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("MAIN-ST-RX", True))
    dialog.as2_identity_button.click()
    text = dialog.as2_identity_label.text()
    assert "AS2 ID MAIN-ST-RX" in text and "SHA-256 " in text
    target = tmp_path / "mine.pem"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    dialog.as2_identity_button.click()
    assert target.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert dialog.as2_identity_button.text() == "Save my AS2 certificate…"
