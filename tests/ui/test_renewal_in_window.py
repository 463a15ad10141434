"""Renewal inside its window (issue 22), by visible text: a certificate ending in 20 days; the list says "Renew now",
the wizard says renewal is open and that the new certificate ends with the registration, asks no reason, and ends on
a confirmation page naming the new certificate. Production path (DEA's portal in the browser): the certificate file
the portal would give is issued here by a real training CA from the wizard's own request."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from PySide6.QtWidgets import QPlainTextEdit

from app.services.certificates.profile import SubscriberIdentity
from app.services.enrollment.authority import PortalAuthority
from tests.ui.test_certificates_page import DEA, PASSWORD, certificates, install_certificate, pki  # noqa: F401
from tests.ui.test_walkthrough import TIMEOUT, click, named, next_page, type_into, window, wizard_page, words

pytestmark = [pytest.mark.ui]


def test_renewal_in_its_window_needs_no_reason_and_confirms(qtbot, facade, certificates, pki, tmp_path):  # noqa: F811
    from app.ui.certificates_page import HEADERS, CertificatesPage
    from app.ui.wizards import open_renewal_wizard

    record = install_certificate(certificates, pki, facade.book, days=20)
    page = CertificatesPage(facade, certificates=certificates)
    qtbot.addWidget(page)
    page.show()
    values = dict(zip(HEADERS, page.model.row_values(0)))
    assert values["Next action"].startswith("Renew now") and "ends with the registration" in values["Next action"]
    assert values["Certificate ID"] == record.fingerprint[:16]

    open_renewal_wizard(None, facade, record.fingerprint, authority=PortalAuthority(), certificates=certificates)
    renewal = window(qtbot, "Renew a CSOS certificate")
    wizard_page(qtbot, renewal, "Your current certificate")
    shown = words(renewal)
    assert "Renewal is open" in shown and "the new certificate ends when the registration does" in shown
    assert "Renew before then only if something changed" not in shown  # no early-renewal reasons in the window
    next_page(qtbot, renewal, "Where the new key will live")
    type_into(qtbot, renewal, "New key password", "Meadow-Copper-Renewal-61")
    type_into(qtbot, renewal, "Key password again", "Meadow-Copper-Renewal-61")
    next_page(qtbot, renewal, "Renew on DEA's portal")

    # What DEA's portal would give for this request.
    csr = x509.load_pem_x509_csr(named(renewal, QPlainTextEdit, "Certificate request").toPlainText().encode())
    now = dt.datetime.now(dt.timezone.utc)
    issued = pki.sub.issue_signing_certificate(
        csr, subscriber=SubscriberIdentity(full_name="Pat Purchaser", email="pat@example.test", serial="77"),
        registration=pki.registration(dea=DEA, expires=now + dt.timedelta(days=20)), now=now)
    downloaded = tmp_path / "renewed.cer"
    downloaded.write_bytes(issued.public_bytes(serialization.Encoding.PEM))
    type_into(qtbot, renewal, "Certificate file you downloaded", str(downloaded))
    next_page(qtbot, renewal, "Renewed certificate installed")
    confirmation = re.search(r"Your certificate is renewed\. New certificate ([0-9a-f]{16})", words(renewal))
    assert confirmation and confirmation.group(1) != record.fingerprint[:16]
    assert f"The old certificate {record.fingerprint[:16]} is kept for the records" in words(renewal)
    click(qtbot, renewal, "Finish")
