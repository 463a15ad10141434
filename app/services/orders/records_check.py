"""Records check (O9): is everything that was kept still there, and still what it was?

``check_records`` re-verifies every stored signature, every linked record's hash, the audit chain and, when given,
an exported archive's manifest. Moved out of ``records`` (export, retention, backup) so each can change on its own;
``records`` re-exports these names.

How the check uses the verifier: an order is judged *as of the moment it was signed* (``now`` = its signing time),
because the question years later is "is this the document that was signed, by a certificate that chained to a CSOS
root and was valid then, for this registration?" — not "would a supplier accept it today". So the rules about time
passing, today's catalog and revocation are reported as notes, not integrity failures (``INTEGRITY_IGNORED``).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.models.database import Database
from app.models.integrity import verify_audit_chain
from app.models.orderbook import (
    AuditEvent,
    LinkedRecord,
    LinkedRecordKind,
    Order,
    OrderLine,
    OrderNumberCounter,
    Registration,
)
from app.services.signing.cms import CmsError, check_signature, parse_signed_document
from app.services.signing.verifier import OrderVerifier
from app.services.signing.x12 import X12Error, parse_850

INTEGRITY_IGNORED = frozenset({"order_expired", "unknown_product", "schedule_not_authorized", "revocation_unknown",
                               "certificate_revoked", "signed_in_future"})
MANIFEST = "manifest.json"

Progress = Callable[[int, int], None]


def files_under(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, in a stable order (what a manifest lists)."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            yield path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _der() -> Any:
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def _load_order(session: Session, order_id: int) -> Order | None:
    return _load_orders(session, [order_id]).get(order_id)


def _load_orders(session: Session, order_ids: list[int]) -> dict[int, Order]:
    """Orders with their lines, receipts and linked records: four queries for a whole batch, not four per order
    (loading one order at a time was most of a 20,000-order records check)."""
    return {order.id: order for order in session.scalars(select(Order).where(Order.id.in_(order_ids)).options(
        selectinload(Order.lines).selectinload(OrderLine.receipts), selectinload(Order.linked_records)))}


_LOAD_BATCH = 200



@dataclass(frozen=True)
class RecordProblem:
    code: str
    message: str
    order_number: str | None = None


@dataclass
class CheckReport:
    orders_checked: int = 0
    signatures_checked: int = 0
    linked_records_checked: int = 0
    audit_events_ok: bool = True
    archive_files_checked: int = 0
    problems: list[RecordProblem] = field(default_factory=list)
    notes: list[RecordProblem] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["clean"] = self.clean
        return data


def _integrity_relevant(code: str) -> bool:
    return code not in INTEGRITY_IGNORED


def check_order(order: Order, verifier: OrderVerifier | None) -> tuple[list[RecordProblem], list[RecordProblem]]:
    """Integrity problems and notes for one signed order (see the module docstring for what counts)."""
    number = order.order_number
    problems: list[RecordProblem] = []
    notes: list[RecordProblem] = []
    document = order.signed_document
    if not document:
        return [RecordProblem("records.document_missing", f"Order {number} is marked signed but its signed document "
                                                          "is missing.", number)], []
    try:
        signed = parse_signed_document(document)
    except CmsError as exc:
        return [RecordProblem("malformed", f"Order {number}: {exc.message}", number)], []
    if hashlib.sha256(signed.content).hexdigest() != order.payload_sha256:
        problems.append(RecordProblem("records.payload_mismatch", f"Order {number}: the signed content does not match "
                                                                  "the digest stored when it was signed.", number))
    fingerprint = hashlib.sha256(signed.signer_certificate.public_bytes(_der())).hexdigest()
    if order.signer_fingerprint and fingerprint != order.signer_fingerprint:
        problems.append(RecordProblem("records.signer_mismatch", f"Order {number}: the signer's certificate is not the "
                                                                 "one recorded at signing.", number))
    parsed_order = None
    if verifier is not None:
        verdict = verifier.verify_document(signed, now=order.signed_at)
        parsed_order = verdict.order  # the 850 as the verifier read it, not read a second time below
        for reason in verdict.reasons:
            target = problems if _integrity_relevant(reason.code) else notes
            target.append(RecordProblem(reason.code, f"Order {number}: {reason.message}", number))
    else:
        for code, message in check_signature(signed):
            problems.append(RecordProblem(code, f"Order {number}: {message}", number))
    try:
        content = parsed_order if parsed_order is not None else parse_850(signed.content)
    except X12Error as exc:
        problems.append(RecordProblem("malformed", f"Order {number}: the signed order is not readable ({exc.message}).",
                                      number))
        return problems, notes
    from app.services.orders.answers import receipt_findings  # receipts beyond the order or a flagged shipment

    for code, message, is_problem in receipt_findings(order):
        (problems if is_problem else notes).append(RecordProblem(code, message, number))
    book_lines = [(line.line_number, line.ndc, line.packages) for line in order.lines]
    signed_lines = [(line.line_number, line.ndc, line.packages) for line in content.lines]
    if content.order_number != number or content.purchaser.dea_number != order.registration.dea_number or \
            book_lines != signed_lines:
        problems.append(RecordProblem("records.book_differs", f"Order {number}: the order book does not show what was "
                                                              "signed (order number, purchaser or lines differ).",
                                      number))
    return problems, notes


def check_records(db: Database, *, verifier: OrderVerifier | None = None, archive: str | Path | None = None,
                  progress: Progress | None = None) -> CheckReport:
    """Re-verify every signed order, every linked record's digest, the audit chain, and an archive when given; and
    report what the audit chain or the order-number sequence says should exist but does not (a deletion straight
    from the database file)."""
    report = CheckReport()
    with db.session() as session:
        ids = list(session.scalars(select(Order.id).where(Order.signed_at.is_not(None)).order_by(Order.id)))
        batch: dict[int, Order] = {}
        for done, order_id in enumerate(ids, start=1):
            if order_id not in batch:
                batch = _load_orders(session, ids[done - 1:done - 1 + _LOAD_BATCH])
            order = batch[order_id]
            report.orders_checked += 1
            if _records_deleted(session, order):
                continue
            problems, notes = check_order(order, verifier)
            report.signatures_checked += 1
            report.problems += problems
            report.notes += notes
            if progress is not None:
                progress(done, len(ids))
        last_id = 0
        while True:
            batch = session.execute(select(LinkedRecord.id, LinkedRecord.raw, LinkedRecord.raw_sha256,
                                           LinkedRecord.kind, Order.order_number)
                                    .join(Order, Order.id == LinkedRecord.order_id)
                                    .where(LinkedRecord.id > last_id).order_by(LinkedRecord.id).limit(500)).all()
            if not batch:
                break
            for record_id, raw, digest, kind, number in batch:
                last_id = record_id
                report.linked_records_checked += 1
                if hashlib.sha256(raw or b"").hexdigest() != digest:
                    report.problems.append(RecordProblem("records.linked_record_altered",
                                                         f"Order {number}: linked record {record_id} ({kind.value}) "
                                                         "was changed after it was stored.", number))
                elif kind is LinkedRecordKind.LOST_STATEMENT:
                    try:
                        for code, message in check_signature(parse_signed_document(raw)):
                            report.problems.append(RecordProblem(code, f"Order {number}: lost-order statement: "
                                                                       f"{message}", number))
                    except CmsError as exc:
                        report.problems.append(RecordProblem("malformed", f"Order {number}: lost-order statement: "
                                                                          f"{exc.message}", number))
        expected = _WhatTheChainNames()
        chain = verify_audit_chain(session, visit=expected.see)
        report.audit_events_ok = not chain
        report.problems += [RecordProblem(p.code, p.message) for p in chain]
        missing, gap_notes = expected.missing_from(session)
        report.problems += missing
        report.notes += gap_notes
    if archive is not None:
        checked, problems = check_archive(Path(archive))
        report.archive_files_checked = checked
        report.problems += problems
    return report


def check_archive(folder: Path) -> tuple[int, list[RecordProblem]]:
    """Compare an exported archive folder (or a zip of it) with its manifest."""
    if folder.is_file() and zipfile.is_zipfile(folder):
        with tempfile.TemporaryDirectory(prefix="csos-check-") as scratch:
            with zipfile.ZipFile(folder) as archive:
                for member in archive.namelist():
                    target = (Path(scratch) / member).resolve()
                    if not str(target).startswith(str(Path(scratch).resolve())):
                        return 0, [RecordProblem("records.archive_unsafe", f"{folder} holds a file outside its "
                                                                           "folder; it was not opened.")]
                archive.extractall(scratch)
            inner = [p for p in Path(scratch).iterdir() if p.is_dir()]
            return check_archive(inner[0] if len(inner) == 1 else Path(scratch))
    manifest_path = folder / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        entries = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    except (OSError, ValueError, KeyError, TypeError):
        return 0, [RecordProblem("records.manifest_unreadable", f"{manifest_path} is missing or not a CSOS Desk "
                                                                "manifest.")]
    problems = []
    present = {path.relative_to(folder).as_posix(): path for path in files_under(folder) if path.name != MANIFEST}
    for relative, digest in sorted(entries.items()):
        path = present.get(relative)
        if path is None:
            problems.append(RecordProblem("records.archive_file_missing", f"{relative} is listed in the manifest but "
                                                                          "missing."))
        elif sha256_file(path) != digest:
            problems.append(RecordProblem("records.archive_file_altered", f"{relative} was changed after export."))
    for relative in sorted(set(present) - set(entries)):
        problems.append(RecordProblem("records.archive_file_extra", f"{relative} is not listed in the manifest (added "
                                                                    "after export)."))
    return len(entries), problems


def _records_deleted(session: Session, order: Order) -> bool:
    return order.signed_document is None and order.signed_at is not None and bool(order.note.startswith(
        "Records deleted after the retention period"))


# =====================================================================================================================
# what should exist but does not


_SEQUENCE_SUFFIX_DIGITS = 6


class _WhatTheChainNames:
    """What the audit chain says exists: every order it has seen (with its number), each order's lines, every linked
    record and every signed document. Filled event by event while the chain is verified, then compared with the
    order book; an order deleted straight from the file is then reported by its number."""

    def __init__(self) -> None:
        self.events: dict[int, int] = {}  # order id -> events naming it
        self.numbers: dict[int, tuple[str, str]] = {}  # order id -> (order number, registration DEA)
        self.lines: dict[int, set[int]] = {}
        self.records: dict[int, tuple[int, str, int]] = {}  # record id -> (order id, kind, event id)
        self.signed: set[int] = set()
        self.records_deleted: dict[int, int] = {}  # order id -> event id of the lawful deletion after retention

    def see(self, event: AuditEvent) -> None:
        order_id = event.order_id
        if order_id is None:
            return
        details = event.details if isinstance(event.details, dict) else {}
        self.events[order_id] = self.events.get(order_id, 0) + 1
        action = event.action
        if action in ("order.created", "records.deleted") and details.get("order_number"):
            known = self.numbers.get(order_id)
            self.numbers[order_id] = (str(details["order_number"]),
                                      str(details.get("registration") or (known[1] if known else "")))
        if action == "order.line_added" and isinstance(details.get("line"), int):
            self.lines.setdefault(order_id, set()).add(details["line"])
        elif action == "order.line_removed" and isinstance(details.get("line"), int):
            self.lines.setdefault(order_id, set()).discard(details["line"])
        elif action == "order.linked_record" and isinstance(details.get("record_id"), int):
            self.records[details["record_id"]] = (order_id, str(details.get("kind", "")), event.id)
        elif action == "order.status" and details.get("to") == "signed":
            self.signed.add(order_id)
        elif action == "records.deleted":
            self.records_deleted[order_id] = event.id

    def _name(self, order_id: int) -> str:
        known = self.numbers.get(order_id)
        return known[0] if known else f"(internal id {order_id})"

    def missing_from(self, session: Session) -> tuple[list[RecordProblem], list[RecordProblem]]:
        problems: list[RecordProblem] = []
        orders = {row.id: row for row in session.execute(select(
            Order.id, Order.order_number, Order.registration_id, Order.signed_at,
            Order.signed_document.is_not(None).label("has_document")))}
        for order_id in sorted(set(self.events) - set(orders)):
            number = self._name(order_id)
            records = sum(1 for owner, _, _ in self.records.values() if owner == order_id)
            what = "a signed order" if order_id in self.signed else "an order"
            problems.append(RecordProblem(
                "records.order_missing",
                f"Order {number} is missing from the order book, but the audit trail recorded it "
                f"({what}, {self.events[order_id]} recorded events, {len(self.lines.get(order_id, ()))} line(s), "
                f"{records} linked record(s)). It was removed outside CSOS Desk: keep this report and restore the "
                "order book from a backup.", number if order_id in self.numbers else None))
        present_lines: dict[int, set[int]] = {}
        for order_id, line_number in session.execute(select(OrderLine.order_id, OrderLine.line_number)):
            present_lines.setdefault(order_id, set()).add(line_number)
        for order_id, expected in sorted(self.lines.items()):
            row = orders.get(order_id)
            gone = sorted(expected - present_lines.get(order_id, set()))
            if row is not None and gone:
                problems.append(RecordProblem(
                    "records.line_missing",
                    f"Order {row.order_number}: line(s) {', '.join(map(str, gone))} recorded in the audit trail "
                    "are missing from the order book (removed outside CSOS Desk).", row.order_number))
        present_records = set(session.scalars(select(LinkedRecord.id)))
        for record_id, (order_id, kind, event_id) in sorted(self.records.items()):
            row = orders.get(order_id)
            lawful = self.records_deleted.get(order_id, 0) > event_id
            if row is not None and record_id not in present_records and not lawful:
                problems.append(RecordProblem(
                    "records.linked_record_missing",
                    f"Order {row.order_number}: linked record {record_id} ({kind.replace('_', ' ')}) recorded in the "
                    "audit trail is missing from the order book (removed outside CSOS Desk).", row.order_number))
        for order_id in sorted(self.signed):
            row = orders.get(order_id)
            if row is not None and not row.has_document and row.signed_at is None \
                    and order_id not in self.records_deleted:
                problems.append(RecordProblem(
                    "records.document_missing",
                    f"Order {row.order_number} was signed (audit trail) but its signed document and signing time "
                    "are missing from the order book.", row.order_number))
        reported = {p.order_number for p in problems if p.code == "records.order_missing"}
        gaps, notes = self._number_gaps(session, orders, reported)
        return problems + gaps, notes

    def _number_gaps(self, session: Session, orders: dict[int, Any],
                     reported: set[str | None]) -> tuple[list[RecordProblem], list[RecordProblem]]:
        """Numbers the order-number sequence issued (per registration and year) with no order. Below the highest
        signed number of that sequence such a gap is a problem; above it, it is most likely a number issued while
        an order was being created and never used (the program stopped), so it is a note."""
        problems: list[RecordProblem] = []
        notes: list[RecordProblem] = []
        dea = dict(session.execute(select(Registration.id, Registration.dea_number)).all())
        named = {(registration, number) for number, registration in self.numbers.values()}
        for registration_id, year, next_value in session.execute(select(
                OrderNumberCounter.registration_id, OrderNumberCounter.year, OrderNumberCounter.next_value)):
            prefix = f"{year % 100:02d}X"
            used: set[int] = set()
            highest_signed = 0
            for row in orders.values():
                suffix = row.order_number[3:]
                if row.registration_id == registration_id and row.order_number.startswith(prefix) \
                        and len(suffix) == _SEQUENCE_SUFFIX_DIGITS and suffix.isdigit():
                    used.add(int(suffix))
                    if row.signed_at is not None or row.has_document:
                        highest_signed = max(highest_signed, int(suffix))
            for value in range(1, min(next_value, 1_000_000)):
                number = f"{prefix}{value:06d}"
                if value in used or number in reported and (dea.get(registration_id), number) in named:
                    continue
                where = f"registration {dea.get(registration_id, registration_id)}"
                if value < highest_signed:
                    problems.append(RecordProblem(
                        "records.order_number_gap",
                        f"Order number {number} ({where}) was issued, later numbers were signed, and no order with "
                        "this number is in the order book; the audit trail does not explain it. An order may have "
                        "been removed outside CSOS Desk: keep this report and compare with a backup.", number))
                else:
                    notes.append(RecordProblem(
                        "records.order_number_unused",
                        f"Order number {number} ({where}) was issued but no order uses it (most likely CSOS Desk "
                        "stopped while the order was being created).", number))
        return problems, notes
