"""Records (O9) on a real order book with really signed orders: export (CSV, archive, manifest, zip, the PDF
renderer's input), the integrity check catching each kind of tampering, retention and backup."""

from __future__ import annotations

import csv
import datetime as dt
import json
import sqlite3
import zipfile

import pytest
from sqlalchemy import select

from app.models.orderbook import AuditEvent, LinkedRecord, Order
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CachedCrl
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.records import (
    ExportCancelled,
    RecordsError,
    RecordsRetained,
    backup_order_book,
    check_records,
    delete_order_records,
    drawn_in_this_process,
    export_records,
)
from app.services.signing.order_signing import OrderSigningService
from app.services.transport.connectors import SupplierRecord
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import Acknowledgement855, AckStatus, write_855
from tests.factories import PURCHASER_DEA, SECOND_PURCHASER_DEA, draft_order, seed
from tests.pki import build_training_pki
from tests.signers import KeySigner

TODAY = dt.datetime.now(dt.timezone.utc).date()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    pki = build_training_pki(tmp_path_factory.mktemp("records-pki"))
    return pki, pki.issue()


@pytest.fixture
def world(book, pki):
    seed(book)
    authority, subscriber = pki
    crls = [CachedCrl.from_crl(authority.crl(authority.root)).der, CachedCrl.from_crl(authority.crl()).der]
    verifier = OrderVerifier(validation=CertificateValidationService(trust_roots=authority.trust_roots),
                             catalog=MappingSchedules.from_database(book.db), crls=crls, fetch_crls=False)
    signing = OrderSigningService(book, verifier)
    orders = []
    for _ in range(2):
        order = draft_order(book)
        signing.sign(order.id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                     intermediates=authority.intermediates)
        book.transition(order.id, OrderStatus.QUEUED)
        book.transition(order.id, OrderStatus.TRANSMITTED)
        orders.append(book.get_order(order.id))
    ack = write_855(Acknowledgement855(orders[0].order_number, orders[0].signed_at.date(), AckStatus.ACCEPTED,
                                       TODAY), interchange_control_number=1, group_control_number=1,
                    sender_id="RA1234563", receiver_id="BJ6125341", created_at=dt.datetime(2026, 1, 1, 9, 0))
    with book.db.session() as session, session.begin():
        Lifecycle(book).apply_record(session, orders[0].id, SupplierRecord("855", ack, source="test"))
    return book, verifier, orders


def test_a_clean_order_book_checks_clean(world):
    book, verifier, _ = world
    report = check_records(book.db, verifier=verifier)
    assert report.clean, report.problems
    assert (report.signatures_checked, report.linked_records_checked, report.audit_events_ok) == (2, 1, True)


def test_export_writes_csv_archive_manifest_zip_and_hands_every_order_to_the_pdf_renderer(world, tmp_path):
    book, _, orders = world
    seen = {}

    def renderer(views, meta, path):
        seen["numbers"] = [v.order_number for v in views]
        seen["meta"] = meta
        seen["first"] = views[0]
        path.write_bytes(b"%PDF-test")

    progress = []
    summary = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "out",
                             render_pdf=drawn_in_this_process(renderer),
                             progress=lambda done, total: progress.append((done, total)))
    assert summary.orders == 2 and progress[-1] == (2, 2)
    assert seen["numbers"] == [o.order_number for o in orders]
    first = seen["first"]
    assert first.signer["name"] == "Pat Purchaser" and first.linked_records[0]["kind"] == "acknowledgement"
    assert "accepted" in first.linked_records[0]["summary"]
    archive = tmp_path / "out" / "archive"
    csos = archive / "orders" / orders[0].order_number / f"{orders[0].order_number}.csos"
    assert csos.read_bytes() == orders[0].signed_document
    [ack_file] = (archive / "orders" / orders[0].order_number / "records").iterdir()
    assert ack_file.suffix == ".x12" and ack_file.read_bytes().startswith(b"ISA*")
    manifest = json.loads((archive / "manifest.json").read_text())
    assert {f["path"] for f in manifest["files"]} >= {"README.txt", f"orders/{orders[0].order_number}/order.json"}
    assert "openssl cms -verify" in (archive / "README.txt").read_text()
    rows = list(csv.DictReader(open(tmp_path / "out" / "orders.csv")))
    assert len(rows) == 4 and rows[0]["order_number"] == orders[0].order_number
    with zipfile.ZipFile(tmp_path / "out" / "archive.zip") as bundle:
        assert f"archive/orders/{orders[0].order_number}/{orders[0].order_number}.csos" in bundle.namelist()
    assert check_records(book.db, archive=archive).clean
    assert check_records(book.db, archive=tmp_path / "out" / "archive.zip").clean
    # Tamper with the archive three ways: each is reported.
    csos.write_bytes(csos.read_bytes() + b"x")
    (archive / "README.txt").unlink()
    (archive / "extra.txt").write_text("slipped in")
    codes = sorted(p.code for p in check_records(book.db, archive=archive).problems)
    assert codes == ["records.archive_file_altered", "records.archive_file_extra", "records.archive_file_missing"]


def test_export_refuses_a_used_folder_and_a_cancelled_export_leaves_nothing(world, tmp_path):
    book, _, _ = world
    exports = tmp_path / "exports"
    (exports / "used").mkdir(parents=True)
    (exports / "used" / "x").write_text("x")
    with pytest.raises(RecordsError) as caught:
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=exports / "used")
    assert caught.value.code == "records.out_not_empty"
    with pytest.raises(ExportCancelled):
        export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=exports / "new", cancelled=lambda: True)
    assert sorted(p.name for p in exports.iterdir()) == ["used"]


def _raw_update(book, table, where, **values):
    with book.db.engine.begin() as connection:
        connection.execute(table.update().where(where).values(**values))


def test_check_finds_an_altered_signed_document(world):
    book, verifier, orders = world
    document = orders[1].signed_document.replace(b"PO1*1*1*EA", b"PO1*1*9*EA")
    assert document != orders[1].signed_document
    _raw_update(book, Order.__table__, Order.id == orders[1].id, signed_document=document)
    codes = {p.code for p in check_records(book.db, verifier=verifier).problems}
    assert {"content_altered", "records.payload_mismatch", "records.book_differs"} <= codes


def test_check_finds_a_changed_order_line_a_changed_linked_record_and_a_changed_audit_event(world):
    book, verifier, orders = world
    from app.models.orderbook import OrderLine

    _raw_update(book, OrderLine.__table__, OrderLine.order_id == orders[1].id, packages=7)
    _raw_update(book, LinkedRecord.__table__, LinkedRecord.order_id == orders[0].id, raw=b"ISA*forged")
    with book.db.session() as session:
        first_event = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id))
    _raw_update(book, AuditEvent.__table__, AuditEvent.id == first_event, actor="mallory")
    report = check_records(book.db, verifier=verifier)
    codes = {p.code for p in report.problems}
    assert codes == {"records.book_differs", "records.linked_record_altered", "audit.event_altered"}
    assert not report.audit_events_ok


def test_an_old_order_is_judged_as_of_its_signing_not_by_the_60_day_rule(world):
    book, verifier, orders = world
    later = lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=90)  # noqa: E731
    verifier.clock = later
    report = check_records(book.db, verifier=verifier)
    assert report.clean, report.problems


def test_records_younger_than_two_years_cannot_be_deleted(world):
    book, verifier, orders = world
    with pytest.raises(RecordsRetained) as caught:
        delete_order_records(book.db, orders[0].id)
    assert caught.value.code == "records.retained" and "two years" in caught.value.message
    assert book.get_order(orders[0].id).signed_document == orders[0].signed_document
    with pytest.raises(RecordsRetained):
        delete_order_records(book.db, orders[0].id, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=700))
    delete_order_records(book.db, orders[0].id, now=dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=800))
    gone = book.get_order(orders[0].id)
    assert gone.signed_document is None and gone.linked_records == []
    report = check_records(book.db, verifier=verifier)
    assert report.clean, report.problems  # the tombstone is not a problem; the audit chain records the deletion


def test_backup_is_a_consistent_copy_without_keys(world, tmp_path):
    book, _, orders = world
    summary = backup_order_book(book.db, tmp_path / "backups" / "orderbook-backup.sqlite3")
    assert summary.orders == 2
    copy = sqlite3.connect(summary.path)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = copy.execute("SELECT signed_document FROM orders ORDER BY id").fetchall()
        assert [row[0] for row in stored] == [o.signed_document for o in orders]
    finally:
        copy.close()
    assert [p.name for p in (tmp_path / "backups").iterdir()] == ["orderbook-backup.sqlite3"]
    with pytest.raises(RecordsError):
        backup_order_book(book.db, tmp_path / "backups")


def test_an_order_number_used_by_two_registrations_gets_a_folder_per_registration(world, tmp_path):
    """Order numbers are unique per registration only (O2): two registrations' orders 26X… must not share a folder."""
    book, _, orders = world
    book.add_registration(dea_number=SECOND_PURCHASER_DEA, name="Riverside Clinic", address_lines=["2 River Rd"],
                          city="Springfield", state="IL", postal_code="62702", schedules=["II", "III", "IV", "V"],
                          expires_on=dt.date(2028, 6, 30))
    shared = book.new_order(registration_dea=SECOND_PURCHASER_DEA, supplier_name="Acme Drug",
                            order_number=orders[0].order_number)
    summary = export_records(book.db, date_from=TODAY, date_to=TODAY, out_dir=tmp_path / "out", render_pdf=None)
    assert summary.orders == 3
    numbered = tmp_path / "out" / "archive" / "orders" / orders[0].order_number
    assert sorted(p.name for p in numbered.iterdir()) == sorted([PURCHASER_DEA, SECOND_PURCHASER_DEA])
    assert (numbered / PURCHASER_DEA / f"{orders[0].order_number}.csos").read_bytes() == orders[0].signed_document
    assert json.loads((numbered / SECOND_PURCHASER_DEA / "order.json").read_text())["order_number"] == \
        shared.order_number
    # An order number used once keeps the plain folder.
    assert (tmp_path / "out" / "archive" / "orders" / orders[1].order_number / "order.json").exists()


def test_the_export_writes_json_exactly_as_json_dumps_would():
    from app.services.orders.records import json_text

    values = [{"b": [1, {"z": None, "a": True}], "a": "é — ⚠ \"q\" \\ \n", "c": [], "d": {}, "e": False, "f": (1, 2)},
              [], {}, "x", 3, [[[]]], {"float": 1.5}, {"nan": float("nan")}, {1: "number key"}]
    for value in values:
        assert json_text(value) == json.dumps(value, indent=2, sort_keys=True)


def test_the_manifest_lists_files_in_the_order_paths_sort(tmp_path):
    from app.services.orders.records import write_manifest
    from app.services.orders.records_check import files_under

    for relative in ("b/x", "a-b/y", "a/b/c", "a.b", "a/b.c", "A", "a/records/1", "a/order.json", "manifest.json"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_text(relative)
    assert write_manifest(tmp_path) == 8
    listed = [entry["path"] for entry in json.loads((tmp_path / "manifest.json").read_text())["files"]]
    assert listed == [path.relative_to(tmp_path).as_posix() for path in files_under(tmp_path)
                      if path.name != "manifest.json"]
