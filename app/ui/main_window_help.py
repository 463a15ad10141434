"""The main window's Help menu and the set-up screens reached from the menus: getting started, registrations,
suppliers, the user guide shown inside the program, the keyboard shortcuts, and "Start training over".

A mixin of ``MainWindow`` (app/ui/main_window.py), like the other ``main_window_*`` modules; it needs the frame's
``config``, ``facade``, ``windows``, ``open_settings``, ``open_editor``, ``open_enrollment`` and ``open_import``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Slot
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.ui import messages
from app.ui.lazy_qt import Qt
from app.ui.widgets import fit_on_show

log = logging.getLogger(__name__)

USER_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


class CloseableWindow(QWidget):
    """A plain top-level window with a Close button; Escape closes it too."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowFlag(Qt.WindowType.Window, True)
        self.setWindowTitle(title)
        self.body = QVBoxLayout(self)
        self.buttons = QHBoxLayout()
        self.buttons.addStretch(1)
        self.close_button = QPushButton("Close", self)
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.close)
        self.buttons.addWidget(self.close_button)

    def finish(self) -> None:
        self.body.addLayout(self.buttons)

    def keyPressEvent(self, event: Any) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)


class HelpMixin:
    """Help menu actions and the set-up screens (one window of each kind, in ``windows``)."""

    config: Any
    facade: Any
    windows: dict[str, Any]
    _window: Any  # CertificateWindowsMixin._window: one window of each kind, brought forward when open

    def _build_help_actions(self) -> None:
        make = self._action  # type: ignore[attr-defined]
        self.registrations_action = make("&Registrations…", "info", None, self.open_registrations,
                                         "Your DEA registrations: add, change, remove")
        self.suppliers_action = make("S&uppliers…", "outbox", None, lambda: self.open_settings_tab(0),
                                     "Your suppliers and how orders reach them")
        self.getting_started_action = make("&Getting started", "info", None, self.open_getting_started,
                                           "What to set up before your first order, step by step")
        self.user_guide_action = make("&User guide", "info", "F1", self.open_user_guide,
                                      "How to use CSOS Desk, screen by screen")
        self.shortcuts_action = make("&Keyboard shortcuts", "info", None, self.show_shortcuts,
                                     "Every keyboard shortcut")
        self.restart_training_action = make("&Start training over…", "refresh", None, self.start_training_over,
                                            "Throw the practice data away and start with fresh practice data")
        self.restart_training_action.setVisible(bool(self.config.is_training))

    def _title(self, text: str) -> str:
        return text + (" — TRAINING" if self.config.is_training else "")

    # -- set-up screens ---------------------------------------------------------------------------------------------

    @Slot(str)
    def on_getting_started_action(self, key: str) -> Any:
        """A button of the getting-started checklist: open the screen that does that step."""
        actions = {
            "enroll": self.open_enrollment, "import": self.open_import,  # type: ignore[attr-defined]
            "registrations": self.open_registrations, "suppliers": lambda: self.open_settings_tab(0),
            "settings": lambda: self.open_settings_tab(0),
            "trust_roots": lambda: self.open_settings_tab("trust"),
            "new_order": lambda: self.open_editor(None),  # type: ignore[attr-defined]
        }
        action = actions.get(key)
        if action is None:
            log.info("unknown getting-started step: %s", key)
            return None
        return action()

    @Slot()
    def open_getting_started(self) -> Any:
        from app.ui.getting_started import GettingStartedPanel

        def make() -> Any:
            panel = GettingStartedPanel(self.facade, self, closable=True)  # type: ignore[arg-type]
            panel.setWindowFlag(Qt.WindowType.Window, True)
            panel.setWindowTitle(self._title("Getting started"))
            panel.action_requested.connect(self.on_getting_started_action)
            panel.resize(640, 600)
            fit_on_show(panel)  # 600 high ran past the bottom of a 1024×600 screen
            return panel

        return self._window("getting_started", make)

    @Slot()
    def open_registrations(self) -> Any:
        from app.ui.registrations_window import RegistrationsWindow

        def make() -> Any:
            window = RegistrationsWindow(self.facade, self)  # type: ignore[arg-type]
            window.setWindowTitle(self._title("DEA registrations"))
            window.enroll_requested.connect(self.open_enrollment)  # type: ignore[attr-defined]
            return window

        return self._window("registrations", make)

    def open_settings_tab(self, tab: int | str) -> Any:
        """Settings at one tab: by index, or the first whose title contains ``tab`` (e.g. "trust")."""
        self.open_settings()  # type: ignore[attr-defined]
        dialog = getattr(self, "settings_dialog", None)
        if dialog is not None:
            if isinstance(tab, str):
                titles = [dialog.tabs.tabText(i).replace("&", "").lower() for i in range(dialog.tabs.count())]
                tab = next((i for i, title in enumerate(titles) if tab in title), 0)
            dialog.tabs.setCurrentIndex(tab)
        return dialog

    # -- help -------------------------------------------------------------------------------------------------------

    @Slot()
    def open_user_guide(self) -> Any:
        from PySide6.QtWidgets import QTextBrowser

        def make() -> Any:
            window = CloseableWindow(self._title("CSOS Desk user guide"), self)  # type: ignore[arg-type]
            browser = QTextBrowser(window)
            browser.setAccessibleName("User guide")
            browser.setOpenExternalLinks(True)
            browser.setSearchPaths([str(USER_GUIDE.parent)])
            try:
                browser.setMarkdown(USER_GUIDE.read_text("utf-8"))
                # Pictures fit the window's width (screenshots are wider than a reading window).
                browser.setHtml(re.sub(r"<img ([^>]*?)\s*/?>", r'<img \1 width="700" />', browser.toHtml()))
            except OSError:
                browser.setPlainText("The user guide is not installed with this copy of CSOS Desk.")
            window.body.addWidget(browser, 1)
            window.browser = browser
            window.finish()
            window.resize(780, 640)
            fit_on_show(window)
            return window

        return self._window("user_guide", make)

    @Slot()
    def show_shortcuts(self) -> Any:
        def make() -> Any:
            window = CloseableWindow(self._title("Keyboard shortcuts"), self)  # type: ignore[arg-type]
            rows = []
            for action in self.findChildren(QAction):  # type: ignore[attr-defined]
                keys = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
                if keys and action.isVisible():
                    rows.append((action.text().replace("&", "").rstrip("…"), keys))
            rows = sorted(set(rows))
            text = "".join(f"<tr><td style='padding-right:24px'>{name}</td><td><b>{keys}</b></td></tr>"
                           for name, keys in rows)
            label = QLabel("<table>" + text + "<tr><td style='padding-right:24px'>Close a window</td>"
                           "<td><b>Esc</b></td></tr></table>", window)
            label.setAccessibleName("Keyboard shortcuts")
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            window.body.addWidget(label, 1)
            window.finish()
            return window

        return self._window("shortcuts", make)

    @Slot()
    def start_training_over(self) -> bool:
        """Fresh practice data: asks first, then closes and reopens the training profile with an empty folder."""
        if not self.config.is_training:
            return False
        if not messages.confirm(
                self, "Start training over?",  # type: ignore[arg-type]
                "Throw away every practice order, practice certificate and practice message, and start again "
                "with fresh practice data? Nothing outside training is touched.",
                yes_text="Start training over", no_text="Keep my practice data", warning=True):
            return False
        self.facade.training_reset_requested.emit()
        return True
