"""The supplier's answer dialogs (issue 17.1) and the discrepancy in the order detail (issue 16.1), on the training
world's real order book: an imported 856 claiming 1,000 packages on a 2-package line is linked with its discrepancy
shown in plain words; an answer recorded by hand with its file is kept and moves the order."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt  # noqa: E402

import pytest  # noqa: E402

from app.models.orderbook import LinkedRecordKind  # noqa: E402
from app.models.states import OrderStatus  # noqa: E402
from app.ui.answer_dialogs import AnswerByHandDialog, ImportAnswerDialog  # noqa: E402
from tests.factories import sign_for_test  # noqa: E402
from tests.integration.test_hostile_answers_cli import FIXTURES  # noqa: E402
from tests.ui.test_order_life_screens import facade, world  # noqa: E402,F401
from tests.ui.training_world import OXYCODONE  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]
S = OrderStatus


def sent_order(world, packages: int = 2):
    """A signed order the supplier has (placeholder document: the dialogs never re-verify it)."""
    order = world.new_order(lines=((OXYCODONE, packages),))
    sign_for_test(world.book, order.id, document=f"doc-{order.order_number}".encode())
    world.book.transition(order.id, S.QUEUED)
    world.book.transition(order.id, S.TRANSMITTED)
    return world.book.get_order(order.id)


def rendered(name: str, order, folder):
    today = dt.datetime.now(dt.timezone.utc).date()
    data = (FIXTURES / name).read_bytes().replace(b"99XHOST01", order.order_number.encode()).replace(
        b"20300101", order.signed_at.strftime("%Y%m%d").encode()).replace(
        b"20300102", today.strftime("%Y%m%d").encode()).replace(b"00406055262", order.lines[0].ndc.encode())
    path = folder / name
    path.write_bytes(data)
    return path


def test_import_dialog_links_and_shows_the_discrepancy_and_the_detail_pane_shows_it(qtbot, facade, world, tmp_path):
    from app.services.orders.details import order_details
    from app.ui.order_detail import OrderDetailPane

    order = sent_order(world)
    dialog = ImportAnswerDialog(facade, order_number=order.order_number)
    qtbot.addWidget(dialog)
    dialog.set_paths([rendered("855_accepted.x12", order, tmp_path),
                      rendered("856_thousand_packages.x12", order, tmp_path),
                      rendered("unreadable_answer.x12", order, tmp_path)])
    with qtbot.waitSignal(dialog.imported, timeout=20_000):
        dialog.import_button.click()
    qtbot.waitUntil(lambda: dialog.job is None, timeout=20_000)
    text = dialog.result_view.toPlainText()
    assert "856_thousand_packages.x12: 1 linked" in text and "1,000 packages shipped in all" in text
    assert "unreadable_answer.x12: nothing linked, 1 refused" in text
    assert "Refused answers changed nothing" in dialog.problem.text_label.text()
    pane = OrderDetailPane()
    qtbot.addWidget(pane)
    pane.show_order(order_details(world.db, order.id))
    assert "1,000 packages shipped in all" in pane.fields["discrepancies"].text()
    timeline = [pane.timeline_model.row_values(r) for r in range(pane.timeline_model.rowCount())]
    assert any(row[3].startswith("Discrepancy: ") for row in timeline)


def test_answer_by_hand_keeps_the_file_and_marks_a_rejected_line(qtbot, facade, world, tmp_path):
    order = sent_order(world)
    note = tmp_path / "phone-note.txt"
    note.write_text("Called Acme 10:15, spoke to Sam: cannot fill, licence check pending.\n")
    dialog = AnswerByHandDialog(facade, order.id)
    qtbot.addWidget(dialog)
    dialog.not_accepted_radio.setChecked(True)
    assert not dialog.line_boxes[1].isEnabled()
    dialog.record_button.click()  # no reason yet: refused next to the field, nothing recorded
    qtbot.waitUntil(lambda: dialog.job is None, timeout=20_000)
    assert dialog.reason_message.text_label.text() and world.book.get_order(order.id).status is S.TRANSMITTED
    dialog.reason_edit.setText("Phone: licence check pending")
    dialog.set_attachment(note)
    with qtbot.waitSignal(dialog.recorded, timeout=20_000):
        dialog.record_button.click()
    stored = world.book.get_order(order.id)
    assert stored.status is S.NOT_ACCEPTED
    [record] = [r for r in stored.linked_records if r.kind is LinkedRecordKind.NON_ACCEPTANCE]
    assert record.raw == note.read_bytes() and record.parsed["reason"] == "Phone: licence check pending"


def test_the_main_window_offers_both_dialogs(qtbot, tmp_path):
    """File and Order menus carry "Import supplier's answer…"; the order's actions "Record … by hand…" (enabled while
    the order waits for the supplier's answer)."""
    from app.config import load_config
    from app.models.database import open_database
    from app.services.orders.orderbook import OrderBook
    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow
    from tests.factories import draft_order, seed

    config = load_config(data_dir=tmp_path / "data", profile="training")
    db = open_database(config.database_url)
    book = OrderBook(db, actor="test")
    seed(book)
    order = draft_order(book, lines=1)
    sign_for_test(book, order.id)
    book.transition(order.id, S.QUEUED)
    book.transition(order.id, S.TRANSMITTED)
    window = MainWindow(config, book, db, facade=AppFacade(config, book, db), start_checks=False)
    qtbot.addWidget(window)
    menus = {a.text(): [x.text() for x in a.menu().actions()] for a in window.menuBar().actions() if a.menu()}
    assert "Import supplier's &answer…" in menus["&File"] and "Import supplier's &answer…" in menus["&Order"]
    assert "Record the supplier's answer by &hand…" in menus["&Order"]
    assert not window.answer_by_hand_action.isEnabled()
    window.select_order(order.id)
    qtbot.waitUntil(lambda: window.answer_by_hand_action.isEnabled(), timeout=10_000)
    assert window.receive_action.isEnabled()  # goods may arrive before any answer
    dialog = window.record_answer_selected()
    assert isinstance(dialog, AnswerByHandDialog)
    dialog.reject()
    imported = window.import_answer()
    assert isinstance(imported, ImportAnswerDialog)
    imported.reject()
    window.close()
    window.facade.shutdown()
    db.close()


def test_the_records_pdf_page_shows_discrepancies_and_links(book):
    """What the PDF prints for an order whose 856 claims 1,000 packages on a 2-package line (issue 16.1)."""
    from app.services.orders.lifecycle import Lifecycle
    from app.services.orders.records import order_view
    from app.ui.records_pdf import order_html
    from tests.factories import seed
    from tests.unit.orders.test_lifecycle import AckStatus, ack, apply, ship, transmitted

    seed(book)
    lifecycle = Lifecycle(book)
    order = transmitted(book, lines=1)
    apply(lifecycle, order, "855", ack(order, AckStatus.ACCEPTED))
    apply(lifecycle, order, "856", ship(order, {1: 1000}))
    html = order_html(order_view(book.get_order(order.id), replaced_by=["26X000777"]))
    assert "Discrepancies in the supplier" in html and "1,000 packages shipped in all" in html
    assert "Replaced by order 26X000777" in html
    signed = book.get_order(order.id).signed_at.astimezone(dt.timezone.utc)
    assert f"Signed {signed:%Y-%m-%d %H:%M} UTC" in html  # as a person reads it, not raw ISO with microseconds


def test_answer_files_dropped_on_the_main_window_are_imported(qtbot, facade, world, tmp_path):
    """Drag and drop (issue 17.1): a real QMimeData with the files' URLs dropped on the main window opens the import
    dialog with those files and imports them; the 856 claiming 1,000 packages is linked with its discrepancy. A drag
    that carries no local file is refused."""
    from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    from app.ui.main_window import MainWindow

    order = sent_order(world)
    files = [rendered("855_accepted.x12", order, tmp_path), rendered("856_thousand_packages.x12", order, tmp_path)]
    window = MainWindow(world.config, world.book, world.db, facade=facade, start_checks=False)
    qtbot.addWidget(window)
    window.show()
    assert window.is_attached
    assert window.acceptDrops()

    text_only = QMimeData()
    text_only.setText("not a file")
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, text_only, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in files])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    dialog = window.dialog
    assert isinstance(dialog, ImportAnswerDialog) and dialog.paths == files
    qtbot.waitUntil(lambda: dialog.job is None and bool(dialog.reports), timeout=20_000)
    text = dialog.result_view.toPlainText()
    assert "856_thousand_packages.x12: 1 linked" in text and "1,000 packages shipped in all" in text
    kinds = {record.kind for record in world.book.get_order(order.id).linked_records}
    assert {LinkedRecordKind.ACKNOWLEDGEMENT, LinkedRecordKind.SHIPMENT} <= kinds
    dialog.reject()
    window.close()


def test_the_screenshots_show_an_order_with_a_discrepancy(qtbot, facade, world, tmp_path):
    """csos-desk demo --screenshots (issue 16.1): when the newest order has a discrepancy, its detail (scrolled to
    it) and its page of the records export are saved as discrepancy-*.png."""
    from app.ui.screenshots import save_screenshots

    order = sent_order(world)
    facade.lifecycle().import_answer_files([rendered("855_accepted.x12", order, tmp_path),
                                            rendered("856_thousand_packages.x12", order, tmp_path)])
    written = save_screenshots(tmp_path / "shots", config=world.config, db=world.db, book=world.book)
    shots = {path.stem: path for path in written}
    assert {"discrepancy-order-detail", "discrepancy-records-page"} <= set(shots)
    assert all(shots[name].stat().st_size > 5000 for name in ("discrepancy-order-detail", "discrepancy-records-page"))
