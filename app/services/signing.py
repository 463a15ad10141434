"""Signing an order: 850 from the order book → pre-sign check → CMS → stored exactly as it will be transmitted.

The stored ``signed_document`` is the byte string suppliers receive; it is written in the same transaction that moves
the order to ``signed`` so no order is ever "signed" without its document or the other way round.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from app.errors import CsosError
from app.models.orderbook import Order
from app.models.states import OrderStatus
from app.models.values import PackageUnit
from app.services.clock import ClockCheck, ClockOff
from app.services.cms import SignsData, sign_content
from app.services.orderbook import OrderBook
from app.services.verifier import OrderVerifier, Reason, Verdict
from app.services.x12 import OrderLine850, Party, PurchaseOrder, write_850


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
    purchaser = Party(name=registration.name, dea_number=registration.dea_number,
                      address_lines=tuple(registration.address_lines), city=registration.city,
                      state=registration.state, postal_code=registration.postal_code)
    has_address = bool(supplier.address_lines and supplier.city and supplier.state and supplier.postal_code)
    supplier_party = Party(name=supplier.name, dea_number=supplier.dea_number,
                           address_lines=tuple(supplier.address_lines) if has_address else (),
                           city=supplier.city if has_address else None,
                           state=supplier.state if has_address else None,
                           postal_code=supplier.postal_code if has_address else None)
    lines = tuple(
        OrderLine850(line_number=line.line_number, packages=line.packages, ndc=line.ndc,
                     description=line.description,
                     package_quantity=_quantity(line.package_quantity), unit=PackageUnit.parse(line.unit))
        for line in order.lines
    )
    return PurchaseOrder(order_number=order.order_number, date_signed=signed_on, purchaser=purchaser,
                         supplier=supplier_party, lines=lines)


def _quantity(value):  # 100.000 → 100; 2.5 stays Decimal
    return int(value) if value == int(value) else value.normalize()


def interchange_ids(order: Order) -> dict[str, object]:
    """Envelope identifiers. ISA13/GS06 come from the order's row id: unique per order book, and an order is
    signed once only (signed content is immutable)."""
    control = order.id % 1_000_000_000 or 1
    receiver = order.supplier.dea_number or f"SUPPLIER{order.supplier.id}"
    return {"interchange_control_number": control, "group_control_number": control,
            "sender_id": order.registration.dea_number, "receiver_id": receiver[:15]}


@dataclass
class SignedOrder:
    order: Order
    document: bytes
    content: bytes
    verdict: Verdict


class OrderSigningService:
    def __init__(self, book: OrderBook, verifier: OrderVerifier, *,
                 clock_check: Callable[[], ClockCheck] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.book = book
        self.verifier = verifier
        self.clock_check = clock_check
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def check(self, order_id: int, *, certificate: x509.Certificate, intermediates: Sequence[x509.Certificate],
              now: dt.datetime | None = None) -> Verdict:
        """The pre-sign check alone (for the UI to show each rule before asking for the password)."""
        now = now or self.clock()
        order = self.book.get_order(order_id)
        return self.verifier.check_before_signing(purchase_order_from(order, signed_on=now.date()), certificate,
                                                  intermediates, now=now)

    def sign(self, order_id: int, *, signer: SignsData, certificate: x509.Certificate,
             intermediates: Sequence[x509.Certificate] = (), now: dt.datetime | None = None) -> SignedOrder:
        if self.clock_check is not None:
            clock = self.clock_check()
            if clock.blocks_signing:
                raise ClockOff(clock.message)
        now = (now or self.clock()).astimezone(dt.timezone.utc).replace(microsecond=0)
        order = self.book.get_order(order_id)
        if order.status is not OrderStatus.DRAFT:
            raise NotDraft(f"Order {order.order_number} is {order.status.label.lower()}; only a draft is signed.")
        purchase_order = purchase_order_from(order, signed_on=now.date())
        verdict = self.verifier.check_before_signing(purchase_order, certificate, intermediates, now=now)
        if not verdict.accepted:
            raise PreSignCheckFailed(verdict.reasons)
        content = write_850(purchase_order, created_at=now, **interchange_ids(order))  # type: ignore[arg-type]
        document = sign_content(content, signer=signer, certificate_der=certificate.public_bytes(Encoding.DER),
                                intermediates_der=[c.public_bytes(Encoding.DER) for c in intermediates],
                                signing_time=now)
        # What leaves the pharmacy is checked exactly as the supplier will check it.
        final = self.verifier.verify(document, now=now)
        if not final.accepted:
            raise PreSignCheckFailed(final.reasons)
        fingerprint = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest()
        with self.book.db.session() as session, session.begin():
            stored = session.get(Order, order_id)
            if stored is None or stored.status is not OrderStatus.DRAFT:
                raise NotDraft(f"Order {order.order_number} changed while it was being signed; nothing was stored.")
            stored.signed_document = document
            stored.payload_sha256 = hashlib.sha256(content).hexdigest()
            stored.signed_at = now
            stored.signer_fingerprint = fingerprint
            self.book.transition(order_id, OrderStatus.SIGNED, session=session,
                                 details={"signer_fingerprint": fingerprint,
                                          "document_sha256": hashlib.sha256(document).hexdigest()})
            stored_status = stored.status
        # The detached order read at the start, brought up to date without another round trip.
        order.signed_document, order.signed_at, order.signer_fingerprint = document, now, fingerprint
        order.payload_sha256, order.status = hashlib.sha256(content).hexdigest(), stored_status
        return SignedOrder(order=order, document=document, content=content, verdict=final)
