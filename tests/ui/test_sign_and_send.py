"""Sign & send in the GUI against the real training sandbox: software key, pre-sign rules, locked session, answer."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from app.models.states import OrderStatus  # noqa: E402
from app.ui.sign_dialog import SignAndSendDialog, presign_rules  # noqa: E402
from app.services.signing.cms import parse_signed_document  # noqa: E402
from app.services.signing.usage_indicator import read_usage_indicator  # noqa: E402
from app.services.signing.verifier import Reason  # noqa: E402
from tests.ui.training_world import KEY_PASSWORD, TrainingWorld  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    made = TrainingWorld.start(tmp_path_factory.mktemp("sign-gui"))
    made.record = made.enroll()
    yield made
    made.stop()


class FakeMonotonic:
    """The signing session's idle clock, moved by the test (K4 without waiting 10 minutes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def facade(qtbot, world):
    from PySide6.QtCore import QThreadPool

    from app.ui.facade import AppFacade
    from app.ui.signing_sessions import SigningSessions

    made = AppFacade(world.config, world.book, world.db)
    made.idle_clock = FakeMonotonic()
    made._sessions = SigningSessions(made.certificates, clock=made.idle_clock, parent=made)
    yield made
    made.shutdown()
    assert made.jobs.pool.activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert made.outbox_runner is None or not made.outbox_runner.running


def open_dialog(qtbot, facade, order_id) -> SignAndSendDialog:
    dialog = SignAndSendDialog(facade, order_id)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.preparation is not None, timeout=30_000)
    return dialog


def sign(qtbot, dialog, password: str | None) -> None:
    if password is not None:
        dialog.unlock.secret_edit.setFocus()
        qtbot.keyClicks(dialog.unlock.secret_edit, password)
    qtbot.keyClick(dialog.go_button if not dialog.unlock.secret_edit.isVisible() else dialog.unlock.secret_edit,
                   Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)


def test_rules_are_listed_passed_and_the_order_is_shown_as_the_supplier_will_see_it(qtbot, facade, world):
    order = world.new_order()
    dialog = open_dialog(qtbot, facade, order.id)
    rules = [dialog.rules_list.item(i) for i in range(dialog.rules_list.count())]
    assert len(rules) >= 9
    assert all(item.data(Qt.ItemDataRole.UserRole) is True for item in rules), [i.text() for i in rules]
    assert "clock" in rules[0].text().lower()
    text = dialog.preview.toPlainText()
    assert order.order_number in text and "BJ6125341" in text and "Acme Drug" in text and "0406-0552-01" in text
    assert "BEG*00*SA*" + order.order_number in dialog.x12_view.toPlainText()
    assert read_usage_indicator(dialog.x12_view.toPlainText().encode("ascii")) == "T"  # training: a test interchange
    assert "Jordan Test" in dialog.certificate_label.text() and not dialog.enroll_button.isVisible()
    assert dialog.unlock.secret_edit.isVisible()
    assert dialog.unlock.secret_edit.echoMode() == dialog.unlock.secret_edit.EchoMode.Password
    assert dialog.go_button.isEnabled()


def test_sign_and_send_with_a_software_key_shows_the_suppliers_answer(qtbot, facade, world):
    order = world.new_order()
    dialog = open_dialog(qtbot, facade, order.id)
    sign(qtbot, dialog, "Not-The-Password-1")
    assert dialog.unlock.message.text and "password" in dialog.unlock.message.text.lower()
    assert world.book.get_order(order.id).status is OrderStatus.DRAFT  # nothing signed
    assert dialog.unlock.secret_edit.text() == ""  # the secret is not kept in the field
    sign(qtbot, dialog, KEY_PASSWORD)
    stored = world.book.get_order(order.id)
    assert stored.status is OrderStatus.ACCEPTED, dialog.status_label.text()
    assert stored.signed_document and stored.signer_fingerprint == world.record.fingerprint
    assert read_usage_indicator(parse_signed_document(stored.signed_document).content) == "T"  # ISA15 in training
    assert "accepted the order" in dialog.status_label.text()
    assert "bytes" not in dialog.status_label.text()  # no byte count on the main path
    assert dialog.progress.value() == dialog.progress.maximum()


def test_a_locked_session_asks_again_and_an_unlocked_one_does_not(qtbot, facade, world):
    first = world.new_order(lines=(("00009-0055-01", 1),))
    dialog = open_dialog(qtbot, facade, first.id)
    sign(qtbot, dialog, KEY_PASSWORD)
    assert world.book.get_order(first.id).status is OrderStatus.ACCEPTED
    dialog.close()

    second = world.new_order(lines=(("00009-0055-01", 2),))
    facade.idle_clock.now += 9 * 60  # nine minutes later: still unlocked
    dialog = open_dialog(qtbot, facade, second.id)
    assert not dialog.unlock.secret_edit.isVisible() and "unlocked" in dialog.unlock.state_label.text()
    facade.idle_clock.now += 10 * 60 + 1  # then more than ten idle minutes pass while the screen is open
    facade.sessions.expire_idle()  # what the window's timer does every 15 s
    qtbot.waitUntil(lambda: dialog.unlock.secret_edit.isVisible(), timeout=5000)
    assert "locked after 10 minutes" in dialog.unlock.state_label.text()
    sign(qtbot, dialog, None)  # pressing Sign without the password: asked for it, nothing signed
    assert world.book.get_order(second.id).status is OrderStatus.DRAFT
    assert "password" in dialog.unlock.message.text.lower()
    sign(qtbot, dialog, KEY_PASSWORD)
    assert world.book.get_order(second.id).status is OrderStatus.ACCEPTED


def test_a_rule_that_fails_blocks_signing_and_says_why(qtbot, facade, world):
    order = world.new_order(lines=(("00406-0552-01", 1),))
    facade.clock = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3 * 365)  # certificate long expired
    dialog = open_dialog(qtbot, facade, order.id)
    failed = [dialog.rules_list.item(i) for i in range(dialog.rules_list.count())
              if dialog.rules_list.item(i).data(Qt.ItemDataRole.UserRole) is not True]
    assert failed and not dialog.go_button.isEnabled()
    assert "cannot be signed" in dialog.status_label.text()


def test_without_a_certificate_the_screen_offers_enroll_and_import(qtbot, facade, world):
    """A dead end no more (issue 18): no certificate for the registration, so the next step is offered."""
    from tests.ui.training_world import AMOXICILLIN

    order = world.book.new_order(registration_dea="FR3141594", supplier_name="Acme Drug")
    world.book.add_line(order.id, ndc=AMOXICILLIN, packages=1)
    dialog = open_dialog(qtbot, facade, order.id)
    assert "No CSOS certificate on this computer can sign for FR3141594" in dialog.certificate_label.text()
    assert dialog.enroll_button.isVisible() and dialog.enroll_button.text() == "Enroll…"
    assert dialog.import_button.isVisible() and dialog.import_button.text() == "Import a .p12…"
    asked = []
    dialog.enroll_requested.connect(lambda: asked.append("enroll"))
    qtbot.mouseClick(dialog.enroll_button, Qt.MouseButton.LeftButton)
    assert asked == ["enroll"] and not dialog.go_button.isEnabled()


def test_presign_rules_group_the_verifier_codes_in_plain_words():
    rules = presign_rules([Reason("schedule_not_authorized", "Line 1 is C-II; the certificate has IV, V."),
                           Reason("dea_number_mismatch", "Wrong registration.")])
    by_key = {rule.key: rule for rule in rules}
    assert by_key["schedules"].passed is False and "C-II" in by_key["schedules"].details[0]
    assert by_key["dea"].passed is False
    assert by_key["validity"].passed is True and by_key["clock"].passed is None
    missing = presign_rules([], certificate_problem="No active CSOS signing certificate for BJ6125341.")
    assert {r.key: r.passed for r in missing}["certificate"] is False
    assert {r.key: r.passed for r in missing}["schedules"] is None


def test_the_main_window_signs_the_selected_order_and_the_outbox_runs_in_the_background(qtbot, facade, world):
    from app.ui.main_window import MainWindow

    order = world.new_order(lines=(("65862-0017-01", 4),))
    window = MainWindow(world.config, world.book, world.db, facade=facade, start_checks=False)
    qtbot.addWidget(window)
    facade.start_outbox(poll_interval=0.2, sync_interval=0.5)
    assert window.select_order(order.id)
    assert window.sign_action.isEnabled() and not window.receive_action.isEnabled()
    window.sign_action.trigger()
    dialog = window.dialog
    qtbot.waitUntil(lambda: dialog.preparation is not None, timeout=30_000)
    sign(qtbot, dialog, KEY_PASSWORD)
    assert world.book.get_order(order.id).status is OrderStatus.ACCEPTED
    qtbot.waitUntil(lambda: window.detail.fields["status"].text() == OrderStatus.ACCEPTED.label, timeout=5000)
    assert window.receive_action.isEnabled() and not window.sign_action.isEnabled()
    world.ship(world.book.get_order(order.id), None)
    window.sync_action.trigger()  # F6: fetch the shipment notice now
    qtbot.waitUntil(lambda: "Shipment" in window.detail.tabs.tabText(1) or
                    any("Shipment" in window.detail.timeline_model.row_values(r)[1]
                        for r in range(window.detail.timeline_model.rowCount())), timeout=15_000)
    window.close()


@pytest.mark.parametrize("state, required, passed", [("ok", True, True), ("off", False, False),
                                                     ("unknown", True, False), ("unknown", False, None)])
def test_the_clock_rule_line_fails_in_production_and_warns_in_training(state, required, passed):
    """K6 (issue 19): an unverified clock is a failed rule in production (Sign cannot go on), a warning in
    training; more than 5 minutes off fails everywhere."""
    from app.services.signing.clock import ClockCheck, ClockState

    clock = ClockCheck(ClockState(state), None, "time.nist.gov", "the rule's own words", required=required)
    line = next(rule for rule in presign_rules([], clock=clock) if rule.key == "clock")
    assert line.passed is passed
    assert line.details == ([] if passed else ["the rule's own words"])
