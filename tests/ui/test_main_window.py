"""The main window driven as a person would, offscreen, over a real SQLite order book."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication

from app.models.states import OrderStatus
from app.ui import app as app_module
from app.ui.main_window import TRAINING_TEXT, MainWindow
from app.ui.main_window_status import describe_location
from app.ui.order_table_model import OrderTableModel
from tests.ui.conftest import SCREENSHOT_DIR, CountingSource, add_book_parties, bulk_orders

pytestmark = pytest.mark.ui


@pytest.fixture
def open_window(qtbot, book, db):
    def make(config, *, source=None) -> MainWindow:
        window = MainWindow(config, book, db, source=source, start_checks=False)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    return make


def test_training_window_shows_the_banner(open_window, training_config):
    window = open_window(training_config)
    assert window.windowTitle() == "CSOS Desk — TRAINING"
    assert window.training_banner.isVisible()
    assert window.training_banner.text() == TRAINING_TEXT
    # Above everything else in the window body.
    assert window.training_banner.mapTo(window, window.training_banner.rect().topLeft()).y() < \
        window.search_box.mapTo(window, window.search_box.rect().topLeft()).y()


def test_production_window_has_no_banner(open_window, production_config):
    window = open_window(production_config)
    assert window.windowTitle() == "CSOS Desk"
    assert not window.training_banner.isVisible()


def test_empty_order_book_shows_getting_started(open_window, training_config, db):
    window = open_window(training_config)
    panel = window.getting_started_panel()
    assert window.view_stack.currentWidget() is panel and panel.isVisible()
    assert "Press Ctrl+N" not in window.empty_hint.text()
    assert window.count_label.text() == "0 orders"
    assert window.location_label.text().startswith("Order book: /")
    assert window.location_label.toolTip() == describe_location(db.url)  # full path, the label may elide it
    assert window.detail_title.text() == "Select an order to see its details."


def test_orders_show_in_the_table(open_window, training_config, db):
    bulk_orders(db, 30)
    window = open_window(training_config)
    assert window.view_stack.currentWidget() is window.table and window.table.isVisible()
    assert window.model.rowCount() == 30
    assert window.count_label.text() == "30 orders"


def test_typing_in_the_search_box_filters(qtbot, open_window, training_config, db):
    ids = bulk_orders(db, 60)
    window = open_window(training_config)
    qtbot.keyClicks(window.search_box, "alpraz")
    # Debounced: nothing happens on each key, the filter applies once typing pauses.
    assert window.model.order_filter.text == ""
    want = {order_id for i, order_id in enumerate(ids) if i % 4 == 1 or (i % 2 == 1 and (i + 1) % 4 == 1)}
    qtbot.waitUntil(lambda: window.model.rowCount() == len(want), timeout=3000)
    assert window.model.order_filter.text == "alpraz"
    assert {window.model.order_id(r) for r in range(window.model.rowCount())} == want
    assert window.count_label.text() == f"{len(want)} orders match"

    window.search_box.clear()
    qtbot.keyClicks(window.search_box, "zzzz-nothing")
    qtbot.waitUntil(lambda: window.view_stack.currentWidget() is window.empty_hint, timeout=3000)
    assert "No orders match" in window.empty_hint.text()

    window.search_box.clear()
    qtbot.waitUntil(lambda: window.model.rowCount() == 60, timeout=3000)


def test_status_filter(qtbot, open_window, training_config, db):
    bulk_orders(db, 48)
    window = open_window(training_config)
    window.status_combo.setCurrentIndex(window.status_combo.findData(OrderStatus.RECEIVED))
    assert window.model.rowCount() == 8  # two of every twelve are received
    assert window.count_label.text() == "8 orders match"
    window.status_combo.setCurrentIndex(0)
    assert window.model.rowCount() == 48


def test_selecting_a_row_updates_the_detail_pane(qtbot, open_window, training_config, db):
    bulk_orders(db, 30)
    window = open_window(training_config)
    assert not window.detail_form.isVisible()
    window.table.selectRow(3)
    order = window.model.order_row(3)
    assert window.detail_title.text() == f"Order {order.order_number}"
    assert window.detail_fields["status"].text() == order.status.label
    assert window.detail_fields["supplier"].text() == order.supplier_name
    assert window.detail_fields["registration"].text().startswith(order.registration_dea + " — ")
    assert window.detail_form.isVisible()

    # Clicking another row, as a person would.
    rect = window.table.visualRect(window.model.index(5, 0))
    qtbot.mouseClick(window.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.detail_title.text() == f"Order {window.model.order_row(5).order_number}"


def test_a_changed_order_updates_row_and_detail_pane(qtbot, open_window, training_config, book):
    add_book_parties(book)
    orders = [book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug") for _ in range(3)]
    window = open_window(training_config)
    row = window.model.row_of(orders[0].id)
    window.table.selectRow(row)
    assert window.detail_fields["status"].text() == "Draft"
    book.transition(orders[0].id, OrderStatus.CANCELLED)
    window.model.orders_changed([orders[0].id])
    assert window.detail_fields["status"].text() == "Cancelled"


def test_the_view_loads_only_visible_rows(open_window, training_config, db, book):
    from app.ui.order_table_model import OrderBookSource

    bulk_orders(db, 1000)
    source = CountingSource(OrderBookSource(book, db))
    window = open_window(training_config, source=source)
    QApplication.processEvents()
    assert window.model.total == 1000
    assert window.model.loaded_count == 200  # one page of ids, the view has not scrolled
    assert 0 < window.model.cached_count <= 100  # one batch of rows around what is on screen
    assert len(source.row_calls) <= 2

    window.table.scrollToBottom()  # the view asks for more ids as the scroll bar reaches the end
    QApplication.processEvents()
    assert window.model.loaded_count > 200


def test_clicking_created_header_toggles_newest_oldest_first(qtbot, open_window, training_config, db):
    ids = bulk_orders(db, 20)
    window = open_window(training_config)
    header = window.table.horizontalHeader()
    assert window.model.order_id(0) == ids[-1]
    header.sectionClicked.emit(OrderTableModel.COL_CREATED)
    assert window.model.order_id(0) == ids[0]
    assert header.sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    header.sectionClicked.emit(OrderTableModel.COL_SUPPLIER)  # not sortable: nothing moves
    assert window.model.order_id(0) == ids[0] and header.sortIndicatorSection() == OrderTableModel.COL_CREATED
    header.sectionClicked.emit(OrderTableModel.COL_CREATED)
    assert window.model.order_id(0) == ids[-1]


def test_menus(qtbot, open_window, production_config, monkeypatch):
    window = open_window(production_config)
    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    titles = [action.text() for action in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&View", "&Order", "&Certificates", "Rec&ords", "&Help"]
    shown = []
    monkeypatch.setattr("app.ui.about_dialog.AboutDialog.exec", lambda dialog: shown.append(dialog.summary.text()))
    window.about_action.trigger()
    assert shown and "CSOS Desk" in shown[0] and "production" in shown[0]
    window.quit_action.trigger()
    assert not window.isVisible()


def test_database_location_hides_passwords():
    assert describe_location("postgresql://desk:secret@db.example/csos") == "postgresql://desk:***@db.example/csos"
    assert describe_location("sqlite:////var/lib/csos/orderbook.sqlite3") == "/var/lib/csos/orderbook.sqlite3"


def test_run_gui_shows_a_storage_error_instead_of_a_traceback(qtbot, tmp_path, monkeypatch):
    broken = tmp_path / "broken.sqlite3"
    broken.write_bytes(b"this is not a database" * 100)
    shown = []
    monkeypatch.setattr(app_module, "show_error", lambda title, message, parent=None: shown.append((title, message)))
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=f"sqlite:///{broken}", profile="training")
    assert code == app_module.EXIT_CANNOT_START
    assert shown and shown[0][0] == "CSOS Desk cannot start"
    assert "not a valid CSOS Desk order book" in shown[0][1]
    assert "Traceback" not in shown[0][1]


def test_run_gui_opens_the_main_window_and_exits_cleanly(qtbot, tmp_path, monkeypatch):
    import sys

    hook = sys.excepthook
    seen = []

    def close_soon() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen.extend(w.windowTitle() for w in windows)
        for window in windows:
            window.close()
            window.deleteLater()

    QTimer.singleShot(200, close_soon)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=None, profile="production")
    assert code == 0
    assert seen == ["CSOS Desk"]
    assert (tmp_path / "data" / "production" / "orderbook.sqlite3").exists()
    # Qt appends a display name to every title that does not end with it: none is set, so one title shows once.
    assert QApplication.applicationDisplayName() != "CSOS Desk" and not QApplication.windowIcon().isNull()
    assert sys.excepthook is hook


def test_a_read_failure_shows_the_message_in_the_status_bar(open_window, training_config, db, book):
    from app.errors import StorageError
    from app.ui.order_table_model import OrderBookSource

    class Locked(CountingSource):
        def page(self, *args, **kwargs):
            raise StorageError("The order book is busy in another window or workstation; try again in a moment.",
                               code="storage.locked")

    window = open_window(training_config, source=Locked(OrderBookSource(book, db)))
    window.model.refresh()
    assert window.statusBar().currentMessage().startswith("The order book is busy")


def test_start_training_over_reopens_training_with_an_emptied_folder(qtbot, tmp_path, modal_boxes):
    """Help → Start training over (confirmed): the window closes, the training folder is emptied, a new one opens."""
    marker = tmp_path / "data" / "training" / "practice-order-notes.txt"
    windows: list[MainWindow] = []

    def step() -> None:
        shown = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()
                 and w.is_attached and w not in windows]
        if not shown:
            QTimer.singleShot(100, step)
            return
        window = shown[0]
        windows.append(window)
        if len(windows) == 1:
            marker.write_text("practice data")
            assert window.start_training_over()
        else:
            window.close()
            return
        QTimer.singleShot(100, step)

    QTimer.singleShot(100, step)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=None, profile="training")
    assert code == 0 and len(windows) == 2
    assert modal_boxes.questions[0][0] == "Start training over?"
    assert not marker.exists() and (tmp_path / "data" / "training" / "orderbook.sqlite3").exists()
