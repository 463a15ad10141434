"""The main window's status bar and reminders bar: order count, clock check, signing certificate, outbox, where the
order book lives, the busy indicator of slow background work, and the reminders shown above the order list.

A mixin of ``MainWindow`` (app/ui/main_window.py), which calls ``_build_notice_bar`` and ``_build_status_bar``; it
needs the frame's ``config``, ``db``, ``facade``, ``training_notice``, ``search_box``, ``show_error`` and
``report_failure``. The readings import their services when they run, never at module level (start-up rule).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSize, Slot
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from app.errors import CsosError
from app.ui import theme
from app.ui.jobs import Job
from app.ui.lazy_qt import Qt, set_properties
from app.ui.order_table_model import format_local

if TYPE_CHECKING:  # imported with the order book (``attach``), not with the window's frame
    from app.services.orders.details import Notice

log = logging.getLogger(__name__)


def _escape(text: str) -> str:
    """``html.escape``, imported when first needed (html and its entity table are not needed before the window's
    first paint)."""
    import html

    return html.escape(text)


def describe_location(url: str) -> str:
    """Where the order book lives, for the status bar; never shows a password."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an odd URL must not stop the window; the database already opened with it
        return url.split("@")[-1]


class StatusBarMixin:
    """Status bar readings, the reminders bar and the busy indicator; read again by ``refresh_status``."""

    config: Any
    db: Any
    facade: Any
    notices: list[Notice]
    training_notice: Notice | None

    # -- building ------------------------------------------------------------------------------------------------

    def _build_notice_bar(self, parent: QWidget) -> QFrame:
        """The reminders bar, hidden: what it shows is made when it first has reminders (``_notice_parts``), not
        before the window's first paint."""
        bar = QFrame(parent)
        bar.setObjectName("noticeBar")
        bar.setStyleSheet(theme.NOTICE_STYLE)
        bar.setAccessibleName("Reminders")
        bar.setVisible(False)
        self.notice_text: QLabel | None = None
        return bar

    def _notice_parts(self) -> QLabel:
        """The reminders bar's icon, text and "Remind me later" button, made the first time; returns the text."""
        if self.notice_text is not None:
            return self.notice_text
        from PySide6.QtWidgets import QToolButton

        bar = self.notice_bar
        row = QHBoxLayout(bar)
        row.setContentsMargins(12, 6, 8, 6)
        self.notice_icon = QLabel(bar)
        self.notice_icon.setPixmap(theme.icon("warning").pixmap(QSize(22, 22)))
        row.addWidget(self.notice_icon, 0, Qt.AlignmentFlag.AlignTop)
        self.notice_text = QLabel(bar)
        self.notice_text.setObjectName("noticeText")
        self.notice_text.setWordWrap(True)
        self.notice_text.setTextFormat(Qt.TextFormat.RichText)
        self.notice_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row.addWidget(self.notice_text, 1)
        self.notice_dismiss = QToolButton(bar)
        self.notice_dismiss.setObjectName("noticeDismiss")
        self.notice_dismiss.setText("Remind me &later")
        self.notice_dismiss.setAccessibleName("Remind me later")
        self.notice_dismiss.setToolTip("Hide these reminders until the next reminder date")
        self.notice_dismiss.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.notice_dismiss.setIcon(theme.icon("close"))
        self.notice_dismiss.clicked.connect(self.dismiss_reminders)
        row.addWidget(self.notice_dismiss, 0, Qt.AlignmentFlag.AlignTop)
        # Made now, the button would come after what was made since the window (the detail pane…): it goes before
        # the search box, where the bar is, and the list's chain after it, as when it was made with the window.
        self.setTabOrder(self.notice_dismiss, self.search_box)
        self._set_tab_order()  # type: ignore[attr-defined]
        return self.notice_text

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.count_label = QLabel(self)
        self.count_label.setObjectName("orderCount")
        self.count_label.setContentsMargins(6, 0, 0, 0)
        bar.addWidget(self.count_label)
        self.clock_label = self._status_label("clockStatus", "Clock check")
        self.certificate_label = self._status_label("certificateStatus", "Signing certificate")
        self.outbox_label = self._status_label("outboxStatus", "Outbox")
        for label in (self.clock_label, self.certificate_label, self.outbox_label):
            bar.addWidget(label)

        self.busy = QWidget(self)
        self.busy.setObjectName("busyIndicator")
        busy_row = QHBoxLayout(self.busy)
        busy_row.setContentsMargins(0, 0, 0, 0)
        self.busy_label = QLabel(self.busy)
        self.busy_bar = QProgressBar(self.busy)
        self.busy_bar.setAccessibleName("Progress")
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setTextVisible(False)
        self.busy_cancel = QPushButton("Cancel", self.busy)
        self.busy_cancel.setAccessibleName("Cancel the running task")
        self.busy_cancel.clicked.connect(self._cancel_shown_job)
        busy_row.addWidget(self.busy_label)
        busy_row.addWidget(self.busy_bar)
        busy_row.addWidget(self.busy_cancel)
        self.busy.setVisible(False)
        bar.addPermanentWidget(self.busy)

        self.location_label = QLabel(self)
        self.location_label.setObjectName("databaseLocation")
        set_properties(self.location_label, textInteractionFlags="TextSelectableByMouse")  # no Qt.* before the paint
        self.location_label.setText("Order book: opening…")
        bar.addPermanentWidget(self.location_label)

    def _show_location(self, url: str) -> None:
        location = describe_location(url)
        shown = QFontMetrics(self.location_label.font()).elidedText(location, Qt.TextElideMode.ElideMiddle, 360)
        self.location_label.setText(f"Order book: {shown}")
        self.location_label.setToolTip(location)

    def _status_label(self, name: str, accessible: str) -> QLabel:
        label = QLabel(self)
        label.setObjectName(name)
        label.setAccessibleName(accessible)
        label.setContentsMargins(10, 0, 0, 0)
        set_properties(label, textFormat="RichText")
        return label

    # -- status bar and reminders --------------------------------------------------------------------------------

    @Slot()
    def refresh_status(self) -> None:
        """Certificate, outbox and reminders: small reads, done again after anything changed."""
        if self.db is None:
            return  # not attached yet: attach reads them
        from app.services.orders import details as details_service
        from app.services.app_settings import reminder_days

        try:
            certificate = details_service.active_certificate(self.db, self.config, now=self.facade.clock())
            waiting = details_service.orders_waiting_to_send(self.db)
            self.notices = details_service.due_notices(self.db, today=self.facade.today(),
                                                       days=reminder_days(self.facade.settings),
                                                       dismissed=self._dismissed())
            self.notices = ([self.training_notice] if self.training_notice else []) + self._revocation_notices() \
                + self.notices
        except CsosError as exc:
            self.show_error(exc)
            return
        if certificate is None:
            self.certificate_label.setText("Certificate: none")
            self.certificate_label.setToolTip("No CSOS signing certificate is set up on this computer yet. Orders "
                                              "can be prepared, but only a certificate holder can sign them.")
        else:
            colour = theme.CLOCK_COLOURS["ok" if certificate.days_left > 30 else "unknown"]
            who = _escape(certificate.subscriber_name or "certificate")
            self.certificate_label.setText(f"Certificate: {who}, <span style='color:{colour}'>"
                                           f"{certificate.days_left} days left</span>")
            self.certificate_label.setToolTip(f"Expires {format_local(certificate.not_after)}"
                                              f" (registration {certificate.registration_dea})")
        self.outbox_label.setText(f"Outbox: {waiting} waiting" if waiting else "Outbox: empty")
        self.outbox_label.setToolTip("Signed orders that have not been sent to the supplier yet")
        self._show_reminders()

    def _revocation_notices(self) -> list[Notice]:
        """K3: a revocation started and not finished keeps reminding with its deadline (never dismissed)."""
        from pathlib import Path

        if not (Path(self.config.data_dir) / "wizards").is_dir():
            return []  # no wizard was ever started: nothing to import or read
        from app.services.enrollment.flows import unfinished_revocation_reminders
        from app.services.orders.details import Notice
        from app.ui.wizards import wizard_state_store

        try:
            reminders = unfinished_revocation_reminders(wizard_state_store(self.config), now=self.facade.clock())
        except (CsosError, OSError, ValueError) as exc:
            log.info("revocation reminders unreadable: %s", getattr(exc, "code", type(exc).__name__))
            return []
        return [Notice(key=f"incident:{r.reference}", stage=0, message=r.headline,
                                       action=r.action + " (Certificates → Certificates…, then Revoke.)", urgent=True)
                for r in reminders]

    def _dismissed(self) -> dict[str, int]:
        value = self.facade.settings.get("dismissed_reminders")
        return value if isinstance(value, dict) else {}

    def _show_reminders(self) -> None:
        shown = self.notices
        if not shown:
            self.notice_bar.setVisible(False)
            return
        lines = [f"<b>{_escape(n.message)}</b> {_escape(n.action)}" for n in shown[:3]]
        if len(shown) > 3:
            lines.append(f"…and {len(shown) - 3} more.")
        self._notice_parts().setText("<br>".join(lines))
        self.notice_bar.setAccessibleDescription(" ".join(f"{n.message} {n.action}" for n in shown))
        self.notice_bar.setProperty("urgent", any(n.urgent for n in shown))
        self.notice_bar.style().unpolish(self.notice_bar)
        self.notice_bar.style().polish(self.notice_bar)
        self.notice_bar.setVisible(True)

    @Slot()
    def dismiss_reminders(self) -> None:
        """Hide until each reminder reaches its next step (e.g. 30 → 14 days)."""
        dismissed = dict(self._dismissed())
        for notice in self.notices:
            dismissed[notice.key] = notice.stage
        try:
            self.facade.save_settings({"dismissed_reminders": dismissed})
        except CsosError as exc:
            self.report_failure(exc)
        self.notice_bar.setVisible(False)
        self.search_box.setFocus()

    def clock_server(self) -> tuple[str, int] | None:
        """Where to check the clock; None in training mode when no practice time server is configured."""
        from app.services.app_settings import sntp_server

        configured = self.facade.settings.get("sntp_server")
        if self.config.is_training and not configured:
            return None
        host, _, port = sntp_server(self.facade.settings).partition(":")
        return host, int(port or 123)

    @Slot()
    def check_clock(self) -> None:
        # Only the latest check may speak: at a second start the first check asks last run's practice time server
        # and times out after the sandbox has moved and the new check said "right", so the status bar read
        # "Clock: not checked" for good.
        self._clock_check_number = getattr(self, "_clock_check_number", 0) + 1
        number = self._clock_check_number
        server = self.clock_server()
        if server is None:
            self._set_clock("unchecked", "Clock: not checked",
                            "Training mode without the practice time server: the clock was not checked.")
            return
        host, port = server
        self._set_clock("unchecked", "Clock: checking…", f"Asking {host} for the official time")

        def work(_context: Any) -> Any:
            from app.services.signing.clock import check_clock

            return check_clock(host, port=port)

        def failed(error: Any) -> None:
            if number == self._clock_check_number:
                self._set_clock("unknown", "Clock: not checked", error.message)

        self.facade.jobs.run("Checking the clock", work,
                             on_success=lambda result: self._on_clock_checked(result, number), on_failure=failed)

    def _on_clock_checked(self, result: Any, number: int | None = None) -> None:
        if number is not None and number != self._clock_check_number:
            return  # an older check's answer (another server, asked before this one)
        self.clock_result = result
        state = result.state.value
        text = {"ok": "Clock: right", "off": "Clock: WRONG — signing blocked", "unknown": "Clock: not checked"}[state]
        self._set_clock(state, text, result.message)

    def _set_clock(self, state: str, text: str, tip: str) -> None:
        colour = theme.CLOCK_COLOURS.get(state, theme.CLOCK_COLOURS["unchecked"])
        self.clock_label.setText(f"<span style='color:{colour}'>●</span> {_escape(text)}")
        self.clock_label.setToolTip(tip)
        self.clock_label.setAccessibleDescription(f"{text}. {tip}")
        self.clock_label.setProperty("state", state)

    # -- background work indicator -------------------------------------------------------------------------------

    @Slot(object)
    def _show_job(self, job: Job) -> None:
        self._shown_job = job
        self.busy_label.setText(job.title + "…")
        self.busy_bar.setRange(0, 0)
        self.busy_cancel.setVisible(job.cancellable)
        self.busy_cancel.setEnabled(True)
        job.progress.connect(self._on_job_progress)
        job.finished.connect(lambda: self._job_done(job))
        self._on_job_progress(*job.last_progress)  # what it reported before it counted as slow
        self.busy.setVisible(True)

    def _on_job_progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.busy_bar.setRange(0, total)
            self.busy_bar.setValue(min(done, total))
        if text:
            self.busy_label.setText(text)

    def _job_done(self, job: Job) -> None:
        if job is self._shown_job:
            self._shown_job = None
            self.busy.setVisible(False)

    def _cancel_shown_job(self) -> None:
        if self._shown_job is not None:
            self._shown_job.cancel()
            self.busy_cancel.setEnabled(False)
            self.busy_label.setText("Stopping…")
