"""Start-up (issue 9/10 item 2): the main window appears first, the order book opens behind it.

Real SQLite files, a real worker thread; the only stand-ins are the modal boxes (``show_error``, ``messages``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.ui import app as app_module
from app.ui.facade import AppFacade
from app.ui.main_window import MainWindow
from app.ui.main_window_list import LOADING_TITLE
from tests.ui.conftest import bulk_orders

pytestmark = pytest.mark.ui

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path("/tmp")

# What the first window must not wait for: the database layer, HTTP, certificate validation, the sandbox.
HEAVY_MODULES = ("sqlalchemy", "requests", "cryptography", "asn1crypto", "app.models.database",
                 "app.models.orderbook", "app.services.orders.orderbook", "app.services.certificates.validation",
                 "app.services.certificates.book", "app.sandbox", "app.training")


def test_the_window_frame_imports_no_database_http_or_crypto_code():
    code = ("import sys\n"
            "import app.logging_setup, app.cli, app.config, app.services.app_settings\n"
            "import app.ui.app, app.ui.facade, app.ui.jobs, app.ui.main_window, app.ui.order_table_model\n"
            f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def loading_window(qtbot, training_config):
    """A main window built before its order book is open (the deferred start)."""
    facade = AppFacade(training_config)
    window = MainWindow(training_config, facade=facade, start_checks=False)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    yield window
    assert facade.jobs.shutdown(5000)


def test_before_the_order_book_is_open_the_window_says_so_and_stays_usable(qtbot, loading_window, monkeypatch):
    window = loading_window
    assert window.model is None and not window.is_attached
    assert window.view_stack.currentWidget() is window.loading_page and window.loading_page.isVisible()
    assert window.loading_title.text() == LOADING_TITLE
    assert window.loading_bar.isVisible() and (window.loading_bar.minimum(), window.loading_bar.maximum()) == (0, 0)
    assert "orderbook.sqlite3" in window.loading_text.text()
    assert window.location_label.text() == "Order book: opening…"
    assert window.training_banner.isVisible()
    # What needs the order book waits for it; the menus, About and Quit work now.
    for action in window.book_actions + window.order_actions + (window.edit_order_action,
                                                                window.copy_order_action):
        assert not action.isEnabled(), action.text()
    assert not window.search_box.isEnabled() and not window.status_combo.isEnabled()
    titles = [action.text() for action in window.menuBar().actions()]
    assert titles == ["&File", "&Edit", "&View", "&Order", "&Certificates", "Rec&ords", "&Help"]
    # Signals that arrive before the book is there do nothing (and fail nothing).
    window.facade.settings_changed.emit()
    window.facade.parties_changed.emit()
    window.facade.order_book_changed.emit()
    window.facade.orders_changed.emit([1])
    window.refresh()
    window.apply_filter()
    assert window.selected_order_id() is None
    shown = []
    monkeypatch.setattr("app.ui.about_dialog.AboutDialog.exec", lambda dialog: shown.append(dialog.summary.text()))
    assert window.about_action.isEnabled()
    window.about_action.trigger()
    assert shown and "CSOS Desk" in shown[0] and "training" in shown[0]
    window.grab().save(str(SCREENSHOTS / "startup-loading.png"))
    assert window.quit_action.isEnabled()
    window.quit_action.trigger()
    assert not window.isVisible()


def test_attaching_the_order_book_shows_the_list_then_starts_the_checks(qtbot, training_config, db, book):
    bulk_orders(db, 30)
    facade = AppFacade(training_config)
    window = MainWindow(training_config, facade=facade)  # start_checks: after the list's first paint
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    events: list[str] = []
    window.order_list_shown.connect(lambda: events.append("list shown"))
    window.checks_started.connect(lambda: events.append("checks started"))
    try:
        with qtbot.waitSignal(window.checks_started, timeout=5000):
            window.attach(book, db)
            events.append("attached")
            assert facade.book is book and facade.db is db and window.is_attached
            assert window.view_stack.currentWidget() is window.table
            assert window.model.rowCount() == 30 and window.count_label.text() == "30 orders"
            assert window.new_order_action.isEnabled() and window.search_box.isEnabled()
            assert window.location_label.text().startswith("Order book: /")
            assert window.registration_combo.count() == 3  # "All registrations" + the two in the book
        assert events == ["attached", "list shown", "checks started"]
        assert window.outbox_label.text().startswith("Outbox:")  # the status bar was read
        assert facade.outbox_runner is not None and facade.outbox_runner.running
        window.table.selectRow(0)
        assert window.detail_title.text().startswith("Order ") and window.detail.isVisible()
        assert window.detail.height() > window.splitter.height() // 4  # the list 3, the details 2, as ever
        qtbot.wait(100)  # the status bar lays out its new texts
        window.grab().save(str(SCREENSHOTS / "startup-ready.png"))
        with pytest.raises(RuntimeError):
            window.attach(book, db)
    finally:
        window.close()
    assert facade.outbox_runner is None or not facade.outbox_runner.running


def test_a_window_given_its_order_book_attaches_at_once(qtbot, production_config, db, book):
    window = MainWindow(production_config, book, db, start_checks=False)
    qtbot.addWidget(window)
    assert window.is_attached and window.facade.book is book
    assert window.view_stack.currentWidget() is window.getting_started_panel()  # an empty book: the checklist
    assert window.new_order_action.isEnabled()


def _visible_main_windows() -> list[MainWindow]:
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]


def test_run_gui_shows_the_window_first_then_the_order_book_then_the_checks_then_the_sandbox(qtbot, tmp_path,
                                                                                           monkeypatch):
    events: list[str] = []
    real_attach = MainWindow.attach

    def attach(window, book, db, **kwargs):
        events.append("attach (window visible)" if window.isVisible() else "attach (window not shown)")
        real_attach(window, book, db, **kwargs)

    def start_training(window, starter=None):
        events.append("sandbox")
        QTimer.singleShot(0, window.close)

    real_start_outbox = AppFacade.start_outbox

    def start_outbox(facade, **kwargs):
        events.append("checks")
        return real_start_outbox(facade, **kwargs)

    monkeypatch.setattr(MainWindow, "attach", attach)
    monkeypatch.setattr(MainWindow, "start_training", start_training)
    monkeypatch.setattr(AppFacade, "start_outbox", start_outbox)

    def watch() -> None:
        for window in _visible_main_windows():
            events.append("window shown: " + window.view_stack.currentWidget().objectName())

    QTimer.singleShot(0, watch)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=None, profile="training")
    assert code == app_module.EXIT_OK
    assert events[0] == "window shown: loadingPage" or events[0].startswith("attach (window visible)")
    assert [e for e in events if not e.startswith("window shown")] == \
        ["attach (window visible)", "checks", "sandbox"]
    assert (tmp_path / "data" / "training" / "orderbook.sqlite3").exists()
    assert not _visible_main_windows()
    # The log file is set up after the first paint, and nothing logged is lost.
    assert "gui started (profile training)" in (tmp_path / "data" / "training" / "logs" / "csos-desk.log").read_text()


@pytest.mark.parametrize("broken", ["corrupt", "a folder"])
def test_an_order_book_that_cannot_be_opened_gives_the_plain_cannot_start_message(qtbot, tmp_path, monkeypatch,
                                                                                  capfd, broken):
    if broken == "corrupt":
        path = tmp_path / "broken.sqlite3"
        path.write_bytes(b"this is not a database" * 100)
        expected = "not a valid CSOS Desk order book"
    else:
        path = tmp_path / "a-folder"
        path.mkdir()
        expected = "cannot be opened"
    shown = []

    def show_error(title, message, parent=None):
        shown.append((title, message, parent.loading_title.text() if parent is not None else None))

    monkeypatch.setattr(app_module, "show_error", show_error)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=f"sqlite:///{path}", profile="training")
    assert code == app_module.EXIT_CANNOT_START
    assert len(shown) == 1
    title, message, placeholder = shown[0]
    assert title == "CSOS Desk cannot start" and expected in message
    assert placeholder == "The order book could not be opened"  # the window shown meanwhile says so too
    assert "cannot start: storage." in (tmp_path / "data" / "training" / "logs" / "csos-desk.log").read_text()
    assert "Traceback" not in message and "Traceback" not in capfd.readouterr().err
    assert not _visible_main_windows()


def test_closing_the_window_while_the_order_book_opens_closes_it_cleanly(qtbot, tmp_path, monkeypatch):
    import threading

    closed = threading.Event()
    started = threading.Event()
    opened: list = []
    real_open = app_module._open_order_book

    def slow_open(config, holder):
        started.set()
        assert closed.wait(10), "the window was not closed"
        book = real_open(config, holder)
        opened.extend(holder)
        return book

    shown: list[str] = []

    def close_now() -> None:
        if not started.is_set():  # closed once the opening is under way
            QTimer.singleShot(10, close_now)
            return
        windows = _visible_main_windows()
        shown.extend(window.view_stack.currentWidget().objectName() for window in windows)
        closed.set()  # the worker goes on now; closing waits for it
        for window in windows:
            window.close()

    attached = []
    real_attach = MainWindow.attach
    monkeypatch.setattr(app_module, "_open_order_book", slow_open)
    monkeypatch.setattr(MainWindow, "attach", lambda window, *a, **k: (attached.append(window),
                                                                        real_attach(window, *a, **k)))
    QTimer.singleShot(50, close_now)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=None, profile="production")
    assert code == app_module.EXIT_OK
    assert shown == ["loadingPage"]
    assert opened and not attached
    qtbot.wait(50)  # a late answer from the worker must find nothing to attach to
    assert not attached


@pytest.mark.parametrize("argv", [[], ["--data-dir", "/x"], ["--data-dir=/x", "--profile", "production"],
                                  ["--database-url", "sqlite:///a.db", "--profile=training"],
                                  ["--profile", "training", "--profile", "production"]])
def test_the_gui_start_reads_its_options_as_the_full_parser_does(argv):
    from app.cli import build_parser, gui_only_arguments

    assert vars(gui_only_arguments(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize("argv", [["check", "dea", "BJ6125341"], ["--help"], ["--version"], ["--data", "/x"],
                                  ["--profile", "bogus"], ["--data-dir"], ["--data-dir", "-x"], ["--self-test"]])
def test_anything_else_goes_to_the_full_parser(argv):
    from app.cli import gui_only_arguments

    assert gui_only_arguments(argv) is None


def test_the_benchmark_hook_prints_the_first_paint_and_the_order_list(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CSOS_EXIT_AFTER_FIRST_PAINT="1")
    done = subprocess.run([sys.executable, "-m", "app", "--data-dir", str(tmp_path / "data"), "--profile",
                           "training"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    figures = dict(line.split("=", 1) for line in done.stdout.splitlines() if "-ms=" in line)
    assert 0 < float(figures["window-built-ms"]) <= float(figures["first-paint-ms"])
    assert 0 < float(figures["first-paint-ms"]) <= float(figures["order-book-ready-ms"]) < 60_000
    assert float(figures["first-paint-ms"]) <= float(figures["order-book-attached-ms"]) < 60_000
    assert "Traceback" not in done.stderr


# What PySide6 would make before the first paint for nothing (issue 20): the Python enums of Qt's namespace (~95,
# app/ui/lazy_qt.py) and classes the frame does not show yet (the order table, message boxes, the user guide).
NOT_BEFORE_THE_FIRST_PAINT = (("PySide6.QtCore", "Qt"), ("PySide6.QtWidgets", "QTableView"),
                              ("PySide6.QtWidgets", "QHeaderView"), ("PySide6.QtWidgets", "QMessageBox"),
                              ("PySide6.QtWidgets", "QTextBrowser"))


def test_the_window_is_painted_before_qts_namespace_and_the_list_classes_are_made(tmp_path):
    """PySide6 makes a class's Python enums when the class is first imported (``Qt``: ~15 ms); the start-up's first
    paint needs none of these. Checked at the real start (the benchmark's), at the main window's first paint."""
    code = ("import sys\n"
            "from PySide6.QtCore import QEvent, QObject\n"
            "from app.ui import app as gui\n"
            f"wanted = {NOT_BEFORE_THE_FIRST_PAINT!r}\n"
            "class Watch(QObject):\n"
            "    def eventFilter(self, watched, event):\n"
            "        if event.type() == QEvent.Type.Paint:\n"
            "            watched.removeEventFilter(self)\n"
            "            made = [name for module, name in wanted if name in vars(sys.modules[module])]\n"
            "            print('made before the first paint:', made, flush=True)\n"
            "        return False\n"
            "once_painted = gui._once_painted\n"
            "def watched(widget, then):\n"
            "    once_painted(widget, then)\n"
            "    widget.installEventFilter(Watch(widget))  # installed last: sees the paint first\n"
            "gui._once_painted = watched\n"
            f"sys.exit(gui.run_gui(data_dir={str(tmp_path / 'data')!r}, database_url=None, profile='training'))\n")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CSOS_EXIT_AFTER_FIRST_PAINT="1")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "made before the first paint: []" in done.stdout.splitlines(), done.stdout


def test_the_lazy_qt_namespace_is_qts_and_properties_are_set_by_name(qapp):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLabel

    from app.ui import lazy_qt

    assert lazy_qt.Qt.AlignmentFlag is Qt.AlignmentFlag and lazy_qt.Qt.ItemDataRole is Qt.ItemDataRole
    assert lazy_qt.DISPLAY_ROLE == Qt.ItemDataRole.DisplayRole and lazy_qt.USER_ROLE == Qt.ItemDataRole.UserRole
    label = QLabel()
    lazy_qt.set_properties(label, alignment="AlignCenter", textFormat="RichText")
    assert label.alignment() == Qt.AlignmentFlag.AlignCenter and label.textFormat() == Qt.TextFormat.RichText
    with pytest.raises(ValueError):
        lazy_qt.set_properties(label, alignment="AlignMiddle")  # no such value: an error, not ignored
    with pytest.raises(ValueError):
        lazy_qt.set_properties(label, alignement="AlignCenter")


def test_a_filter_is_elided_as_qt_elides_it(qapp):
    """``elide_right`` (no Qt enums, so a squeezed filter can be elided in the window's first paint) gives what
    ``QFontMetrics.elidedText`` gives, give or take a character where the two round a width differently."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QFontMetricsF
    from PySide6.QtWidgets import QLabel

    from app.ui.widgets import elide_right

    metrics = QLabel().fontMetrics()
    exact = QFontMetricsF(metrics)
    for text in ("All statuses", "Any schedule", "BJ6125341 — Main Street Pharmacy", "Acme Drug Wholesale Co."):
        for room in range(0, 260, 7):
            ours, qts = elide_right(exact, text, room), metrics.elidedText(text, Qt.TextElideMode.ElideRight, room)
            assert ours == text or (ours.endswith("…") and text.startswith(ours[:-1])) or ours == "", (text, room)
            assert exact.horizontalAdvance(ours) <= room or ours == text, (text, room, ours)
            assert abs(len(ours) - len(qts)) <= 1, (text, room, ours, qts)


def _cells(model) -> list[tuple]:
    from PySide6.QtCore import Qt

    roles = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.TextAlignmentRole,
             model.OrderIdRole)
    cells = []
    for row in range(model.rowCount()):
        for column in range(model.columnCount()):
            index = model.index(row, column)
            colour = model.data(index, Qt.ItemDataRole.ForegroundRole)
            cells.append(tuple(model.data(index, role) for role in roles) + (colour.name() if colour else None,))
    return cells


def test_an_existing_order_book_shows_its_newest_orders_before_it_is_open(qtbot, tmp_path, monkeypatch):
    """The newest orders (read with sqlite3) are shown as soon as the window is; the order book opens after that
    list is painted, then the real list takes its place: the same cells, the selection kept, commands enabled."""
    from app.config import load_config
    from app.models.database import open_database

    data = tmp_path / "data"
    db = open_database(load_config(data_dir=data, profile="training").database_url)
    try:
        bulk_orders(db, 230)
    finally:
        db.close()
    events: list[str] = []
    seen: dict[str, object] = {}
    real_open, real_attach, real_show = app_module._open_order_book, MainWindow.attach, MainWindow.show_first_page

    def show_first_page(window, page):
        shown = real_show(window, page)
        events.append("first page")
        window.order_list_shown.connect(lambda: events.append("list painted"))
        return shown

    def open_book(config, holder):
        events.append("opening")
        return real_open(config, holder)

    def attach(window, book, db, **kwargs):
        events.append("attach")
        first = window.first_page_model
        seen["first page"] = _cells(first)
        seen["first total"] = window.count_label.text()
        seen["while opening"] = (window.model, window.view_stack.currentWidget() is window.table,
                                 window.new_order_action.isEnabled(), window.search_box.isEnabled(),
                                 window.status_combo.isEnabled(), window.location_label.text())
        window.grab().save(str(SCREENSHOTS / "startup-first-page.png"))
        window.table.selectRow(3)
        seen["selected"] = first.order_id(3)
        real_attach(window, book, db, **kwargs)
        seen["attached"] = _cells(window.model)[:len(seen["first page"])]
        seen["selected after"] = window.selected_order_id()
        seen["attached total"] = window.count_label.text()
        seen["first page model"] = window.first_page_model
        seen["detail"] = window.detail_title.text()

    def start_training(window, starter=None):
        events.append("checks")
        QTimer.singleShot(0, window.close)

    monkeypatch.setattr(MainWindow, "show_first_page", show_first_page)
    monkeypatch.setattr(app_module, "_open_order_book", open_book)
    monkeypatch.setattr(MainWindow, "attach", attach)
    monkeypatch.setattr(MainWindow, "start_training", start_training)
    code = app_module.run_gui(data_dir=str(data), database_url=None, profile="training")
    assert code == app_module.EXIT_OK
    assert events == ["first page", "list painted", "opening", "attach", "checks"]
    assert seen["while opening"] == (None, True, False, False, False, "Order book: opening…")
    assert len(seen["first page"]) == 200 * 7  # the first page, every cell as the real list shows it
    assert seen["first page"] == seen["attached"]
    assert seen["first total"] == seen["attached total"] == "230 orders"
    assert seen["selected"] is not None and seen["selected after"] == seen["selected"]
    assert seen["detail"].startswith("Order 25X")
    assert seen["first page model"] is None


def test_a_window_closed_before_the_order_book_opens_opens_nothing(qtbot, tmp_path, monkeypatch):
    """Closed while only its first page is shown: the order book is never opened, the program ends cleanly."""
    from app.config import load_config
    from app.models.database import open_database

    data = tmp_path / "data"
    db = open_database(load_config(data_dir=data, profile="production").database_url)
    try:
        bulk_orders(db, 5)
    finally:
        db.close()
    opened = []
    monkeypatch.setattr(app_module, "_open_order_book", lambda config, holder: opened.append(config))
    real_show = MainWindow.show_first_page

    def show_then_close(window, page):
        shown = real_show(window, page)
        window.order_list_shown.connect(window.close)  # before the start connects the opening to it
        return shown

    monkeypatch.setattr(MainWindow, "show_first_page", show_then_close)
    code = app_module.run_gui(data_dir=str(data), database_url=None, profile="production")
    assert code == app_module.EXIT_OK
    qtbot.wait(300)  # past the opening's fallback timer
    assert not opened and not _visible_main_windows()


def test_a_shared_postgresql_order_book_opens_without_a_first_page(qtbot, tmp_path, monkeypatch, postgres_url):
    """PostgreSQL: no sqlite3 first page; the list waits for the full opening, as before, and shows its orders."""
    from app.models.database import open_database

    db = open_database(postgres_url)
    try:
        bulk_orders(db, 12)
    finally:
        db.close()
    seen: dict[str, object] = {}
    real_attach = MainWindow.attach

    def attach(window, book, db, **kwargs):
        seen["first page before"] = window.first_page_model
        seen["placeholder before"] = window.view_stack.currentWidget().objectName()
        real_attach(window, book, db, **kwargs)
        seen["rows"] = window.model.rowCount()
        seen["count"] = window.count_label.text()

    def start_training(window, starter=None):
        QTimer.singleShot(0, window.close)

    monkeypatch.setattr(MainWindow, "attach", attach)
    monkeypatch.setattr(MainWindow, "start_training", start_training)
    code = app_module.run_gui(data_dir=str(tmp_path / "data"), database_url=postgres_url, profile="training")
    assert code == app_module.EXIT_OK
    assert seen == {"first page before": None, "placeholder before": "loadingPage", "rows": 12, "count": "12 orders"}


def test_hidden_parts_are_made_when_first_needed_and_join_the_tab_order(qtbot, training_config, db, book):
    """The order table, the 'Between dates…' fields and the reminders bar's parts are not made before the window's
    first paint (issue 20); made later, they sit where they always did: reminders → search … Created → from → until
    → the list."""
    from PySide6.QtCore import Qt

    from app.services.orders.details import Notice

    bulk_orders(db, 3)
    window = MainWindow(training_config, facade=AppFacade(training_config), start_checks=False)
    qtbot.addWidget(window)
    assert window._order_table is None and window.made_date_fields() == ()
    window.show()
    qtbot.waitExposed(window)
    assert window.notice_text is None and window.notice_bar.isHidden()  # the reminders bar's parts: when it has some
    window.notices = [Notice(key="test", stage=0, message="Renew your certificate.", action="Certificates…",
                             urgent=False)]
    window._show_reminders()
    assert window.notice_bar.isVisible() and "Renew your certificate." in window.notice_text.text()
    window.attach(book, db)
    assert window._order_table is not None and window.made_date_fields() == ()
    window.created_combo.setCurrentIndex(window.created_combo.findData("between"))
    assert window.from_date.isVisible() and window.to_date.isVisible() and window.date_dash.isVisible()
    assert window.from_date.isEnabled() and window.to_date.isEnabled()
    assert window.from_date.parentWidget() is window.created_combo.parentWidget()
    wanted = {window.created_combo, window.from_date, window.to_date, window.table}
    order, widget = [], window.search_box
    for _ in range(200):  # the window's focus chain, as Tab walks it (a date field tabs through its own sections)
        widget = widget.nextInFocusChain()
        if widget in wanted and widget not in order:
            order.append(widget)
    assert order == [window.created_combo, window.from_date, window.to_date, window.table]

    widget = window.notice_dismiss.nextInFocusChain()  # made before the detail pane, still just before the search box
    while not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
        widget = widget.nextInFocusChain()
    assert widget is window.search_box
    window.close()
