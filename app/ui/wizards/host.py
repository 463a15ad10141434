"""The wizard window: renders the flow's current view with its page, runs Next/Back, polls waiting views.

Slow steps (network, key generation, tokens) run on the facade's job runner, never on the GUI thread; the buttons
are disabled meanwhile and a short "working" line says what is happening. A refusal about one entry is shown under
that entry; anything else in the message line at the bottom. Nothing typed is lost on a failure.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.services.enrollment.flow_common import Flow
from app.services.enrollment.wizard import RESUMED_FROM
from app.ui import messages, theme
from app.ui.jobs import JobRunner
from app.ui.wizards.lifecycle_pages import OVERDUE_STYLE, page_for
from app.ui.wizards.pages import WizardPage

log = logging.getLogger(__name__)

BANNER_STYLE = ("QLabel { background: #fff4d6; color: #1f1f1f; border: 1px solid #e0c77a; border-radius: 4px;"
                " padding: 8px; }")


class WizardDialog(QDialog):
    """Hosts one ``Flow``. ``finished_flow`` when the last page is accepted; ``test_order_requested(dea)``."""

    test_order_requested = Signal(str)
    enrollment_requested = Signal()
    flow_finished = Signal(str)
    view_changed = Signal(str)

    def __init__(self, flow: Flow, *, jobs: JobRunner, mailbox_opener: Callable[[str], Any] | None = None,
                 approvals_opener: Callable[[list[str]], Any] | None = None,
                 registrations_opener: Callable[[], Any] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.flow = flow
        self.jobs = jobs
        self.mailbox_opener = mailbox_opener
        self.approvals_opener = approvals_opener
        self.registrations_opener = registrations_opener
        self.busy = False
        self.rendered_view: str | None = None
        self.page: WizardPage | None = None
        self.last_error: CsosError | None = None
        self.setObjectName(f"wizard_{flow.name}")
        self.setWindowTitle(flow.title + (" — TRAINING" if flow.authority.training else ""))
        self.resize(700, 640)

        outer = QVBoxLayout(self)
        if flow.authority.training:
            banner = QLabel("TRAINING — practice certificates from the training portal; nothing reaches DEA", self)
            banner.setObjectName("trainingBanner")
            banner.setStyleSheet(theme.TRAINING_BANNER_STYLE)
            outer.addWidget(banner)
        self.heading = QLabel(self)
        self.heading.setObjectName("wizardHeading")
        self.heading.setStyleSheet("QLabel { font-size: 14pt; font-weight: bold; }")
        self.progress_label = QLabel(self)
        self.progress_label.setObjectName("wizardProgress")
        outer.addWidget(self.progress_label)
        outer.addWidget(self.heading)
        self.resume_note = QLabel(self)
        self.resume_note.setObjectName("wizardResumeNote")
        self.resume_note.setWordWrap(True)
        self.resume_note.setVisible(False)
        outer.addWidget(self.resume_note)
        self.banner = QLabel(self)
        self.banner.setObjectName("flowBanner")
        self.banner.setWordWrap(True)
        self.banner.setVisible(False)
        outer.addWidget(self.banner)
        self.scroll = QScrollArea(self)
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QFrame.Shape.NoFrame)
        outer.addWidget(self.scroll, 1)
        self.message = QLabel(self)
        self.message.setObjectName("wizardMessage")
        self.message.setWordWrap(True)
        self.message.setStyleSheet(theme.FIELD_ERROR_STYLE + " QLabel#wizardMessage { color: #b3261e; }")
        self.message.setVisible(False)
        outer.addWidget(self.message)
        self.working = QLabel(self)
        self.working.setObjectName("wizardWorking")
        self.working.setVisible(False)
        outer.addWidget(self.working)
        buttons = QHBoxLayout()
        self.close_button = QPushButton("Close (continue later)", self)
        self.close_button.setObjectName("wizardClose")
        self.back_button = QPushButton("< Back", self)
        self.back_button.setObjectName("wizardBack")
        self.next_button = QPushButton("Next >", self)
        self.next_button.setObjectName("wizardNext")
        self.next_button.setDefault(True)
        buttons.addWidget(self.close_button)
        buttons.addStretch(1)
        buttons.addWidget(self.back_button)
        buttons.addWidget(self.next_button)
        outer.addLayout(buttons)
        self.close_button.clicked.connect(self.close)
        self.back_button.clicked.connect(self.go_back)
        self.next_button.clicked.connect(self.go_next)

        self.poll_timer = QTimer(self)
        self.poll_timer.setSingleShot(True)
        self.poll_timer.timeout.connect(self._poll)
        # Background answers can arrive after the window was closed or deleted: the callbacks look at this flag
        # (a plain list, not the widget) before touching any widget.
        self._alive = [True]
        alive = self._alive
        self.destroyed.connect(lambda *_: alive.__setitem__(0, False))

    # -- rendering ------------------------------------------------------------------------------------------------

    def begin(self) -> None:
        """Prepare the first (or resumed) view, off the GUI thread, then show it."""
        self.render(preparing=True)
        self._run("Preparing the page", self.flow.start, self._after_move)

    def render(self, *, preparing: bool = False) -> None:
        flow = self.flow
        step = flow.step
        self.heading.setText(step.title)
        # The step number belongs to the page (its place in the flow), so it never changes between visits.
        self.progress_label.setText(f"{flow.title} · step {list(flow.navmap).index(flow.view) + 1}"
                                    + (" · continued where you left off" if flow.resumed else ""))
        old = self.scroll.takeWidget()
        if old is not None:
            old.deleteLater()
        if preparing:
            self.page = None
            placeholder = QLabel("Preparing…", self)
            self.scroll.setWidget(placeholder)
        else:
            self.page = page_for(flow, self)
            self.page.action_requested.connect(self._on_action)
            self.page.entry_changed.connect(lambda: self._set_message(None))
            holder = QWidget(self)
            layout = QVBoxLayout(holder)
            layout.addWidget(self.page)
            self.scroll.setWidget(holder)
        self._set_message(None)
        banner = None if preparing else flow.banner()
        self.banner.setText(banner[0] if banner else "")
        self.banner.setStyleSheet(OVERDUE_STYLE if banner and banner[1] else BANNER_STYLE)
        self.banner.setVisible(bool(banner))
        resumed_from = flow.data.get(RESUMED_FROM)
        self.resume_note.setText(
            f"You left off at “{flow.navmap[resumed_from].title}”. Some entries are never kept on this computer "
            "(sign-in, codes, identity details): give them again here, and the wizard goes on from there."
            if resumed_from in flow.navmap and resumed_from != flow.view else "")
        self.resume_note.setVisible(bool(self.resume_note.text()))
        self.rendered_view = None if preparing else flow.view
        self._update_buttons()
        self.view_changed.emit(flow.view)

    def _update_buttons(self) -> None:
        flow = self.flow
        idle = not self.busy
        self.back_button.setEnabled(idle and flow.can_go_back)
        self.back_button.setVisible(not flow.is_last)
        self.next_button.setEnabled(idle and self.page is not None)
        self.next_button.setText("Finish" if flow.is_last else ("Check now" if flow.view == "waiting"
                                                                 and flow.data.get("automatic") else "Next >"))
        self.close_button.setText("Close" if flow.is_last else "Close (continue later)")
        self.close_button.setVisible(not flow.is_last)  # "Close" beside "Finish" made a new user stop and choose

    def _set_message(self, text: str | None) -> None:
        self.message.setText(text or "")
        self.message.setVisible(bool(text))

    # -- moving ---------------------------------------------------------------------------------------------------

    def go_next(self) -> None:
        if self.busy or self.page is None:
            return
        if self.flow.is_last:
            self.flow.finish()
            self.flow_finished.emit(self.flow.name)
            self.accept()
            return
        values = self.page.collect()
        self.page.clear_problems()
        self._set_message(None)
        title = f"Working on: {self.flow.step.title}"
        if self.flow.step.slow:
            self._run(title, lambda: self.flow.next(values), self._after_move)
        else:
            try:
                self.flow.next(values)
            except CsosError as exc:
                self._failed(exc)
                return
            self._after_move(None)

    def go_back(self) -> None:
        if self.busy or not self.flow.can_go_back:
            return
        if self.page is not None:
            self.flow.data.update({k: v for k, v in self.page.collect().items() if not _is_secret(k)})
        self.flow.back()
        self.render()
        self._schedule_poll()

    def _run(self, title: str, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self.busy = True
        self.working.setText(title + "…")
        self.working.setVisible(True)
        self._update_buttons()

        alive = self._alive

        def finish_ok(result: Any) -> None:
            if alive[0]:
                self._idle()
                done(result)

        def finish_failed(error: CsosError) -> None:
            if alive[0]:
                self._idle()
                self._failed(error)

        self.jobs.run(title, lambda _context: work(), on_success=finish_ok, on_failure=finish_failed,
                      owner=self)

    def _idle(self) -> None:
        self.busy = False
        self.working.setVisible(False)
        self._update_buttons()

    def _after_move(self, _result: Any) -> None:
        self.render()
        self._schedule_poll()

    def _failed(self, error: CsosError) -> None:
        self.last_error = error
        log.info("wizard %s step %s refused: %s", self.flow.name, self.flow.view, error.code)
        if self.page is None or self.rendered_view != self.flow.view:
            self.render()  # the page shown always belongs to the step the flow is at
        shown = self.page.show_problem(getattr(error, "field", None), error.message) if self.page else False
        if not shown:
            self._set_message(error.message)
        self._update_buttons()

    # -- waiting views --------------------------------------------------------------------------------------------

    def _schedule_poll(self) -> None:
        seconds = self.flow.poll_seconds()
        if seconds:
            self.poll_timer.start(int(seconds * 1000))
        else:
            self.poll_timer.stop()

    def _poll(self) -> None:
        if self.busy:
            self._schedule_poll()
            return
        view = self.flow.view
        self.busy = True  # the flow may move on in the background: no Next/Back meanwhile
        self._update_buttons()

        alive = self._alive

        def done(changed: Any) -> None:
            if not alive[0]:
                return
            self._idle()
            if changed or self.flow.view != view:
                self.render()
            self._schedule_poll()

        def failed(error: CsosError) -> None:
            if not alive[0]:
                return
            self._idle()
            self._set_message(error.message)
            self._schedule_poll()

        self.jobs.run("Checking for news", lambda _c: self.flow.poll(), on_success=done, on_failure=failed,
                      owner=self)

    def poll_now(self) -> None:
        """Check at once (tests; the person pressed nothing)."""
        self.poll_timer.stop()
        self._poll()

    # -- page actions ---------------------------------------------------------------------------------------------

    def _on_action(self, action: str) -> None:
        if action == "open_mailbox":
            if self.mailbox_opener is not None:
                self.mailbox_opener(str(self.flow.data.get("email") or ""))
        elif action == "test_order":
            dea = self.flow.data.get("test_order_registration")
            if dea:
                self.test_order_requested.emit(str(dea))
        elif action == "enroll":
            self.enrollment_requested.emit()
        elif action == "open_approvals":
            if self.approvals_opener is not None:
                current = (self.flow.data.get("current") or {}).get("registration")
                self.approvals_opener(list(self.flow.data.get("approvals_missing") or self.flow.data.get("registrations")
                                           or ([current] if current else [])))
        elif action == "add_registration":
            window = self.registrations_opener() if self.registrations_opener is not None else None
            if window is not None and hasattr(window, "saved"):
                window.saved.connect(lambda _dea: self._reread_page())
        elif action.startswith("open_url:"):
            url = action.removeprefix("open_url:")
            if url:
                QDesktopServices.openUrl(QUrl(url))

    def _reread_page(self) -> None:
        """Something the page lists changed elsewhere (a registration added): prepare and show the page again,
        keeping what was entered."""
        if not self._alive[0] or self.busy or self.page is None:
            return
        self.flow.data.update({k: v for k, v in self.page.collect().items() if not _is_secret(k)})
        self._run("Reading the list again", self.flow.start, self._after_move)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape asks first: closing keeps the progress, but a person pressing Escape may not expect to leave."""
        if event.key() == Qt.Key.Key_Escape:
            event.accept()
            if self.flow.is_last or messages.confirm(
                    self, "Close and continue later?",
                    "Close this wizard now? What you entered is kept (except passwords, codes and identity "
                    "details), and it continues where you left off when you open it again.",
                    yes_text="Close and continue later", no_text="Stay here"):
                self.close()
            return
        super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._alive[0] = False
        self.poll_timer.stop()
        if self.flow.is_last:
            self.flow.finish()
        super().closeEvent(event)


def _is_secret(key: str) -> bool:
    from app.services.enrollment.wizard import is_secret_key

    return is_secret_key(key)
