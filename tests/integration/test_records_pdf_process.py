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
import zlib
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
from tests.full_drive import fill_up

TODAY = dt.datetime.now(dt.timezone.utc).date()
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
ROOT = Path(__file__).resolve().parents[2]


def _drawn(pdf: bytes) -> tuple[list[bytes], list[bytes]]:
    """What a PDF draws, apart from where Qt happened to put it: each page's drawing in page order (its fonts'
    resource names unnumbered: they follow the objects' order), and every other stream (font programs, their
    glyph-to-text maps) in any order. Qt orders a file's objects by a hash seeded afresh in each process."""
    pages, others = [], []
    for body in re.findall(rb">>\s*stream\r?\n(.*?)\r?\nendstream", pdf, re.S):
        try:
            body = zlib.decompress(body)
        except zlib.error:
            pass  # not compressed
        if b" Tf" in body and b"BT" in body:
            pages.append(re.sub(rb"/F\d+ ", b"/F ", body))
        elif b"xmpmeta" not in body:  # the metadata: when, and a random id
            others.append(body)
    return pages, sorted(others)


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
    pages, fonts = _drawn(drawn_apart)
    assert len(pages) == 1 + len(orders) and len(fonts) >= 4  # a cover, the orders; two fonts, each with its map
    assert (pages, fonts) == _drawn(drawn_here)
    later = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "x" / "later",
                           now=NOW + dt.timedelta(minutes=1), render_pdf=RecordsPdfProcess)
    assert _drawn(later.pdf.read_bytes()) != (pages, fonts)  # the comparison sees a cover a minute later
    assert all(order.order_number.encode() not in drawn_apart for order in orders)  # drawn as glyphs, not text
    assert _leftovers(tmp_path / "x") == ["apart", "here", "later"]


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


def test_the_child_is_this_program_wherever_the_export_is_started_from(book, tmp_path, monkeypatch):
    # A working folder with an `app` of its own, and an export folder given relative to it (`records export --out`).
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "__main__.py").write_text("raise SystemExit('not CSOS Desk')\n")
    monkeypatch.chdir(tmp_path)
    seed(book)
    draft_order(book)
    summary = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=Path("relative") / "out",
                             render_pdf=RecordsPdfProcess)
    pages, _fonts = _drawn((tmp_path / "relative" / "out" / "records.pdf").read_bytes())
    assert summary.orders == 1 and len(pages) == 2


def test_the_bundled_program_starts_itself_as_the_child(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert records_pdf._child_command() == [sys.executable, DRAW_RECORDS_PDF]
    assert records_pdf._child_environment().get("PYTHONPATH") == os.environ.get("PYTHONPATH")  # nothing added
    assert records_pdf._program_root() is None
    monkeypatch.undo()
    # The bundle's entry point (what PyInstaller runs) answers the flag as `python -m app` does.
    head = json.dumps({"orders": 0, "meta": {"date_from": "2026-12-01"}, "path": str(tmp_path / "r.pdf")})
    done = subprocess.run([sys.executable, str(ROOT / "installer" / "pyinstaller" / "csos_desk_entry.py"),
                           DRAW_RECORDS_PDF], input=head.encode() + b"\n", capture_output=True, timeout=120,
                          env=records_pdf._child_environment())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "r.pdf").read_bytes().startswith(b"%PDF-")


def test_an_export_on_a_full_drive_says_so_and_leaves_nothing(book, tiny_filesystem):
    seed(book)
    for _ in range(30):
        draft_order(book)
    fill_up(tiny_filesystem)
    with pytest.raises(RecordsError) as caught:
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tiny_filesystem / "out",
                       render_pdf=RecordsPdfProcess)
    assert caught.value.code == "records.disk_full"
    assert "it is full" in caught.value.message and "Nothing was exported" in caught.value.message
    assert _leftovers(tiny_filesystem) == ["filler"]


@pytest.mark.parametrize("where", ["here", "apart"])
def test_a_pdf_cut_short_by_a_full_drive_is_an_error_not_a_broken_file(tiny_filesystem, where):
    # Qt's PDF writer opens the file (a name takes no room) and then loses every write without a word.
    fill_up(tiny_filesystem)
    path = tiny_filesystem / "records.pdf"
    with pytest.raises(RecordsError) as caught:
        if where == "here":
            render_records_pdf([], {"date_from": "2026-12-01"}, path)
        else:
            RecordsPdfProcess(0, {"date_from": "2026-12-01"}, path).finish()
    assert caught.value.code == "records.pdf_unwritable"
    assert caught.value.message.startswith("The records PDF could not be written to the end")
