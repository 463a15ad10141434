"""The main window's entry points to the other screens, the training sandbox start, and the first-paint hook."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.config import load_config  # noqa: E402
from app.errors import CsosError  # noqa: E402
from app.models.database import open_database  # noqa: E402
from app.services.orders.orderbook import OrderBook  # noqa: E402

pytestmark = [pytest.mark.ui]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, tmp_path):
    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow

    config = load_config(data_dir=tmp_path / "data", profile="training")
    db = open_database(config.database_url)
    book = OrderBook(db, actor="test")
    facade = AppFacade(config, book, db)
    made = MainWindow(config, book, db, facade=facade, start_checks=False)
    qtbot.addWidget(made)
    yield made
    made.close()
    assert facade.training_environment is None  # closing the window stopped the sandbox
    assert facade.jobs.pool.activeThreadCount() == 0
    db.close()


def test_menus_reach_every_screen(window):
    titles = [action.text() for action in window.menuBar().actions()]
    assert {"&Certificates", "Rec&ords", "&Order", "&Help"} <= set(titles)
    order_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Order")
    texts = [a.text() for a in order_menu.actions()]
    for wanted in ("&Sign and send…", "&Receive goods…", "Report &lost…", "&Cancel order…", "&Print order…",
                   "Save order as P&DF…", "Check for supplier &answers"):
        assert wanted in texts
    assert window.sign_action.shortcut().toString() == "Ctrl+Shift+S"
    assert not window.sign_action.isEnabled()  # nothing selected
    assert window.mailbox_action.isVisible()


def test_about_uses_the_about_dialog(qtbot, window):
    from app.ui.about_dialog import AboutDialog

    QTimer.singleShot(0, lambda: QApplication.activeModalWidget() and QApplication.activeModalWidget().accept())
    window.show_about()
    assert isinstance(window.dialog, AboutDialog)


def test_records_and_certificates_open_as_windows(qtbot, window):
    records = window.open_records(2)
    assert records.tabs.currentIndex() == 2
    records.close()
    page = window.open_certificates()
    assert page is not None and page.isWindow() and window.open_certificates() is page


def test_training_sandbox_starts_behind_the_window_and_a_wizard_can_open_a_test_order(qtbot, window):
    job = window.start_training()
    assert job is not None and "starting" in window.training_banner.text()
    qtbot.waitUntil(lambda: window.facade.training_environment is not None, timeout=60_000)
    assert "starting" not in window.training_banner.text()
    assert window.supplier_combo.findText("Acme Drug") > 0  # the practice suppliers are in the order book
    dialog = window.open_wizard("enroll")
    assert dialog is not None and dialog.isVisible()
    dialog.test_order_requested.emit("BJ6125341")
    assert window.editor is not None and window.editor.registration_combo.currentData() == "BJ6125341"
    window.editor.reject()
    dialog.close()
    dialog.deleteLater()
    qtbot.wait(10)


def test_when_the_sandbox_cannot_start_the_window_says_so_and_stays_usable(qtbot, window):
    def broken(_config, _book):
        raise CsosError("The practice CA's port is taken.", code="sandbox.port")

    window.start_training(starter=broken)
    qtbot.waitUntil(lambda: window.training_job is None, timeout=10_000)
    assert not window.notice_bar.isHidden() and "did not start" in window.notice_text.text()
    assert "port is taken" in window.notice_text.text()
    assert window.new_order_action.isEnabled()


def test_first_paint_hook_prints_the_time_and_quits(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CSOS_EXIT_AFTER_FIRST_PAINT="1")
    done = subprocess.run([sys.executable, "-m", "app", "--data-dir", str(tmp_path / "data"), "--profile",
                           "training"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("first-paint-ms="))
    assert 0 < float(line.split("=")[1]) < 60_000
