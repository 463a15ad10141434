"""The order book: SQLAlchemy 2.x mapped classes (DESIGN.md §3).

Plain data and integrity rules only; no network, no Qt. Operations live in ``app.services``.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from app.models.states import OrderStatus

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC timestamps on every engine (SQLite stores naive values)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Store the readable value ("partially_received"), not the member name; no DB-level enum type so adding a state
    # is a code change, not a migration.
    return Enum(cls, name=name, native_enum=False, create_constraint=False, length=32,
                values_callable=lambda e: [m.value for m in e])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Registration(Base):
    """A DEA registration of the pharmacy/clinic (the purchaser)."""

    __tablename__ = "registrations"

    id: Mapped[int] = mapped_column(primary_key=True)
    dea_number: Mapped[str] = mapped_column(String(9), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address_lines: Mapped[list[str]] = mapped_column(JSON, default=list)
    city: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(10))
    business_activity: Mapped[str] = mapped_column(String(100), default="RETAIL PHARMACY")
    # Schedule values, comma-separated in certificate order ("II,IIN,III,IIIN,IV,V").
    schedules: Mapped[str] = mapped_column(String(40), default="")
    expires_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Supplier(Base):
    __tablename__ = "suppliers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    # O1: address and DEA number may be completed by the supplier, so they are optional here.
    dea_number: Mapped[str | None] = mapped_column(String(9), nullable=True)
    address_lines: Mapped[list[str]] = mapped_column(JSON, default=list)
    city: Mapped[str | None] = mapped_column(String(100), nullable=True)
    state: Mapped[str | None] = mapped_column(String(2), nullable=True)
    postal_code: Mapped[str | None] = mapped_column(String(10), nullable=True)
    # Connector kind ("https", "folder", "manual") and its settings; never secrets.
    connector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)


class Product(Base):
    """One package (NDC-11) from the FDA NDC Directory or entered by hand."""

    __tablename__ = "products"
    __table_args__ = (
        # Prefix search on names ("oxyc…") through an index, on SQLite and PostgreSQL alike.
        Index("ix_products_name_lower", func.lower(text("name"))),
        Index("ix_products_generic_name_lower", func.lower(text("generic_name"))),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ndc: Mapped[str] = mapped_column(String(11), unique=True)
    product_ndc: Mapped[str] = mapped_column(String(12), index=True)
    name: Mapped[str] = mapped_column(String(300), index=True)
    generic_name: Mapped[str] = mapped_column(String(500), default="")
    strength: Mapped[str] = mapped_column(String(300), default="")
    dosage_form: Mapped[str] = mapped_column(String(100), default="")
    labeler: Mapped[str] = mapped_column(String(200), default="")
    package_description: Mapped[str] = mapped_column(String(500), default="")
    package_quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3), default=Decimal(1))
    unit: Mapped[str] = mapped_column(String(2), default="EA")
    schedule: Mapped[str] = mapped_column(String(4), default="NC")
    source: Mapped[str] = mapped_column(String(40), default="manual")


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("registration_id", "order_number", name="uq_orders_registration_order_number"),
        Index("ix_orders_status_id", "status", "id"),
        Index("ix_orders_created_id", "created_at", "id"),
        Index("ix_orders_supplier_id", "supplier_id", "id"),
        # The ordering history reads the lines of the UTC days a local month starts inside (migration 0003).
        Index("ix_orders_signed_at", "signed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_number: Mapped[str] = mapped_column(String(9), index=True)
    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"))
    supplier_id: Mapped[int] = mapped_column(ForeignKey("suppliers.id"))
    status: Mapped[OrderStatus] = mapped_column(_enum(OrderStatus, "order_status"), default=OrderStatus.DRAFT)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    # Signed content (immutable once set, see app.models.integrity).
    signed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    signer_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    signed_document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    payload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    transmitted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # O6/O7: a new order issued in place of this one points back to it.
    replaces_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")

    registration: Mapped[Registration] = relationship(lazy="joined")
    supplier: Mapped[Supplier] = relationship(lazy="joined")
    lines: Mapped[list["OrderLine"]] = relationship(
        back_populates="order", order_by="OrderLine.line_number", cascade="all, delete-orphan"
    )
    linked_records: Mapped[list["LinkedRecord"]] = relationship(
        back_populates="order", order_by="LinkedRecord.id", foreign_keys="LinkedRecord.order_id"
    )


class LineStatus(enum.Enum):
    OPEN = "open"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    BACKORDERED = "backordered"
    QUANTITY_CHANGED = "quantity_changed"
    # O8: a partially voided order marks voided lines "nothing shipped".
    VOIDED = "voided"


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_number", name="uq_order_lines_order_line_number"),
        Index("ix_order_lines_ndc", "ndc"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    line_number: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), nullable=True)
    ndc: Mapped[str] = mapped_column(String(11))
    description: Mapped[str] = mapped_column(String(300))
    # Schedule as the catalog gave it when the line was added (display only; verification re-reads the catalog).
    schedule: Mapped[str] = mapped_column(String(4), default="NC")
    packages: Mapped[int] = mapped_column(Integer)
    package_quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3))
    unit: Mapped[str] = mapped_column(String(2), default="EA")
    # Supplier's answer for this line; not part of the signed content.
    line_status: Mapped[LineStatus] = mapped_column(_enum(LineStatus, "line_status"), default=LineStatus.OPEN)
    packages_confirmed: Mapped[int | None] = mapped_column(Integer, nullable=True)

    order: Mapped[Order] = relationship(back_populates="lines")
    receipts: Mapped[list["Receipt"]] = relationship(back_populates="line", order_by="Receipt.id")


class LinkedRecordKind(enum.Enum):
    ACKNOWLEDGEMENT = "acknowledgement"
    NON_ACCEPTANCE = "non_acceptance"
    VOID = "void"
    PARTIAL_VOID = "partial_void"
    SHIPMENT = "shipment"
    RECEIPT = "receipt"
    LOST_STATEMENT = "lost_statement"
    REPLACEMENT = "replacement"
    CANCELLATION = "cancellation"
    EXPIRY = "expiry"
    NOTE = "note"
    DELIVERY_RECEIPT = "delivery_receipt"  # the supplier system's signed receipt (AS2 MDN): proof of delivery


class LinkedRecord(Base):
    """A document linked to an order, kept exactly as received or sent (O6–O9)."""

    __tablename__ = "linked_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    kind: Mapped[LinkedRecordKind] = mapped_column(_enum(LinkedRecordKind, "linked_record_kind"))
    direction: Mapped[str] = mapped_column(String(8), default="in")  # "in" from supplier, "out" to supplier, "local"
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    media_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")
    raw: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    raw_sha256: Mapped[str] = mapped_column(String(64), default="")
    parsed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A replacement order or the lost-order statement points at the other order it links.
    related_order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True)

    order: Mapped[Order] = relationship(back_populates="linked_records", foreign_keys=[order_id])


class Receipt(Base):
    """O4: packages received for one line on one date."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_line_id: Mapped[int] = mapped_column(ForeignKey("order_lines.id"), index=True)
    packages_received: Mapped[int] = mapped_column(Integer)
    received_on: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(100), default="")
    # Required when more is received than was shipped.
    reason: Mapped[str] = mapped_column(Text, default="")

    line: Mapped[OrderLine] = relationship(back_populates="receipts")


class HistoryDay(Base):
    """Controlled lines of counted orders summed per registration, UTC day of signing, supplier and package (issue 21).

    Kept by database triggers (migration 0003_history_days) in the transaction that changes the order, line or
    receipt, so the ordering history and the unusual-quantity notice read a few rows a day, not every line. Never
    written by the program."""

    __tablename__ = "history_days"
    # ix_history_days_products (migration 0005): a registration's products in a few index steps, for the notice.
    __table_args__ = (Index("ix_history_days_products", "registration_id", "ndc", "description", "unit", "day"),
                      {"sqlite_with_rowid": False})

    registration_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)  # UTC date of signed_at
    supplier_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ndc: Mapped[str] = mapped_column(String(11), primary_key=True)
    schedule: Mapped[str] = mapped_column(String(4), primary_key=True)
    unit: Mapped[str] = mapped_column(String(2), primary_key=True)
    package_quantity: Mapped[Decimal] = mapped_column(Numeric(12, 3), primary_key=True)
    description: Mapped[str] = mapped_column(String(300), primary_key=True)
    lines: Mapped[int] = mapped_column(Integer)
    packages: Mapped[int] = mapped_column(Integer)  # ordered
    fulfilled: Mapped[int] = mapped_column(Integer)  # received (receipts)


class OrderNumberCounter(Base):
    """Next order-number sequence value per registration and year (allocation is one atomic UPDATE)."""

    __tablename__ = "order_number_counters"

    registration_id: Mapped[int] = mapped_column(ForeignKey("registrations.id"), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_value: Mapped[int] = mapped_column(Integer, default=1)


class AuditEvent(Base):
    """Append-only, hash-chained log of everything that changed an order or a certificate."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100), default="")
    action: Mapped[str] = mapped_column(String(60))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), nullable=True, index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    previous_hash: Mapped[str] = mapped_column(String(64), unique=True)
    event_hash: Mapped[str] = mapped_column(String(64), unique=True)


class CertificateStatus(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    SUPERSEDED = "superseded"


class CertificateRecord(Base):
    """A subscriber's certificate and where its private key lives (file or token identity + key id; no secrets)."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    subscriber_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    kind: Mapped[str] = mapped_column(String(20), default="signing")  # signing | administrative
    registration_id: Mapped[int | None] = mapped_column(ForeignKey("registrations.id"), nullable=True)
    certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    chain_pem: Mapped[str] = mapped_column(Text, default="")
    schedules: Mapped[str] = mapped_column(String(40), default="")
    not_before: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    not_after: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    key_ref: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[CertificateStatus] = mapped_column(
        _enum(CertificateStatus, "certificate_status"), default=CertificateStatus.PENDING
    )
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)

    registration: Mapped[Registration | None] = relationship(lazy="joined")
