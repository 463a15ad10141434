"""Supplier answers are claims: each 855/856/865 is checked line by line against the signed order before it changes
anything (issue 16.1), and answer files from any connector are read here (issue 17.1).

What is checked (``check_*``): the order number and the purchaser's DEA number, the NDC of every line, quantities
(acknowledged ≤ ordered; shipped in total across every 856 ≤ ordered) and dates (not before signing, not in the
future, within 60 days of signing; one day of slack for a supplier in another time zone). A mismatch becomes a
``Flag`` stored in the linked record's ``parsed["flags"]`` and an ``order.flagged`` audit event; a line whose answer
is not credible is never applied to the order's quantities, so a claim of 1,000 packages on a 2-package line cannot
raise what is offered for receiving.

``read_answer_file`` takes a file apart: plain X12 or CMS SignedData around it, one or several interchanges.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.errors import CsosError, NotFound
from app.models.orderbook import LineStatus, LinkedRecord, LinkedRecordKind, Order, OrderLine, utcnow
from app.services.signing.verifier import ORDER_VALIDITY

JSON_MEDIA_TYPE = "application/json"

DATE_SLACK = dt.timedelta(days=1)
MAX_ANSWER_FILE_BYTES = 8 * 1024 * 1024
# Flags on a shipment that mean "do not accept controlled substances against it" without a written reason.
DO_NOT_ACCEPT = frozenset({"shipment_after_60_days", "shipment_on_closed_order", "date_before_signing",
                           "date_in_future", "wrong_purchaser"})
# Line-level flags that keep a line's answer from changing the order.
LINE_NOT_APPLIED = frozenset({"ndc_mismatch", "acknowledged_more_than_ordered", "unknown_line"})


class LifecycleError(CsosError):
    code = "lifecycle.failed"


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str).encode()


def local_record(kind: LinkedRecordKind, content: dict[str, Any], *, related_order_id: int | None = None,
                 direction: str = "local") -> LinkedRecord:
    """A record made here (receipt, cancellation, note), kept as canonical JSON."""
    return LinkedRecord(kind=kind, direction=direction, media_type=JSON_MEDIA_TYPE, raw=canonical_json(content),
                        parsed=content, related_order_id=related_order_id, created_at=utcnow())


def load_order(session: Session, order_id: int) -> Order:
    order = session.scalar(select(Order).where(Order.id == order_id).options(
        selectinload(Order.lines).selectinload(OrderLine.receipts), selectinload(Order.linked_records)))
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
    return order


class AnswerFileError(CsosError):
    """An answer file cannot be read at all (codes ``answers.*``)."""

    code = "answers.unreadable"


@dataclass(frozen=True)
class Flag:
    """One discrepancy between a supplier's claim (or a receipt) and the signed order, in plain words."""

    code: str
    message: str
    line_number: int | None = None
    do_not_accept: bool = False


def _d(value: dt.date) -> str:
    return f"{value:%b} {value.day}, {value.year}"


def _n(count: int) -> str:
    return f"{count:,} package{'s' if count != 1 else ''}"


def signing_date(order: Order) -> dt.date | None:
    return order.signed_at.date() if order.signed_at else None


def check_date(what: str, date: dt.date, order: Order, today: dt.date) -> list[Flag]:
    """A supplier's date must lie between signing and today, within the order's 60 days."""
    signed = signing_date(order)
    flags: list[Flag] = []
    if signed is not None and date < signed - DATE_SLACK:
        flags.append(Flag("date_before_signing", f"The {what} is dated {_d(date)}, before the order was signed "
                                                 f"({_d(signed)}). Check with the supplier before accepting goods.",
                          do_not_accept=True))
    elif date > today + DATE_SLACK:
        flags.append(Flag("date_in_future", f"The {what} is dated {_d(date)}, which is in the future. Check with the "
                                            "supplier before accepting goods.", do_not_accept=True))
    elif signed is not None and date > signed + ORDER_VALIDITY:
        flags.append(Flag("date_after_60_days", f"The {what} is dated {_d(date)}, more than 60 days after the order "
                                                f"was signed ({_d(signed)}); the order was no longer valid then."))
    return flags


def check_purchaser(order: Order, receiver_id: str | None) -> list[Flag]:
    receiver = (receiver_id or "").strip()
    dea = order.registration.dea_number
    if receiver and receiver != dea:
        return [Flag("wrong_purchaser", f"The supplier's document is addressed to {receiver}, not to this pharmacy's "
                                        f"DEA number {dea}.", do_not_accept=True)]
    return []


def _ndc_text(ndc: str) -> str:
    return f"{ndc[:5]}-{ndc[5:9]}-{ndc[9:]}" if len(ndc) == 11 else ndc


def check_acknowledgement(order: Order, ack: Any, today: dt.date, receiver_id: str | None = None) -> list[Flag]:
    """855: order, purchaser, date, and per line the NDC and a confirmed quantity no larger than ordered."""
    flags = check_purchaser(order, receiver_id) + check_date("supplier's acknowledgement", ack.date, order, today)
    lines = {line.line_number: line for line in order.lines}
    for item in ack.lines:
        line = lines.get(item.line_number)
        if line is None:
            flags.append(Flag("unknown_line", f"The acknowledgement names line {item.line_number}, which the order "
                                              "does not have.", item.line_number))
            continue
        if item.ndc and item.ndc != line.ndc:
            flags.append(Flag("ndc_mismatch", f"Line {item.line_number}: the supplier names NDC {_ndc_text(item.ndc)}, "
                                              f"but the order is for {_ndc_text(line.ndc)}. The line's answer was not "
                                              "applied; check with the supplier.", item.line_number, True))
        elif item.quantity > line.packages:
            flags.append(Flag("acknowledged_more_than_ordered",
                              f"Line {item.line_number}: the supplier confirms {_n(item.quantity)}, but "
                              f"{_n(line.packages)} were ordered. The order still says {line.packages}; check with "
                              "the supplier.", item.line_number))
    return flags


def claimed_by_line(order: Order, *, exclude_record_id: int | None = None) -> dict[int, int]:
    """Packages the supplier's 856s claim per line, summed across every linked shipment notice."""
    claimed: dict[int, int] = {}
    for record in order.linked_records:
        if record.kind is not LinkedRecordKind.SHIPMENT or record.id == exclude_record_id:
            continue
        for item in (record.parsed or {}).get("document", {}).get("lines", []):
            claimed[item["line_number"]] = claimed.get(item["line_number"], 0) + int(item["packages_shipped"])
    return claimed


def credited_by_line(order: Order) -> dict[int, int]:
    """Packages counted as shipped per line: only credible claims (right NDC, never more than ordered in total)."""
    credited: dict[int, int] = {}
    for record in order.linked_records:
        if record.kind is not LinkedRecordKind.SHIPMENT:
            continue
        for number, packages in shipment_credit(record.parsed or {}).items():
            credited[number] = credited.get(number, 0) + packages
    return credited


def shipment_credit(parsed: dict[str, Any]) -> dict[int, int]:
    """Per line, what one shipment notice counts for (records linked before the checks: what they claim)."""
    if "credited" in parsed:
        return {int(item["line_number"]): int(item["packages"]) for item in parsed["credited"]}
    return {int(item["line_number"]): int(item["packages_shipped"])
            for item in parsed.get("document", {}).get("lines", [])}


def check_shipment(order: Order, shipment: Any, today: dt.date, receiver_id: str | None = None
                   ) -> tuple[list[Flag], list[dict[str, int]]]:
    """856: purchaser, ship date, NDC per line, and shipped in total (this and earlier notices) ≤ ordered.

    Returns the flags and what this notice counts for per line (``credited``)."""
    flags = check_purchaser(order, receiver_id) + check_date("shipment", shipment.ship_date, order, today)
    lines = {line.line_number: line for line in order.lines}
    claimed = claimed_by_line(order)
    credited_before = credited_by_line(order)
    credited: list[dict[str, int]] = []
    for item in shipment.lines:
        line = lines.get(item.line_number)
        if line is None:
            flags.append(Flag("unknown_line", f"The shipment names line {item.line_number}, which the order does not "
                                              "have.", item.line_number))
            continue
        if item.ndc != line.ndc:
            flags.append(Flag("ndc_mismatch", f"Line {item.line_number}: the shipment lists NDC {_ndc_text(item.ndc)}, "
                                              f"but the order is for {_ndc_text(line.ndc)}. Do not accept that "
                                              "product against this order; check with the supplier.",
                              item.line_number, True))
            continue
        total = claimed.get(item.line_number, 0) + item.packages_shipped
        if total > line.packages:
            flags.append(Flag("shipped_more_than_ordered",
                              f"Line {item.line_number}: shipment notices now list {_n(total)} shipped in all, but "
                              f"{_n(line.packages)} were ordered. Count what arrived; no more than "
                              f"{line.packages} will be offered for receiving.", item.line_number))
        room = max(0, line.packages - credited_before.get(item.line_number, 0))
        credited.append({"line_number": item.line_number, "packages": min(item.packages_shipped, room)})
    return flags, credited


def is_do_not_accept(parsed: dict[str, Any]) -> bool:
    return any(f.get("do_not_accept") or f.get("code") in DO_NOT_ACCEPT for f in parsed.get("flags", [])
               if f.get("line_number") is None)


# ---------------------------------------------------------------------------------------------------------------------
# per-line figures shared by receiving, the screens and the records


def expected(line: OrderLine) -> int:
    """Packages still expected for a line after the supplier's answer (never more than ordered)."""
    if line.line_status in (LineStatus.REJECTED, LineStatus.VOIDED):
        return 0
    if line.line_status is LineStatus.QUANTITY_CHANGED and line.packages_confirmed is not None:
        return min(line.packages_confirmed, line.packages)
    return line.packages


def received_by_line(order: Order) -> dict[int, int]:
    return {line.line_number: sum(r.packages_received for r in line.receipts) for line in order.lines}


def fully_received(order: Order) -> bool:
    received = received_by_line(order)
    return all(received.get(line.line_number, 0) >= expected(line) for line in order.lines)


def discrepancies(order: Order) -> list[str]:
    """Every stored discrepancy of an order in plain words, oldest first (records, the answer dialogs)."""
    return discrepancies_in(record.parsed for record in order.linked_records)


def discrepancies_in(parsed_records: Iterable[Any]) -> list[str]:
    """``discrepancies`` from the linked records' parsed values, in record order (the detail pane reads only
    those)."""
    found: list[str] = []
    for parsed in parsed_records:
        parsed = parsed if isinstance(parsed, dict) else {}
        for flag in parsed.get("flags", []) or []:
            if isinstance(flag, dict) and flag.get("message") and flag["message"] not in found:
                found.append(str(flag["message"]))
    return found


def receipt_findings(order: Order) -> list[tuple[str, str, bool]]:
    """What ``records check`` says about receipts: (code, message, is_integrity_problem).

    More received than ordered, or goods taken against a shipment flagged "do not accept", is a note when the receipt
    carries its reason and flag (recorded on purpose), and a problem when it does not (the book was changed outside
    the program)."""
    findings: list[tuple[str, str, bool]] = []
    number = order.order_number
    flagged = {(f.get("code"), f.get("line_number")) for record in order.linked_records
               if record.kind is LinkedRecordKind.RECEIPT for f in (record.parsed or {}).get("flags", [])}
    for line in order.lines:
        total = sum(r.packages_received for r in line.receipts)
        if total > line.packages:
            explained = ("received_more_than_ordered", line.line_number) in flagged and all(
                r.reason for r in line.receipts)
            findings.append(("records.received_more_than_ordered",
                             f"Order {number} line {line.line_number}: {_n(total)} received, {_n(line.packages)} "
                             "ordered" + (" (recorded with a reason)." if explained else
                                          " and no receipt carries the reason."), not explained))
    for code, line_number in sorted(flagged, key=lambda k: (str(k[0]), k[1] or 0)):
        if code in ("received_against_flagged_shipment", "received_before_ship_date"):
            findings.append((f"records.{code}", f"Order {number}"
                             + (f" line {line_number}" if line_number else "")
                             + (": goods were received against a shipment flagged \u201cdo not accept\u201d"
                                if code == "received_against_flagged_shipment"
                                else ": goods were recorded as received before the shipment's ship date")
                             + " (recorded with a reason).", False))
    return findings


# ---------------------------------------------------------------------------------------------------------------------
# answer files (manual, folder, e-mail): plain X12 or CMS SignedData, one or several interchanges


@dataclass(frozen=True)
class AnswerPart:
    """One interchange found in an answer file."""

    data: bytes
    kind: str  # "855" | "856" | "865"
    index: int  # 1-based position in the file
    signed_by: str = ""  # subject of the CMS signer, when the file was signed (not a CSOS trust decision)
    problem: str = ""  # why this interchange cannot be read (then ``kind`` is "")


_ISA = re.compile(rb"ISA(?=[^A-Za-z0-9\s])")


def split_interchanges(data: bytes) -> list[bytes]:
    """The interchanges in ``data`` (ISA…IEA each), in order; text around them is ignored."""
    starts = [m.start() for m in _ISA.finditer(data)]
    parts = []
    for position, start in enumerate(starts):
        end = starts[position + 1] if position + 1 < len(starts) else len(data)
        chunk = data[start:end].strip()
        if len(chunk) >= 106:
            terminator = chunk[105:106]
            segments = chunk.split(terminator)
            # keep everything up to and including IEA
            for i, segment in enumerate(segments):
                if segment.strip().startswith(b"IEA"):
                    chunk = terminator.join(segments[: i + 1]) + terminator
                    break
        parts.append(chunk)
    return parts


def unwrap_signed(data: bytes) -> tuple[bytes, str]:
    """The content of a CMS SignedData file and who signed it; plain files come back unchanged."""
    if not data[:1] == b"\x30":
        return data, ""
    from app.services.signing.cms import CmsError, check_signature, parse_signed_document

    try:
        signed = parse_signed_document(data)
    except CmsError as exc:
        raise AnswerFileError(f"The file looks like a signed document but cannot be read: {exc.message}",
                              code="answers.unreadable_signed") from None
    problems = check_signature(signed)
    if problems:
        raise AnswerFileError("The file is signed, but the signature does not match its content: "
                              + "; ".join(message for _, message in problems),
                              code="answers.bad_signature")
    subject = signed.signer_certificate.subject.rfc4514_string()
    return signed.content, subject


def read_answer_file(path: Path) -> list[AnswerPart]:
    """Every supplier document in a file. Raises ``AnswerFileError`` when nothing in it can be used."""
    from app.services.signing.x12 import X12Error, parse_interchange

    try:
        size = path.stat().st_size
        if size > MAX_ANSWER_FILE_BYTES:
            raise AnswerFileError(f"{path.name} is too large to be a supplier's answer.", code="answers.too_large")
        data = path.read_bytes()
    except OSError as exc:
        raise AnswerFileError(f"{path.name} cannot be read ({exc.strerror}).", code="answers.file_unreadable") \
            from None
    content, signer = unwrap_signed(data)
    chunks = split_interchanges(content)
    if not chunks:
        raise AnswerFileError(f"{path.name} holds no X12 document (no ISA header).", code="answers.not_x12")
    parts = []
    for index, chunk in enumerate(chunks, start=1):
        try:
            interchange = parse_interchange(chunk)
        except X12Error as exc:
            parts.append(AnswerPart(chunk, "", index, signer, problem=exc.message))
            continue
        kind = {"Acknowledgement855": "855", "Shipment856": "856", "VoidNotice": "865"}.get(
            type(interchange.document).__name__, "850")
        parts.append(AnswerPart(chunk, kind, index, signer))
    return parts


def sent_state_words(problem_code: str) -> str:
    """The order's state in words when the supplier took it but its answer could not be used (issue 16.2)."""
    if problem_code == "lifecycle.wrong_order":
        return "Sent — the supplier's answer names another order; check with the supplier"
    return "Sent — the supplier's answer could not be read; check with the supplier"
