"""Training suppliers: receive signed orders over HTTPS, verify them as a supplier must (21 CFR 1311.50, DESIGN.md
§6) and answer with X12 855 / 856 / 865 records. The HTTP contract is in ``docs/sandbox-api.md``.

Orders are keyed by (purchaser DEA number, order number): order numbers are unique only per purchaser registration
(O2), so two pharmacies may both send ``26X000001``.
"""

from __future__ import annotations

import base64
import copy
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import CsosError
from app.models.values import DeaNumber, OrderNumber, Schedule
from app.sandbox.api import SandboxApiError, int_field, json_body, text_field
from app.sandbox.authority import SandboxAuthority
from app.sandbox.state import LostOrderStatement, ReceivedOrder, SandboxState, SupplierRecord
from app.services.signing import x12
from app.services.signing.cms import MEDIA_TYPE, CmsError, check_signature, parse_signed_document
from app.services.signing.usage_indicator import TEST
from app.services.certificates.profile import CertificateProfileError, CsosCertificate
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import ORDER_VALIDITY, MappingSchedules, OrderVerifier, Reason

log = logging.getLogger(__name__)

X12_MEDIA_TYPE = "application/edi-x12"
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
FAULT_KEYS = ("latency_ms", "fail_next", "drop_next", "malformed_next", "wrong_order_next", "unreadable_ack_next",
              "deep_json_next")
# Faults applied after the request is handled (the order IS recorded), so the client must not send it again.
_AFTER_FAULTS = ("malformed", "wrong_order", "unreadable_ack", "deep_json")
REPORT_SCHEDULES = frozenset({Schedule.I, Schedule.II, Schedule.IIN})
_X12_TEXT_LIMIT = 264


@dataclass(frozen=True)
class SandboxSupplier:
    """A training supplier as the client sees it."""

    name: str
    slug: str
    dea_number: str
    url: str  # https://host:port/suppliers/<slug>
    address_lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    backordered_ndcs: tuple[str, ...] = ()


@dataclass
class Faults:
    """Fault switches of one supplier (memory only). Counts go down by one per affected request."""

    latency_ms: int = 0
    fail_next: int = 0
    drop_next: int = 0
    malformed_next: int = 0
    wrong_order_next: int = 0  # the 855 in the answer names another order number
    unreadable_ack_next: int = 0  # the 855 in the answer is not X12
    deep_json_next: int = 0  # the answer is JSON nested far deeper than any parser allows
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def as_json(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in FAULT_KEYS}

    def take(self) -> tuple[int, str | None]:
        """The latency to add and the fault (``drop``, ``fail`` or one of ``_AFTER_FAULTS``) for this request."""
        with self.lock:
            for name in ("drop", "fail", *_AFTER_FAULTS):
                attribute = f"{name}_next"
                if getattr(self, attribute) > 0:
                    setattr(self, attribute, getattr(self, attribute) - 1)
                    return self.latency_ms, name
            return self.latency_ms, None


def x12_text(text: str | None, limit: int = _X12_TEXT_LIMIT) -> str | None:
    """Text an X12 element can carry: ASCII, no delimiters, no edge spaces, at most ``limit`` characters."""
    if not text:
        return None
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    ascii_text = re.sub(r"[~*>]", "-", ascii_text)
    ascii_text = re.sub(r"[^\x20-\x7e]+", " ", ascii_text)
    ascii_text = re.sub(r"\s+", " ", ascii_text).strip()
    if len(ascii_text) > limit:
        ascii_text = ascii_text[:limit - 3].rstrip() + "..."
    return ascii_text or None


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def add_business_days(day: dt.date, count: int) -> dt.date:
    while count > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


class SupplierDesk:
    """All training suppliers: their orders, records, statements, switches."""

    def __init__(self, state: SandboxState, authority: SandboxAuthority, suppliers: list[SandboxSupplier],
                 catalog: MappingSchedules, products: dict[str, dict[str, Any]], *,
                 clock: Callable[[], dt.datetime]) -> None:
        self.state = state
        self.authority = authority
        self.suppliers = {s.slug: s for s in suppliers}
        self.catalog = catalog
        self.products = products
        self.clock = clock
        self.lock = threading.RLock()
        self.faults = {slug: Faults() for slug in self.suppliers}
        self.reject_queue: dict[str, list[str]] = {slug: [] for slug in self.suppliers}
        self.validation = CertificateValidationService(trust_roots=[authority.root.certificate], clock=clock)

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.timezone.utc)

    def supplier(self, slug: str) -> SandboxSupplier:
        supplier = self.suppliers.get(slug)
        if supplier is None:
            raise SandboxApiError(404, "unknown_supplier", f"The sandbox has no supplier '{slug}'.")
        return supplier

    def verifier(self) -> OrderVerifier:
        return OrderVerifier(validation=self.validation, catalog=self.catalog, crls=self.authority.current_crls(),
                             fetch_crls=False, clock=self.clock)

    # -- X12 -----------------------------------------------------------------------------------------------------

    def _x12(self, session: Session, supplier: SandboxSupplier, writer: Callable[..., bytes], document: Any,
             receiver: str) -> bytes:
        number = self.state.next_number(session, f"isa:{supplier.slug}")
        # The sandbox is training: every answer it makes is a test interchange (ISA15 = T).
        return writer(document, interchange_control_number=number, group_control_number=number,
                      sender_id=supplier.dea_number, receiver_id=receiver, created_at=self.now(),
                      usage_indicator=TEST)

    def _append(self, session: Session, order: ReceivedOrder, kind: str, data: bytes,
                ship_date: dt.date | None = None) -> SupplierRecord:
        last = session.scalar(select(SupplierRecord.seq).where(SupplierRecord.order_id == order.id)
                              .order_by(SupplierRecord.seq.desc()).limit(1)) or 0
        record = SupplierRecord(order_id=order.id, seq=last + 1, kind=kind, created_at=self.now(), data=data,
                                ship_date=(dt.datetime.combine(ship_date, dt.time(), dt.timezone.utc)
                                           if ship_date else None))
        session.add(record)
        session.flush()
        return record

    @staticmethod
    def record_json(record: SupplierRecord) -> dict[str, Any]:
        return {"seq": record.seq, "kind": record.kind, "created_at": _iso(record.created_at),
                "media_type": X12_MEDIA_TYPE, "data_base64": base64.b64encode(record.data).decode("ascii")}

    # -- POST /orders --------------------------------------------------------------------------------------------

    def receive_order(self, slug: str, body: bytes, content_type: str | None) -> tuple[int, dict[str, Any]]:
        supplier = self.supplier(slug)
        _check_document(body, content_type)
        digest = hashlib.sha256(body).hexdigest()
        try:
            document = parse_signed_document(body)
            order = x12.parse_850(document.content)
        except CmsError as exc:
            raise SandboxApiError(422, "unreadable_order", "This is not a signed CSOS order: " + exc.message,
                                  reasons=[{"code": "malformed", "message": exc.message}]) from None
        except x12.X12Error as exc:
            raise SandboxApiError(422, "unreadable_order", "The signed content is not an X12 850 order with a valid "
                                  "order number and purchaser DEA number: " + exc.message,
                                  reasons=[{"code": "malformed", "message": exc.message}]) from None
        purchaser = order.purchaser.dea_number or ""
        with self.lock, self.state.session() as session:
            existing = session.scalar(select(ReceivedOrder).where(
                ReceivedOrder.supplier_slug == slug, ReceivedOrder.purchaser_dea == purchaser,
                ReceivedOrder.order_number == order.order_number))
            if existing is not None:
                if existing.document_sha256 == digest:
                    return 200, existing.answer
                raise SandboxApiError(409, "order_number_reused",
                                      f"Order number {order.order_number} of purchaser {purchaser} was already "
                                      "received with different content. Issue a new order with a new number.")
            verdict = self.verifier().verify(body, now=self.now())
            reasons = list(verdict.reasons)
            if order.supplier.dea_number and order.supplier.dea_number != supplier.dea_number:
                reasons.append(Reason("wrong_supplier", f"The order is addressed to DEA number "
                                                        f"{order.supplier.dea_number}, not to {supplier.name} "
                                                        f"({supplier.dea_number})."))
            lost = session.scalar(select(LostOrderStatement).where(
                LostOrderStatement.supplier_slug == slug, LostOrderStatement.purchaser_dea == purchaser,
                LostOrderStatement.order_number == order.order_number).limit(1))
            if lost is not None:
                reasons.append(Reason("lost_order_replaced",
                                      f"The purchaser reported order {order.order_number} lost on "
                                      f"{lost.statement.get('date')}; a late original is returned not accepted "
                                      "(21 CFR 1305.26)."))
            if not reasons and self.reject_queue[slug]:
                reasons.append(Reason("supplier_declined", self.reject_queue[slug].pop(0)))
            lines = []
            for line in order.lines:
                schedule = verdict.line_schedules.get(line.line_number) or self.catalog.schedule_of(line.ndc)
                lines.append({"line_number": line.line_number, "ndc": line.ndc, "description": line.description,
                              "schedule": schedule.value if schedule else None, "packages": line.packages,
                              "shipped": 0, "voided": False,
                              "backordered": not reasons and line.ndc in supplier.backordered_ndcs})
            if reasons:
                status, ack_status = "rejected", x12.AckStatus.REJECTED
            elif any(line["backordered"] for line in lines):
                status, ack_status = "accepted_with_changes", x12.AckStatus.ACCEPTED_WITH_CHANGES
            else:
                status, ack_status = "accepted", x12.AckStatus.ACCEPTED
            ack_lines = []
            for line in lines:
                if status == "rejected":
                    line_status, reason = x12.LineStatus.REJECTED, None
                elif line["backordered"]:
                    line_status, reason = x12.LineStatus.BACKORDERED, "Backordered"
                else:
                    line_status, reason = x12.LineStatus.ACCEPTED, None
                ack_lines.append(x12.AckLine(line["line_number"], line_status, line["packages"], ndc=line["ndc"],
                                             reason=reason))
            reason_text = None
            if reasons:
                reason_text = x12_text("NOT ACCEPTED: " + "; ".join(f"{r.code}: {r.message}" for r in reasons))
            ack = x12.Acknowledgement855(order_number=order.order_number, order_date=order.date_signed,
                                         status=ack_status, date=self.now().date(), reason=reason_text,
                                         lines=tuple(ack_lines))
            row = ReceivedOrder(supplier_slug=slug, purchaser_dea=purchaser, order_number=order.order_number,
                                document=body, document_sha256=digest, received_at=self.now(),
                                date_signed=order.date_signed, status=status, answer={}, lines=lines)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:  # another process/thread got there first: answer like a repeat
                session.rollback()
                raise SandboxApiError(409, "order_number_reused", "This order number was just received.") from None
            record = self._append(session, row, "855", self._x12(session, supplier, x12.write_855, ack, purchaser))
            row.answer = {"order_number": order.order_number, "purchaser_dea": purchaser, "status": status,
                          "reasons": [{"code": r.code, "message": r.message} for r in reasons],
                          "acknowledgement": self.record_json(record)}
            if status != "rejected" and self.state.get_setting(f"auto_ship:{slug}", False):
                pending = [(line["line_number"], line["packages"]) for line in lines if not line["backordered"]]
                if pending:
                    self._ship(session, supplier, row, pending, self.now().date())
            session.commit()
            log.info("supplier %s: order %s/%s %s", slug, purchaser, order.order_number, status)
            return 200, row.answer

    # -- records ---------------------------------------------------------------------------------------------------

    def _order(self, session: Session, slug: str, purchaser: str, order_number: str) -> ReceivedOrder:
        try:
            purchaser = DeaNumber.parse(purchaser).value
            order_number = OrderNumber.parse(order_number).value
        except CsosError as exc:
            raise SandboxApiError(400, "invalid_value", exc.message) from None
        row = session.scalar(select(ReceivedOrder).where(
            ReceivedOrder.supplier_slug == slug, ReceivedOrder.purchaser_dea == purchaser,
            ReceivedOrder.order_number == order_number))
        if row is None:
            raise SandboxApiError(404, "unknown_order", f"{self.supplier(slug).name} never received order "
                                                        f"{order_number} of {purchaser}.")
        return row

    def records(self, slug: str, purchaser: str, order_number: str, after: str | None) -> dict[str, Any]:
        self.supplier(slug)
        try:
            after_seq = int(after) if after not in (None, "") else 0
        except ValueError:
            raise SandboxApiError(400, "invalid_value", "after must be a whole number (a record seq).") from None
        with self.state.session() as session:
            row = self._order(session, slug, purchaser, order_number)
            records = session.scalars(select(SupplierRecord).where(SupplierRecord.order_id == row.id,
                                                                   SupplierRecord.seq > after_seq)
                                      .order_by(SupplierRecord.seq)).all()
            return {"records": [self.record_json(r) for r in records]}

    # -- lost-order statements (O7) ------------------------------------------------------------------------------

    def receive_statement(self, slug: str, body: bytes, content_type: str | None) -> dict[str, Any]:
        self.supplier(slug)
        _check_document(body, content_type)
        try:
            document = parse_signed_document(body)
        except CmsError as exc:
            raise SandboxApiError(422, "statement_rejected", exc.message,
                                  reasons=[{"code": "malformed", "message": exc.message}]) from None
        reasons = [Reason(code, message) for code, message in check_signature(document)]
        try:
            text = document.content.decode("utf-8")
            if "-----BEGIN CSOS STATEMENT DATA-----" in text:  # plain words for a person, then the same as data
                text = text.split("-----BEGIN CSOS STATEMENT DATA-----", 1)[1].split(
                    "-----END CSOS STATEMENT DATA-----", 1)[0]
            statement = json.loads(text)
            if not isinstance(statement, dict) or statement.get("type") != "lost_order_statement":
                raise ValueError("not a lost_order_statement")
            order_number = OrderNumber.parse(str(statement.get("order_number", ""))).value
            purchaser = DeaNumber.parse(str(statement.get("purchaser_dea", ""))).value
            if not isinstance(statement.get("lines_not_received"), list):
                raise ValueError("lines_not_received must be a list")
            dt.date.fromisoformat(str(statement.get("date")))
        except (UnicodeDecodeError, ValueError, CsosError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise SandboxApiError(422, "statement_rejected", f"The statement is not a valid lost-order statement: "
                                                             f"{message}",
                                  reasons=[{"code": "malformed", "message": message}]) from None
        now = self.now()
        signing_time = document.signing_time or now
        result = self.validation.validate(document.signer_certificate, at=min(signing_time, now),
                                          intermediates=document.intermediates,
                                          crls=self.authority.current_crls(), fetch=False, now=now)
        reasons += [Reason(p.code, p.message) for p in result.problems]
        try:
            signer = CsosCertificate.from_certificate(document.signer_certificate)
            if not signer.can_sign_orders:
                reasons.append(Reason("not_signing_certificate", "A coordinator certificate cannot sign a "
                                                                 "lost-order statement."))
            elif not signer.matches_dea(purchaser):
                reasons.append(Reason("dea_number_mismatch", f"The certificate was not issued for {purchaser}."))
        except CertificateProfileError as exc:
            reasons.append(Reason("malformed", exc.message))
        if reasons:
            raise SandboxApiError(422, "statement_rejected", "The lost-order statement was not accepted.",
                                  reasons=[{"code": r.code, "message": r.message} for r in reasons])
        digest = hashlib.sha256(body).hexdigest()
        with self.lock, self.state.session() as session:
            known = session.scalar(select(LostOrderStatement).where(LostOrderStatement.supplier_slug == slug,
                                                                    LostOrderStatement.document_sha256 == digest))
            if known is None:
                session.add(LostOrderStatement(supplier_slug=slug, purchaser_dea=purchaser, order_number=order_number,
                                               document=body, document_sha256=digest, statement=statement,
                                               received_at=now))
                session.commit()
        return {"status": "recorded"}

    # -- training controls ---------------------------------------------------------------------------------------

    def ship(self, slug: str, data: dict[str, Any]) -> dict[str, Any]:
        supplier = self.supplier(slug)
        ship_date = self._date(data.get("ship_date"))
        with self.lock, self.state.session() as session:
            order = self._order(session, slug, text_field(data, "purchaser_dea", max_length=9),
                                text_field(data, "order_number", max_length=9))
            wanted = data.get("lines")
            if wanted is None:
                pending = [(line["line_number"], line["packages"] - line["shipped"]) for line in order.lines
                           if not line["voided"] and not line["backordered"] and line["packages"] > line["shipped"]]
            elif isinstance(wanted, list) and wanted and all(isinstance(item, dict) for item in wanted):
                pending = [(int_field(item, "line_number", minimum=1), int_field(item, "packages", minimum=1))
                           for item in wanted]
            else:
                raise SandboxApiError(400, "invalid_field", "lines is a list of {line_number, packages} or null for "
                                                            "everything still to ship.", field="lines")
            record = self._ship(session, supplier, order, pending, ship_date or self.now().date())
            session.commit()
            return {"record": self.record_json(record)}

    def _ship(self, session: Session, supplier: SandboxSupplier, order: ReceivedOrder,
              pending: list[tuple[int, int]], ship_date: dt.date) -> SupplierRecord:
        if order.status == "rejected":
            raise SandboxApiError(409, "order_not_accepted", "A rejected order cannot be shipped.")
        if order.voided:
            raise SandboxApiError(409, "order_voided", "This order was voided.")
        if not pending:
            raise SandboxApiError(409, "nothing_to_ship", "Every line is already shipped, voided or backordered.")
        if order.date_signed and not order.date_signed <= ship_date <= order.date_signed + ORDER_VALIDITY:
            raise SandboxApiError(409, "beyond_60_days", "An order may be filled only within 60 days of the date it "
                                                         f"was signed ({order.date_signed}) (21 CFR 1305.22).")
        lines = copy.deepcopy(order.lines)
        by_number = {line["line_number"]: line for line in lines}
        shipment_lines = []
        for number, packages in pending:
            line = by_number.get(number)
            if line is None:
                raise SandboxApiError(400, "unknown_line", f"The order has no line {number}.")
            if line["voided"]:
                raise SandboxApiError(409, "line_voided", f"Line {number} was voided.")
            if packages > line["packages"] - line["shipped"]:
                raise SandboxApiError(409, "exceeds_remaining",
                                      f"Line {number}: {packages} packages is more than the "
                                      f"{line['packages'] - line['shipped']} still to ship.")
            line["shipped"] += packages
            line["backordered"] = False
            shipment_lines.append(x12.ShipmentLine(number, line["ndc"], packages))
        seq = (session.scalar(select(SupplierRecord.seq).where(SupplierRecord.order_id == order.id)
                              .order_by(SupplierRecord.seq.desc()).limit(1)) or 0) + 1
        shipment = x12.Shipment856(order_number=order.order_number,
                                   shipment_id=f"{supplier.slug[:12]}-{order.id}-{seq}", ship_date=ship_date,
                                   created_at=self.now(), lines=tuple(shipment_lines))
        order.lines = lines
        return self._append(session, order, "856",
                            self._x12(session, supplier, x12.write_856, shipment, order.purchaser_dea),
                            ship_date=ship_date)

    def void(self, slug: str, data: dict[str, Any]) -> dict[str, Any]:
        supplier = self.supplier(slug)
        reason = text_field(data, "reason", required=False, max_length=200) or "Voided by the supplier"
        with self.lock, self.state.session() as session:
            order = self._order(session, slug, text_field(data, "purchaser_dea", max_length=9),
                                text_field(data, "order_number", max_length=9))
            if order.status == "rejected":
                raise SandboxApiError(409, "order_not_accepted", "A rejected order cannot be voided.")
            if order.voided:
                raise SandboxApiError(409, "order_voided", "This order was already voided.")
            lines = copy.deepcopy(order.lines)
            wanted = data.get("lines")
            if wanted is None:
                if any(line["shipped"] for line in lines):
                    raise SandboxApiError(409, "already_shipped", "Part of this order was shipped; void the unshipped "
                                                                  "lines one by one instead.")
                numbers: list[int] = []
                whole = True
            elif isinstance(wanted, list) and wanted and all(isinstance(n, int) and not isinstance(n, bool)
                                                             for n in wanted):
                whole = False
                numbers = sorted(set(wanted))
                by_number = {line["line_number"]: line for line in lines}
                for number in numbers:
                    line = by_number.get(number)
                    if line is None:
                        raise SandboxApiError(400, "unknown_line", f"The order has no line {number}.")
                    if line["voided"]:
                        raise SandboxApiError(409, "line_voided", f"Line {number} was already voided.")
                    if line["shipped"]:
                        raise SandboxApiError(409, "line_already_shipped", f"Line {number} was (partly) shipped; "
                                                                           "it cannot be voided.")
            else:
                raise SandboxApiError(400, "invalid_field", "lines is a list of line numbers, or null for the whole "
                                                            "order.", field="lines")
            for line in lines:
                if whole or line["line_number"] in numbers:
                    line["voided"] = True
            notice = x12.VoidNotice(order_number=order.order_number, order_date=order.date_signed,
                                    date=self.now().date(), whole_order=whole, voided_lines=tuple(numbers),
                                    reason=x12_text(reason))
            order.lines = lines
            order.voided = whole or all(line["voided"] for line in lines)
            record = self._append(session, order, "865",
                                  self._x12(session, supplier, x12.write_865, notice, order.purchaser_dea))
            session.commit()
            return {"record": self.record_json(record)}

    def set_faults(self, slug: str, data: dict[str, Any]) -> dict[str, Any]:
        self.supplier(slug)
        unknown = set(data) - set(FAULT_KEYS)
        if unknown:
            raise SandboxApiError(400, "invalid_field", f"Unknown switch(es): {', '.join(sorted(unknown))}; use "
                                                        f"{', '.join(FAULT_KEYS)}.")
        values = {key: int_field(data, key, maximum=60_000 if key == "latency_ms" else 1000)
                  for key in FAULT_KEYS if key in data}
        faults = self.faults[slug]
        with faults.lock:
            for key, value in values.items():
                setattr(faults, key, value)
        return {"faults": faults.as_json()}

    def set_auto(self, slug: str, data: dict[str, Any]) -> dict[str, Any]:
        self.supplier(slug)
        ship = data.get("ship")
        if not isinstance(ship, bool):
            raise SandboxApiError(400, "invalid_field", "ship must be true or false.", field="ship")
        with self.lock, self.state.session() as session:
            self.state.put_setting(session, f"auto_ship:{slug}", ship)
            session.commit()
        return {"auto": {"ship": ship}}

    def queue_rejections(self, slug: str, data: dict[str, Any]) -> dict[str, Any]:
        self.supplier(slug)
        count = int_field(data, "next", minimum=0, maximum=1000, default=1)
        reason = x12_text(text_field(data, "reason", required=False, max_length=200)) or "Declined by the supplier"
        with self.lock:
            self.reject_queue[slug] = [reason] * count
        return {"reject_next": count, "reason": reason}

    @staticmethod
    def _date(value: Any) -> dt.date | None:
        if value in (None, ""):
            return None
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            raise SandboxApiError(400, "invalid_field", "ship_date must be YYYY-MM-DD.", field="ship_date") from None

    # -- the supplier's own duty: report filled Schedule I/II orders -------------------------------------------------

    def filled_schedule_ii_report(self, slug: str, since: str | None) -> str:
        supplier = self.supplier(slug)
        since_date = self._date(since)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["supplier_dea", "purchaser_dea", "order_number", "date_signed", "line_number", "ndc",
                         "product", "schedule", "packages_ordered", "packages_shipped", "ship_date", "report_due_by"])
        with self.state.session() as session:
            rows = session.execute(
                select(SupplierRecord, ReceivedOrder).join(ReceivedOrder, ReceivedOrder.id == SupplierRecord.order_id)
                .where(ReceivedOrder.supplier_slug == slug, SupplierRecord.kind == "856")
                .order_by(SupplierRecord.ship_date, ReceivedOrder.id, SupplierRecord.seq)).all()
            for record, order in rows:
                shipment = x12.parse_856(record.data)
                if since_date and shipment.ship_date < since_date:
                    continue
                lines = {line["line_number"]: line for line in order.lines}
                for shipped in shipment.lines:
                    line = lines.get(shipped.line_number, {})
                    schedule = line.get("schedule")
                    if not schedule or Schedule.parse(schedule) not in REPORT_SCHEDULES or not shipped.packages_shipped:
                        continue
                    writer.writerow([supplier.dea_number, order.purchaser_dea, order.order_number,
                                     order.date_signed.isoformat() if order.date_signed else "",
                                     shipped.line_number, shipped.ndc, line.get("description", ""), schedule,
                                     line.get("packages", ""), shipped.packages_shipped,
                                     shipment.ship_date.isoformat(),
                                     add_business_days(shipment.ship_date, 2).isoformat()])
        return out.getvalue()


def _check_document(body: bytes, content_type: str | None) -> None:
    if (content_type or "").split(";")[0].strip().lower() != MEDIA_TYPE:
        raise SandboxApiError(415, "unsupported_media_type", f"Send the signed document with Content-Type: "
                                                             f"{MEDIA_TYPE}.")
    if not body:
        raise SandboxApiError(400, "empty_body", "The request body is empty: send the .csos file's bytes.")
    if len(body) > MAX_DOCUMENT_BYTES:
        raise SandboxApiError(413, "too_large", "The document is larger than 2 MB.")


class FaultInjector:
    """WSGI middleware: applies a supplier's fault switches to its API (never to ``/_training`` controls).

    ``drop`` and ``fail`` happen before the request is handled (nothing recorded); ``malformed`` after it (the order
    IS recorded; a retry gets the stored answer), so both kinds of transport failure can be practised.
    """

    _PATH = re.compile(r"^/suppliers/([^/]+)(/.*)?$")

    def __init__(self, app: Callable, desk: SupplierDesk) -> None:
        self.app = app
        self.desk = desk

    def __call__(self, environ: dict, start_response: Callable):
        match = self._PATH.match(environ.get("PATH_INFO", ""))
        faults = self.desk.faults.get(match.group(1)) if match else None
        if faults is None or (match.group(2) or "").startswith("/_training"):
            return self.app(environ, start_response)
        latency, fault = faults.take()
        if latency:
            time.sleep(latency / 1000)
        if fault == "drop":
            connection = environ.get("werkzeug.socket")
            if connection is not None:
                try:
                    connection.shutdown(2)  # socket.SHUT_RDWR: the client sees the connection closed, no answer
                except OSError:
                    pass
            raise ConnectionAbortedError("training fault: connection dropped")
        if fault == "fail":
            body = json.dumps({"error": "service_unavailable",
                               "message": "TRAINING fault: the supplier is temporarily unavailable."}).encode()
            start_response("503 SERVICE UNAVAILABLE", [("Content-Type", "application/json"), ("Retry-After", "1"),
                                                       ("Content-Length", str(len(body)))])
            return [body]
        if fault in _AFTER_FAULTS:
            captured: list[Any] = []

            def capture(status, headers, exc_info=None):
                captured.append(status)
                return captured.append

            result = self.app(environ, capture)
            try:
                for chunk in result:
                    captured.append(chunk)
            finally:
                if hasattr(result, "close"):
                    result.close()
            body = _spoiled(fault, b"".join(c for c in captured[1:] if isinstance(c, bytes)))
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        return self.app(environ, start_response)


def _spoiled(fault: str, body: bytes) -> bytes:
    """The supplier's real answer, spoiled the way the fault says (for practising hostile answers)."""
    if fault == "malformed":
        return b'{"status": "accep'
    if fault == "deep_json":
        return b'{"status": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    try:
        answer = json.loads(body)
        ack = answer["acknowledgement"]
        data = base64.b64decode(ack["data_base64"])
    except (ValueError, KeyError, TypeError):
        return b'{"status": "accep'
    if fault == "wrong_order":
        number = str(answer.get("order_number", "")).encode()
        other = number[:3] + (b"999999" if number[3:] != b"999999" else b"999998")
        data = data.replace(number, other)
    else:  # unreadable_ack
        data = b"ISA*this is not an acknowledgement~"
    ack["data_base64"] = base64.b64encode(data).decode("ascii")
    return json.dumps(answer).encode()


def suppliers_blueprint(desk: SupplierDesk) -> Blueprint:
    bp = Blueprint("suppliers", __name__)

    @bp.get("/suppliers")
    def index():
        return jsonify({"suppliers": [{"name": s.name, "slug": s.slug, "dea_number": s.dea_number, "url": s.url,
                                       "address_lines": list(s.address_lines), "city": s.city, "state": s.state,
                                       "postal_code": s.postal_code} for s in desk.suppliers.values()]})

    @bp.post("/suppliers/<slug>/orders")
    def receive_order(slug: str):
        status, body = desk.receive_order(slug, request.get_data(), request.content_type)
        return jsonify(body), status

    @bp.get("/suppliers/<slug>/orders/<purchaser>/<order_number>/records")
    def records(slug: str, purchaser: str, order_number: str):
        return jsonify(desk.records(slug, purchaser, order_number, request.args.get("after")))

    @bp.post("/suppliers/<slug>/statements")
    def statements(slug: str):
        return jsonify(desk.receive_statement(slug, request.get_data(), request.content_type))

    @bp.get("/suppliers/<slug>/reports/filled-schedule-ii.csv")
    def report(slug: str):
        return Response(desk.filled_schedule_ii_report(slug, request.args.get("since")), mimetype="text/csv")

    @bp.post("/suppliers/<slug>/_training/ship")
    def ship(slug: str):
        return jsonify(desk.ship(slug, json_body(request)))

    @bp.post("/suppliers/<slug>/_training/void")
    def void(slug: str):
        return jsonify(desk.void(slug, json_body(request)))

    @bp.post("/suppliers/<slug>/_training/reject")
    def reject(slug: str):
        return jsonify(desk.queue_rejections(slug, json_body(request)))

    @bp.post("/suppliers/<slug>/_training/faults")
    def faults(slug: str):
        return jsonify(desk.set_faults(slug, json_body(request)))

    @bp.get("/suppliers/<slug>/_training/faults")
    def get_faults(slug: str):
        desk.supplier(slug)
        return jsonify({"faults": desk.faults[slug].as_json()})

    @bp.post("/suppliers/<slug>/_training/auto")
    def auto(slug: str):
        return jsonify(desk.set_auto(slug, json_body(request)))

    from app.sandbox.as2_receiver import add_as2_routes  # the same suppliers over AS2 (RFC 4130)
    desk.as2 = add_as2_routes(bp, desk)

    return bp
