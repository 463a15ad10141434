"""The outbox in the background while the window is open: queued orders go out, supplier answers come in.

``OutboxWorker`` (a plain thread in ``app.services.orders.outbox``) does the work; this wrapper reports each round to the
GUI thread (``round_done``) so the order book and the status bar show what changed, and stops the thread when the
window closes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, Signal

from app.errors import CsosError

log = logging.getLogger(__name__)


class _ReportingOutbox:
    """The outbox as the worker sees it; tells the runner when a round sent or failed something."""

    def __init__(self, outbox: Any, runner: "OutboxRunner") -> None:
        self._outbox = outbox
        self._runner = runner
        self.clock = outbox.clock

    def run_until_idle(self, **kwargs: Any) -> Any:
        report = self._outbox.run_until_idle(**kwargs)
        if report.tried:
            self._runner.round_done.emit([])
        return report

    def next_due_at(self) -> Any:
        return self._outbox.next_due_at()


class OutboxRunner(QObject):
    round_done = Signal(list)  # ids of orders that changed ([] = several; read the order book again)
    failed = Signal(object)  # a CsosError from a round (storage trouble…); the loop goes on

    def __init__(self, facade: Any, *, poll_interval: float = 30.0, sync_interval: float = 120.0,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.poll_interval = poll_interval
        self.sync_interval = sync_interval
        self.worker: Any = None
        self._thread: threading.Thread | None = None
        self._guard = threading.Lock()
        self._stopping = False
        self.round_done.connect(self._on_round_done)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start the loop on its own thread; the services are imported there, not on the GUI thread."""
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="outbox-runner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from app.services.orders.outbox import OutboxWorker

        try:
            outbox = self.facade.outbox()
        except CsosError as exc:
            self.failed.emit(exc)
            return
        except Exception:
            log.exception("the background outbox could not start")
            return
        worker = OutboxWorker(_ReportingOutbox(outbox, self), poll_interval=self.poll_interval,
                              sync_interval=self.sync_interval, sync=self.sync_once, on_error=self.failed.emit)
        with self._guard:
            if self._stopping:
                return
            self.worker = worker
        try:
            worker.run()
        except CsosError as exc:
            self.failed.emit(exc)
        except Exception:  # e.g. the order book closed under it at exit: logged, never a traceback on the console
            log.exception("the background outbox stopped")

    def restart(self) -> None:
        """After the suppliers or the TLS bundle changed (e.g. the training sandbox came up on a new port)."""
        self.stop()
        self.start()

    def wake(self) -> None:
        with self._guard:
            worker = self.worker
        if worker is not None:
            worker.wake()

    def stop(self, timeout: float = 15.0) -> None:
        with self._guard:
            self._stopping = True
            worker, self.worker = self.worker, None
        if worker is not None:
            worker.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the outbox thread did not stop in time")

    def sync_once(self) -> Any:
        """Fetch what suppliers have for sent orders (runs on the worker thread, or in a job)."""
        report = self.facade.lifecycle().sync(self.facade.connector)
        changed = sorted({applied.order_id for applied in report.applied})
        if changed or report.expired:
            self.round_done.emit(changed if not report.expired else [])
        for error in report.errors:
            log.info("sync problem: %s", error.get("code"))
        return report

    def _on_round_done(self, ids: list) -> None:
        try:
            if ids:
                self.facade.notify_orders_changed(ids)
            else:
                self.facade.order_book_changed.emit()
        except CsosError as exc:  # a screen failed to re-read; it shows its own message
            log.info("refresh after outbox round failed: %s", exc.code)
