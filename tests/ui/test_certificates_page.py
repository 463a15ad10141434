"""The certificates page: rows from real certificate records (real keys, real CA), next actions, wizard buttons."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from PySide6.QtCore import Qt

from app.services.certificates.book import CertificateBook
from tests.pki import build_training_pki

pytestmark = pytest.mark.ui

DEA = "BJ6125341"
PASSWORD = "Lantern-Quarry-Meadow-35"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def certificates(facade, pki):
    book = CertificateBook(facade.db, facade.config, environ={}, trust_roots=pki.trust_roots,
                           intermediates=pki.intermediates)
    yield book
    book.close()


def install_certificate(certificates, pki, book, *, days: int):
    """A key in the software store and its certificate from the training CA, installed like the wizard does."""
    from cryptography import x509

    book.add_registration(dea_number=DEA, name="Main Street Pharmacy", address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701", schedules=["II", "III", "IV", "V"],
                          expires_on=(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)).date())
    ref = certificates.keygen(label="Pat", secret=PASSWORD)
    csr = x509.load_der_x509_csr(certificates.make_csr(ref, secret=PASSWORD, full_name="Pat Purchaser",
                                                       email="pat@example.test",
                                                       registrant_name="Main Street Pharmacy", subject_serial="77"))
    now = dt.datetime.now(dt.timezone.utc)
    from app.services.certificates.profile import SubscriberIdentity

    cert = pki.sub.issue_signing_certificate(
        csr, subscriber=SubscriberIdentity(full_name="Pat Purchaser", email="pat@example.test", serial="77"),
        registration=pki.registration(dea=DEA, expires=now + dt.timedelta(days=days)), now=now)
    return certificates.install(cert.public_bytes(serialization.Encoding.PEM))


def test_empty_page_says_how_to_start_and_offers_enroll_and_import(qtbot, facade, certificates):
    from app.ui.certificates_page import CertificatesPage

    page = CertificatesPage(facade, certificates=certificates)
    qtbot.addWidget(page)
    page.show()
    assert page.empty.isVisible() and "Enroll" in page.empty.text()
    assert not page.buttons["renew"].isEnabled() and not page.buttons["revoke"].isEnabled()
    with qtbot.waitSignal(page.open_wizard) as opened:
        qtbot.mouseClick(page.buttons["enroll"], Qt.MouseButton.LeftButton)
    assert opened.args == ["enroll", ""]


def test_rows_show_status_registration_key_days_left_and_next_action(qtbot, facade, certificates, pki):
    from app.ui.certificates_page import HEADERS, CertificatesPage

    record = install_certificate(certificates, pki, facade.book, days=20)
    page = CertificatesPage(facade, certificates=certificates)
    qtbot.addWidget(page)
    page.show()
    values = dict(zip(HEADERS, page.model.row_values(0)))
    assert values["Status"] == "active" and values["Registration"].startswith(DEA)
    assert values["Key"].startswith("Key file") and values["Schedules"] == "I, II, IIN, III, IIIN, IV, V"
    assert int(values["Days left"]) in (19, 20) and values["Next action"].startswith("Renew now")
    assert values["Registration expires"] != "—"
    page.table.selectRow(0)
    assert page.buttons["renew"].isEnabled() and page.buttons["revoke"].isEnabled()
    with qtbot.waitSignal(page.open_wizard) as opened:
        qtbot.mouseClick(page.buttons["revoke"], Qt.MouseButton.LeftButton)
    assert opened.args == ["revoke", record.fingerprint]
    certificates.mark_revoked(record.fingerprint, reason="key_compromise")
    page.refresh()
    page.table.selectRow(0)
    assert dict(zip(HEADERS, page.model.row_values(0)))["Status"] == "revoked"
    assert not page.buttons["renew"].isEnabled() and not page.buttons["revoke"].isEnabled()
