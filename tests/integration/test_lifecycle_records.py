"""Records export with Qt's PDF writer (offscreen) and the `records`/`backup`/`order` commands end to end."""

from __future__ import annotations

import datetime as dt
import re

from app.cli import main
from app.services.orders.records import export_records
from app.ui.records_pdf import RecordsPdfProcess, records_html, render_records_pdf
from tests.factories import draft_order, seed

TODAY = dt.datetime.now(dt.timezone.utc).date()


def test_the_pdf_has_a_cover_page_and_one_page_per_order(book, tmp_path):
    seed(book)
    orders = [draft_order(book) for _ in range(3)]
    summary = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "out",
                             render_pdf=RecordsPdfProcess)
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


def _rich_view(lines: int = 3):
    """An order with everything the records page can show: a replacement, a lost-order statement, discrepancies,
    flagged records, a receipt with a reason, and product names too long for their column."""
    from app.services.orders.records import OrderRecordView

    long_name = "Oxycodone Hydrochloride and Acetaminophen Extended Release Tablets 5 mg / 325 mg, bottle of 100"
    return OrderRecordView(
        order_number="26X000777", status="partially_received",
        purchaser={"name": "A & B <Rx>", "dea_number": "BJ6125341", "address": "1 Main St, Springfield IL 62701"},
        supplier={"name": "Acme Drug", "dea_number": "RA1234563", "address": "9 Depot Rd, Memphis TN 38118"},
        created_at="2026-12-04T13:48:06.352982+00:00", signed_at="2026-12-04T13:49:06+00:00", transmitted_at=None,
        signer={"name": "Pat Purchaser", "certificate_serial": "4c1faef7109775c93f6f1b0956552f0a2afe6602"},
        replaces_order_number="26X000700", payload_sha256="8d0cc9ff2dbc63356c69d56c9e8c5f9f" * 2,
        lines=[{"line_number": n, "ndc": "00406-0552-62", "description": long_name if n % 2 else "Oxycodone 5 mg",
                "schedule": "II", "packages": 2, "package_quantity": "100 EA", "supplier_status": "accepted",
                "packages_confirmed": 2, "received": 1} for n in range(1, lines + 1)],
        linked_records=[{"id": 1, "kind": "acknowledgement", "direction": "in", "created_at": "2026-12-04T13:48:06",
                         "summary": "Supplier acknowledgement 2026-12-04: accepted with changes (line 1 IQ 1)",
                         "sha256": "ab", "file": "000001-acknowledgement-with-a-name-longer-than-its-column.x12",
                         "flags": ["Line 3 is not on the order"]}],
        receipts=[{"line_number": 1, "packages_received": 1, "received_on": "2026-12-06", "recorded_by": "pat",
                   "reason": "one package damaged"}],
        replaced_by=["26X000800"], discrepancies=["The 856 claims 5 more packages of line 1 than were ordered"],
        lost_statement="Signed lost-order statement 2026-12-07: order 26X000777 was not received.\nReplacement "
                       "order 26X000800")


def test_the_pdf_page_shows_every_word_of_the_printed_order(tmp_path):
    """The records PDF draws its pages itself; each text of ``order_html`` (what printing an order shows) is on it."""
    import html as html_module

    from app.ui.records_pdf import RecordsSheet, order_html, records_writer

    view = _rich_view()
    sheet = RecordsSheet(records_writer(tmp_path / "one.pdf"))
    sheet.painted = []
    sheet.order(view)
    sheet.end()
    painted = "".join(sheet.painted).replace(" ", "")  # lines wrapped anywhere join up again
    texts = [html_module.unescape(text).strip() for text in re.split(r"<[^>]+>", order_html(view))]
    assert len([text for text in texts if text]) > 40
    for text in filter(None, texts):
        assert re.sub(r"\s", "", text) in painted, text
    assert "A & B <Rx>" in sheet.painted  # drawn as it is, not escaped


def test_a_long_order_continues_on_the_next_pages_with_its_table_header(book, tmp_path):
    view = _rich_view(lines=120)
    render_records_pdf([view], {"date_from": "2026-12-01", "date_to": "2026-12-31"}, tmp_path / "long.pdf")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", (tmp_path / "long.pdf").read_bytes()))
    assert pages >= 4  # the cover, then the order over three pages or more

    from app.ui.records_pdf import RecordsSheet, records_writer

    sheet = RecordsSheet(records_writer(tmp_path / "again.pdf"))
    sheet.painted = []
    sheet.order(view)
    sheet.end()
    assert sheet.page == pages - 1
    assert sheet.painted.count("Package size") >= 2  # the lines table's header on each page it runs over
    numbers = [int(text) for text in sheet.painted if text.isdigit()]
    assert all(n in numbers for n in range(1, 121))


def test_a_pdf_that_cannot_be_written_is_a_typed_error(tmp_path):
    import pytest

    from app.services.orders.records import RecordsError

    with pytest.raises(RecordsError) as caught:
        render_records_pdf([], {}, tmp_path / "no such folder" / "records.pdf")
    assert caught.value.code == "records.pdf_unwritable"
