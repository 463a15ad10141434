"""The background-operation helper: results on the GUI thread, plain failures, progress, cancel, clean shutdown."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from PySide6.QtCore import QThread, QThreadPool
from PySide6.QtWidgets import QApplication

from app.errors import CsosError, StorageError
from app.ui.jobs import Cancelled, JobRunner

pytestmark = pytest.mark.ui


@pytest.fixture
def runner(qtbot):
    made = JobRunner(slow_after_ms=100)
    yield made
    assert made.shutdown(5000)
    assert made.pool.activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def gui_thread() -> QThread:
    return QApplication.instance().thread()


def test_the_work_runs_on_a_worker_and_the_result_arrives_on_the_gui_thread(qtbot, runner):
    seen = {}

    def work(_context):
        seen["work_thread"] = threading.current_thread()
        return 42

    def on_success(value):
        seen["value"] = value
        seen["callback_on_gui_thread"] = QThread.currentThread() is gui_thread()

    job = runner.run("Adding up", work, on_success=on_success)
    with qtbot.waitSignal(job.finished, timeout=5000):
        pass
    assert seen["value"] == 42 and job.result == 42 and job.error is None
    assert seen["work_thread"] is not threading.main_thread()
    assert seen["callback_on_gui_thread"] is True


def test_a_typed_error_keeps_its_message(qtbot, runner):
    failures = []
    job = runner.run("Saving", lambda _c: (_ for _ in ()).throw(
        StorageError("The disk is full. Free some space; nothing was saved.", code="storage.full")),
        on_failure=failures.append)
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert [f.code for f in failures] == ["storage.full"]
    assert failures[0].message == "The disk is full. Free some space; nothing was saved."


def test_an_unexpected_error_becomes_a_plain_message_and_the_traceback_goes_to_the_log(qtbot, runner, caplog):
    def broken(_context):
        raise KeyError("secret-internal-detail")

    shown = []
    runner.unhandled_failure.connect(shown.append)
    with caplog.at_level(logging.ERROR, logger="app.ui.jobs"):
        job = runner.run("Reading the catalog", broken)
        qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert len(shown) == 1 and isinstance(shown[0], CsosError) and shown[0].code == "unexpected"
    assert "reading the catalog" in shown[0].message
    assert "Traceback" not in shown[0].message and "secret-internal-detail" not in shown[0].message
    assert any(record.exc_info and "secret-internal-detail" in str(record.exc_info[1]) for record in caplog.records)


def test_progress_is_reported_on_the_gui_thread(qtbot, runner):
    steps = []

    def work(context):
        for done in range(1, 4):
            context.progress(done, 3, f"Step {done} of 3")
        return "done"

    job = runner.run("Counting", work)
    job.progress.connect(lambda done, total, text: steps.append((done, total, text,
                                                                 QThread.currentThread() is gui_thread())))
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert steps == [(1, 3, "Step 1 of 3", True), (2, 3, "Step 2 of 3", True), (3, 3, "Step 3 of 3", True)]
    assert job.last_progress == (3, 3, "Step 3 of 3")


def test_cancel_stops_the_work_at_a_safe_point(qtbot, runner):
    started = threading.Event()
    unhandled = []
    runner.unhandled_failure.connect(unhandled.append)

    def work(context):
        started.set()
        while True:
            context.check_cancelled()
            time.sleep(0.005)

    job = runner.run("Exporting records", work, cancellable=True)
    assert started.wait(5)
    job.cancel()
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    assert isinstance(job.error, Cancelled) and job.error.code == "job.cancelled"
    assert unhandled == []  # a cancel the person asked for is not reported as a failure


def test_only_slow_work_asks_for_a_progress_indicator(qtbot, runner):
    announced = []
    runner.slow_job.connect(announced.append)
    quick = runner.run("Quick", lambda _c: 1)
    qtbot.waitUntil(lambda: quick.done, timeout=5000)
    release = threading.Event()
    slow = runner.run("Slow", lambda _c: release.wait(5))
    qtbot.waitUntil(lambda: len(announced) == 1, timeout=5000)
    assert announced == [slow]
    release.set()
    qtbot.waitUntil(lambda: slow.done, timeout=5000)
    qtbot.wait(150)  # the quick job's timer has long expired without announcing it
    assert announced == [slow]


def test_shutdown_cancels_waits_and_refuses_new_work(qtbot):
    runner = JobRunner()
    started = threading.Event()

    def work(context):
        started.set()
        while not context.cancelled:
            time.sleep(0.005)
        return "stopped"

    runner.run("Waiting", work)
    assert started.wait(5)
    assert runner.pool.activeThreadCount() == 1
    assert runner.shutdown(5000)
    assert runner.pool.activeThreadCount() == 0
    with pytest.raises(CsosError) as refused:
        runner.run("Too late", lambda _c: None)
    assert refused.value.code == "job.closing"


def test_an_answer_for_a_window_that_was_deleted_is_dropped_not_delivered(qtbot, runner):
    from PySide6.QtWidgets import QDialog, QLabel

    release = threading.Event()
    delivered: list[str] = []
    dialog = QDialog()
    label = QLabel("waiting", dialog)

    def on_success(value):  # would touch a deleted label if it ran after the dialog went away
        delivered.append(value)
        label.setText(value)

    job = runner.run("Checking for news", lambda _c: (release.wait(5), "news")[1], on_success=on_success,
                     owner=dialog)
    kept = QDialog()
    kept_answers: list[str] = []
    second = runner.run("Checking again", lambda _c: (release.wait(5), "more")[1], on_success=kept_answers.append,
                        owner=kept)
    dialog.deleteLater()
    qtbot.waitUntil(lambda: not __import__("shiboken6").isValid(dialog), timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: job.done and second.done, timeout=5000)
    assert delivered == []  # dropped: the window it belonged to is gone
    assert kept_answers == ["more"]  # a living window still gets its answer
    kept.deleteLater()
