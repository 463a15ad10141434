"""Receiving, lost order, cancel, print/PDF and records screens against the real training sandbox."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt  # noqa: E402
import threading  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QDate, Qt  # noqa: E402

from app.models.orderbook import LinkedRecord  # noqa: E402
from app.models.states import OrderStatus  # noqa: E402
from app.ui.lifecycle_dialogs import CancelOrderDialog, LostOrderDialog, PackagesModel, ReceivingDialog  # noqa: E402
from app.ui.records_dialog import RecordsDialog  # noqa: E402
from app.ui.sign_dialog import send_order  # noqa: E402
from tests.ui.training_world import KEY_PASSWORD, TrainingWorld  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    made = TrainingWorld.start(tmp_path_factory.mktemp("life-gui"))
    made.record = made.enroll()
    yield made
    made.stop()


@pytest.fixture
def facade(qtbot, world):
    from PySide6.QtCore import QThreadPool

    from app.ui.facade import AppFacade

    made = AppFacade(world.config, world.book, world.db)
    yield made
    made.shutdown()
    assert made.jobs.pool.activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def accepted_order(facade, world, lines=(("00406-0552-01", 2), ("65862-0017-01", 3))):
    """An order signed with the enrolled key and accepted by the practice supplier (the services, no screen)."""
    from app.services.signing.order_signing import OrderSigningService

    order = world.new_order(lines=lines)
    certificate, intermediates = facade.certificates.chain(world.record)
    signer = facade.sessions.unlocked_signer(world.record, KEY_PASSWORD)
    OrderSigningService(world.book, facade.verifier(), test_indicator="T").sign(  # training: ISA15 T
        order.id, signer=signer, certificate=certificate, intermediates=intermediates)
    outcome = send_order(facade, order.id)
    assert outcome.status is OrderStatus.ACCEPTED, outcome.message
    return world.book.get_order(order.id)


def sync(facade, order_id):
    facade.lifecycle().sync(facade.connector, order_ids=[order_id])


def set_count(qtbot, dialog, row: int, value: int) -> None:
    index = dialog.model.index(row, dialog.model.edit_column)
    dialog.table.setCurrentIndex(index)
    dialog.table.edit(index)
    editor = dialog.table.indexWidget(index) or dialog.table.focusWidget()
    editor.selectAll()
    qtbot.keyClicks(editor, str(value))  # left open: the button must take the typed value


def test_receive_partial_then_the_rest_with_defaults_from_shipments(qtbot, facade, world):
    order = accepted_order(facade, world)
    world.ship(order, [{"line_number": 1, "packages": 1}, {"line_number": 2, "packages": 3}])
    sync(facade, order.id)
    dialog = ReceivingDialog(facade, order.id)
    qtbot.addWidget(dialog)
    assert dialog.model.counts() == {1: 1, 2: 3}  # what was shipped and not yet received
    dialog.record_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    assert world.book.get_order(order.id).status is OrderStatus.PARTIALLY_RECEIVED

    world.ship(order, None)
    sync(facade, order.id)
    dialog = ReceivingDialog(facade, order.id)
    qtbot.addWidget(dialog)
    assert dialog.model.counts() == {1: 1, 2: 0}
    dialog.record_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    final = world.book.get_order(order.id)
    assert final.status is OrderStatus.RECEIVED
    assert {line.line_number: sum(r.packages_received for r in line.receipts) for line in final.lines} == {1: 2, 2: 3}


def test_receiving_more_than_shipped_needs_a_reason_and_keeps_the_numbers(qtbot, facade, world):
    order = accepted_order(facade, world, lines=(("00009-0055-01", 2),))
    world.ship(order, [{"line_number": 1, "packages": 1}])
    sync(facade, order.id)
    dialog = ReceivingDialog(facade, order.id)
    qtbot.addWidget(dialog)
    dialog.show()
    set_count(qtbot, dialog, 0, 2)
    dialog.record_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    assert "more was received than shipped" in dialog.reason_message.text.lower()
    assert dialog.model.counts() == {1: 2} and dialog.isVisible()
    assert world.book.get_order(order.id).status is OrderStatus.ACCEPTED
    qtbot.keyClicks(dialog.reason_edit, "Supplier sent the second box early")
    dialog.date_edit.setDate(QDate.currentDate().addDays(-1))  # before the order was signed today
    dialog.record_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    assert "before the order was signed" in dialog.date_message.text and not world.book.get_order(order.id).lines[
        0].receipts
    dialog.date_edit.setDate(QDate.currentDate())
    dialog.record_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    stored = world.book.get_order(order.id)
    receipt = stored.lines[0].receipts[0]
    assert receipt.packages_received == 2 and receipt.reason.startswith("Supplier sent")
    assert receipt.received_on == dt.date.today()


def test_lost_order_statement_is_signed_and_a_replacement_draft_opens(qtbot, facade, world):
    from app.ui.main_window import MainWindow

    order = accepted_order(facade, world)
    facade.sessions.lock_all()
    window = MainWindow(world.config, world.book, world.db, facade=facade, start_checks=False)
    qtbot.addWidget(window)
    assert window.select_order(order.id) and window.lost_action.isEnabled()
    window.lost_action.trigger()
    dialog = window.dialog
    assert isinstance(dialog, LostOrderDialog)
    assert dialog.model.counts() == {1: 2, 2: 3}
    dialog.go_button.click()  # no password typed: asked for it, nothing signed
    assert "password" in dialog.unlock.message.text.lower()
    qtbot.keyClicks(dialog.unlock.secret_edit, KEY_PASSWORD)
    dialog.go_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    result = dialog.result
    assert result is not None and result.replacement_order_number
    assert world.book.get_order(order.id).status is OrderStatus.LOST
    replacement = world.book.get_order(result.replacement_order_id)
    assert replacement.status is OrderStatus.DRAFT and replacement.replaces_order_id == order.id
    assert window.editor is not None and window.editor.order_id == replacement.id  # opened to check and sign
    with world.db.session() as session:
        kinds = {r.kind.value for r in session.query(LinkedRecord).filter_by(order_id=order.id)}
    assert "lost_statement" in kinds
    window.editor.reject()
    window.close()


def test_cancel_before_transmission_needs_a_reason(qtbot, facade, world):
    order = world.new_order(lines=(("00009-0055-01", 1),))
    dialog = CancelOrderDialog(facade, order.id)
    qtbot.addWidget(dialog)
    dialog.go_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    assert dialog.reason_message.text and world.book.get_order(order.id).status is OrderStatus.DRAFT
    qtbot.keyClicks(dialog.reason_edit, "Ordered twice by mistake")
    dialog.go_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=10_000)
    assert world.book.get_order(order.id).status is OrderStatus.CANCELLED


def test_an_order_is_saved_as_pdf(qtbot, facade, world, tmp_path):
    from app.ui.printing import order_document, save_order_pdf

    order = accepted_order(facade, world, lines=(("00009-0055-01", 1),))
    assert order.order_number in order_document(facade, order.id).toPlainText()
    path = save_order_pdf(facade, order.id, tmp_path / "order.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type /Page" in data and len(data) > 2000
    assert not (tmp_path / "order.pdf.part").exists()


def test_records_export_shows_progress_and_can_be_cancelled(qtbot, facade, world, tmp_path, monkeypatch):
    accepted_order(facade, world, lines=(("00009-0055-01", 1),))
    dialog = RecordsDialog(facade)
    qtbot.addWidget(dialog)
    dialog.show()
    gate, reached = threading.Event(), threading.Event()
    import app.services.orders.records as records

    original = records.order_view

    def slow_view(*args, **kwargs):  # holds the export on its first order until the test pressed Stop
        reached.set()
        gate.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(records, "order_view", slow_view)
    from app.ui.records_dialog import documents_folder

    assert dialog.export_folder.text().startswith(str(documents_folder()))  # the Documents folder by default
    assert not dialog.open_folder_button.isVisible()
    dialog.export_folder.setText(str(tmp_path / "cancelled"))
    dialog.export_button.click()
    assert reached.wait(10)
    qtbot.waitUntil(lambda: dialog.progress.isVisible() and dialog.cancel_button.isVisible(), timeout=5000)
    dialog.cancel_button.click()
    gate.set()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=20_000)
    assert "stopped" in dialog.export_result.text() and not (tmp_path / "cancelled").exists()
    monkeypatch.setattr(records, "order_view", original)

    dialog.export_folder.setText(str(tmp_path / "export"))
    seen: list[tuple[int, int]] = []
    dialog.export_button.click()
    dialog.job.progress.connect(lambda done, total, _t: seen.append((done, total)))
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert dialog.last_export is not None, dialog.export_message.text
    assert (tmp_path / "export" / "records.pdf").is_file() and (tmp_path / "export" / "orders.csv").is_file()
    assert seen and seen[-1][0] == seen[-1][1] == dialog.last_export.orders
    assert dialog.open_folder_button.isVisible() and dialog.open_folder_button.text() == "Open folder"


def test_integrity_check_report_and_backup(qtbot, facade, world, tmp_path):
    accepted_order(facade, world, lines=(("00009-0055-01", 1),))
    dialog = RecordsDialog(facade, tab=1)
    qtbot.addWidget(dialog)
    dialog.check_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert dialog.last_check is not None and dialog.last_check.clean
    assert "Nothing was altered" in dialog.check_report.toPlainText()

    with world.db.engine.begin() as connection:  # someone edits a stored supplier record behind the program's back
        from sqlalchemy import text

        connection.execute(text("UPDATE linked_records SET raw = X'00' WHERE id = (SELECT max(id) FROM linked_records)"))
    try:
        dialog.check_button.click()
        qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
        report = dialog.check_report.toPlainText()
        assert not dialog.last_check.clean and "problem(s) found" in report and "changed after it was stored" in report
        assert "What to do" in report
    finally:
        with world.db.engine.begin() as connection:
            connection.execute(text("DELETE FROM linked_records WHERE raw = X'00'"))

    dialog.tabs.setCurrentIndex(2)
    dialog.backup_path.setText(str(tmp_path / "backup.sqlite3"))
    dialog.backup_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=30_000)
    assert dialog.last_backup is not None and (tmp_path / "backup.sqlite3").stat().st_size > 0
    assert "Keys are not in it" in dialog.backup_result.text()
    assert not list((tmp_path).glob("*.key")) and b"PRIVATE KEY" not in (tmp_path / "backup.sqlite3").read_bytes()


def test_packages_model_passes_the_model_tester(qtmodeltester):
    model = PackagesModel(("Line", "Product", "Receive now"))
    model.set_rows([[1, "Oxycodone 5 mg", 2], [2, "Amoxicillin 500 mg", 0]])
    qtmodeltester.check(model)
    assert model.setData(model.index(1, 2), 4) and model.counts() == {1: 2, 2: 4}
    assert not model.setData(model.index(1, 2), -1) and not model.setData(model.index(0, 1), "x")


def test_every_screen_is_rendered_to_a_png(qtbot, facade, world):
    from app.ui.screenshots import save_screenshots
    from tests.ui.conftest import SCREENSHOT_DIR

    order = accepted_order(facade, world)
    world.ship(order, [{"line_number": 1, "packages": 1}])
    sync(facade, order.id)
    written = save_screenshots(SCREENSHOT_DIR, config=world.config, db=world.db, book=world.book)
    names = {path.stem for path in written}
    assert {"main-window", "sign-and-send", "receiving", "lost-order", "cancel-order", "records-export",
            "records-check", "records-backup", "certificates", "about", "settings", "order-editor",
            "first-run-empty", "first-run-half-done", "registrations", "registrations-new-check-digit",
            "catalog-import"} <= names
    assert any(path.parent.name == "wizards" for path in written)
    assert {p.stem for p in written if p.parent.name == "small"} >= {"main-window", "first-run-half-done"}
    assert all(path.stat().st_size > 5000 for path in written)
    assert world.book.get_order(order.id).status is OrderStatus.ACCEPTED  # screenshots change nothing


def test_records_export_to_a_full_drive_says_so_plainly(qtbot, facade, world, tiny_filesystem, tmp_path):
    from tests.full_drive import fill_up

    accepted_order(facade, world, lines=(("00009-0055-01", 1),))
    fill_up(tiny_filesystem)
    dialog = RecordsDialog(facade)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.export_folder.setText(str(tiny_filesystem / "export"))
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=60_000)
    assert dialog.last_export is None and not dialog.open_folder_button.isVisible()
    said = dialog.export_message.text
    assert said.startswith(f"The export does not fit on the drive of {tiny_filesystem}: it is full."), said
    assert "choose a folder on another drive" in said and "Errno" not in said
    assert sorted(path.name for path in tiny_filesystem.iterdir()) == ["filler"]
    dialog.grab().save(str(tmp_path / "records-export-full-drive.png"))
