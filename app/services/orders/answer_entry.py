"""Supplier answers that do not come over the https connector (issue 17.1): answer files (manual download, folder
drop, e-mail attachment) and answers typed in by hand (e-mail, PDF, phone).

Why here and not in the connectors: a file may hold several interchanges, be wrapped in the supplier's CMS
signature, or belong to an order of another registration, so each document is matched to its order by order number
AND purchaser DEA number and goes through the same checks as every other answer (``Lifecycle.apply_record``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import mimetypes
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from app.models.orderbook import LineStatus, LinkedRecord, LinkedRecordKind
from app.models.states import OrderStatus
from app.services.orders.answers import (
    AnswerFileError,
    Flag,
    LifecycleError,
    canonical_json,
    load_order,
    read_answer_file,
)
from app.services.transport.connectors import X12_MEDIA_TYPE, SupplierRecord

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
S = OrderStatus


@dataclass
class FileImport:
    """What one answer file did: documents linked (with their flags) and documents refused (with why)."""

    file: str
    signed_by: str = ""
    linked: list[Any] = field(default_factory=list)  # AppliedRecord
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.linked) and not self.refused

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "signed_by": self.signed_by, "linked": [a.to_json() for a in self.linked],
                "refused": self.refused}


def import_file(lifecycle: Any, path: Path) -> FileImport:
    """Every document in one file, each in its own transaction (one bad document never undoes the others)."""
    from app.errors import CsosError

    report = FileImport(file=path.name)
    try:
        parts = read_answer_file(path)
    except AnswerFileError as exc:
        report.refused.append({"part": None, "code": exc.code, "message": exc.message})
        return report
    report.signed_by = parts[0].signed_by if parts else ""
    for part in parts:
        where = f"{path.name}" + (f" (document {part.index})" if len(parts) > 1 else "")
        if not part.kind:
            report.refused.append({"part": part.index, "code": "lifecycle.unreadable_record",
                                   "message": f"{where} is not a supplier document CSOS Desk can read: {part.problem}"})
            continue
        if part.kind == "850":
            report.refused.append({"part": part.index, "code": "lifecycle.unexpected_document",
                                   "message": f"{where} is a purchase order (850), not a supplier's answer."})
            continue
        record = SupplierRecord(kind=part.kind, data=part.data, source=where)
        try:
            report.linked.append(lifecycle.import_record(record))
        except CsosError as exc:
            report.refused.append({"part": part.index, "code": exc.code, "message": exc.message})
    return report


@dataclass
class HandAnswer:
    order_number: str
    status_before: str
    status_after: str
    linked_record_id: int
    lines: dict[int, str]
    attachment: str | None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def record_by_hand(lifecycle: Any, order_id: int, *, accepted: bool, lines: Mapping[int, str], reason: str,
                   attachment: Path | None, recorded_by: str) -> HandAnswer:
    """Record the supplier's verdict as told by a person: accepted (per line accepted/rejected) or not accepted, with
    the supplier's reason; the attached file (if any) is kept exactly as the linked record's content."""
    reason = (reason or "").strip()
    if not reason:
        raise LifecycleError("Write down what the supplier said (its reason or reference); it is kept with the "
                             "order.", code="answer.reason_required")
    data, media_type, attached = b"", "application/json", None
    if attachment is not None:
        try:
            if attachment.stat().st_size > MAX_ATTACHMENT_BYTES:
                raise LifecycleError(f"{attachment.name} is larger than 20 MB; attach a smaller copy.",
                                     code="answer.attachment_too_large")
            data = attachment.read_bytes()
        except OSError as exc:
            raise LifecycleError(f"{attachment.name} cannot be read ({exc.strerror}).",
                                 code="answer.attachment_unreadable") from None
        media_type = mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
        attached = {"name": attachment.name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with lifecycle._write() as session:
        order = load_order(session, order_id)
        before = order.status
        if order.status is S.QUEUED:
            raise LifecycleError(f"Order {order.order_number} has not been handed to the supplier yet; send it "
                                 "first (csos-desk order send).", code="answer.not_sent")
        if order.status is not S.TRANSMITTED:
            raise LifecycleError(f"Order {order.order_number} is {order.status.label.lower()}; an answer can be "
                                 "recorded by hand only while the order waits for the supplier's answer.",
                                 code="answer.out_of_turn")
        by_number = {line.line_number: line for line in order.lines}
        verdicts: dict[int, str] = {}
        for number, verdict in lines.items():
            if number not in by_number:
                raise LifecycleError(f"Order {order.order_number} has no line {number}.", code="answer.unknown_line")
            if verdict not in ("accepted", "rejected"):
                raise LifecycleError(f"Line {number}: say accepted or rejected.", code="answer.bad_line")
            verdicts[number] = verdict
        if not accepted:
            verdicts = {n: "rejected" for n in by_number}
        else:
            verdicts = {n: verdicts.get(n, "accepted") for n in by_number}
            if all(v == "rejected" for v in verdicts.values()):
                raise LifecycleError("Every line is marked rejected: record it as not accepted instead.",
                                     code="answer.all_rejected")
        words = ("accepted" if all(v == "accepted" for v in verdicts.values()) else
                 "partly accepted" if accepted else "NOT accepted")
        summary = f"Answer recorded by hand: {words} — {reason}"
        rejected_lines = sorted(n for n, v in verdicts.items() if v == "rejected")
        if accepted and rejected_lines:
            summary += f" (line{'s' if len(rejected_lines) > 1 else ''} {', '.join(map(str, rejected_lines))} " \
                       "rejected)"
        parsed: dict[str, Any] = {
            "type": "answer_by_hand", "order_number": order.order_number, "accepted": accepted,
            "lines": [{"line_number": n, "answer": v} for n, v in sorted(verdicts.items())],
            "reason": reason, "recorded_by": recorded_by or lifecycle.book.actor, "attachment": attached,
            "summary": summary}
        if not data:
            data = canonical_json({k: v for k, v in parsed.items() if k != "summary"})
        kind = LinkedRecordKind.ACKNOWLEDGEMENT if accepted else LinkedRecordKind.NON_ACCEPTANCE
        linked = lifecycle.book.link_record(session, order.id, LinkedRecord(
            kind=kind, direction="in", media_type=media_type if attached else "application/json", raw=data,
            parsed=parsed, created_at=lifecycle.clock()))
        for number, verdict in verdicts.items():
            line = by_number[number]
            line.line_status = LineStatus.ACCEPTED if verdict == "accepted" else LineStatus.REJECTED
            line.packages_confirmed = line.packages if verdict == "accepted" else 0
        target = S.NOT_ACCEPTED if not accepted else S.ACCEPTED if not rejected_lines else S.PARTIALLY_ACCEPTED
        lifecycle.book.transition(order.id, target, session=session,
                                  details={"via": "answer recorded by hand", "record_id": linked.id})
        return HandAnswer(order.order_number, before.value, target.value, linked.id, verdicts,
                          attached["name"] if attached else None)


__all__ = ["FileImport", "HandAnswer", "import_file", "record_by_hand", "Flag", "X12_MEDIA_TYPE"]
