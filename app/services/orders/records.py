"""Records (O9): keep two years, readily retrievable, readable by a person, available for an inspection.

- ``export_records``: a PDF a person reads (made by an injected renderer: the Qt one lives in ``app.ui``), a CSV, and
  an archive folder + zip with every signed order and every linked record exactly as stored, a ``manifest.json``
  with the SHA-256 of each file and a plain-language README.
- ``check_records`` (in ``records_check``, re-exported here): re-verifies every stored signature, every linked
  record's hash, the audit chain and, when given, an archive's manifest.
- ``backup_order_book``: a consistent copy of the order book (SQLite online backup). Private keys are never in the
  order book, so never in a backup.
- Retention: nothing younger than two years can be deleted.

How the integrity check uses the verifier: an order is judged *as of the moment it was signed* (``now`` = its signing
time), because the question years later is "is this the document that was signed, by a certificate that chained to a
CSOS root and was valid then, for this registration?" — not "would a supplier accept it today". So the rules about
time passing (``order_expired``), about the catalog of today (``unknown_product``, ``schedule_not_authorized``: products
get rescheduled) and about revocation (CRLs of the past are not kept; revocation was checked when the order was
signed and by the supplier, whose answer is linked) are reported as notes, not integrity failures. Every other
reason — a broken signature, altered content, an untrusted chain, a certificate not valid at signing, a DEA-number
mismatch, a missing field — is an integrity failure. On top, the signed 850 must say what the order book says
(order number, purchaser DEA number, lines) and hash to the stored payload digest.
"""

from __future__ import annotations

import csv
import datetime as dt
import errno
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Protocol, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, selectinload

from app.errors import CsosError, StorageError
from app.models.database import Database
from app.models.integrity import append_audit_event
from app.models.orderbook import LinkedRecord, LinkedRecordKind, Order, OrderLine, Receipt, Registration, Supplier
from app.models.outbox import OutboxEntry
from app.services.orders.answers import discrepancies
from app.services.orders.records_check import MANIFEST, INTEGRITY_IGNORED  # noqa: F401 (re-exported)
from app.services.orders.records_check import CheckReport, RecordProblem, check_archive, check_order  # noqa: F401
from app.services.orders.records_check import check_records  # noqa: F401 (moved to records_check; old path kept)
from app.services.orders.records_check import sha256_file as _sha256_file
from app.services.signing.cms import CmsError, parse_signed_document

_json_string = json.encoder.encode_basestring_ascii  # what json.dumps uses (C)

RETENTION = dt.timedelta(days=2 * 365 + 1)  # two years, whatever the leap days

Progress = Callable[[int, int], None]


class PdfJob(Protocol):
    """The records PDF being drawn while the export writes the archive."""

    def add(self, view_file: str) -> None:
        """The next order's order.json, just written: its page(s) come next."""

    def finish(self) -> None:
        """No more orders: wait until the PDF is written; ``RecordsError`` when it could not be."""

    def abort(self) -> None:
        """The export failed or was stopped: stop drawing (the PDF is thrown away with the export's folder)."""


PdfRenderer = Callable[[int, dict[str, Any], Path], PdfJob]
"""Starts the records PDF of so many orders at a path, with the cover's and the history page's facts (``meta``).
``app.ui.records_pdf.RecordsPdfProcess`` draws it in a process of its own, so on the machine's other core while the
archive is written (drawing the pages after the archive made a 20,000-order export 2.5× as long)."""


class RecordsError(CsosError):
    code = "records.failed"


class ExportCancelled(RecordsError):
    code = "records.export_cancelled"


class RecordsRetained(RecordsError):
    """Records younger than two years are kept (1305.27, 1311.60)."""

    code = "records.retained"


# =====================================================================================================================
# What one order looks like on paper


@dataclass
class OrderRecordView:
    order_number: str
    status: str
    purchaser: dict[str, Any]
    supplier: dict[str, Any]
    created_at: str
    signed_at: str | None
    transmitted_at: str | None
    signer: dict[str, Any] | None
    replaces_order_number: str | None
    payload_sha256: str | None
    lines: list[dict[str, Any]]
    linked_records: list[dict[str, Any]]
    receipts: list[dict[str, Any]]
    files: list[str] = field(default_factory=list)
    replaced_by: list[str] = field(default_factory=list)
    lost_statement: str | None = None  # the signed lost-order statement in plain words (1305.26)
    discrepancies: list[str] = field(default_factory=list)  # supplier claims that did not match the order

    def to_json(self) -> dict[str, Any]:
        # Field by field, not ``asdict``: its deep copy of every line and record dict was a fifth of an export.
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _address(party: Any) -> str:
    parts = list(party.address_lines or [])
    tail = " ".join(p for p in (party.city, party.state, party.postal_code) if p)
    return ", ".join(parts + ([tail] if tail else []))


def signer_of(document: bytes | None) -> dict[str, Any] | None:
    """Who signed a stored document, read from the signer's certificate inside it."""
    if not document:
        return None
    try:
        signed = parse_signed_document(document)
    except CmsError:
        return {"name": "(unreadable signed document)"}
    name, organization, serial, issuer, fingerprint = _certificate_facts(signed.signer_certificate)
    return {"name": name, "organization": organization, "certificate_serial": serial, "issuer": issuer,
            "signing_time": _iso(signed.signing_time), "certificate_sha256": fingerprint}


@functools.lru_cache(maxsize=64)
def _certificate_facts(cert: Any) -> tuple[str, str, str, str, str]:
    """A signer certificate's name, organization, serial, issuer and SHA-256, worked out once per certificate (a
    records export reads the same few signers' certificates from thousands of orders; x509 certificates hash by
    their DER)."""
    from cryptography.x509.oid import NameOID

    def attr(oid: Any) -> str:
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else ""

    return (attr(NameOID.COMMON_NAME), attr(NameOID.ORGANIZATION_NAME), format(cert.serial_number, "x"),
            cert.issuer.rfc4514_string(), hashlib.sha256(cert.public_bytes(_der())).hexdigest())


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def describe_record(record: LinkedRecord) -> str:
    """One plain-language line per linked record, for the PDF and the CLI."""
    parsed = record.parsed or {}
    document = parsed.get("document") or {}
    kind = record.kind
    if kind in (LinkedRecordKind.ACKNOWLEDGEMENT, LinkedRecordKind.NON_ACCEPTANCE) and document:
        meaning = {"AD": "accepted", "AC": "accepted with changes", "RJ": "NOT ACCEPTED"}.get(document.get("status"),
                                                                                          document.get("status"))
        text = f"Supplier acknowledgement {document.get('date')}: {meaning}"
        if document.get("reason"):
            text += f" — {document['reason']}"
        changes = [f"line {l['line_number']} {l['status']} {l['quantity']}" for l in document.get("lines", [])
                   if l.get("status") != "IA"]
        return text + (f" ({'; '.join(changes)})" if changes else "")
    if kind is LinkedRecordKind.SHIPMENT and document:
        items = ", ".join(f"line {l['line_number']}: {l['packages_shipped']}" for l in document.get("lines", []))
        return f"Shipment {document.get('shipment_id')} shipped {document.get('ship_date')} ({items})"
    if kind in (LinkedRecordKind.VOID, LinkedRecordKind.PARTIAL_VOID) and document:
        scope = "whole order VOID" if document.get("whole_order") else \
            "lines " + ", ".join(str(n) for n in document.get("voided_lines", [])) + " void (nothing shipped)"
        return f"Void notice {document.get('date')}: {scope}" + (f" — {document['reason']}"
                                                                 if document.get("reason") else "")
    if kind is LinkedRecordKind.RECEIPT:
        items = ", ".join(f"line {l['line_number']}: {l['packages_received']}" for l in parsed.get("lines", []))
        return f"Received {parsed.get('received_on')} ({items})" + (f" — reason: {parsed['reason']}"
                                                                    if parsed.get("reason") else "")
    if kind is LinkedRecordKind.LOST_STATEMENT:
        return lost_statement_words(parsed)
    if parsed.get("type") == "answer_by_hand" or parsed.get("type") == "unusable_answer":
        return str(parsed.get("summary") or "")
    if kind is LinkedRecordKind.REPLACEMENT:
        return f"Replacement for lost order {parsed.get('replaces_order_number')}"
    if kind is LinkedRecordKind.CANCELLATION:
        return f"Cancelled before transmission: {parsed.get('reason')}"
    if kind is LinkedRecordKind.EXPIRY:
        return f"Expired {str(parsed.get('expired_at', ''))[:10]}: {parsed.get('note', '')}"
    if kind is LinkedRecordKind.DELIVERY_RECEIPT:
        return f"{parsed.get('summary') or 'Delivery receipt'} (message {parsed.get('message_id', '?')})"
    if kind is LinkedRecordKind.NOTE and parsed.get("type") == "reissued":
        return f"Reissued as new order {parsed.get('new_order_number')}"
    return f"{kind.value.replace('_', ' ')} ({record.media_type}, {len(record.raw)} bytes)"


def lost_statement_words(parsed: dict[str, Any]) -> str:
    """The lost-order statement in one plain sentence (older statements lack the order date and parties)."""
    statement = parsed.get("statement", {}) or {}
    items = ", ".join(f"line {l['line_number']}: {l['packages']}" for l in statement.get("lines_not_received", []))
    text = f"Signed lost-order statement {statement.get('date')}: order {statement.get('order_number')}"
    if statement.get("order_date"):
        text += f" of {statement['order_date']}"
    if statement.get("supplier"):
        text += f" to {statement['supplier'].get('name')}"
    text += f" was not received through loss (not received: {items}); replacement order " \
            f"{parsed.get('replacement_order_number') or '-'}"
    return text


_EXTENSIONS = {"application/edi-x12": ".x12", "application/json": ".json", "application/x-csos-signed-order": ".csos",
               "multipart/signed": ".mdn.eml"}  # an AS2 receipt: a MIME message any mail reader opens


def record_file_name(record: LinkedRecord) -> str:
    return f"{record.id:06d}-{record.kind.value}{_EXTENSIONS.get(record.media_type, '.bin')}"


def order_view(order: Order, *, replaces: str | None = None, replaced_by: Sequence[str] = ()) -> OrderRecordView:
    receipts = []
    for line in order.lines:
        for receipt in line.receipts:
            receipts.append({"line_number": line.line_number, "packages_received": receipt.packages_received,
                             "received_on": _iso(receipt.received_on), "recorded_by": receipt.recorded_by,
                             "reason": receipt.reason})
    registration, supplier = order.registration, order.supplier
    return OrderRecordView(
        order_number=order.order_number, status=order.status.value,
        purchaser={"name": registration.name, "dea_number": registration.dea_number,
                   "address": _address(registration)},
        supplier={"name": supplier.name, "dea_number": supplier.dea_number, "address": _address(supplier)},
        created_at=_iso(order.created_at), signed_at=_iso(order.signed_at), transmitted_at=_iso(order.transmitted_at),
        signer=signer_of(order.signed_document), replaces_order_number=replaces, payload_sha256=order.payload_sha256,
        lines=[{"line_number": line.line_number, "ndc": f"{line.ndc[:5]}-{line.ndc[5:9]}-{line.ndc[9:]}",
                "description": line.description, "schedule": line.schedule, "packages": line.packages,
                "package_quantity": f"{line.package_quantity.normalize():f} {line.unit}",
                "supplier_status": line.line_status.value, "packages_confirmed": line.packages_confirmed,
                "received": sum(r.packages_received for r in line.receipts)} for line in order.lines],
        linked_records=[{"id": r.id, "kind": r.kind.value, "direction": r.direction, "created_at": _iso(r.created_at),
                         "summary": describe_record(r), "sha256": r.raw_sha256, "file": record_file_name(r),
                         "flags": [f["message"] for f in (r.parsed or {}).get("flags", [])]}
                        for r in order.linked_records],
        receipts=receipts,
        replaced_by=list(replaced_by),
        lost_statement=next((str((r.parsed or {}).get("text") or lost_statement_words(r.parsed or {}))
                             for r in order.linked_records if r.kind is LinkedRecordKind.LOST_STATEMENT), None),
        discrepancies=discrepancies(order),
    )


def ship_dates_by_line(order: Order) -> dict[int, list[str]]:
    """Per line, the ship dates of the shipment notices that list it (CSV)."""
    dates: dict[int, list[str]] = {}
    for record in order.linked_records:
        if record.kind is not LinkedRecordKind.SHIPMENT:
            continue
        document = (record.parsed or {}).get("document", {})
        for item in document.get("lines", []):
            dates.setdefault(int(item["line_number"]), []).append(
                f"{document.get('ship_date')}: {item.get('packages_shipped')}")
    return dates


# =====================================================================================================================
# export


@dataclass
class ExportSummary:
    out_dir: Path
    orders: int
    files: int
    pdf: Path | None
    csv: Path
    archive: Path
    zip: Path

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


_README = """\
CSOS Desk — records of electronic controlled-substance orders
============================================================

Registrant: {registrants}
Period: orders created from {date_from} to {date_to} (inclusive), {count} order(s).
Exported: {exported_at} (UTC) by CSOS Desk {version}.

What is in this folder
----------------------
records.pdf (next to this folder)  Each order as a person reads it: purchaser, supplier, lines, who signed it and
                                   when, every linked record (supplier acknowledgements, statements of
                                   non-acceptance, shipments, voids, lost-order statements) and every receipt
                                   (packages received per line and the date).
orders.csv (next to this folder)   One row per order line, for a spreadsheet.
orders/<order number>/             For each order:
  <order number>.csos              The signed order exactly as it was sent to the supplier: a CMS SignedData file
                                   (DER) holding an ASC X12 850 purchase order. Check it with
                                   `openssl cms -verify -binary -inform DER -in <file> -CAfile csos-trust.pem`.
  order.json                       The order book's entry for the order, including receipts.
  records/NNNNNN-<kind>.<ext>      Each linked record exactly as received or sent (.x12 = ASC X12 855/856/865 from
                                   the supplier; .csos = a signed statement; .json = a record made here, such as a
                                   receipt or a cancellation; .mdn.eml = the supplier system's signed delivery
                                   receipt, AS2 MDN).
manifest.json                      The SHA-256 digest of every file above. `csos-desk records check --archive
                                   <this folder>` (or any SHA-256 tool) shows whether anything was changed.

Nothing in this export can sign anything: private keys are never exported with records.
"""


def _created_in(date_from: dt.date, date_to: dt.date) -> Any:
    start = dt.datetime.combine(date_from, dt.time(), dt.timezone.utc)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    return (Order.created_at >= start) & (Order.created_at < end)


def _orders_in_range(session: Session, date_from: dt.date, date_to: dt.date) -> list[int]:
    return list(session.scalars(select(Order.id).where(_created_in(date_from, date_to))
                                .order_by(Order.created_at, Order.id)))


def _registrants_in_range(session: Session, date_from: dt.date, date_to: dt.date) -> list[str]:
    """"Name (DEA number)" of each registration that created an order in the period (README, the PDF's cover)."""
    rows = session.execute(select(Registration.name, Registration.dea_number).distinct()
                           .join(Order, Order.registration_id == Registration.id)
                           .where(_created_in(date_from, date_to)))
    return sorted(f"{name} (DEA {dea_number})" for name, dea_number in rows)


class _Stored(SimpleNamespace):
    """An order, line, receipt, linked record, registration or supplier as stored: the table's columns (typed as
    the ORM types them: enums, UTC times, JSON, decimals) as attributes, read-only use. What ``order_view``,
    ``describe_record`` and ``discrepancies`` read of an ``Order`` and its relations, without an ORM object each."""


def _load_orders_in_chunks(session: Session, ids: list[int], size: int = 500) -> Iterator[Any]:
    """The orders of ``ids`` in that order, with their lines, receipts, linked records, registration and supplier:
    one query per table per few hundred orders, rows made into plain objects (building ORM objects and their
    collections was most of the reading); each chunk is let go once written so memory stays flat."""
    orders_t, lines_t, receipts_t, records_t = (Order.__table__, OrderLine.__table__, Receipt.__table__,
                                                LinkedRecord.__table__)
    parties = {}
    for key, model in (("registration", Registration), ("supplier", Supplier)):
        parties[key] = {row.id: _Stored(**row._mapping) for row in session.execute(select(model.__table__))}
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        orders: dict[int, _Stored] = {}
        for row in session.execute(select(orders_t).where(orders_t.c.id.in_(chunk))):
            order = orders[row.id] = _Stored(**row._mapping, lines=[], linked_records=[])
            order.registration = parties["registration"][order.registration_id]
            order.supplier = parties["supplier"][order.supplier_id]
        lines: dict[int, _Stored] = {}
        for row in session.execute(select(lines_t).where(lines_t.c.order_id.in_(chunk))
                                   .order_by(lines_t.c.order_id, lines_t.c.line_number)):
            line = lines[row.id] = _Stored(**row._mapping, receipts=[])
            orders[line.order_id].lines.append(line)
        for row in session.execute(select(receipts_t).join(lines_t, receipts_t.c.order_line_id == lines_t.c.id)
                                   .where(lines_t.c.order_id.in_(chunk)).order_by(receipts_t.c.id)):
            lines[row.order_line_id].receipts.append(_Stored(**row._mapping))
        for row in session.execute(select(records_t).where(records_t.c.order_id.in_(chunk))
                                   .order_by(records_t.c.id)):
            orders[row.order_id].linked_records.append(_Stored(**row._mapping))
        for order_id in chunk:
            yield orders[order_id]


def _load_order(session: Session, order_id: int) -> Order:
    return session.scalar(select(Order).where(Order.id == order_id).options(
        selectinload(Order.lines).selectinload(OrderLine.receipts), selectinload(Order.linked_records)))


def export_records(db: Database, *, date_from: dt.date, date_to: dt.date, out_dir: str | Path,
                   render_pdf: PdfRenderer | None = None, progress: Progress | None = None,
                   cancelled: Callable[[], bool] | None = None, now: dt.datetime | None = None,
                   version: str = "") -> ExportSummary:
    """Write the records of orders created between two dates (inclusive) to ``out_dir`` (must be new or empty).

    Everything is written into a temporary folder next to ``out_dir`` and moved into place at the end, so a
    cancelled or failed export leaves nothing half-written.
    """
    if date_to < date_from:
        raise RecordsError(f"The period ends ({date_to}) before it starts ({date_from}).", code="records.bad_period")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RecordsError(f"{out_dir} already exists and is not an empty folder; choose a new folder.",
                           code="records.out_not_empty")
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as exc:
        raise RecordsError(f"{out_dir.parent} cannot be written ({exc.strerror}).", code="records.unwritable") \
            from None
    try:
        summary = _export_into(db, work, date_from=date_from, date_to=date_to, render_pdf=render_pdf,
                               progress=progress, cancelled=cancelled, now=now, version=version)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(work, out_dir)
    except OSError as exc:  # a full disk, a drive pulled out: the files written so far go, nothing half-written stays
        shutil.rmtree(work, ignore_errors=True)
        if exc.errno == errno.ENOSPC:
            raise RecordsError(f"The export does not fit on the drive of {out_dir.parent}: it is full. Nothing was "
                               "exported; free some room there or choose a folder on another drive.",
                               code="records.disk_full") from None
        raise RecordsError(f"The export could not be written to {out_dir.parent} ({exc.strerror or exc}). Nothing "
                           "was exported; choose another folder.", code="records.unwritable") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return ExportSummary(out_dir=out_dir, orders=summary[0], files=summary[1],
                         pdf=out_dir / "records.pdf" if render_pdf else None, csv=out_dir / "orders.csv",
                         archive=out_dir / "archive", zip=out_dir / "archive.zip")


def _export_into(db: Database, work: Path, *, date_from: dt.date, date_to: dt.date,
                 render_pdf: PdfRenderer | None, progress: Progress | None, cancelled: Callable[[], bool] | None,
                 now: dt.datetime, version: str) -> tuple[int, int]:
    archive = work / "archive"
    (archive / "orders").mkdir(parents=True)
    with db.session() as session, open(work / "orders.csv", "w", newline="", encoding="utf-8") as handle, \
            zipfile.ZipFile(work / "archive.zip", "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        written = _Written(archive, bundle)
        writer = csv.writer(handle)
        writer.writerow(["order_number", "status", "purchaser_dea", "supplier", "created_at", "signed_at", "signer",
                         "line", "ndc", "description", "schedule", "packages_ordered", "package_size",
                         "supplier_line_status", "packages_received", "receipts", "ship_dates", "replaces",
                         "replaced_by", "lost_statement", "discrepancies"])
        ids = _orders_in_range(session, date_from, date_to)
        total = len(ids)
        numbers = dict(session.execute(select(Order.id, Order.order_number)).all()) if ids else {}
        # Order numbers are unique per registration only: those used by two registrations get a folder per DEA.
        shared_numbers = set(session.scalars(select(Order.order_number).group_by(Order.order_number)
                                             .having(func.count(Order.id) > 1))) if ids else set()
        successors: dict[int, list[str]] = {}
        for old_id, new_number in (session.execute(select(Order.replaces_order_id, Order.order_number).where(
                Order.replaces_order_id.is_not(None)).order_by(Order.id)).all() if ids else []):
            successors.setdefault(old_id, []).append(new_number)
        registrants = _registrants_in_range(session, date_from, date_to)
        pdf = None
        if render_pdf is not None:
            from app.services.orders.history import history_rows_for_records  # the PDF's ordering-history page

            meta = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat(),
                    "exported_at": now.isoformat(), "registrants": registrants,
                    "version": version, "history": history_rows_for_records(db, now=min(now, dt.datetime.combine(
                        date_to, dt.time(23, 59), dt.timezone.utc)))}
            pdf = render_pdf(total, meta, work / "records.pdf")
        try:
            exported = _write_orders(session, ids, written, writer, pdf, numbers=numbers,
                          successors=successors, shared_numbers=shared_numbers, progress=progress,
                          cancelled=cancelled)
            _stop_if_cancelled(cancelled)  # Stop pressed during the last order still stops, before the PDF's end
            (archive / "README.txt").write_text(_README.format(
                registrants="; ".join(registrants) or "(none)", date_from=date_from, date_to=date_to,
                count=exported, exported_at=now.strftime("%Y-%m-%d %H:%M"), version=version or "-"))
            listed = _write_manifest(archive, extra={"period": {"from": date_from.isoformat(),
                                                                "to": date_to.isoformat()},
                                                     "orders": exported, "created_at": now.isoformat()},
                                     known=written.digests)
            for relative in [*listed, MANIFEST]:  # the README, the manifest (and anything else not written above)
                if relative not in written.digests:
                    bundle.write(archive / relative, f"{archive.name}/{relative}")
            if pdf is not None:
                pdf.finish()
        except BaseException:
            if pdf is not None:
                pdf.abort()
            raise
    return exported, len(listed)


def _write_orders(session: Session, ids: list[int], written: _Written, writer: Any, pdf: PdfJob | None,
                  *, numbers: dict[int, str],
                  successors: dict[int, list[str]], shared_numbers: set[str], progress: Progress | None,
                  cancelled: Callable[[], bool] | None) -> int:
    """Each order's files into the archive (and zip), its rows into the CSV, its order.json to the PDF; how many."""
    total, done = len(ids), 0
    for done, order in enumerate(_load_orders_in_chunks(session, ids), start=1):
        _stop_if_cancelled(cancelled)
        view = order_view(order, replaces=numbers.get(order.replaces_order_id),
                          replaced_by=successors.get(order.id, ()))
        ship_dates = ship_dates_by_line(order)
        folder = f"orders/{order.order_number}/{order.registration.dea_number}" \
            if order.order_number in shared_numbers else f"orders/{order.order_number}"
        written.folder(folder)
        written.folder(f"{folder}/records")
        if order.signed_document:
            written.write(f"{folder}/{order.order_number}.csos", order.signed_document)
        for record in order.linked_records:
            written.write(f"{folder}/records/{record_file_name(record)}", record.raw)
        view_file = written.write_text(f"{folder}/order.json", json_text(view.to_json()))
        if pdf is not None:
            pdf.add(view_file)  # the PDF reads the view back from the archive: it shows what the archive holds
        writer.writerows([view.order_number, view.status, view.purchaser["dea_number"], view.supplier["name"],
                          view.created_at, view.signed_at or "", (view.signer or {}).get("name", ""),
                          line["line_number"], line["ndc"], line["description"], line["schedule"],
                          line["packages"], line["package_quantity"], line["supplier_status"],
                          line["received"], "; ".join(f"{r['received_on']}: {r['packages_received']}"
                                                      for r in view.receipts
                                                      if r["line_number"] == line["line_number"]),
                          "; ".join(ship_dates.get(line["line_number"], [])), view.replaces_order_number or "",
                          "; ".join(view.replaced_by), view.lost_statement or "",
                          " | ".join(view.discrepancies)]
                         for line in view.lines)
        if progress is not None:
            progress(done, total)
    return done


def _stop_if_cancelled(cancelled: Callable[[], bool] | None) -> None:
    if cancelled is not None and cancelled():
        raise ExportCancelled("The export was cancelled; nothing was written.")


def drawn_in_this_process(draw: Callable[[Sequence[OrderRecordView], dict[str, Any], Path], None]) -> PdfRenderer:
    """A ``PdfRenderer`` for a function that draws the whole PDF at once, ``draw(views, meta, path)``: run in this
    process once the archive is written, with the views read back from the archive one at a time. Slower than a
    process of its own (the pages wait for the archive), but it sees exactly what the PDF is given (tests)."""

    def start(orders: int, meta: dict[str, Any], path: Path) -> PdfJob:
        return _DrawnAtTheEnd(draw, meta, path)

    return start


class _DrawnAtTheEnd:
    def __init__(self, draw: Callable[[Sequence[OrderRecordView], dict[str, Any], Path], None],
                 meta: dict[str, Any], path: Path) -> None:
        self._draw, self._meta, self._path = draw, meta, path
        self._files: list[str] = []

    def add(self, view_file: str) -> None:
        self._files.append(view_file)

    def finish(self) -> None:
        self._draw(_ArchivedViews(self._files), self._meta, self._path)

    def abort(self) -> None:
        self._files.clear()


class _ArchivedViews(Sequence[OrderRecordView]):
    """The exported orders' views, read back from the archive's order.json files one at a time: the PDF shows
    exactly what the archive holds, and 20,000 orders are never all in memory."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        self._paths = paths

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        with open(self._paths[index], "rb") as handle:
            return OrderRecordView(**json.loads(handle.read()))


class _Written:
    """The files an export writes into ``folder`` (paths relative to it, with ``/``): each with the SHA-256 and size
    of the very bytes written, so the manifest need not read them back, and compressed into the zip from the same
    bytes as they are written, so the zip need not read them back either (those two reads were most of their cost).
    """

    def __init__(self, folder: Path, bundle: zipfile.ZipFile) -> None:
        self.digests: dict[str, tuple[str, int]] = {}
        self._folder = str(folder)
        self._prefix = f"{folder.name}/"
        self._bundle = bundle
        self._date_time = time.localtime()[:6]  # as the zip would take it from the files' modification time
        self._mode: int | None = None

    def folder(self, relative: str) -> None:
        path = os.path.join(self._folder, relative)
        try:
            os.mkdir(path)
        except FileNotFoundError:  # orders/<number>/<DEA>: the number's folder comes first
            os.makedirs(path)

    def write(self, relative: str, data: bytes) -> str:
        path = os.path.join(self._folder, relative)
        with open(path, "wb") as handle:
            handle.write(data)
        self.digests[relative] = (hashlib.sha256(data).hexdigest(), len(data))
        if self._mode is None:
            self._mode = os.stat(path).st_mode
        entry = zipfile.ZipInfo(self._prefix + relative, self._date_time)
        entry.external_attr = (self._mode & 0xFFFF) << 16
        self._bundle.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
        return path

    def write_text(self, relative: str, text: str) -> str:
        """As ``Path.write_text`` writes ASCII text (JSON escapes the rest), line ends included."""
        return self.write(relative, (text if os.linesep == "\n" else text.replace("\n", os.linesep)).encode("utf-8"))


def write_manifest(folder: Path, *, extra: dict[str, Any] | None = None) -> int:
    return len(_write_manifest(folder, extra=extra))


def _write_manifest(folder: Path, *, extra: dict[str, Any] | None = None,
                    known: dict[str, tuple[str, int]] | None = None) -> list[str]:
    """Write the manifest of every file under ``folder`` (``known``: digests and sizes of files just written, by
    relative path); returns the files it lists (relative paths)."""
    listed = [relative for relative in _files_below(folder) if relative.rpartition("/")[2] != MANIFEST]
    entries = []
    for relative in listed:
        digest, size = (known or {}).get(relative) or (_sha256_file(folder / relative),
                                                       (folder / relative).stat().st_size)
        entries.append({"path": relative, "sha256": digest, "bytes": size})
    manifest = {"format": "csos-desk-records/1", "algorithm": "SHA-256", **(extra or {}), "files": entries}
    (folder / MANIFEST).write_text(json_text(manifest))
    return listed


def _files_below(folder: Path, prefix: str = "") -> Iterator[str]:
    """Every file below ``folder`` as a relative path with ``/``, in the order of ``records_check.files_under`` (sorted
    part by part, as paths sort), without a ``Path`` per file."""
    with os.scandir(folder) as found:
        entries = sorted((entry.name, entry.is_dir(follow_symlinks=False), entry.is_file()) for entry in found)
    for name, is_folder, is_file in entries:
        if is_folder:
            yield from _files_below(Path(folder, name), f"{prefix}{name}/")
        elif is_file:
            yield prefix + name


class _NotPlain(Exception):
    """A value ``json_text`` leaves to ``json.dumps``."""


def json_text(value: Any) -> str:
    """``json.dumps(value, indent=2, sort_keys=True)``, the same text, about twice as fast for what an export writes
    (strings, whole numbers, booleans, None, lists and dicts with string keys); anything else goes to ``json``."""
    try:
        return _json_indented(value, "\n")
    except _NotPlain:
        return json.dumps(value, indent=2, sort_keys=True)


def _json_indented(value: Any, indent: str) -> str:
    if isinstance(value, str):
        return _json_string(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    inner = indent + "  "
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = []
        for key, item in sorted(value.items()):
            if not isinstance(key, str):
                raise _NotPlain
            items.append(f"{inner}{_json_string(key)}: {_json_indented(item, inner)}")
        return "{" + ",".join(items) + indent + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + ",".join([inner + _json_indented(item, inner) for item in value]) + indent + "]"
    raise _NotPlain  # floats (NaN, repr), other types


# =====================================================================================================================
# retention


def retained_until(order: Order) -> dt.date:
    """Two years after the last thing that happened to the order (signature, linked record or receipt)."""
    moments = [order.created_at, order.signed_at, order.transmitted_at]
    moments += [record.created_at for record in order.linked_records]
    moments += [receipt.recorded_at for line in order.lines for receipt in line.receipts]
    latest = max(m for m in moments if m is not None)
    return (latest + RETENTION).date()


def delete_order_records(db: Database, order_id: int, *, now: dt.datetime | None = None, actor: str = "") -> None:
    """Delete an order's documents once the two-year retention has passed; refuse (``records.retained``) before.

    The order row stays as a tombstone (number, dates, a note) and the audit chain keeps the digest of what was
    deleted, so the order book never has a silent gap.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    with db.session() as session, session.begin():
        order = _load_order(session, order_id)
        if order is None:
            raise RecordsError(f"Order {order_id} does not exist.", code="order.not_found")
        until = retained_until(order)
        if now.date() < until:
            raise RecordsRetained(f"Order {order.order_number} and its linked records must be kept until "
                                  f"{until.isoformat()} (two years, 21 CFR 1305.27); nothing was deleted.")
        digest = hashlib.sha256(order.signed_document or b"").hexdigest()
        line_ids = [line.id for line in order.lines]
        number = order.order_number
        session.expunge_all()
        # Core statements: the ORM's own rules refuse deleting records, which is right for everything but this.
        session.execute(delete(Receipt).where(Receipt.order_line_id.in_(line_ids)))
        session.execute(delete(OutboxEntry).where(OutboxEntry.order_id == order_id))
        session.execute(delete(LinkedRecord).where(LinkedRecord.order_id == order_id))
        session.execute(update(LinkedRecord).where(LinkedRecord.related_order_id == order_id)
                        .values(related_order_id=None))
        session.execute(update(Order).where(Order.id == order_id).values(
            signed_document=None, note=f"Records deleted after the retention period on {now.date().isoformat()}."))
        append_audit_event(session, action="records.deleted", actor=actor, order_id=order_id,
                           details={"order_number": number, "document_sha256": digest})


# =====================================================================================================================
# backup


@dataclass
class BackupSummary:
    path: Path
    bytes: int
    orders: int

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "bytes": self.bytes, "orders": self.orders}


def backup_order_book(db: Database, out: str | Path) -> BackupSummary:
    """A consistent copy of the SQLite order book taken while it is in use (SQLite online backup API).

    Private keys live in their own files (or on a token), never in the order book, so they are never in a backup.
    """
    out = Path(out)
    if db.engine.dialect.name != "sqlite":
        raise StorageError("This order book is on a database server; back it up with the server's own tools "
                           "(e.g. pg_dump).", code="backup.not_sqlite")
    if out.exists() and out.is_dir():
        raise RecordsError(f"{out} is a folder; give a file name for the backup.", code="backup.out_is_folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        os.close(handle)
    except OSError as exc:
        raise RecordsError(f"{out.parent} cannot be written ({exc.strerror}).", code="backup.unwritable") from None
    raw = db.engine.raw_connection()
    try:
        source = raw.driver_connection
        target = sqlite3.connect(temporary)
        try:
            source.backup(target)
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
            orders = target.execute("SELECT count(*) FROM orders").fetchone()[0]
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
        if check != "ok":
            raise RecordsError(f"The backup copy failed its integrity check ({check}).", code="backup.corrupt")
        os.replace(temporary, out)
    except sqlite3.Error as exc:
        Path(temporary).unlink(missing_ok=True)
        raise StorageError(f"The backup could not be written ({exc}).", code="backup.failed") from None
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        raw.close()
    return BackupSummary(path=out, bytes=out.stat().st_size, orders=orders)

