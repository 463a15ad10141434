"""The one order verifier (DESIGN.md §6): the sandbox supplier, `csos-desk verify`, the pre-sign check and the
records integrity check all call it.

It never stops at the first failure: a supplier, an inspector and a pharmacist all want the whole list. Each rule
has a stable code; messages are plain language.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence

from cryptography import x509

from app.errors import CsosError, InvalidValue
from app.models.values import OrderNumber, Schedule
from app.services.signing.cms import CmsError, SignedDocument, check_signature, parse_signed_document
from app.services.certificates.profile import CertificateProfileError, CsosCertificate
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.usage_indicator import read_usage_indicator
from app.services.signing.x12 import PurchaseOrder, X12Error, parse_850

ORDER_VALIDITY = dt.timedelta(days=60)  # O5
FUTURE_TOLERANCE = dt.timedelta(days=1)

# Every reason code the verifier can give, for documentation, the CLI and tests.
REASON_CODES = (
    "malformed", "signature_invalid", "content_altered", "untrusted_chain", "certificate_expired",
    "certificate_not_yet_valid", "certificate_revoked", "revocation_unknown", "not_signing_certificate",
    "dea_number_mismatch", "schedule_not_authorized", "missing_field", "order_number_invalid", "signed_in_future",
    "order_expired", "unknown_product",
)


@dataclass(frozen=True)
class Reason:
    code: str
    message: str


class ScheduleLookup(Protocol):
    """The product catalog as the verifier sees it: an NDC's schedule, or None when the catalog doesn't know it."""

    def schedule_of(self, ndc: str) -> Schedule | None: ...


class MappingSchedules:
    """Schedules held in memory (loaded once from the order book's catalog or an FDA file)."""

    def __init__(self, schedules: Mapping[str, Schedule]) -> None:
        self._schedules = dict(schedules)

    def schedule_of(self, ndc: str) -> Schedule | None:
        return self._schedules.get(ndc)

    def __len__(self) -> int:
        return len(self._schedules)

    @classmethod
    def from_database(cls, db: Any) -> "MappingSchedules":
        from sqlalchemy import select

        from app.models.orderbook import Product

        with db.session() as session:
            rows = session.execute(select(Product.ndc, Product.schedule)).all()
        return cls({ndc: Schedule.parse(schedule) for ndc, schedule in rows})


@dataclass
class Verdict:
    accepted: bool
    reasons: list[Reason]
    order: PurchaseOrder | None = None
    signer: CsosCertificate | None = None
    signing_time: dt.datetime | None = None
    line_schedules: dict[int, Schedule | None] = field(default_factory=dict)
    test_indicator: str | None = None  # ISA15 of the signed order: T (test, training) or P; a note, never a reason

    @property
    def notes(self) -> list[str]:
        """What the verifier noticed that is not a failure."""
        return [f"test_indicator: {self.test_indicator}"] if self.test_indicator else []

    @property
    def codes(self) -> list[str]:
        return [reason.code for reason in self.reasons]

    def to_json(self) -> dict[str, Any]:
        order = None
        if self.order is not None:
            o = self.order
            order = {
                "order_number": o.order_number,
                "purchaser_dea": o.purchaser.dea_number,
                "supplier_dea": o.supplier.dea_number,
                "signed_at": self.signing_time.isoformat() if self.signing_time else None,
                "lines": [{
                    "ndc": line.ndc, "packages": line.packages, "package_quantity": str(line.package_quantity),
                    "unit": line.unit.value, "description": line.description,
                    "schedule": (self.line_schedules.get(line.line_number).value
                                 if self.line_schedules.get(line.line_number) else None),
                } for line in o.lines],
            }
        signer = None
        if self.signer is not None:
            s = self.signer
            signer = {"subject": s.certificate.subject.rfc4514_string(), "serial": s.serial_number,
                      "not_after": s.not_after.isoformat(), "schedules": sorted(x.value for x in s.schedules),
                      "kind": s.kind}
        return {"accepted": self.accepted, "reasons": [{"code": r.code, "message": r.message} for r in self.reasons],
                "order": order, "signer": signer, "test_indicator": self.test_indicator, "notes": self.notes}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class OrderVerifier:
    """Checks a signed order the way a supplier must (21 CFR 1311.50) and reports every failed rule."""

    def __init__(self, *, validation: CertificateValidationService, catalog: ScheduleLookup,
                 crls: Sequence[Any] | None = None, fetch_crls: bool = True,
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.validation = validation
        self.catalog = catalog
        self.crls = list(crls) if crls else None
        self.fetch_crls = fetch_crls
        self.clock = clock

    # -- a signed .csos -------------------------------------------------------------------------------------------

    def verify(self, data: bytes, *, now: dt.datetime | None = None) -> Verdict:
        try:
            document = parse_signed_document(data)
        except CmsError as exc:
            return Verdict(False, [Reason("malformed", exc.message)])
        return self.verify_document(document, now=now)

    def verify_document(self, document: SignedDocument, *, now: dt.datetime | None = None) -> Verdict:
        """``verify`` of a document already read with ``parse_signed_document`` (the records check reads each
        stored document once for its own checks and this)."""
        now = now or self.clock()
        reasons = [Reason(code, message) for code, message in check_signature(document)]
        try:
            signer = _csos_view(document.signer_certificate)
        except CertificateProfileError as exc:
            reasons.append(Reason("malformed", f"The signer's certificate has a malformed CSOS extension: "
                                               f"{exc.message}"))
            signer = None
        order, order_reasons = _parse_order(document)
        reasons += order_reasons
        signing_time = document.signing_time
        if signing_time is not None:
            if signing_time.tzinfo is None:
                signing_time = signing_time.replace(tzinfo=dt.timezone.utc)
            # A signing time in the future is its own reason; the certificate is judged no later than now.
            reasons += self.certificate_reasons(document.signer_certificate, document.intermediates,
                                                at=min(signing_time, now), now=now)
            reasons += time_reasons(signing_time, now)
        verdict = Verdict(False, reasons, order=order, signer=signer, signing_time=signing_time,
                          test_indicator=read_usage_indicator(document.content))
        if signer is not None:
            reasons += signer_reasons(signer)
        if order is not None:
            verdict.line_schedules = {line.line_number: self.catalog.schedule_of(line.ndc) for line in order.lines}
            reasons += order_reasons_for(order, signer, verdict.line_schedules,
                                         signing_time=signing_time)
        verdict.reasons = _unique(reasons)
        verdict.accepted = not verdict.reasons
        return verdict

    # -- the rules the pre-sign check shares ----------------------------------------------------------------------

    def certificate_reasons(self, certificate: x509.Certificate, intermediates: Iterable[x509.Certificate], *,
                            at: dt.datetime, now: dt.datetime) -> list[Reason]:
        result = self.validation.validate(certificate, at=at, intermediates=list(intermediates), crls=self.crls,
                                          fetch=self.fetch_crls, now=now)
        return [Reason(problem.code, problem.message) for problem in result.problems]

    def check_before_signing(self, order: PurchaseOrder, certificate: x509.Certificate,
                             intermediates: Sequence[x509.Certificate], *, now: dt.datetime | None = None
                             ) -> Verdict:
        """What a supplier would find if ``order`` were signed now with ``certificate`` (issue 3/10, S1)."""
        now = now or self.clock()
        reasons: list[Reason] = []
        try:
            signer: CsosCertificate | None = _csos_view(certificate)
        except CertificateProfileError as exc:
            reasons.append(Reason("malformed", exc.message))
            signer = None
        reasons += self.certificate_reasons(certificate, intermediates, at=now, now=now)
        if signer is not None:
            reasons += signer_reasons(signer)
        schedules = {line.line_number: self.catalog.schedule_of(line.ndc) for line in order.lines}
        reasons += order_reasons_for(order, signer, schedules, signing_time=now)
        unique = _unique(reasons)
        return Verdict(not unique, unique, order=order, signer=signer, signing_time=now, line_schedules=schedules)


@functools.lru_cache(maxsize=256)
def _csos_view_of(certificate: x509.Certificate) -> CsosCertificate:
    """The CSOS view of a certificate, built once per certificate (x509.Certificate hashes by its DER)."""
    return CsosCertificate.from_certificate(certificate)


# The CMS reader hands back the same certificate object for every order from one signer: found by identity first
# (hashing a certificate costs a few µs). Each entry holds its certificate, so its id() cannot be reused meanwhile.
_views_by_object: dict[int, tuple[x509.Certificate, CsosCertificate]] = {}


def _csos_view(certificate: x509.Certificate) -> CsosCertificate:
    entry = _views_by_object.get(id(certificate))
    if entry is not None and entry[0] is certificate:
        return entry[1]
    view = _csos_view_of(certificate)
    if len(_views_by_object) >= 256:
        _views_by_object.clear()
    _views_by_object[id(certificate)] = (certificate, view)
    return view


# signer.matches_dea (a SHA-1 per call) per signer and DEA number: the same pair comes order after order. Found by
# identity (each entry holds its signer, so the id() cannot be reused meanwhile), as _views_by_object.
_dea_matches: dict[tuple[int, str], tuple[CsosCertificate, bool]] = {}


def _matches_dea(signer: CsosCertificate, dea_number: str) -> bool:
    entry = _dea_matches.get((id(signer), dea_number))
    if entry is not None and entry[0] is signer:
        return entry[1]
    matches = signer.matches_dea(dea_number)
    if len(_dea_matches) >= 1024:
        _dea_matches.clear()
    _dea_matches[(id(signer), dea_number)] = (signer, matches)
    return matches


def _parse_order(document: SignedDocument) -> tuple[PurchaseOrder | None, list[Reason]]:
    try:
        return parse_850(document.content), []
    except X12Error as exc:
        if exc.value_code and exc.value_code.startswith("order_number"):
            return None, [Reason("order_number_invalid", exc.message)]
        if exc.code in ("x12.missing_segment", "x12.missing_element"):
            name = (exc.segment or "segment").lower()
            return None, [Reason(f"missing_field:{_FIELD_NAMES.get(exc.segment or '', name)}", exc.message)]
        return None, [Reason("malformed", f"The signed content is not a valid X12 850 order: {exc.message}")]


_FIELD_NAMES = {"BEG": "order_number", "N1": "party", "N3": "address", "N4": "city_state_zip", "PO1": "line",
                "PID": "product_description", "PO4": "package_quantity", "CTT": "line_count"}


def signer_reasons(signer: CsosCertificate) -> list[Reason]:
    if not signer.can_sign_orders:
        return [Reason("not_signing_certificate",
                       f"The certificate of {signer.subscriber_name or 'the signer'} is an administrative "
                       "(coordinator) certificate; it cannot sign orders.")]
    return []


def time_reasons(signing_time: dt.datetime, now: dt.datetime) -> list[Reason]:
    reasons = []
    if signing_time > now + FUTURE_TOLERANCE:
        reasons.append(Reason("signed_in_future", f"The order says it was signed on {signing_time:%Y-%m-%d %H:%M} "
                                                  "UTC, more than a day in the future."))
    if now - signing_time > ORDER_VALIDITY:
        reasons.append(Reason("order_expired", f"The order was signed on {signing_time:%Y-%m-%d}; an order is not "
                                               "valid more than 60 days after it was signed."))
    return reasons


def order_reasons_for(order: PurchaseOrder, signer: CsosCertificate | None,
                      schedules: Mapping[int, Schedule | None], *, signing_time: dt.datetime | None
                      ) -> list[Reason]:
    reasons: list[Reason] = []
    # O1 fields (the supplier's DEA number and address may be completed by the supplier).
    required = {"order_number": order.order_number, "purchaser_dea": order.purchaser.dea_number,
                "purchaser_name": order.purchaser.name, "supplier_name": order.supplier.name,
                "date_signed": order.date_signed}
    for name, value in required.items():
        if value in (None, ""):
            reasons.append(Reason(f"missing_field:{name}", f"The order has no {name.replace('_', ' ')}."))
    if not order.lines:
        reasons.append(Reason("missing_field:lines", "The order has no lines."))
    for line in order.lines:
        if line.ndc and line.description and line.packages and line.package_quantity:
            continue  # all there (a true str, int or Decimal is none of None, "", 0)
        for name, value in (("ndc", line.ndc), ("description", line.description), ("packages", line.packages),
                            ("package_quantity", line.package_quantity)):
            if value in (None, "", 0):
                reasons.append(Reason(f"missing_field:{name}", f"Line {line.line_number} has no "
                                                               f"{name.replace('_', ' ')}."))
    # The order's date is the pharmacy's local date of the signing (time zones span UTC-12 to UTC+14): never more
    # than a day from the UTC signing time, or the order number's year could be chosen freely.
    if order.date_signed and signing_time is not None:
        utc_day = signing_time.astimezone(dt.timezone.utc).date()
        if abs((order.date_signed - utc_day).days) > 1:
            reasons.append(Reason("date_mismatch", f"The order is dated {order.date_signed:%Y-%m-%d} but was signed "
                                                   f"on {utc_day:%Y-%m-%d} (UTC); an order carries the date it was "
                                                   "signed."))
    # O2
    try:
        number = OrderNumber.parse(order.order_number or "")
        # The year of the order's own date (BEG05, the pharmacy's local date): on 31 December evening in
        # California the UTC signing time is already next year, the order is not.
        year = order.date_signed.year if order.date_signed else (signing_time or dt.datetime.now(dt.timezone.utc)).year
        if number.year_two_digits != f"{year % 100:02d}":
            reasons.append(Reason("order_number_invalid",
                                  f"Order number {number.value} must start with the last two digits of the year it "
                                  f"was signed ({year % 100:02d})."))
    except InvalidValue as exc:
        reasons.append(Reason("order_number_invalid", exc.message))
    # S1: the purchaser DEA number in the order is the one the certificate was issued for.
    if signer is not None and order.purchaser.dea_number:
        if signer.can_sign_orders and not _matches_dea(signer, order.purchaser.dea_number):
            reasons.append(Reason("dea_number_mismatch",
                                  f"The certificate was not issued for DEA number {order.purchaser.dea_number}. "
                                  "Sign with the certificate of that registration."))
    # Schedules come from the catalog, never from the order.
    for line in order.lines:
        schedule = schedules.get(line.line_number)
        if schedule is None:
            reasons.append(Reason("unknown_product",
                                  f"Line {line.line_number}: NDC {line.ndc[:5]}-{line.ndc[5:9]}-{line.ndc[9:]} is not "
                                  "in the product catalog, so its schedule cannot be checked."))
        elif (schedule.is_controlled and signer is not None and signer.can_sign_orders
              and not signer.authorizes(schedule)):
            reasons.append(Reason("schedule_not_authorized",
                                  f"Line {line.line_number} ({line.description}) is {schedule.label}; the "
                                  "certificate does not authorize that schedule."))
    return reasons


def _unique(reasons: Iterable[Reason]) -> list[Reason]:
    seen: set[tuple[str, str]] = set()
    out = []
    for reason in reasons:
        key = (reason.code, reason.message)
        if key not in seen:
            seen.add(key)
            out.append(reason)
    return out


class VerificationError(CsosError):
    code = "verify.failed"
