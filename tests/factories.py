"""Small builders of real order-book content for tests (real database, no mocks)."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

from app.models.orderbook import Order, Product
from app.models.states import OrderStatus
from app.services.orders.orderbook import OrderBook

PURCHASER_DEA = "BJ6125341"
SECOND_PURCHASER_DEA = "FN5623740"
SUPPLIER_DEA = "RA1234563"

PRODUCTS = [
    ("00406055262", "Oxycodone Hydrochloride", "5 mg", "II", Decimal(100), "EA"),
    ("00555097302", "Amphetamine Aspartate; Amphetamine Sulfate", "20 mg", "IIN", Decimal(100), "EA"),
    ("00009002901", "Alprazolam", "0.5 mg", "IV", Decimal(100), "EA"),
    ("00093310905", "Amoxicillin", "500 mg", "NC", Decimal(500), "EA"),
]


def seed(book: OrderBook) -> None:
    book.add_registration(dea_number=PURCHASER_DEA, name="Main Street Pharmacy", address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701",
                          schedules=["II", "IIN", "III", "IIIN", "IV", "V"], expires_on=dt.date(2028, 6, 30))
    book.add_supplier(name="Acme Drug", dea_number=SUPPLIER_DEA, address_lines=["9 Depot Rd"], city="Memphis",
                      state="TN", postal_code="38118")
    with book.db.session() as session:
        for ndc, name, strength, schedule, quantity, unit in PRODUCTS:
            session.add(Product(ndc=ndc, product_ndc=ndc[:9], name=name, strength=strength, schedule=schedule,
                                package_quantity=quantity, unit=unit))
        session.commit()


def draft_order(book: OrderBook, *, lines: int = 2) -> Order:
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    for ndc, *_ in PRODUCTS[:lines]:
        book.add_line(order.id, ndc=ndc, packages=1)
    return book.get_order(order.id)


def sign_for_test(book: OrderBook, order_id: int, *, document: bytes = b"signed-cms-placeholder") -> Order:
    """Store a signed document and move to `signed` the way the signing service does (one transaction)."""
    with book.db.session() as session, session.begin():
        order = session.get(Order, order_id)
        order.signed_document = document
        order.payload_sha256 = hashlib.sha256(document).hexdigest()
        order.signed_at = dt.datetime.now(dt.timezone.utc)
        order.signer_fingerprint = "ab" * 32
        book.transition(order_id, OrderStatus.SIGNED, session=session)
    return book.get_order(order_id)
