"""Getting started: the checklist shown in place of an empty order list and from Help → Getting started.

Each step says what it is for, what is there already, and has the buttons that do it; a done step is ticked. The
state comes from ``app.services.getting_started`` (read on a worker); the window turns a button into the screen
that does the step (``action_requested(key)``: enroll, import, registrations, suppliers, new_order, settings).
"""

from __future__ import annotations

import html
import logging
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError

log = logging.getLogger(__name__)

STEP_STYLE = (
    "QFrame#gettingStartedStep { border: 1px solid palette(mid); border-radius: 6px; }"
    " QFrame#gettingStartedStep[done=\"true\"] { background-color: rgba(46, 133, 64, 0.08); }"
)


class GettingStartedPanel(QWidget):
    """The checklist; ``refresh()`` reads the state again (it also follows the façade's change signals)."""

    action_requested = Signal(str)
    refreshed = Signal()

    def __init__(self, facade: Any, parent: QWidget | None = None, *, closable: bool = False) -> None:
        super().__init__(parent)
        self.facade = facade
        self.checklist: Any = None
        self._loading = False
        self._alive = [True]
        alive = self._alive
        self.destroyed.connect(lambda *_: alive.__setitem__(0, False))
        self.setObjectName("gettingStarted")
        self.setAccessibleName("Getting started")
        self.setWindowTitle("Getting started" + (" — TRAINING" if facade.is_training else ""))
        outer = QVBoxLayout(self)
        outer.setContentsMargins(16, 12, 16, 12)
        self.title = QLabel("Getting started", self)
        self.title.setStyleSheet("QLabel { font-size: 15pt; font-weight: 600; }")
        self.title.setAccessibleName("Getting started")
        outer.addWidget(self.title)
        intro = ("This is the training order book: practise freely, nothing here reaches DEA or a real supplier. "
                 if facade.is_training else "")
        self.intro = QLabel(intro + "Three steps before your first order is on its way; each has its button. "
                                    "A step is ticked when it is done.", self)
        self.intro.setWordWrap(True)
        outer.addWidget(self.intro)
        self.progress = QLabel(self)
        self.progress.setAccessibleName("Progress")
        outer.addWidget(self.progress)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.steps_holder = QWidget(scroll)
        self.steps_layout = QVBoxLayout(self.steps_holder)
        self.steps_layout.setContentsMargins(0, 0, 0, 0)
        self.steps_layout.setSpacing(10)
        scroll.setWidget(self.steps_holder)
        outer.addWidget(scroll, 1)
        if closable:
            row = QHBoxLayout()
            row.addStretch(1)
            close = QPushButton("Close", self)
            close.setAccessibleName("Close")
            close.clicked.connect(self.close)
            row.addWidget(close)
            outer.addLayout(row)
        self.setStyleSheet(STEP_STYLE)
        for signal in (facade.orders_changed, facade.order_book_changed, facade.parties_changed,
                       facade.settings_changed):
            signal.connect(lambda *_: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        if self._loading or not self._alive[0] or self.facade.db is None:
            return
        self._loading = True
        facade = self.facade

        def work(_context: Any) -> Any:
            from app.services.getting_started import getting_started, trust_roots_present

            training = bool(facade.config.is_training)
            roots = None if training else trust_roots_present(facade.config)
            return getting_started(facade.db, training=training, trust_roots=roots, now=facade.clock())

        def failed(error: CsosError) -> None:
            self._loading = False
            self.progress.setText(error.message)

        self.facade.jobs.run("Reading what is set up", work, on_success=self._show, on_failure=failed,
                             announce=False, owner=self)

    def _show(self, checklist: Any) -> None:
        self._loading = False
        self.checklist = checklist
        while self.steps_layout.count():
            item = self.steps_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().hide()  # gone from the screen now; deleted once Qt is back in its loop
                item.widget().deleteLater()
        for number, step in enumerate(checklist.steps, start=1):
            frame = self._step_frame(number, step)
            self.steps_layout.addWidget(frame)
            frame.show()
        self.steps_layout.addStretch(1)
        total = len(checklist.steps)
        self.progress.setText("All done: your order book is ready." if checklist.complete
                              else f"{checklist.done} of {total} done.")
        self.refreshed.emit()

    def _step_frame(self, number: int, step: Any) -> QFrame:
        frame = QFrame(self.steps_holder)
        frame.setObjectName("gettingStartedStep")
        frame.setProperty("done", step.done)
        frame.setAccessibleName(f"Step {number}: {step.title}" + (" (done)" if step.done else ""))
        layout = QVBoxLayout(frame)
        layout.setContentsMargins(12, 8, 12, 8)
        mark = "✔" if step.done else f"{number}."
        heading = QLabel(f"<b>{mark} {html.escape(step.title)}</b>" + (" — done" if step.done else ""), frame)
        heading.setAccessibleName(f"{step.title}" + (" — done" if step.done else ""))
        layout.addWidget(heading)
        text = QLabel(step.text, frame)
        text.setWordWrap(True)
        layout.addWidget(text)
        for line in step.items:
            item = QLabel("• " + line, frame)
            item.setWordWrap(True)
            item.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(item)
        if step.actions:
            row = QHBoxLayout()
            for action in step.actions:
                button = QPushButton(action.label, frame)
                button.setAccessibleName(action.label.rstrip("…"))
                button.clicked.connect(lambda _checked=False, key=action.key: self.action_requested.emit(key))
                row.addWidget(button)
            row.addStretch(1)
            layout.addLayout(row)
        return frame

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape and self.isWindow():
            self.close()
            return
        super().keyPressEvent(event)
