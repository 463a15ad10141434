"""Records export with Qt's PDF writer (offscreen) and the `records`/`backup`/`order` commands end to end."""

from __future__ import annotations

import datetime as dt
import re

from app.cli import main
from app.services.orders.records import export_records
from app.ui.records_pdf import records_html, render_records_pdf
from tests.factories import draft_order, seed

TODAY = dt.datetime.now(dt.timezone.utc).date()


def test_the_pdf_has_a_cover_page_and_one_page_per_order(book, tmp_path):
    seed(book)
    orders = [draft_order(book) for _ in range(3)]
    summary = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "out",
                             render_pdf=render_records_pdf)
    data = summary.pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page[^s]", data)) == 1 + len(orders)


def test_the_pdf_text_names_every_order_and_escapes_what_it_shows():
    from types import SimpleNamespace

    view = SimpleNamespace(order_number="26X000001", status="partially_received", purchaser={"name": "A & B <Rx>"},
                           supplier={"name": "Acme"}, created_at="2026-01-01", signed_at=None, transmitted_at=None,
                           signer=None, replaces_order_number=None, payload_sha256=None, lines=[],
                           linked_records=[], receipts=[])
    text = records_html([view], {"date_from": "2026-01-01", "date_to": "2026-01-31"})
    assert "Order 26X000001 — partially received" in text and "A &amp; B &lt;Rx&gt;" in text


def test_cli_records_export_check_backup_and_order_commands(tmp_path, capsys):
    base = ["--data-dir", str(tmp_path / "data")]
    assert main(base + ["registration", "add", "--dea", "BJ6125341", "--name", "Main Street Pharmacy",
                        "--address", "1 Main St", "--city", "Springfield", "--state", "IL", "--zip", "62701",
                        "--schedules", "II,IV"]) == 0
    assert main(base + ["supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563"]) == 0
    assert main(base + ["order", "new", "--registration", "BJ6125341", "--supplier", "Acme Drug"]) == 0
    capsys.readouterr()
    # Not signed: cannot be sent; cancelling a draft works and keeps the reason; a new order from it.
    assert main(base + ["order", "send", f"{TODAY:%y}X000001"]) == 2
    assert "sign it first" in capsys.readouterr().err
    assert main(base + ["order", "cancel", f"{TODAY:%y}X000001", "--reason", "wrong supplier"]) == 0
    assert main(base + ["order", "new-from", f"{TODAY:%y}X000001", "--json"]) == 0
    assert f'"replaces": "{TODAY:%y}X000001"' in capsys.readouterr().out
    assert main(base + ["order", "receive", f"{TODAY:%y}X000002", "--line", "1=2"]) == 1
    assert "cannot be received" in capsys.readouterr().err
    out = tmp_path / "export"
    assert main(base + ["records", "export", "--from", TODAY.isoformat(), "--to", TODAY.isoformat(),
                        "--out", str(out)]) == 0
    assert (out / "records.pdf").read_bytes().startswith(b"%PDF")
    assert main(base + ["records", "check", "--archive", str(out / "archive.zip"), "--json"]) == 0
    assert '"clean": true' in capsys.readouterr().out
    (out / "archive" / "README.txt").write_text("changed")
    assert main(base + ["records", "check", "--archive", str(out / "archive")]) == 1
    assert "records.archive_file_altered" in capsys.readouterr().out
    assert main(base + ["backup", "--out", str(tmp_path / "backup.sqlite3")]) == 0
    assert (tmp_path / "backup.sqlite3").stat().st_size > 0
    assert main(base + ["outbox", "list"]) == 0
    assert "empty" in capsys.readouterr().out
    assert main(base + ["records", "export", "--from", "2026-02-01", "--to", "2026-01-01", "--out",
                        str(tmp_path / "x")]) == 1
    assert "ends" in capsys.readouterr().err
