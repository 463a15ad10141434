"""Starting the GUI: `csos-desk` with no command.

Qt and the order book are imported inside the functions, so `csos-desk --help` and the CLI commands stay fast.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_CANNOT_START = 2
FIRST_PAINT_ENV = "CSOS_EXIT_AFTER_FIRST_PAINT"

APP_DISPLAY_NAME = "CSOS Desk"


def show_error(title: str, message: str, parent: Any = None) -> None:
    """A modal message for the person at the counter (tests replace this)."""
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(parent, title, message)


def _application() -> Any:
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app import __version__
    from app.ui import theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("csos-desk")
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setApplicationVersion(__version__)
    app.setOrganizationName("CSOS Desk")
    app.setDesktopFileName("csos-desk")
    if Path(theme.ICON_PATH).is_file():
        app.setWindowIcon(QIcon(str(theme.ICON_PATH)))
    return app


def _install_excepthook() -> Any:
    """A failure inside a slot: log it, tell the person in plain words, keep running. Never a traceback."""
    from app.errors import CsosError

    previous = sys.excepthook

    def hook(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if isinstance(exc, CsosError):
            log.info("operation failed: %s", exc.code)
            show_error(APP_DISPLAY_NAME, exc.message)
        elif isinstance(exc, KeyboardInterrupt):
            previous(kind, exc, tb)
        else:
            log.error("unexpected failure", exc_info=(kind, exc, tb))
            show_error(APP_DISPLAY_NAME, "Something unexpected went wrong. What you were doing may not have "
                                         "finished; details were written to the log file in the data folder.")

    sys.excepthook = hook
    return previous


def process_start() -> float:
    """``time.perf_counter()`` as early as the entry point could take it (``app.__main__``), else now."""
    import time

    for name in ("__main__", "app.__main__"):
        start = getattr(sys.modules.get(name), "START", None)
        if isinstance(start, float):
            return start
    return time.perf_counter()


def _exit_after_first_paint(app: Any, window: Any) -> None:
    """CSOS_EXIT_AFTER_FIRST_PAINT=1 (the startup benchmark): print the time to the first paint, then quit."""
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer

    started = process_start()

    class FirstPaint(QObject):
        done = False

        def eventFilter(self, watched: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint and not self.done:
                self.done = True
                QTimer.singleShot(0, report)
            return False

    def report() -> None:
        print(f"first-paint-ms={(time.perf_counter() - started) * 1000:.1f}", flush=True)
        app.quit()

    watcher = FirstPaint(window)
    window.installEventFilter(watcher)


def _profile_to_open(data_dir: str | Path | None, profile: str | None) -> str | None:
    """An explicit choice wins (argument, CSOS_PROFILE); otherwise the profile last chosen in Settings."""
    import os

    from app.config import default_data_root
    from app.services.app_settings import remembered_profile

    if profile or os.environ.get("CSOS_PROFILE"):
        return profile
    root = Path(data_dir or os.environ.get("CSOS_DATA_DIR") or default_data_root()).expanduser()
    return remembered_profile(root)


def run_gui(*, data_dir: str | Path | None, database_url: str | None, profile: str | None) -> int:
    """Open the configured order book and run the main window; returns the process exit code.

    Choosing the other profile in Settings closes the window and opens the other profile's order book in a new one.
    """
    app = _application()
    wanted = _profile_to_open(data_dir, profile)
    previous_hook = _install_excepthook()
    try:
        while True:
            outcome = _run_profile(app, data_dir=data_dir, database_url=database_url, profile=wanted)
            if not isinstance(outcome, str):
                return outcome
            wanted, database_url = outcome, None  # a database URL given for one profile is not the other's
    finally:
        sys.excepthook = previous_hook


def _run_profile(app: Any, *, data_dir: str | Path | None, database_url: str | None,
                 profile: str | None) -> int | str:
    """Run one profile's window: the exit code, or the profile to open next."""
    from app.config import load_config
    from app.errors import CsosError
    from app.logging_setup import setup_logging
    from app.models.database import open_database
    from app.services.orderbook import OrderBook

    try:
        config = load_config(data_dir=data_dir, database_url=database_url, profile=profile)
        setup_logging(config.data_dir)
        db = open_database(config.database_url)
    except CsosError as exc:
        log.info("cannot start: %s", exc.code)
        show_error(f"{APP_DISPLAY_NAME} cannot start", exc.message)
        return EXIT_CANNOT_START

    import os

    from PySide6.QtCore import Qt, QTimer

    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow

    switch_to: list[str] = []
    try:
        book = OrderBook(db, actor="gui")
        facade = AppFacade(config, book, db)
        # The benchmark (CSOS_EXIT_AFTER_FIRST_PAINT) measures the real start: checks begin after the first paint.
        window = MainWindow(config, book, db, facade=facade)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def switch(target: str) -> None:
            switch_to.append(target)
            window.close()

        facade.profile_switch_requested.connect(switch)
        measuring = os.environ.get(FIRST_PAINT_ENV) == "1"
        if measuring:
            _exit_after_first_paint(app, window)
        window.show()
        log.info("gui started (profile %s)", config.profile.value)
        if config.is_training and not measuring:
            # After the first paint: the window is there at once, the sandbox comes up behind it.
            QTimer.singleShot(0, window.start_training)
        code = int(app.exec())
        facade.shutdown()  # stops the outbox, locks keys, stops the training sandbox
        return switch_to[-1] if switch_to else code
    except CsosError as exc:
        log.info("cannot start: %s", exc.code)
        show_error(f"{APP_DISPLAY_NAME} cannot start", exc.message)
        return EXIT_CANNOT_START
    finally:
        db.close()
