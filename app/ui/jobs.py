"""Running slow work off the GUI thread (DESIGN.md §2).

``JobRunner.run(title, work)`` runs ``work(context)`` on a worker of the runner's own thread pool and reports back
on the GUI thread through the ``Job``'s signals. ``context.progress(done, total, text)`` reports progress and
``context.cancelled`` / ``context.check_cancelled()`` honour the Cancel button. A job still running after about a
second is announced with ``slow_job`` so the window can show a progress indicator; quick ones never flicker.

``owner=`` names the window a job answers to: once that window is deleted, the job's answer is dropped instead of
calling into widgets that no longer exist (a closed dialog whose portal call was still running used to crash Qt).

Failures always arrive as a ``CsosError``: a typed error keeps its plain-language message, anything else is logged
with its traceback and replaced by a plain message — the person never sees a traceback. ``shutdown()`` cancels and
waits, so no worker thread outlives the window.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, QTimer, Signal, Slot

from app.errors import CsosError

log = logging.getLogger(__name__)

SLOW_AFTER_MS = 1000


class Cancelled(CsosError):
    """The person pressed Cancel; the work stopped at a safe point."""

    code = "job.cancelled"


def unexpected_failure(title: str) -> CsosError:
    what = title[:1].lower() + title[1:] if title else "this step"
    return CsosError(f"Something unexpected went wrong while {what}. It may not have finished: check the result, "
                     "then try again. Details were written to the log file in the data folder.",
                     code="unexpected")


class JobContext:
    """Handed to the work function: progress reports and the cancel flag. Safe to use from the worker thread."""

    def __init__(self, bridge: "_Bridge", cancel: threading.Event) -> None:
        self._bridge = bridge
        self._cancel = cancel

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("Stopped as you asked; nothing more was done.")

    def progress(self, done: int, total: int = 0, text: str = "") -> None:
        self._bridge.progressed.emit(int(done), int(total), text)


class _Bridge(QObject):
    """Lives in the GUI thread; the worker emits on it, so the Job's slots run on the GUI thread (queued)."""

    progressed = Signal(int, int, str)
    ended = Signal(bool, object)


class Job(QObject):
    """One piece of background work. Its public signals are always emitted on the GUI thread."""

    succeeded = Signal(object)
    failed = Signal(object)  # a CsosError
    progress = Signal(int, int, str)  # done, total (0 = unknown), text
    finished = Signal()

    def __init__(self, title: str, work: Callable[[JobContext], Any], *, cancellable: bool,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.cancellable = cancellable
        self.result: Any = None
        self.error: CsosError | None = None
        self.done = False
        self.last_progress: tuple[int, int, str] = (0, 0, "")
        self._cancel = threading.Event()
        self._bridge = _Bridge(self)
        self._bridge.progressed.connect(self._on_progress)
        self._bridge.ended.connect(self._on_ended)
        self._work = work
        self._runnable = _Runnable(self)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def _execute(self) -> None:
        """Runs on the worker thread."""
        context = JobContext(self._bridge, self._cancel)
        try:
            result = self._work(context)
        except CsosError as exc:
            log.info("%s failed: %s", self.title, exc.code)
            self._bridge.ended.emit(False, exc)
        except Exception:  # the person gets a plain message; the log keeps the traceback
            log.exception("%s failed unexpectedly", self.title)
            self._bridge.ended.emit(False, unexpected_failure(self.title))
        else:
            self._bridge.ended.emit(True, result)

    @Slot(int, int, str)
    def _on_progress(self, done: int, total: int, text: str) -> None:
        self.last_progress = (done, total, text)
        self.progress.emit(done, total, text)

    @Slot(bool, object)
    def _on_ended(self, ok: bool, value: Any) -> None:
        self.done = True
        if ok:
            self.result = value
            self.succeeded.emit(value)
        else:
            self.error = value
            self.failed.emit(value)
        self.finished.emit()


class _Runnable(QRunnable):
    def __init__(self, job: Job) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the Job keeps it; Python owns its lifetime
        self._job = job

    def run(self) -> None:
        self._job._execute()


def _while_alive(owner: QObject | None, callback: Callable[[Any], None], title: str) -> Callable[[Any], None]:
    if owner is None:
        return callback

    def call(value: Any) -> None:
        # No connection to owner.destroyed: a panel that runs a job every few seconds would collect one per job.
        if not shiboken6.isValid(owner):
            log.info("%s: answer dropped, its window is gone", title)
            return
        callback(value)

    return call


class JobRunner(QObject):
    """Starts jobs and keeps them until they have reported back; one per application window."""

    slow_job = Signal(object)  # a Job still running after SLOW_AFTER_MS: show it
    unhandled_failure = Signal(object)  # a CsosError nobody asked to handle: the window shows it
    idle = Signal()  # the last running job has reported back

    def __init__(self, parent: QObject | None = None, *, max_threads: int = 4,
                 slow_after_ms: int = SLOW_AFTER_MS) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.pool.setExpiryTimeout(5000)
        self.slow_after_ms = slow_after_ms
        self._running: list[Job] = []
        self._closed = False

    @property
    def running(self) -> list[Job]:
        return list(self._running)

    def run(self, title: str, work: Callable[[JobContext], Any], *,
            on_success: Callable[[Any], None] | None = None,
            on_failure: Callable[[CsosError], None] | None = None,
            cancellable: bool = False, announce: bool = True, owner: QObject | None = None) -> Job:
        """Start ``work(context)`` in the background. Without ``on_failure`` a failure goes to ``unhandled_failure``.

        ``announce=False``: never announced as slow (``slow_job``) — the caller shows its own progress.
        ``owner``: the window the callbacks touch; they are skipped if it has been deleted by the time the job ends.
        """
        if self._closed:
            raise CsosError("CSOS Desk is closing; nothing new can start.", code="job.closing")
        job = Job(title, work, cancellable=cancellable, parent=self)
        if on_success is not None:
            job.succeeded.connect(_while_alive(owner, on_success, title))
        if on_failure is not None:
            job.failed.connect(_while_alive(owner, on_failure, title))
        else:
            job.failed.connect(self._unhandled)
        job.finished.connect(lambda: self._finished(job))
        self._running.append(job)
        if announce:
            timer = QTimer(job)
            timer.setSingleShot(True)
            timer.timeout.connect(lambda: self._maybe_slow(job))
            timer.start(self.slow_after_ms)
        self.pool.start(job._runnable)
        return job

    def _maybe_slow(self, job: Job) -> None:
        if not job.done:
            self.slow_job.emit(job)

    def _unhandled(self, error: CsosError) -> None:
        if not isinstance(error, Cancelled):
            self.unhandled_failure.emit(error)

    def _finished(self, job: Job) -> None:
        if job in self._running:
            self._running.remove(job)
        job.deleteLater()
        if not self._running:
            self.idle.emit()

    def wait(self, timeout_ms: int = 10_000) -> bool:
        """Block until every worker is done (tests; shutdown). Results still arrive through the event loop."""
        return bool(self.pool.waitForDone(timeout_ms))

    def shutdown(self, timeout_ms: int = 10_000) -> bool:
        """Cancel what is running, wait for the workers and let their threads exit. Safe to call twice."""
        self._closed = True
        for job in self._running:
            job.cancel()
        finished = self.wait(timeout_ms)
        if not finished:
            log.warning("background work still running at shutdown: %s", [job.title for job in self._running])
        return finished
