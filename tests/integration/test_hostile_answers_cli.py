"""Hostile supplier answers through the command line (issue 16.1, 16.2, 17.1, 19).

Files in tests/fixtures/hostile_answers/ (see its README) are rendered for a real order of the test's order book and
fed to `csos-desk order import`; `order receive`, `order answer`, `records check` and the outbox are driven the same
way. Each case failed on the old code: the 856 claiming 1,000 packages on a 2-package line was linked silently and
received as 1,000; a wrong NDC, an 856 dated 1990 and an 855 confirming 5,000 were accepted silently; a receipt
against a "do not accept" shipment, before the ship date, or above the order went through without a reason; an
answer naming another order or not readable stopped `order send` / `outbox run` and the order was posted again.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app.cli import main
from app.models.integrity import verify_audit_chain
from app.models.orderbook import AuditEvent, LineStatus, LinkedRecordKind
from app.models.outbox import OutboxState
from app.models.states import OrderStatus
from tests.factories import PURCHASER_DEA, seed, sign_for_test

# The sandbox world (real CA, real signing, suppliers over HTTPS) of the lifecycle tests.
from tests.integration.test_lifecycle_sandbox import OXYCODONE, purchaser, world  # noqa: F401

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hostile_answers"
OXY = "00406055262"
S = OrderStatus


class Cli:
    def __init__(self, book, data_dir: Path, capsys) -> None:
        self.book, self.data_dir, self.capsys = book, data_dir, capsys

    def __call__(self, *args: str, expect: int = 0) -> tuple[str, str]:
        self.capsys.readouterr()
        code = main(["--data-dir", str(self.data_dir), "--database-url", self.book.db.url, *args])
        out, err = self.capsys.readouterr()
        assert code == expect, (args, out, err)
        assert "Traceback" not in err and "unexpected problem" not in err
        return out, err


def render(name: str, order, folder: Path, *, today: dt.date | None = None) -> Path:
    """A fixture file for ``order``: its number, its signing date and today's date in place of the placeholders."""
    data = (FIXTURES / name).read_bytes()
    today = today or dt.datetime.now(dt.timezone.utc).date()
    data = data.replace(b"99XHOST01", order.order_number.encode()).replace(
        b"20300101", order.signed_at.strftime("%Y%m%d").encode()).replace(b"20300102", today.strftime("%Y%m%d").encode())
    path = folder / name
    path.write_bytes(data)
    return path


def sign_days_ago(book, order_id: int, days: int) -> None:
    """Like tests.factories.sign_for_test, signed ``days`` ago (signed content is immutable afterwards)."""
    import hashlib

    from app.models.orderbook import Order

    with book.db.session() as session, session.begin():
        order = session.get(Order, order_id)
        order.signed_document = b"signed-order-for-a-manual-supplier"
        order.payload_sha256 = hashlib.sha256(order.signed_document).hexdigest()
        order.signed_at = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        order.signer_fingerprint = "ab" * 32
        book.transition(order_id, S.SIGNED, session=session)


@pytest.fixture
def manual(book, tmp_path, capsys):
    """A manual supplier's order for 2 packages of oxycodone signed 2 days ago, sent (saved for upload) through the
    CLI."""
    seed(book)
    cli = Cli(book, tmp_path / "data", capsys)
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(order.id, ndc=OXY, packages=2)
    sign_days_ago(book, order.id, 2)
    cli("order", "send", book.get_order(order.id).order_number)
    order = book.get_order(order.id)
    assert order.status is S.TRANSMITTED
    return cli, order, tmp_path


def flags_of(book, order_id: int) -> list[str]:
    return [f["code"] for r in book.get_order(order_id).linked_records for f in (r.parsed or {}).get("flags", [])]


def test_a_shipment_of_1000_packages_on_a_2_package_line_is_flagged_and_never_received_as_1000(book, manual):
    cli, order, folder = manual
    out, _ = cli("order", "import", str(render("855_accepted.x12", order, folder)),
                 str(render("856_thousand_packages.x12", order, folder)))
    assert "2 linked" not in out and "Discrepancy" in out and "1,000 packages shipped in all" in out
    assert "shipped_more_than_ordered" in flags_of(book, order.id)
    _, err = cli("order", "receive", order.order_number, "--line", "1=1000", expect=1)
    assert "receiving.more_than_ordered" in err and not book.get_order(order.id).lines[0].receipts
    out, _ = cli("order", "receive", order.order_number, "--json")
    assert json.loads(out)["recorded"] == {"1": 2}  # the default never exceeds what was ordered
    assert book.get_order(order.id).status is S.RECEIVED
    assert sum(r.packages_received for r in book.get_order(order.id).lines[0].receipts) == 2


def test_a_shipment_with_another_ndc_is_flagged_and_not_offered_for_receiving(book, manual):
    cli, order, folder = manual
    cli("order", "import", str(render("855_accepted.x12", order, folder)))
    out, _ = cli("order", "import", str(render("856_wrong_ndc.x12", order, folder)))
    assert "00009-0055-01" in out and "00406-0552-62" in out
    assert "ndc_mismatch" in flags_of(book, order.id)
    _, err = cli("order", "receive", order.order_number, expect=1)
    assert "receiving.nothing_to_receive" in err


def test_a_shipment_dated_1990_is_do_not_accept_and_a_receipt_against_it_needs_a_reason(book, manual):
    cli, order, folder = manual
    cli("order", "import", str(render("855_accepted.x12", order, folder)))
    out, _ = cli("order", "import", str(render("856_dated_1990.x12", order, folder)))
    assert "Jan 1, 1990" in out and "before the order was signed" in out
    [shipment] = [r for r in book.get_order(order.id).linked_records if r.kind is LinkedRecordKind.SHIPMENT]
    assert shipment.parsed["do_not_accept"] is True
    _, err = cli("order", "receive", order.order_number, "--line", "1=2", expect=1)
    assert "receiving.flagged_shipment" in err and not book.get_order(order.id).lines[0].receipts
    out, _ = cli("order", "receive", order.order_number, "--line", "1=2", "--reason",
                 "Supplier confirmed by phone the notice date is a typo")
    assert "Marked on the receipt" in out
    assert "received_against_flagged_shipment" in flags_of(book, order.id)
    with book.db.session() as session:
        events = [e.details.get("code") for e in session.scalars(
            select(AuditEvent).where(AuditEvent.order_id == order.id, AuditEvent.action == "order.flagged"))]
        assert "received_against_flagged_shipment" in events and verify_audit_chain(session) == []


def test_order_show_lists_discrepancies_and_flagged_receipts_in_plain_words(book, manual):
    """`order show` (text and --json): the 856 claiming 1,000 packages, the one dated 1990 and the receipt taken
    against the flagged shipment with its reason."""
    cli, order, folder = manual
    cli("order", "import", str(render("855_accepted.x12", order, folder)),
        str(render("856_dated_1990.x12", order, folder)))
    cli("order", "receive", order.order_number, "--line", "1=2", "--reason", "Supplier confirmed the date is a typo")
    out, _ = cli("order", "show", order.order_number)
    assert "Discrepancies (the supplier's answers do not match the signed order" in out
    assert "before the order was signed" in out
    assert "was recorded despite a problem" in out and "flagged \u201cdo not accept\u201d" in out
    assert "Reason given: Supplier confirmed the date is a typo" in out
    assert "_" not in out.split("Discrepancies", 1)[1]  # plain words: no codes
    data = json.loads(cli("order", "show", order.order_number, "--json")[0])
    assert any(d["answer"] == "shipment" and "1990" in d["message"] for d in data["discrepancies"])
    [receipt] = data["flagged_receipts"]
    assert receipt["reason"] == "Supplier confirmed the date is a typo" and receipt["lines"] == [
        {"line_number": 1, "packages": 2}]
    assert [p["code"] for p in receipt["problems"]] == ["received_against_flagged_shipment"]


def test_order_show_of_an_order_without_problems_says_none(book, manual):
    cli, order, folder = manual
    data = json.loads(cli("order", "show", order.order_number, "--json")[0])
    assert data["discrepancies"] == [] and data["flagged_receipts"] == []
    assert "Discrepanc" not in cli("order", "show", order.order_number)[0]


def test_an_855_confirming_5000_packages_changes_nothing_silently(book, manual):
    cli, order, folder = manual
    out, _ = cli("order", "import", str(render("855_confirms_5000.x12", order, folder)))
    assert "5,000 packages" in out and "The order still says 2" in out
    line = book.get_order(order.id).lines[0]
    assert line.packages == 2 and line.packages_confirmed is None and line.line_status is LineStatus.OPEN
    assert book.get_order(order.id).status is S.PARTIALLY_ACCEPTED


def test_an_855_naming_another_order_and_an_unreadable_answer_are_refused_per_file(book, manual):
    cli, order, folder = manual
    other = render("855_other_order.x12", order, folder)
    unreadable = render("unreadable_answer.x12", order, folder)
    deep = render("deep_answer.json", order, folder)
    good = render("855_accepted.x12", order, folder)
    out, err = cli("order", "import", str(other), str(unreadable), str(deep), str(good), "--json", expect=1)
    reports = {r["file"]: r for r in json.loads(out)}
    assert [r["code"] for r in reports["855_other_order.x12"]["refused"]] == ["lifecycle.unknown_order"]
    assert [r["code"] for r in reports["unreadable_answer.x12"]["refused"]] == ["lifecycle.unreadable_record"]
    assert [r["code"] for r in reports["deep_answer.json"]["refused"]] == ["answers.not_x12"]
    assert len(reports["855_accepted.x12"]["linked"]) == 1 and not reports["855_accepted.x12"]["refused"]
    assert book.get_order(order.id).status is S.ACCEPTED


def test_an_answer_addressed_to_another_purchaser_is_refused(book, manual):
    cli, order, folder = manual
    path = render("855_accepted.x12", order, folder)
    path.write_bytes(path.read_bytes().replace(b"BJ6125341", b"FN5623740"))
    _, err = cli("order", "import", str(path), expect=1)
    assert "lifecycle.wrong_purchaser" in err and book.get_order(order.id).linked_records == []


def test_a_receipt_dated_before_the_ship_date_needs_a_reason(book, manual):
    cli, order, folder = manual
    today = dt.datetime.now(dt.timezone.utc).date()
    cli("order", "import", str(render("855_and_two_partial_856.x12", order, folder)))
    yesterday = (today - dt.timedelta(days=1)).isoformat()  # after signing (2 days ago), before the ship date
    _, err = cli("order", "receive", order.order_number, "--date", yesterday, expect=1)
    assert "receiving.before_ship_date" in err
    out, _ = cli("order", "receive", order.order_number, "--date", yesterday, "--reason",
                 "Delivered with yesterday's van; notice dated late")
    assert "received_before_ship_date" in flags_of(book, order.id)


def test_a_manual_supplier_order_imported_855_two_partial_856s_then_receipt(book, manual):
    """Issue 17: one file with the 855 and two partial 856s; partial shipments summed; receipt; CSV export."""
    cli, order, folder = manual
    out, _ = cli("order", "import", str(render("855_and_two_partial_856.x12", order, folder)))
    assert "3 linked, 0 refused" in out and "Discrepancy" not in out
    out, _ = cli("order", "receive", order.order_number, "--json")
    assert json.loads(out)["recorded"] == {"1": 2} and json.loads(out)["status"] == "received"
    year = dt.date.today().year
    cli("records", "export", "--from", f"{year - 1}-01-01", "--to", f"{year + 1}-12-31", "--no-pdf", "--out",
        str(folder / "export"))
    [csv_file] = list((folder / "export").rglob("orders.csv"))
    header, row = csv_file.read_text().splitlines()[:2]
    for column in ("ship_dates", "replaces", "replaced_by", "lost_statement", "discrepancies"):
        assert column in header.split(",")
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    assert today in row


def test_a_non_acceptance_recorded_by_hand_with_its_file_is_linked_to_a_replacement(book, manual):
    cli, order, folder = manual
    note = folder / "supplier-email.eml"
    note.write_bytes(b"From: orders@acme.example\r\n\r\nWe cannot accept order; account on hold.\r\n")
    _, err = cli("order", "answer", order.order_number, "--not-accepted", "--reason", "", expect=1)
    assert "answer.reason_required" in err
    out, _ = cli("order", "answer", order.order_number, "--not-accepted", "--reason", "Account on hold (e-mail)",
                 "--attach", str(note))
    assert "not accepted" in out and "new-from" in out
    old = book.get_order(order.id)
    assert old.status is S.NOT_ACCEPTED
    [record] = old.linked_records
    assert record.kind is LinkedRecordKind.NON_ACCEPTANCE and record.raw == note.read_bytes()
    assert record.parsed["attachment"]["name"] == "supplier-email.eml"
    out, _ = cli("order", "new-from", order.order_number, "--json")
    replacement = book.find_order(json.loads(out)["order_number"])
    assert replacement.replaces_order_id == old.id


def test_an_acceptance_by_hand_with_a_rejected_line(book, tmp_path, capsys):
    seed(book)
    cli = Cli(book, tmp_path / "data", capsys)
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(order.id, ndc=OXY, packages=2)
    book.add_line(order.id, ndc="00009002901", packages=1)
    sign_for_test(book, order.id)
    number = book.get_order(order.id).order_number
    cli("order", "send", number)
    cli("order", "answer", number, "--accepted", "--line", "2=rejected", "--reason", "Phone: line 2 discontinued")
    order = book.get_order(order.id)
    assert order.status is S.PARTIALLY_ACCEPTED
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED, LineStatus.REJECTED]


def test_a_folder_supplier_inbox_is_picked_up_and_filed(book, tmp_path, capsys):
    seed(book)
    cli = Cli(book, tmp_path / "data", capsys)
    van = tmp_path / "van"
    with book.db.session() as session, session.begin():
        from app.models.orderbook import Supplier

        session.scalars(select(Supplier)).one().connector = {"kind": "folder", "folder": str(van)}
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    book.add_line(order.id, ndc=OXY, packages=2)
    sign_for_test(book, order.id, document=b"folder-doc")
    order = book.get_order(order.id)
    cli("order", "send", order.order_number)
    assert (van / "outgoing" / f"{order.order_number}.csos").read_bytes() == b"folder-doc"
    (van / "incoming").mkdir(parents=True)
    render("855_and_two_partial_856.x12", book.get_order(order.id), van / "incoming")
    render("unreadable_answer.x12", book.get_order(order.id), van / "incoming")
    out, err = cli("order", "sync", expect=1)
    assert out.count("linked") == 3 and "unreadable_answer.x12" not in out
    assert [p.name for p in (van / "incoming" / "processed").iterdir()] == ["855_and_two_partial_856.x12"]
    assert [p.name for p in (van / "incoming" / "failed").iterdir()] == ["unreadable_answer.x12"]
    assert not [p for p in (van / "incoming").iterdir() if p.is_file()]
    out, _ = cli("order", "receive", order.order_number)
    assert book.get_order(order.id).status is S.RECEIVED


# -- bad answers to a POST the supplier took: never stall, never post again (16.2) -------------------------------


@pytest.mark.parametrize("switch, code", [
    ("wrong_order_next", "lifecycle.wrong_order"),
    ("unreadable_ack_next", "lifecycle.unreadable_record"),
    ("deep_json_next", "transport.answer_unreadable"),
    ("malformed_next", "transport.answer_unreadable"),
])
def test_a_bad_answer_from_the_sandbox_never_stalls_the_outbox_and_is_never_posted_again(world, tmp_path, capsys,
                                                                                          switch, code):
    cli = Cli(world.book, tmp_path / "data", capsys)
    world.signing.test_indicator = "T"  # training orders (ISA15 = T), as the training CLI sends them
    first, second = world.order(), world.order()
    world.outbox.enqueue(first.id)
    world.outbox.enqueue(second.id)
    supplier = next(s for s in world.sandbox.suppliers if s.name == "Acme Drug")
    response = requests.post(f"{supplier.url}/_training/faults", json={switch: 1}, timeout=10,
                             verify=str(world.sandbox.tls_bundle))
    assert response.status_code == 200, response.text
    out, err = cli("outbox", "run", expect=1)
    # The first order's answer was bad; the second was still sent in the same run.
    assert f"{first.order_number}: Sent — the supplier's answer" in out and f"sent {second.order_number}" in out, (out, err)
    assert f"[{code}]" in err
    entry = world.outbox.entry_for(first.id)
    assert entry.state is OutboxState.SENT and entry.last_error_code == code and entry.last_error
    assert world.book.get_order(first.id).status is S.TRANSMITTED
    assert world.book.get_order(second.id).status is S.ACCEPTED
    out, err = cli("order", "send", first.order_number, expect=1)
    assert "check with the supplier" in out and "will not be sent again" in err
    assert world.outbox.entry_for(first.id).attempts == 1  # posted once, never again
    # The supplier's real 855 comes with the next sync; the order goes on.
    cli("order", "sync", first.order_number)
    assert world.book.get_order(first.id).status is S.ACCEPTED


def test_receipts_beyond_the_order_are_reported_by_records_check(world, tmp_path, capsys):
    cli = Cli(world.book, tmp_path / "data", capsys)
    world.signing.test_indicator = "T"
    order = world.order(lines=((OXYCODONE, 2),))
    world.send(order)
    cli("order", "receive", order.order_number, "--line", "1=3", "--reason", "Supplier sent an extra box")
    out, _ = cli("records", "check", "--json", expect=0)
    notes = [n for n in json.loads(out)["notes"] if n["code"] == "records.received_more_than_ordered"]
    assert notes and order.order_number in notes[0]["message"] and "with a reason" in notes[0]["message"]
