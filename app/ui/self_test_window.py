"""The Qt half of `csos-desk --self-test`: can this installation show its windows?

It opens the real main window on the real order book and closes it, renders the application icon and opens the
About dialog. Offscreen by default, so it also works over a remote shell and never flashes a window at the user;
a missing Qt plugin or library in an installed bundle fails here rather than in front of a pharmacist.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Iterator

from app.services.self_test import CheckResult, SelfTestFailure, run_check

log = logging.getLogger(__name__)

OFFSCREEN = "offscreen"


def application(*, offscreen: bool = True) -> Any:
    """The QApplication (created offscreen unless one exists or the caller wants the real display)."""
    if offscreen and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = OFFSCREEN
    from PySide6.QtCore import qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    # Qt's own chatter (e.g. the offscreen platform's "does not support propagateSizeHints") goes to the log file,
    # so the self-test prints only its check lines.
    qInstallMessageHandler(lambda _kind, _context, message: log.debug("qt: %s", message))
    return QApplication.instance() or QApplication(sys.argv[:1] or ["csos-desk"])


def iter_window_checks(config: Any, db: Any, *, offscreen: bool = True) -> Iterator[CheckResult]:
    result = run_check("qt", lambda: _start_qt(offscreen))
    yield result
    if not result.ok:
        return
    yield run_check("icon", _check_icon)
    yield run_check("main window", lambda: _check_main_window(config, db))
    yield run_check("about dialog", _check_about_dialog)


def _start_qt(offscreen: bool) -> str:
    from PySide6 import __version__ as pyside_version

    app = application(offscreen=offscreen)
    return f"Qt {pyside_version} started on the '{app.platformName()}' display"


def _check_icon() -> str:
    from PySide6.QtGui import QIcon

    from app.ui import theme

    icon = QIcon(str(theme.ICON_PATH))
    pixmap = icon.pixmap(64, 64)
    if icon.isNull() or pixmap.isNull():
        raise SelfTestFailure(f"the application icon {theme.ICON_PATH} cannot be drawn (SVG support missing?).",
                              code="self_test.icon")
    return f"application icon drawn at {pixmap.width()}x{pixmap.height()}"


def _check_main_window(config: Any, db: Any) -> str:
    from PySide6.QtWidgets import QApplication

    from app.services.orders.orderbook import OrderBook
    from app.ui.main_window import MainWindow

    window = MainWindow(config, OrderBook(db, actor="self-test"), db, start_checks=False)  # no outbox, no clock
    try:
        window.show()
        QApplication.processEvents()
        if not window.isVisible():
            raise SelfTestFailure("the main window did not open.", code="self_test.window")
        title = window.windowTitle()
        rows = window.model.total
    finally:
        window.close()
        window.deleteLater()
        QApplication.processEvents()
    return f"'{title}' opened ({rows} order(s) listed) and closed"


def _check_about_dialog() -> str:
    from PySide6.QtWidgets import QApplication

    from app.ui.about_dialog import AboutDialog

    dialog = AboutDialog()
    try:
        dialog.show()
        QApplication.processEvents()
        count = len(dialog.components)
        if count == 0:
            raise SelfTestFailure("the About dialog lists no bundled component licences (resources/licenses "
                                  "missing).", code="self_test.licences")
        if not dialog.licence_text.toPlainText().strip():
            raise SelfTestFailure("the About dialog shows an empty licence text.", code="self_test.licences")
    finally:
        dialog.close()
        dialog.deleteLater()
        QApplication.processEvents()
    return f"opened with {count} component licence(s)"
