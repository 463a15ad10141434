"""Signing an order: 850 from the order book → pre-sign check → CMS → stored exactly as it will be transmitted.

The stored ``signed_document`` is the byte string suppliers receive; it is written in the same transaction that moves
the order to ``signed`` so no order is ever "signed" without its document or the other way round.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from app.errors import CsosError
from app.models.orderbook import Order
from app.models.states import OrderStatus
from app.models.values import PackageUnit
from app.services.orders.descriptions import ascii_text
from app.services.orders.local_dates import local_date, zone_for
from app.services.signing.clock import ClockCheck, ClockNotVerified, ClockOff, ClockState
from app.services.signing.draft_load import DraftForSigning, load_draft
from app.services.signing.cms import CmsError, SignsData, check_signature, parse_signed_document
from app.services.signing.cms import prepare_signed_document
from app.services.orders.orderbook import OrderBook
from app.services.signing.usage_indicator import PRODUCTION
from app.services.signing.verifier import OrderVerifier, Reason, Verdict
from app.services.signing.x12 import OrderLine850, Party, PurchaseOrder, X12Error, parse_850, write_850

log = logging.getLogger(__name__)


class PreSignCheckFailed(CsosError):
    """The order would be refused by the supplier; nothing was signed."""

    code = "presign.failed"

    def __init__(self, reasons: Sequence[Reason]) -> None:
        lines = "\n".join(f"- {reason.message}" for reason in reasons)
        super().__init__(f"The order was not signed because a supplier would refuse it:\n{lines}")
        self.reasons = list(reasons)


class NotDraft(CsosError):
    code = "order.not_draft"


def purchase_order_from(order: Order, *, signed_on: dt.date) -> PurchaseOrder:
    """The 850 content of an order from the order book (duty O1 fields)."""
    registration, supplier = order.registration, order.supplier
    # Names and addresses may hold accents ("Éclair Drug"); the 850 carries their ASCII spelling (one rule:
    # app.services.orders.descriptions.ascii_text), checked to fit when they were entered (orders.parties).
    purchaser = _party(registration.name, registration.dea_number, tuple(registration.address_lines),
                       registration.city, registration.state, registration.postal_code, supplier=False)
    supplier_party = _party(supplier.name, supplier.dea_number, tuple(supplier.address_lines or ()), supplier.city,
                            supplier.state, supplier.postal_code, supplier=True)
    lines = tuple(
        OrderLine850(line_number=line.line_number, packages=line.packages, ndc=line.ndc,
                     description=line.description,
                     package_quantity=_quantity(line.package_quantity), unit=PackageUnit.parse(line.unit))
        for line in order.lines
    )
    return PurchaseOrder(order_number=order.order_number, date_signed=signed_on, purchaser=purchaser,
                         supplier=supplier_party, lines=lines)


@functools.lru_cache(maxsize=64)
def _party(name: str, dea_number: str | None, address_lines: tuple[str, ...], city: str | None, state: str | None,
           postal_code: str | None, *, supplier: bool) -> Party:
    """An N1 party in ASCII (a pharmacy signs for the same few registrations and suppliers: spelled once each). The
    supplier's address goes in only when complete (O1: the supplier completes it)."""
    if supplier and not (address_lines and city and state and postal_code):
        return Party(name=ascii_text(name), dea_number=dea_number)
    return Party(name=ascii_text(name), dea_number=dea_number,
                 address_lines=tuple(ascii_text(line) for line in address_lines), city=ascii_text(city),
                 state=state, postal_code=postal_code)


def _quantity(value):  # 100.000 → 100; 2.5 stays Decimal
    return int(value) if value == int(value) else value.normalize()


def interchange_ids(order: Order, *, test_indicator: str = PRODUCTION) -> dict[str, object]:
    """Envelope identifiers. ISA13/GS06 come from the order's row id: unique per order book, and an order is
    signed once only (signed content is immutable). ISA15 is ``test_indicator``: T in training, P in production
    (``usage_indicator.for_profile``)."""
    control = order.id % 1_000_000_000 or 1
    receiver = order.supplier.dea_number or f"SUPPLIER{order.supplier.id}"
    return {"interchange_control_number": control, "group_control_number": control,
            "sender_id": order.registration.dea_number, "receiver_id": receiver[:15],
            "usage_indicator": test_indicator}


class SignedOrder:
    """What ``OrderSigningService.sign`` returns. ``order``: the detached order (registration, supplier and lines
    loaded) as stored, read when first asked for (most callers never look at it)."""

    def __init__(self, order: Order | Callable[[], Order], document: bytes, content: bytes, verdict: Verdict,
                 notices: list[Any] | None = None) -> None:
        self._order = order
        self.document, self.content, self.verdict = document, content, verdict
        self.notices: list[Any] = notices if notices is not None else []  # recorded with the signing

    @property
    def order(self) -> Order:
        if callable(self._order):
            self._order = self._order()
        return self._order

    def __repr__(self) -> str:
        return f"SignedOrder(document={len(self.document)} bytes, notices={len(self.notices)})"


RevocationFound = Callable[[str, dt.datetime, "str | None"], Any]

# How long the notices shown before the password stand for the signing's record (see ``ShownNotices``).
SHOWN_NOTICES_STAND_FOR = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class ShownNotices:
    """The unusual-quantity notices as the signer read them before signing (the sign dialog, ``order sign``), with
    the draft's lines and the moment they were worked out for (``OrderSigningService.notices_to_show``).

    ``sign`` records these, the ones the decision was made on, instead of working them out a second time after the
    password: only while they still describe this signing — the same lines, the same local month, and worked out
    less than ``SHOWN_NOTICES_STAND_FOR`` before. Otherwise it works them out again, as when none are given."""

    notices: tuple[Any, ...]
    line_rows: tuple[tuple[Any, ...], ...]
    worked_out_at: dt.datetime


class OrderSigningService:
    """``clock_check``: the K6 rule (``ClockRule``) every signing front end passes. ``on_revoked(fingerprint,
    revoked_at, reason)``: told when the pre-sign check finds the signer's own certificate on a CRL, so the
    certificate book marks it revoked everywhere at once (``CertificateBook.record_crl_revocation``)."""

    def __init__(self, book: OrderBook, verifier: OrderVerifier, *,
                 clock_check: Callable[[], ClockCheck] | None = None,
                 clock: Callable[[], dt.datetime] | None = None,
                 on_revoked: RevocationFound | None = None,
                 usage_settings: Mapping[str, Any] | None = None,
                 test_indicator: str = PRODUCTION) -> None:
        """``test_indicator``: ISA15 of the interchanges signed here, from the profile (``usage_indicator.
        for_profile(config)``): T in training, P in production."""
        self.book = book
        self.test_indicator = test_indicator
        # monthly_limits / time_zones for the unusual-quantity notice (app.services.orders.history)
        self.usage_settings = usage_settings
        self.verifier = verifier
        self.clock_check = clock_check
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.on_revoked = on_revoked

    def usage_notices(self, order_id: int, now: dt.datetime | None = None, *,
                      draft: DraftForSigning | None = None) -> list[Any]:
        """Unusual-quantity notices for this draft (issue 21). A notice never blocks: a failure reads as none.
        ``draft``: the order as ``sign`` already read it, so its lines are not read again."""
        from sqlalchemy.exc import SQLAlchemyError

        from app.services.orders.history import unusual_quantities

        settings = dict(self.usage_settings or {})
        settings.setdefault("time_zones", getattr(self.book, "time_zones", None) or {})
        try:
            return unusual_quantities(self.book.db, order_id, now=now or self.clock(), settings=settings,
                                      lines=None if draft is None else draft.notice_lines())
        except (CsosError, SQLAlchemyError) as exc:
            log.info("usage notice skipped: %s", getattr(exc, "code", type(exc).__name__))
            return []

    def notices_to_show(self, order_id: int, now: dt.datetime | None = None) -> ShownNotices:
        """The notices to show before the password, kept with what they were worked out for (``ShownNotices``).
        Never a block: when the draft cannot be read, none are shown, and the signing works them out itself."""
        from sqlalchemy.exc import SQLAlchemyError

        now = (now or self.clock()).astimezone(dt.timezone.utc)
        try:
            draft = load_draft(self.book.db, order_id)
        except (CsosError, SQLAlchemyError) as exc:
            log.info("usage notice skipped: %s", getattr(exc, "code", type(exc).__name__))
            return ShownNotices(notices=(), line_rows=(), worked_out_at=now)  # no lines: never stands for a signing
        return ShownNotices(notices=tuple(self.usage_notices(order_id, now, draft=draft)),
                            line_rows=tuple(draft.line_rows), worked_out_at=now)

    def _still_shown(self, shown: ShownNotices | None, order: DraftForSigning,
                     now: dt.datetime) -> ShownNotices | None:
        """``shown`` when it still describes signing ``order`` at ``now`` (see ``ShownNotices``), else None."""
        # -1 s: a signing's ``now`` is cut to the second, so it may read just before the moment they were shown.
        if shown is None or not -dt.timedelta(seconds=1) < now - shown.worked_out_at < SHOWN_NOTICES_STAND_FOR:
            return None
        if self.order_date(order, now).replace(day=1) != self.order_date(order, shown.worked_out_at).replace(day=1):
            return None
        if not shown.line_rows or shown.line_rows != tuple(order.line_rows):
            return None
        return shown

    def order_date(self, order: Order, now: dt.datetime) -> dt.date:
        """BEG05: the pharmacy's local date at ``now`` (signingTime stays UTC)."""
        return local_date(now, zone_for(getattr(self.book, "time_zones", None), order.registration.dea_number))

    def check(self, order_id: int, *, certificate: x509.Certificate, intermediates: Sequence[x509.Certificate],
              now: dt.datetime | None = None) -> Verdict:
        """The pre-sign check alone (for the UI to show each rule before asking for the password)."""
        now = now or self.clock()
        order = load_draft(self.book.db, order_id)
        verdict = self.verifier.check_before_signing(purchase_order_from(order, signed_on=self.order_date(order, now)),
                                                     certificate, intermediates, now=now)
        self._note_revocation(verdict, certificate, intermediates, now)
        return verdict

    def _note_revocation(self, verdict: Verdict, certificate: x509.Certificate,
                         intermediates: Sequence[x509.Certificate], now: dt.datetime) -> None:
        if self.on_revoked is None or "certificate_revoked" not in {r.code for r in verdict.reasons}:
            return
        found = self.verifier.validation.leaf_revocation(certificate, intermediates=intermediates, now=now)
        if found is not None:
            self.on_revoked(hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest(), *found)

    def verify_clock(self) -> ClockCheck | None:
        """K6 before the key is touched: more than 5 minutes off refuses everywhere; an unverified clock refuses in
        production (training goes on; the caller warns). None when no rule was given."""
        if self.clock_check is None:
            return None
        clock = self.clock_check()
        if clock.state is ClockState.OFF:
            raise ClockOff(clock.message)
        if clock.blocks_signing:
            raise ClockNotVerified(clock.message)
        return clock

    def sign(self, order_id: int, *, signer: SignsData, certificate: x509.Certificate,
             intermediates: Sequence[x509.Certificate] = (), now: dt.datetime | None = None,
             shown_notices: ShownNotices | None = None) -> SignedOrder:
        """Clock rule → order (one query) → pre-sign check → 850 (read back) → CMS → final check of the exact
        bytes → ONE transaction: document stored, ``draft → signed``, audit event (``OrderBook.store_signed``).

        The unusual-quantity notices recorded with the signing are ``shown_notices``, the ones the signer read
        before the password, while they still describe this signing (``ShownNotices``); otherwise they are worked
        out here. Then a signer that offers ``sign_later`` (a token: it signs on its own worker thread) is started
        and the notice is worked out while it signs; with any other the notice comes after the final check. Either
        way nothing is stored before the final check has passed.

        The returned ``SignedOrder.order`` is the detached order as stored (registration, supplier and lines
        loaded), read when first asked for; ``verdict`` is the pre-sign check's, which the final check pins to the
        stored bytes (see ``check_signed_document``).
        """
        clock = self.verify_clock()
        now = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        order = load_draft(self.book.db, order_id)
        if order.status is not OrderStatus.DRAFT:
            raise NotDraft(f"Order {order.order_number} is {order.status.label.lower()}; only a draft is signed.")
        purchase_order = purchase_order_from(order, signed_on=self.order_date(order, now))
        verdict = self.verifier.check_before_signing(purchase_order, certificate, intermediates, now=now)
        self._note_revocation(verdict, certificate, intermediates, now)
        if not verdict.accepted:
            raise PreSignCheckFailed(verdict.reasons)
        content = write_850(purchase_order, created_at=now,  # type: ignore[arg-type]
                            **interchange_ids(order, test_indicator=self.test_indicator))
        reasons = check_content(content, purchase_order)
        if reasons:
            raise PreSignCheckFailed(reasons)
        certificate_der = certificate_bytes(certificate)
        intermediates_der = [certificate_bytes(c) for c in intermediates]
        unsigned = prepare_signed_document(content, algorithm=signer.signature_algorithm,
                                           certificate_der=certificate_der, intermediates_der=intermediates_der,
                                           signing_time=now)
        shown = self._still_shown(shown_notices, order, now)
        notices: list[Any] | None = list(shown.notices) if shown is not None else None
        sign_later = getattr(signer, "sign_later", None) if shown is None else None
        if sign_later is not None:
            # A token signs on its own thread without holding the GIL: the notice is worked out meanwhile.
            pending = sign_later(unsigned.to_sign)
            notices = self.usage_notices(order_id, now, draft=order)
            signature = pending.result()
        else:
            signature = signer.sign(unsigned.to_sign)
        document = unsigned.with_signature(signature)
        # What leaves the pharmacy is checked as it will be stored and sent (see check_signed_document).
        reasons = check_signed_document(document, content=content, certificate_der=certificate_der,
                                        intermediates_der=intermediates_der, signing_time=now)
        if reasons:
            raise PreSignCheckFailed(reasons)
        fingerprint = _fingerprint(certificate_der)
        payload_sha256 = hashlib.sha256(content).hexdigest()
        if notices is None:
            notices = self.usage_notices(order_id, now, draft=order)
        if not self.book.store_signed(order_id, document=document, payload_sha256=payload_sha256, signed_at=now,
                                      signer_fingerprint=fingerprint, signed_lines=order.line_rows,
                                      details={"signer_fingerprint": fingerprint,
                                               "document_sha256": hashlib.sha256(document).hexdigest(),
                                               **({"clock": clock.audit_note} if clock else {}),
                                               **({"unusual_quantity": [n.to_json() for n in notices]}
                                                  if notices else {}),
                                               **({"unusual_quantity_shown_at": shown.worked_out_at.isoformat()}
                                                  if notices and shown is not None else {})}):
            raise NotDraft(f"Order {order.order_number} changed while it was being signed; nothing was stored.")
        # The order as stored, read when first asked for (most callers never look at it).
        return SignedOrder(order=functools.partial(self.book.order_for_signing, order_id),
                           document=document, content=content, verdict=verdict, notices=notices)


_DER_MAX = 64
_der_by_id: dict[int, tuple[x509.Certificate, bytes]] = {}


def certificate_bytes(certificate: x509.Certificate) -> bytes:
    """``certificate.public_bytes(DER)``, worked out once per certificate object (it costs ~16 µs each time, and
    every signing uses the same signer certificate and intermediates, and the CMS reader hands back the same
    certificate objects for them). Keyed on the object itself: the entry holds it, so its id cannot be reused."""
    entry = _der_by_id.get(id(certificate))
    if entry is not None and entry[0] is certificate:
        return entry[1]
    der = certificate.public_bytes(Encoding.DER)
    if len(_der_by_id) >= _DER_MAX:
        _der_by_id.clear()  # a handful of certificates in practice; clear() is safe beside other threads
    _der_by_id[id(certificate)] = (certificate, der)
    return der


@functools.lru_cache(maxsize=16)
def _fingerprint(certificate_der: bytes) -> str:
    return hashlib.sha256(certificate_der).hexdigest()


def check_content(content: bytes, purchase_order: PurchaseOrder) -> list[Reason]:
    """The 850 bytes say exactly what the pre-sign check judged: they parse back to the same ``PurchaseOrder``.

    This is what the supplier's verifier does first with the content (``parse_850``); an X12 writer fault (a
    dropped line, a field in the wrong element, a value the reader refuses) is caught here, before the key is used.
    """
    try:
        parsed = parse_850(content)
    except X12Error as exc:
        return [Reason("malformed", f"The order as written for the supplier cannot be read back: {exc.message}")]
    if parsed != purchase_order:
        return [Reason("content_altered", "The order as written for the supplier does not read back as the order "
                                          "that was checked; nothing was signed.")]
    return []


def check_signed_document(document: bytes, *, content: bytes, certificate_der: bytes,
                          intermediates_der: Sequence[bytes], signing_time: dt.datetime) -> list[Reason]:
    """The final check before storing: the exact bytes to be stored and sent verify. Returns the failed rules.

    It replaces a full ``OrderVerifier.verify`` of the document, which would repeat the pre-sign check's work; it
    covers the same faults because every input of that verification is pinned to something already checked:

    - ``parse_signed_document`` reads the bytes the way the supplier's verifier does, so a CMS encoder fault that
      makes them unreadable (or not one SignedData with id-data content and one signer) is reported ``malformed``;
    - ``check_signature`` (the verifier's own cryptographic rules): the signature over the signed attributes
      verifies with the public key of the signer certificate found in the document (a key that does not match
      the certificate, or a corrupted signature, fails here), messageDigest equals SHA-256 of the embedded content,
      contentType is id-data, signingCertificateV2 names the signer certificate by its SHA-256, signingTime present;
    - the embedded content is byte-identical to the 850 that passed the pre-sign check and read back as the
      checked order (``check_content``), so the supplier's order rules (fields, order number, DEA number hash,
      schedules) see what the pre-sign check saw;
    - the signer certificate is the very certificate the pre-sign check validated (chain, CRL, expiry at signing
      time, CSOS rules), the embedded certificates are exactly it and the intermediates that chain was built from,
      and signingTime is the time the check judged: the supplier's certificate and time rules get the same inputs
      and so the same verdict (the pre-sign check's validation is memoised on those very inputs).
    """
    try:
        parsed = parse_signed_document(document)
    except CmsError as exc:
        return [Reason("malformed", f"The signed document just built cannot be read back: {exc.message}")]
    reasons = [Reason(code, message) for code, message in check_signature(parsed)]
    if parsed.content != content:
        reasons.append(Reason("content_altered", "The signed document does not carry the order that was checked."))
    if certificate_bytes(parsed.signer_certificate) != certificate_der:
        reasons.append(Reason("signature_invalid", "The signed document names another signer certificate than the "
                                                   "one that was checked."))
    embedded = sorted(certificate_bytes(c) for c in parsed.certificates)
    if embedded != sorted([certificate_der, *intermediates_der]):
        reasons.append(Reason("untrusted_chain", "The signed document does not carry exactly the certificates "
                                                 "that were checked."))
    if parsed.signing_time != signing_time:
        reasons.append(Reason("signature_invalid", "The signed document's signing time is not the time that was "
                                                   "checked."))
    return reasons
