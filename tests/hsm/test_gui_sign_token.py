"""Sign & send in the GUI with the key on a real SoftHSM token (masked PIN, not kept), against the training sandbox."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QLineEdit  # noqa: E402

from app.models.states import OrderStatus  # noqa: E402
from app.services.certificates.book import CertificateBook  # noqa: E402
from app.ui.sign_dialog import SignAndSendDialog  # noqa: E402
from tests.ui.training_world import TrainingWorld  # noqa: E402

pytestmark = [pytest.mark.hsm, pytest.mark.ui, pytest.mark.integration]


@pytest.fixture
def world(tmp_path, hsm_token):
    made = TrainingWorld.start(tmp_path)
    made.config.settings["pkcs11_modules"] = [hsm_token.module]
    certificates = CertificateBook(made.db, made.config, environ={})
    token = next(t for t in certificates.list_tokens() if t.label == hsm_token.label)
    made.record = made.enroll(key={"key_store": "token", "token_serial": token.serial, "key_pin": hsm_token.pin},
                              certificates=certificates, name="Toni Token")
    certificates.close()
    yield made
    made.stop()


def test_sign_and_send_with_the_key_on_a_token(qtbot, world, hsm_token):
    from app.ui.facade import AppFacade

    facade = AppFacade(world.config, world.book, world.db)
    try:
        assert world.record.key_ref["store"] == "pkcs11"
        order = world.new_order()
        dialog = SignAndSendDialog(facade, order.id)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.preparation is not None, timeout=30_000)
        assert dialog.preparation.on_token and not dialog.preparation.pin_pad  # SoftHSM has no PIN pad
        assert dialog.go_button.isEnabled(), dialog.status_label.text()
        pin = dialog.unlock.secret_edit
        assert pin.isVisible() and pin.echoMode() == QLineEdit.EchoMode.Password
        assert "PIN" in dialog.unlock.secret_label.text()
        qtbot.keyClicks(pin, "000000")
        qtbot.keyClick(pin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
        assert "PIN" in dialog.unlock.message.text and world.book.get_order(order.id).status is OrderStatus.DRAFT
        qtbot.keyClicks(pin, hsm_token.pin)
        qtbot.keyClick(pin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
        stored = world.book.get_order(order.id)
        assert stored.status is OrderStatus.ACCEPTED, dialog.status_label.text()
        assert stored.signer_fingerprint == world.record.fingerprint and pin.text() == ""
        assert facade.sessions.is_unlocked(world.record)
    finally:
        facade.shutdown()
    assert not facade.sessions.is_unlocked(world.record)  # closing the window logs out of the token


def test_the_pin_prompt_warns_when_the_token_is_close_to_locking(qtbot, world, hsm_token):
    """A wrong PIN sets the token's COUNT_LOW flag (SoftHSM does so too): the error says how close the token is to
    locking, and the next sign screen says it before anything is typed (issue 19)."""
    from app.services.keys.pkcs11_tokens import COUNT_LOW_TEXT
    from app.ui.facade import AppFacade

    if hsm_token.softhsm is None:
        pytest.skip("needs SoftHSM, which flags COUNT_LOW after a wrong PIN")
    facade = AppFacade(world.config, world.book, world.db)
    try:
        order = world.new_order()
        dialog = SignAndSendDialog(facade, order.id)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitUntil(lambda: dialog.preparation is not None, timeout=30_000)
        assert COUNT_LOW_TEXT not in dialog.unlock.state_label.text()
        pin = dialog.unlock.secret_edit
        qtbot.keyClicks(pin, "000000")
        qtbot.keyClick(pin, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
        assert COUNT_LOW_TEXT in dialog.unlock.message.text
        dialog.close()
        again = SignAndSendDialog(facade, order.id)
        qtbot.addWidget(again)
        again.show()
        qtbot.waitUntil(lambda: again.preparation is not None, timeout=30_000)
        assert again.preparation.pin_notice == COUNT_LOW_TEXT
        assert again.unlock.state_label.text().startswith(COUNT_LOW_TEXT)
        qtbot.keyClicks(again.unlock.secret_edit, hsm_token.pin)  # the right PIN clears the flag again
        qtbot.keyClick(again.unlock.secret_edit, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        qtbot.waitUntil(lambda: again.job is None, timeout=60_000)
        assert world.book.get_order(order.id).status is OrderStatus.ACCEPTED, again.status_label.text()
    finally:
        facade.shutdown()
