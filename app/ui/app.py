"""Starting the GUI: `csos-desk` with no command.

Qt and the order book are imported inside the functions, so `csos-desk --help` and the CLI commands stay fast.

The main window appears first (issue 9/10): its frame — menus, toolbar, an "Opening the order book…" placeholder — is
built and shown without SQLAlchemy or the services. Once it is painted (issue 20), the log file is set up and a worker
reads the newest orders of a SQLite order book with sqlite3 (app.models.first_page); the window shows them, its
commands still disabled. Once that list is painted, a worker opens the database and the order book (SQLAlchemy,
migrations, services) and the window attaches it on the GUI thread: the real list, search, filters and commands. Then
the status bar is read and the background checks start, then (training) the sandbox. Nothing heavy runs beside a
first paint: Python code on a worker would compete with the GUI thread for the interpreter. Without a first page
(PostgreSQL, a new or empty book) the placeholder stays until the order book is attached. If the order book cannot
be opened, the person gets the same plain "cannot start" message as ever.
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
    # No application display name: Qt would append it to every window title ("CSOS Desk — TRAINING — CSOS Desk");
    # each window names the program itself.
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
    """CSOS_EXIT_AFTER_FIRST_PAINT=1 (the startup benchmark): print the time to the main window's being built, not
    yet shown (``window-built-ms``: imports, QApplication, the frame; called just before it is shown), to its first
    paint (``first-paint-ms``), to the first paint of the order list (``order-book-ready-ms``: its newest orders,
    read at start-up or by the opened book) and to the order book's being attached (``order-book-attached-ms``:
    search, filters and commands enabled), then quit."""
    import time

    from PySide6.QtCore import QEvent, QObject, QTimer

    started = process_start()

    def elapsed() -> str:
        return f"{(time.perf_counter() - started) * 1000:.1f}"

    print(f"window-built-ms={elapsed()}", flush=True)

    class FirstPaint(QObject):
        done = False

        def eventFilter(self, watched: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint and not self.done:
                self.done = True
                QTimer.singleShot(0, lambda: print(f"first-paint-ms={elapsed()}", flush=True))  # once painted
            return False

    printed: list[str] = []

    def figure(name: str) -> None:
        print(f"{name}={elapsed()}", flush=True)
        printed.append(name)
        if {"order-book-ready-ms", "order-book-attached-ms"} <= set(printed):
            app.exit(0)  # at once: nothing queued after the attaching (status bar, outbox, clock) runs in a benchmark

    watcher = FirstPaint(window)
    window.installEventFilter(watcher)
    window.order_list_shown.connect(lambda: figure("order-book-ready-ms"))
    window.book_attached.connect(lambda: figure("order-book-attached-ms"))


def _open_order_book(config: Any, opened: list[Any]) -> Any:
    """On a worker thread: open the database (migrations included) and the order book; returns the OrderBook.

    The database goes into ``opened`` as soon as it exists, so the caller closes it whatever happens next. The
    services the window needs to show the list are imported here too, not on the GUI thread.
    """
    from app.models.database import open_database
    from app.services.orders.local_dates import configured_time_zones
    from app.services.orders.orderbook import OrderBook

    db = open_database(config.database_url)
    opened.append(db)
    book = OrderBook(db, actor="gui", time_zones=configured_time_zones(config.settings))
    import app.services.orders.details  # noqa: F401 - the detail pane and the status bar
    import app.services.orders.reminders  # noqa: F401 - the reminders bar
    # The certificate services (cryptography, ~70 ms) are loaded after the list is shown (MainWindow).

    return book


# The order book's full opening waits at most this long for the first page's list to be painted; the first page's
# reading as long for the window's first paint.
FIRST_PAGE_PAINT_WAIT_MS = 200


def _once_painted(widget: Any, then: Any) -> None:
    """``then()`` once, just after ``widget``'s first paint (or after FIRST_PAGE_PAINT_WAIT_MS if it is not painted,
    e.g. started minimised)."""
    from PySide6.QtCore import QEvent, QObject, QTimer

    done: list[bool] = []

    def once() -> None:
        if not done:
            done.append(True)
            then()

    class Painted(QObject):
        def eventFilter(self, watched: Any, event: Any) -> bool:
            if event.type() == QEvent.Type.Paint:
                watched.removeEventFilter(self)
                QTimer.singleShot(0, once)
            return False

    widget.installEventFilter(Painted(widget))
    QTimer.singleShot(FIRST_PAGE_PAINT_WAIT_MS, once)


def _read_first_page(config: Any) -> Any:
    """On a worker, before the order book is opened: its newest orders, if it is a SQLite file that can be read
    without opening it (``app.models.first_page``); else None and the list waits for the full opening."""
    from app.models.first_page import read_first_page, sqlite_path

    path = sqlite_path(config.database_url)
    return read_first_page(path) if path is not None else None


def _profile_to_open(data_dir: str | Path | None, profile: str | None) -> str | None:
    """An explicit choice wins (argument, CSOS_PROFILE); otherwise the profile last chosen in Settings."""
    import os

    from app.config import default_data_root, remembered_profile

    if profile or os.environ.get("CSOS_PROFILE"):
        return profile
    root = Path(data_dir or os.environ.get("CSOS_DATA_DIR") or default_data_root()).expanduser()
    return remembered_profile(root)


NO_DISPLAY_MESSAGE = (
    "CSOS Desk cannot open its window: there is no screen to show it on (no graphical session).\n"
    "- To see the program work without a screen, run the training demo: csos-desk demo\n"
    "- To use the window, start CSOS Desk from the desktop, or from a terminal inside your graphical session "
    "(or set DISPLAY, e.g. DISPLAY=:0 csos-desk).\n"
    "- The command line works without a screen: csos-desk --help")


def no_display(environ: Any = None, platform: str = sys.platform) -> bool:
    """Linux without X11 or Wayland and no Qt platform chosen: Qt would abort (SIGABRT) with a misleading
    "xcb-cursor0 is needed" instead of saying there is no screen."""
    import os

    environ = os.environ if environ is None else environ
    return (platform.startswith("linux") and not environ.get("DISPLAY") and not environ.get("WAYLAND_DISPLAY")
            and not environ.get("QT_QPA_PLATFORM"))


def run_gui(*, data_dir: str | Path | None, database_url: str | None, profile: str | None) -> int:
    """Open the configured order book and run the main window; returns the process exit code.

    Choosing the other profile in Settings closes the window and opens the other profile's order book in a new one.
    """
    from app.config import use_private_umask

    use_private_umask()
    if no_display():
        print(NO_DISPLAY_MESSAGE, file=sys.stderr)
        return EXIT_CANNOT_START
    app = _application()
    wanted = _profile_to_open(data_dir, profile)
    previous_hook = _install_excepthook()
    try:
        while True:
            outcome = _run_profile(app, data_dir=data_dir, database_url=database_url, profile=wanted)
            if not isinstance(outcome, str):
                return outcome
            if outcome == RESET_TRAINING:
                _reset_training(data_dir)
                outcome = "training"
            wanted, database_url = outcome, None  # a database URL given for one profile is not the other's
    finally:
        sys.excepthook = previous_hook


RESET_TRAINING = "training:start-over"


def _reset_training(data_dir: str | Path | None) -> None:
    """Between two windows (the order book is closed): empty the training folder; a refusal is shown."""
    from app.config import load_config
    from app.errors import CsosError
    from app.training import reset_training_data

    try:
        reset_training_data(load_config(data_dir=data_dir, profile="training"))
    except (CsosError, OSError) as exc:
        show_error("Start training over", getattr(exc, "message", None) or f"The practice data could not be "
                   f"removed ({getattr(exc, 'strerror', None) or exc}).")


def _run_profile(app: Any, *, data_dir: str | Path | None, database_url: str | None,
                 profile: str | None) -> int | str:
    """Run one profile's window: the exit code, or the profile to open next."""
    from app.config import load_config
    from app.errors import CsosError
    from app.logging_setup import setup_logging

    title = f"{APP_DISPLAY_NAME} cannot start"
    try:
        config = load_config(data_dir=data_dir, database_url=database_url, profile=profile)
    except CsosError as exc:
        log.info("cannot start: %s", exc.code)
        show_error(title, exc.message)
        return EXIT_CANNOT_START

    def start_logging() -> None:
        """The log file is set up once the window is painted (its rotating handler imports socket and pickle,
        ~8 ms), or before anything that happens earlier is logged; setting it up again does nothing."""
        setup_logging(config.data_dir)

    import os

    from PySide6.QtCore import QTimer

    from app.ui.facade import AppFacade
    from app.ui.main_window import MainWindow

    opened: list[Any] = []  # the database, once the worker has opened it: closed below whatever happened
    failures: list[CsosError] = []
    switch_to: list[str] = []
    measuring = os.environ.get(FIRST_PAINT_ENV) == "1"
    facade = AppFacade(config)
    try:
        window = MainWindow(config, facade=facade)

        def switch(target: str) -> None:
            switch_to.append(target)
            window.close()

        def attach(book: Any) -> None:
            if not window.closing:  # closed while the order book was opening: nothing to show it in
                window.attach(book, opened[0])

        def cannot_open(error: CsosError) -> None:
            start_logging()
            failures.append(error)
            log.info("cannot start: %s", error.code)
            if not window.closing:
                window.show_loading_failed(error.message)
                show_error(title, error.message, window)
                window.close()
            app.exit(EXIT_CANNOT_START)

        facade.profile_switch_requested.connect(switch)
        facade.training_reset_requested.connect(lambda: switch(RESET_TRAINING))
        opening: list[bool] = []

        def open_book(*_args: Any) -> None:
            if opening or window.closing:
                return
            opening.append(True)
            facade.jobs.run("Opening the order book", lambda _context: _open_order_book(config, opened),
                            on_success=attach, on_failure=cannot_open, announce=False)

        def first_page_read(page: Any) -> None:
            if page is not None and window.show_first_page(page):
                # The full opening (SQLAlchemy, models, services: Python code competing with the GUI thread for
                # the interpreter) starts once that list has been painted, or soon anyway.
                window.order_list_shown.connect(open_book)
                QTimer.singleShot(FIRST_PAGE_PAINT_WAIT_MS, open_book)
            else:
                open_book()

        def read_first_page() -> None:
            from PySide6.QtCore import Qt

            # Set once painted: Qt's namespace is not made before the window's first paint (app/ui/lazy_qt.py).
            window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            start_logging()
            log.info("gui started (profile %s)", config.profile.value)
            if not window.closing:
                facade.jobs.run("Reading the newest orders", lambda _context: _read_first_page(config),
                                on_success=first_page_read, on_failure=open_book, announce=False)

        # Once the window is painted, the newest orders, read without SQLAlchemy (app.models.first_page); once they
        # are painted, the order book itself. Nothing runs beside the window's first paint.
        _once_painted(window, read_first_page)
        if measuring:
            # The benchmark measures the real start: its figures, then quit (no sandbox). Its watcher is installed
            # last, so it sees each paint first and reports it before the work that follows the paint.
            _exit_after_first_paint(app, window)
        elif config.is_training:
            # After the order list, the status bar and the background checks: the sandbox comes up behind them.
            window.checks_started.connect(lambda: window.start_training())
        window.show()
        code = int(app.exec())
        facade.shutdown()  # stops the outbox, locks keys, stops the training sandbox; waits for the opening
        if failures:
            return EXIT_CANNOT_START
        return switch_to[-1] if switch_to else code
    except CsosError as exc:
        start_logging()
        log.info("cannot start: %s", exc.code)
        show_error(title, exc.message)
        return EXIT_CANNOT_START
    finally:
        start_logging()  # a window closed before its first paint
        facade.shutdown()
        for db in opened:
            db.close()
