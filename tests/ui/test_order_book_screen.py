"""The main window's filters, detail pane, status bar, reminders and keyboard use, over a real SQLite order book."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading

import pytest
from PySide6.QtCore import QDate, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
    QWidget,
)
from sqlalchemy import update

from app.models.orderbook import CertificateRecord, CertificateStatus, LinkedRecord, LinkedRecordKind, Order, Receipt
from app.models.states import OrderStatus
from app.models.values import Schedule
from app.sandbox.sntp import SntpServer
from app.ui.facade import AppFacade
from app.ui.main_window import MainWindow
from app.ui.widgets import RowsTableModel
from tests.factories import sign_for_test
from tests.ui.conftest import PRODUCTS, SCREENSHOT_DIR, STATUS_CYCLE, bulk_orders, expected_ids

pytestmark = pytest.mark.ui

TODAY = dt.date(2026, 3, 2)


@pytest.fixture
def make_window(qtbot, book, db):
    made: list[AppFacade] = []

    def make(config, *, clock=None, start_checks=False) -> MainWindow:
        facade = AppFacade(config, book, db, clock=clock or (lambda: dt.datetime.now(dt.timezone.utc)))
        made.append(facade)
        window = MainWindow(config, book, db, facade=facade, start_checks=start_checks)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        return window

    yield make
    for facade in made:
        assert facade.jobs.shutdown(5000)
        assert facade.jobs.pool.activeThreadCount() == 0


def listed_ids(window: MainWindow) -> set[int]:
    model = window.model
    while model.canFetchMore():
        model.fetchMore()
    return {model.order_id(row) for row in range(model.rowCount())}


def choose(combo: QComboBox, data) -> None:
    index = combo.findData(data)
    assert index >= 0, f"{data} not offered"
    combo.setCurrentIndex(index)


def test_filters_narrow_the_table(make_window, training_config, db):
    ids = bulk_orders(db, 72)
    window = make_window(training_config)
    assert listed_ids(window) == set(ids)

    # Registration: orders alternate between the two registrations.
    choose(window.registration_combo, window.registration_combo.itemData(1))
    first_registration = listed_ids(window)
    assert len(first_registration) == 36 and window.count_label.text() == "36 orders match"
    # ...and the supplier narrows further (three suppliers in turn).
    choose(window.supplier_combo, window.supplier_combo.itemData(2))
    both = listed_ids(window)
    assert both and both < first_registration and len(both) == 12

    window.clear_filters()
    assert listed_ids(window) == set(ids)

    # Schedule IV: Alprazolam is product 1 of every order i with i % 4 == 1, or the second line of odd i.
    choose(window.schedule_combo, Schedule.IV)
    want = expected_ids(ids, lambda i: i % 4 == 1 or (i % 2 == 1 and (i + 1) % 4 == 1))
    assert listed_ids(window) == want

    # Status and schedule together.
    choose(window.status_combo, OrderStatus.RECEIVED)
    assert listed_ids(window) == want & expected_ids(ids, lambda i: STATUS_CYCLE[i % 12] is OrderStatus.RECEIVED)
    window.clear_filters()


def test_the_date_range_filter(make_window, training_config, db):
    start = dt.datetime(2025, 9, 1, 12, 0, tzinfo=dt.timezone.utc)
    ids = bulk_orders(db, 10, start=start, step=dt.timedelta(days=1))  # Sep 1 … Sep 10
    window = make_window(training_config)
    choose(window.created_combo, "between")
    assert window.from_date.isVisible() and window.to_date.isVisible()
    window.from_date.setDate(QDate(2025, 9, 3))
    window.to_date.setDate(QDate(2025, 9, 5))
    assert listed_ids(window) == set(ids[2:5])
    choose(window.created_combo, None)
    assert not window.from_date.isVisible()
    assert listed_ids(window) == set(ids)
    choose(window.created_combo, 7)  # last 7 days: these orders are older
    assert listed_ids(window) == set()
    assert "No orders match these filters." in window.empty_hint.text()


def test_the_filter_choices_follow_the_order_book(make_window, training_config, db, book):
    bulk_orders(db, 3)
    window = make_window(training_config)
    assert window.supplier_combo.count() == 4  # "All suppliers" + three
    book.add_supplier(name="Zenith Pharma Supply")
    window.facade.parties_changed.emit()
    assert window.supplier_combo.findText("Zenith Pharma Supply") > 0


def full_order(book, db) -> Order:
    """An order with lines, signed, sent, acknowledged and partly received: everything the detail pane shows."""
    order = book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    book.add_line(order.id, ndc=PRODUCTS[0][0], packages=2)
    book.add_line(order.id, ndc=PRODUCTS[1][0], packages=1)
    sign_for_test(book, order.id)
    for status in (OrderStatus.QUEUED, OrderStatus.TRANSMITTED):
        book.transition(order.id, status)
    with db.session() as session, session.begin():
        book.link_record(session, order.id, LinkedRecord(
            kind=LinkedRecordKind.ACKNOWLEDGEMENT, direction="in", media_type="application/edi-x12",
            raw=b"ISA*00*...~", parsed={"summary": "Accepted, no changes"}))
        book.transition(order.id, OrderStatus.ACCEPTED, session=session)
        line = session.get(Order, order.id).lines[0]
        session.add(Receipt(order_line_id=line.id, packages_received=2, received_on=dt.date(2025, 9, 9),
                            recorded_by="Dana (technician)"))
    return book.get_order(order.id)


def test_the_detail_pane_shows_lines_timeline_receipts_and_audit(make_window, training_config, book, db):
    from tests.ui.conftest import add_book_parties
    from tests.factories import seed

    seed(book)
    order = full_order(book, db)
    window = make_window(training_config)
    assert window.select_order(order.id)
    pane = window.detail
    assert pane.title.text() == f"Order {order.order_number}"
    assert pane.fields["status"].text() == "Accepted"
    assert pane.fields["registration"].text() == "BJ6125341 — Main Street Pharmacy"
    assert pane.fields["supplier"].text() == "Acme Drug (DEA RA1234563)"
    assert pane.fields["supplier_address"].text() == "9 Depot Rd, Memphis, TN 38118"
    assert pane.fields["signed"].text() != "not signed yet"

    lines = [pane.lines_model.row_values(r) for r in range(pane.lines_model.rowCount())]
    assert [(r[0], r[1], r[2], r[3], r[4], r[5], r[7]) for r in lines] == [
        ("1", "Oxycodone Hydrochloride 5 mg", "00406-0552-62", "II", "100 EA", "2", "2"),
        ("2", "Alprazolam 0.5 mg", "00009-0029-01", "IV", "100 EA", "1", "0")]
    timeline = [pane.timeline_model.row_values(r) for r in range(pane.timeline_model.rowCount())]
    assert [(r[1], r[2], r[3]) for r in timeline] == [("Supplier's answer", "from supplier", "Accepted, no changes")]
    receipts = [pane.receipts_model.row_values(r) for r in range(pane.receipts_model.rowCount())]
    assert receipts == [("Sep 09, 2025", "1", "Oxycodone Hydrochloride 5 mg", "2", "Dana (technician)", "")]
    audit = [pane.audit_model.row_values(r)[2] for r in range(pane.audit_model.rowCount())]
    assert audit[0] == "Order created"
    assert "Line added (line 1, NDC 00406-0552-62, 2 package(s))" in audit
    assert "Status: Draft → Signed" in audit and "Status: Transmitted → Accepted" in audit
    assert "Record linked: supplier's answer" in audit
    assert pane.tabs.tabText(3) == f"&Audit trail ({len(audit)})"
    assert add_book_parties  # the shared helper stays importable for other tests


def test_model_tester_on_the_detail_tables(qtmodeltester):
    model = RowsTableModel(("When", "What"), numeric_columns=(1,))
    qtmodeltester.check(model)
    model.set_rows([("Mar 01, 2026 10:00", 3), ("Mar 02, 2026 11:00", None)], [("full time",), None])
    qtmodeltester.check(model)
    assert model.data(model.index(1, 1)) == ""
    assert model.data(model.index(0, 0), Qt.ItemDataRole.ToolTipRole) == "full time"
    assert model.data(model.index(0, 1), Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight


def test_reminders_show_with_the_action_and_stay_dismissed_until_the_next_step(make_window, training_config, book):
    book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy", address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701", schedules=["II"],
                          expires_on=TODAY + dt.timedelta(days=12))
    at = {"now": dt.datetime.combine(TODAY, dt.time(12), dt.timezone.utc)}
    window = make_window(training_config, clock=lambda: at["now"])
    assert window.notice_bar.isVisible()
    text = window.notice_text.text()
    assert "DEA registration BJ6125341 (Main Street Pharmacy) expires in 12 days" in text
    assert "Renew the DEA registration on DEA" in text  # the action to take
    window.notice_dismiss.click()
    assert not window.notice_bar.isVisible()
    assert training_config.settings["dismissed_reminders"] == {"registration:BJ6125341": 14}
    assert '"registration:BJ6125341": 14' in training_config.settings_path.read_text()

    window.refresh()  # the same step: still dismissed
    assert not window.notice_bar.isVisible()
    at["now"] += dt.timedelta(days=6)  # 6 days left: the 7-day step
    window.refresh()
    assert window.notice_bar.isVisible() and "expires in 6 days" in window.notice_text.text()
    assert window.notice_bar.property("urgent") is False
    at["now"] += dt.timedelta(days=7)  # expired
    window.refresh()
    assert "expired on" in window.notice_text.text() and window.notice_bar.property("urgent") is True


def test_reminder_days_from_settings_decide_when_a_reminder_starts(make_window, training_config, book):
    book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy", address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701", schedules=["II"],
                          expires_on=TODAY + dt.timedelta(days=40))
    training_config.settings["reminder_days"] = [30, 7]
    window = make_window(training_config, clock=lambda: dt.datetime.combine(TODAY, dt.time(12), dt.timezone.utc))
    assert not window.notice_bar.isVisible()
    window.facade.save_settings({"reminder_days": [60, 30]})  # Settings changed: the window follows
    assert window.notice_bar.isVisible()


def test_the_status_bar_shows_certificate_and_outbox(make_window, training_config, book, db):
    from tests.factories import draft_order, seed

    seed(book)
    window = make_window(training_config)
    assert window.certificate_label.text() == "Certificate: none"
    assert window.outbox_label.text() == "Outbox: empty"
    order = draft_order(book)
    sign_for_test(book, order.id)
    book.transition(order.id, OrderStatus.QUEUED)
    now = dt.datetime.now(dt.timezone.utc)
    with db.session() as session, session.begin():
        session.add(CertificateRecord(fingerprint="cd" * 32, subscriber_name="Pat Jones", kind="signing",
                                      registration_id=book.registration("BJ6125341").id, status=CertificateStatus.ACTIVE,
                                      not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=90,
                                                                                                         hours=1)))
    window.facade.notify_orders_changed([order.id])
    assert window.outbox_label.text() == "Outbox: 1 waiting"
    assert "Pat Jones" in window.certificate_label.text() and "90 days left" in window.certificate_label.text()


def test_the_clock_is_checked_in_the_background(qtbot, make_window, training_config):
    with SntpServer() as server:
        training_config.settings["sntp_server"] = f"127.0.0.1:{server.port}"
        window = make_window(training_config, start_checks=True)
        qtbot.waitUntil(lambda: window.clock_result is not None, timeout=5000)
        assert "Clock: right" in window.clock_label.text() and window.clock_label.property("state") == "ok"
        server.offset = 600  # ten minutes fast
        window.check_clock()
        qtbot.waitUntil(lambda: window.clock_label.property("state") == "off", timeout=5000)
        assert "WRONG" in window.clock_label.text()
        assert "10 minutes" in window.clock_label.toolTip() and "5 minutes" in window.clock_label.toolTip()


def test_training_without_a_practice_time_server_does_not_check(qtbot, make_window, training_config):
    window = make_window(training_config, start_checks=True)
    qtbot.waitUntil(lambda: "Clock: not checked" in window.clock_label.text(), timeout=5000)
    assert window.clock_label.property("state") == "unchecked"
    assert window.facade.jobs.running == []


def test_slow_work_shows_progress_and_can_be_cancelled(qtbot, make_window, training_config):
    window = make_window(training_config)
    window.facade.jobs.slow_after_ms = 50
    started = threading.Event()

    def work(context):
        started.set()
        context.progress(1, 4, "Exporting order 1 of 4")
        while True:
            context.check_cancelled()
            threading.Event().wait(0.005)

    job = window.facade.jobs.run("Exporting records", work, cancellable=True)
    qtbot.waitUntil(window.busy.isVisible, timeout=3000)
    qtbot.waitUntil(lambda: window.busy_bar.maximum() == 4, timeout=3000)
    assert window.busy_label.text() == "Exporting order 1 of 4" and window.busy_cancel.isVisible()
    window.busy_cancel.click()
    qtbot.waitUntil(lambda: job.done, timeout=3000)
    assert not window.busy.isVisible()


def test_a_failed_background_task_is_shown_in_plain_words(qtbot, make_window, training_config, modal_boxes):
    window = make_window(training_config)

    def broken(_context):
        raise RuntimeError("internal detail")

    job = window.facade.jobs.run("Exporting records", broken)
    qtbot.waitUntil(lambda: job.done, timeout=3000)
    assert len(modal_boxes.alerts) == 1
    title, message = modal_boxes.alerts[0]
    assert message.startswith("Something unexpected went wrong while exporting records.")
    assert "internal detail" not in message and "Traceback" not in message
    assert window.statusBar().currentMessage() == message


def test_shortcuts_and_menus(make_window, training_config):
    window = make_window(training_config)
    expected = {window.new_order_action: "Ctrl+N", window.find_action: "Ctrl+F", window.refresh_action: "F5",
                window.settings_action: "Ctrl+,", window.quit_action: "Ctrl+Q",
                window.copy_order_action: "Ctrl+Shift+N", window.edit_order_action: "Ctrl+E"}
    for action, keys in expected.items():
        assert action.shortcut() == QKeySequence(keys), action.text()
        assert not action.icon().isNull(), action.text()
    toolbar_texts = [a.text() for a in window.toolbar.actions() if not a.isSeparator()]
    assert toolbar_texts == ["&New order…", "&Open draft…", "Re&order…", "&Sign and send…",
                             "&Receive goods…", "Check for supplier &answers", "&Certificates…", "&Settings…"]


def test_every_control_has_an_accessible_name(make_window, training_config, db):
    bulk_orders(db, 5)
    window = make_window(training_config)
    window.table.selectRow(0)
    kinds = (QAbstractButton, QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView)
    unnamed = [w for w in window.findChildren(QWidget)
               if isinstance(w, kinds) and w.isVisible() and w.focusPolicy() != Qt.FocusPolicy.NoFocus
               and not w.accessibleName() and not (isinstance(w, QAbstractButton) and w.text())
               and not isinstance(w.parentWidget(), (QComboBox, QAbstractSpinBox))]
    assert unnamed == [], [f"{type(w).__name__} {w.objectName()}" for w in unnamed]


def test_tab_moves_through_the_window_in_reading_order(qtbot, make_window, training_config, db):
    bulk_orders(db, 5)
    window = make_window(training_config)
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    window.search_box.setFocus()
    seen = []
    for _ in range(8):
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_Tab)
        seen.append(QApplication.focusWidget())
    assert seen[:7] == [window.clear_filters_button, window.status_combo, window.registration_combo,
                        window.supplier_combo, window.schedule_combo, window.created_combo, window.table]


def test_screenshot_of_the_main_window_with_data(qtbot, make_window, training_config, book, db):
    from tests.factories import seed

    seed(book)
    with db.session() as session, session.begin():
        session.execute(update(type(book.registration("BJ6125341"))).values(
            expires_on=dt.date.today() + dt.timedelta(days=29)))
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=20)
    bulk_orders(db, 30, start=start, step=dt.timedelta(hours=15, minutes=13))
    order = full_order(book, db)
    window = make_window(training_config)
    window.resize(1280, 820)
    window._on_clock_checked(type("Result", (), {"state": type("S", (), {"value": "ok"})(),
                                                 "message": "Clock is right (within 1 second)."})())
    assert window.select_order(order.id)
    window.detail.tabs.setCurrentIndex(0)
    QApplication.processEvents()
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    target = SCREENSHOT_DIR / "main-window.png"
    assert window.grab().save(str(target))
    assert target.stat().st_size > 10_000
    assert hashlib.sha256(target.read_bytes()).hexdigest()
