"""The enrollment wizard with the key generated on a real SoftHSM token, against the training sandbox (pytest-qt)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtWidgets import QLabel, QLineEdit  # noqa: E402

from app.config import load_config  # noqa: E402
from app.models.database import open_database, sqlite_url  # noqa: E402
from app.sandbox import start_sandbox  # noqa: E402
from app.services.certificates.book import CertificateBook  # noqa: E402
from app.services.enrollment.authority import SandboxAuthority  # noqa: E402
from app.services.orders.orderbook import OrderBook  # noqa: E402
from tests.integration.conftest import CLINIC, SandboxClient, new_email  # noqa: E402
from tests.ui.test_wizards import enroll_in_gui, press_next, wait_idle  # noqa: E402

pytestmark = [pytest.mark.hsm, pytest.mark.ui, pytest.mark.integration]


@pytest.fixture
def facade(qtbot, tmp_path):
    from app.ui.facade import AppFacade

    db = open_database(sqlite_url(tmp_path / "orderbook.sqlite3"))
    config = load_config(data_dir=tmp_path / "data", database_url=db.url, profile="training")
    made = AppFacade(config, OrderBook(db, actor="test"), db)
    yield made
    assert made.jobs.shutdown(10_000)
    db.close()


def test_enrollment_with_the_key_made_on_the_token(qtbot, facade, hsm_token, tmp_path):
    environ = {"PKCS11_MODULE": hsm_token.module, "PKCS11_TOKEN_LABEL": hsm_token.label}
    certificates = CertificateBook(facade.db, facade.config, environ=environ, actor="gui-test")
    token = next(t for t in certificates.list_tokens() if t.label == hsm_token.label)
    with start_sandbox(tmp_path / "sandbox", sntp=False) as sandbox:
        client = SandboxClient(sandbox)
        authority = SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle,
                                     trust_bundle=sandbox.trust_bundle)
        email = new_email("token")
        dialog = enroll_in_gui(qtbot, facade, authority, certificates, client, CLINIC, email=email)
        assert client.approve(client.coordinator_token(CLINIC), dialog.flow.data["application_id"]).status_code == 200
        dialog.poll_now()
        qtbot.waitUntil(lambda: dialog.flow.view == "codes", timeout=30_000)
        reference, access = client.codes(email)
        wait_idle(qtbot, dialog)
        press_next(qtbot, dialog, "key_location", reference_number=reference, access_code=access)
        press_next(qtbot, dialog, "key_location", key_store="token")
        pin = dialog.page.findChild(QLineEdit, "key_pin")
        assert pin.isEnabled() and pin.echoMode() == QLineEdit.EchoMode.Password  # no PIN pad on SoftHSM
        press_next(qtbot, dialog, "key_location", token_serial=token.serial, key_pin="000000")
        assert dialog.last_error is not None and dialog.last_error.code == "key.wrong_pin"
        press_next(qtbot, dialog, "request", token_serial=token.serial, key_pin=hsm_token.pin)
        assert token.serial in dialog.flow.data["key_description"]
        press_next(qtbot, dialog, "installed")
        assert "✔" in dialog.page.findChild(QLabel, "checkResult").text()
        record = certificates.signing_certificate_for(CLINIC["dea_number"])
        assert record.key_ref["store"] == "pkcs11" and record.key_ref["token"]["serial"] == token.serial
        with certificates.open_signer(record, secret=hsm_token.pin) as signer:
            assert signer.sign(b"order")
    certificates.close()
