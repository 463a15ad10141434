"""The training sandbox's own state: a small SQLite database in the sandbox directory, apart from any order book.

It is training state, so it is created with ``create_all`` rather than migrated: a sandbox directory from an older
version can simply be deleted and started fresh. Codes (login codes, reference numbers, access codes) and session
tokens are stored only as salted hashes; the mailbox table is the simulated inbox and letterbox of each person, so it
holds what was "sent" to them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator


# The order book's own UTC column type: one definition of "a moment" for the whole program.
from app.models.orderbook import UtcDateTime  # noqa: E402


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


# -- portal / CA -------------------------------------------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(300))
    subscriber_serial: Mapped[str] = mapped_column(String(20), unique=True)  # subject serialNumber of their certs
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class LoginChallenge(Base):
    """Step two of a login: a one-time code was sent to the mailbox."""

    __tablename__ = "login_challenges"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # random, handed to the client
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    code_hash: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used: Mapped[bool] = mapped_column(Boolean, default=False)


class PortalSession(Base):
    __tablename__ = "portal_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class SandboxRegistration(Base):
    __tablename__ = "registrations"

    dea_number: Mapped[str] = mapped_column(String(9), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    address_lines: Mapped[list] = mapped_column(JSON)
    city: Mapped[str] = mapped_column(String(60))
    state: Mapped[str] = mapped_column(String(2))
    postal_code: Mapped[str] = mapped_column(String(15))
    business_activity: Mapped[str] = mapped_column(String(60))
    schedules: Mapped[list] = mapped_column(JSON)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    renewal_requires_approval: Mapped[bool] = mapped_column(Boolean, default=True)


class Coordinator(Base):
    """S4: one principal and at most one alternate coordinator per registration."""

    __tablename__ = "coordinators"
    __table_args__ = (UniqueConstraint("registration_dea", "role"), UniqueConstraint("registration_dea", "account_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    registration_dea: Mapped[str] = mapped_column(ForeignKey("registrations.dea_number"))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    role: Mapped[str] = mapped_column(String(10))  # principal | alternate


class Application(Base):
    """An enrollment application or a renewal waiting for (or past) coordinator review."""

    __tablename__ = "applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(40), unique=True)  # unguessable; renewals are polled by it
    kind: Mapped[str] = mapped_column(String(10))  # enrollment | renewal
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    role: Mapped[str] = mapped_column(String(20))  # registrant | coordinator | power_of_attorney
    person: Mapped[dict] = mapped_column(JSON)
    registrations: Mapped[list] = mapped_column(JSON)
    poa_document: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    poa_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    agreement_accepted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    identity_proofing: Mapped[dict] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(12))  # pending | approved | rejected | issued
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    csr_pem: Mapped[str | None] = mapped_column(Text, nullable=True)  # renewals carry their CSR
    renews_certificate_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("application_id", "registration_dea"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    registration_dea: Mapped[str] = mapped_column(String(9))
    coordinator_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    decision: Mapped[str] = mapped_column(String(10))  # approved | rejected
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class IssuanceCodes(Base):
    """S3: the one-time reference number (e-mail channel) and access code (postal channel) of an approval."""

    __tablename__ = "issuance_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("applications.id"))
    reference_lookup: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the reference number
    access_code_hash: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)


class IssuedCertificate(Base):
    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial_hex: Mapped[str] = mapped_column(String(64), unique=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("applications.id"), nullable=True)
    registration_dea: Mapped[str | None] = mapped_column(String(9), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # signing | administrative
    certificate_pem: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12))  # active | superseded | revoked
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("certificates.id"), nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)


class MailboxMessage(Base):
    """The simulated inbox ("email") and letterbox ("postal") of each person."""

    __tablename__ = "mailbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    to_email: Mapped[str] = mapped_column(String(254), index=True)
    channel: Mapped[str] = mapped_column(String(10))  # email | postal
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


# -- suppliers ---------------------------------------------------------------------------------------------------------


class ReceivedOrder(Base):
    """An order as one supplier received it, with the exact answer it gave (idempotency)."""

    __tablename__ = "received_orders"
    __table_args__ = (UniqueConstraint("supplier_slug", "purchaser_dea", "order_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_slug: Mapped[str] = mapped_column(String(40))
    purchaser_dea: Mapped[str] = mapped_column(String(9))
    order_number: Mapped[str] = mapped_column(String(9))
    document: Mapped[bytes] = mapped_column(LargeBinary)
    document_sha256: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    date_signed: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(24))  # accepted | accepted_with_changes | rejected
    answer: Mapped[dict] = mapped_column(JSON)
    # [{line_number, ndc, description, schedule, packages, shipped, voided, backordered}]
    lines: Mapped[list] = mapped_column(JSON)
    voided: Mapped[bool] = mapped_column(Boolean, default=False)


class SupplierRecord(Base):
    """855 / 856 / 865 as sent, in sequence per order."""

    __tablename__ = "supplier_records"
    __table_args__ = (UniqueConstraint("order_id", "seq"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("received_orders.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    ship_date: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)  # 856 only, for the report


class LostOrderStatement(Base):
    __tablename__ = "lost_order_statements"
    __table_args__ = (UniqueConstraint("supplier_slug", "document_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    supplier_slug: Mapped[str] = mapped_column(String(40))
    purchaser_dea: Mapped[str] = mapped_column(String(9))
    order_number: Mapped[str] = mapped_column(String(9))
    document: Mapped[bytes] = mapped_column(LargeBinary)
    document_sha256: Mapped[str] = mapped_column(String(64))
    statement: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[dt.datetime] = mapped_column(UtcDateTime)


class Counter(Base):
    """Monotonic numbers (X12 interchange control numbers per supplier)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[int] = mapped_column(Integer, default=0)


class Setting(Base):
    """Small per-sandbox facts: seeded yet, per-supplier switches that survive a restart."""

    __tablename__ = "settings"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


# -- opening -----------------------------------------------------------------------------------------------------------


class SandboxState:
    """The opened sandbox database."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.engine = create_engine(f"sqlite:///{self.path.resolve()}", connect_args={"timeout": 30})
        event.listen(self.engine, "connect", _pragmas)
        Base.metadata.create_all(self.engine)
        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    def session(self) -> Session:
        return self._factory()

    def next_number(self, session: Session, name: str) -> int:
        counter = session.get(Counter, name)
        if counter is None:
            counter = Counter(name=name, value=0)
            session.add(counter)
        counter.value += 1
        session.flush()
        return counter.value

    def get_setting(self, name: str, default: Any = None) -> Any:
        with self.session() as session:
            row = session.get(Setting, name)
            return row.value if row is not None else default

    def put_setting(self, session: Session, name: str, value: Any) -> None:
        row = session.get(Setting, name)
        if row is None:
            session.add(Setting(name=name, value=value))
        else:
            row.value = value

    def close(self) -> None:
        self.engine.dispose()


def _pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


# -- secrets at rest ---------------------------------------------------------------------------------------------------


def hash_secret(value: str) -> str:
    """A salted SHA-256 of a short-lived random code (codes are random and single-use; no slow KDF needed)."""
    salt = secrets.token_hex(16)
    return f"{salt}${hashlib.sha256((salt + value).encode('utf-8')).hexdigest()}"


def secret_matches(stored: str, candidate: str) -> bool:
    salt, _, digest = stored.partition("$")
    return hmac.compare_digest(digest, hashlib.sha256((salt + candidate).encode("utf-8")).hexdigest())


def lookup_key(value: str) -> str:
    """Unsalted SHA-256 for looking a high-entropy value up (reference numbers, session tokens)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
