"""The records export's PDF drawn in a process of its own (``RecordsPdfProcess``) while the archive is written: the
same PDF as drawn here, and every way the child can fail or be stopped ends in a plain error with nothing exported."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.services.orders.records import (
    ExportCancelled,
    RecordsError,
    drawn_in_this_process,
    export_records,
)
from app.ui import records_pdf
from app.ui.records_pdf import DRAW_RECORDS_PDF, RecordsPdfProcess, draw_from_stdin, render_records_pdf
from tests.factories import draft_order, seed

TODAY = dt.datetime.now(dt.timezone.utc).date()
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[2]


def _without_the_moment_and_id(pdf: bytes) -> bytes:
    """A PDF's bytes without what differs between two drawings of the same pages: when, and its random id."""
    pdf = re.sub(rb"\(D:\d{14}Z\)", b"(D:)", pdf)
    pdf = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", b"T", pdf)
    pdf = re.sub(rb"uuid:[0-9a-f-]{36}", b"uuid:", pdf)
    return re.sub(rb"/ID \[ <[0-9a-f]+> <[0-9a-f]+> \]", b"/ID []", pdf)


def _leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


class _Watched:
    """``RecordsPdfProcess``, each one kept so a test can see whether its child still runs."""

    def __init__(self, then=None):
        self.jobs: list[RecordsPdfProcess] = []
        self._then = then

    def __call__(self, orders, meta, path):
        job = RecordsPdfProcess(orders, meta, path)
        self.jobs.append(job)
        if self._then:
            self._then(job)
        return job


def test_the_child_draws_the_same_pdf_as_this_process(book, tmp_path):
    seed(book)
    orders = [draft_order(book) for _ in range(4)]
    apart = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "apart", now=NOW,
                           render_pdf=RecordsPdfProcess)
    here = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "here", now=NOW,
                          render_pdf=drawn_in_this_process(render_records_pdf))
    drawn_apart, drawn_here = apart.pdf.read_bytes(), here.pdf.read_bytes()
    assert len(re.findall(rb"/Type\s*/Page[^s]", drawn_apart)) == 1 + len(orders)
    assert _without_the_moment_and_id(drawn_apart) == _without_the_moment_and_id(drawn_here)
    assert drawn_apart != drawn_here  # the comparison above is not of one file with itself
    assert _leftovers(tmp_path / "x") == ["apart", "here"]


def test_a_pdf_the_child_cannot_write_fails_the_export_with_its_words_and_leaves_nothing(book, tmp_path):
    seed(book)
    draft_order(book)

    def elsewhere(orders, meta, path):
        return RecordsPdfProcess(orders, meta, path.parent / "no such folder" / path.name)

    with pytest.raises(RecordsError) as caught:
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "out", render_pdf=elsewhere)
    assert caught.value.code == "records.pdf_unwritable"
    assert "could not be written" in caught.value.message and "Traceback" not in caught.value.message
    assert _leftovers(tmp_path / "x") == []


def test_stop_pressed_during_the_export_stops_the_child_too(book, tmp_path):
    seed(book)
    for _ in range(4):
        draft_order(book)
    watched = _Watched()
    asked = []

    def cancelled():
        asked.append(1)
        return len(asked) > 2  # during the third order

    with pytest.raises(ExportCancelled):
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "out", render_pdf=watched,
                       cancelled=cancelled)
    [job] = watched.jobs
    assert not job.running
    assert _leftovers(tmp_path / "x") == []


def test_a_child_that_dies_mid_export_is_a_plain_error_with_nothing_exported(book, tmp_path):
    seed(book)
    for _ in range(3):
        draft_order(book)

    def killed(job):
        job._child.kill()
        job._child.wait()

    watched = _Watched(then=killed)
    with pytest.raises(RecordsError) as caught:
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "out", render_pdf=watched)
    assert caught.value.code == "records.pdf_failed"
    assert caught.value.message.startswith("The records PDF could not be made")
    assert not watched.jobs[0].running
    assert _leftovers(tmp_path / "x") == []


def test_an_order_that_cannot_be_read_back_is_said_plainly(tmp_path, capsys):
    stream = io.BytesIO(b"".join(json.dumps(value).encode() + b"\n" for value in (
        {"orders": 1, "meta": {}, "path": str(tmp_path / "records.pdf")}, str(tmp_path / "gone" / "order.json"))))
    assert draw_from_stdin(stream) == 3
    said = capsys.readouterr().err.strip().splitlines()[-1]
    assert said.startswith("records-pdf-problem: records.pdf_failed The records PDF could not read an order back")


def test_the_bundled_program_starts_itself_as_the_child(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert records_pdf._child_command() == [sys.executable, DRAW_RECORDS_PDF]
    assert records_pdf._child_environment().get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # nothing added
    monkeypatch.undo()
    # The bundle's entry point (what PyInstaller runs) answers the flag as `python -m app` does.
    head = json.dumps({"orders": 0, "meta": {"date_from": "2026-12-01"}, "path": str(tmp_path / "r.pdf")})
    done = subprocess.run([sys.executable, str(ROOT / "installer" / "pyinstaller" / "csos_desk_entry.py"),
                           DRAW_RECORDS_PDF], input=head.encode() + b"\n", capture_output=True, timeout=120,
                          env=records_pdf._child_environment())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")
