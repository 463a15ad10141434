"""The durable outbox: one row per document waiting to leave (or that left) for a supplier (DESIGN.md §8).

Kept in the order book so a crash at any point leaves a record of what was queued, what was tried and what was
answered. The document itself is never copied here: the outbox always sends the bytes stored with the order (or the
linked record of a lost-order statement), so one order number can only ever carry one document.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.orderbook import Base, UtcDateTime, _enum, utcnow


class OutboxState(enum.Enum):
    QUEUED = "queued"  # waiting for its next try (also after a failed try: see last_error / next_attempt_at)
    SENT = "sent"  # the supplier (or the drop folder) has it
    FAILED = "failed"  # the supplier refused the request itself; retrying cannot help (e.g. number reused)
    CANCELLED = "cancelled"  # the order was cancelled before it left
    EXPIRED = "expired"  # 60 days passed before it could be sent (O5)


class OutboxPurpose(enum.Enum):
    ORDER = "order"
    LOST_STATEMENT = "lost_statement"


class OutboxEntry(Base):
    __tablename__ = "outbox_entries"
    __table_args__ = (
        UniqueConstraint("order_id", "purpose", name="uq_outbox_entries_order_purpose"),
        Index("ix_outbox_entries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    purpose: Mapped[OutboxPurpose] = mapped_column(_enum(OutboxPurpose, "outbox_purpose"),
                                                   default=OutboxPurpose.ORDER)
    # The lost-order statement being sent (purpose lost_statement); orders send Order.signed_document.
    linked_record_id: Mapped[int | None] = mapped_column(ForeignKey("linked_records.id"), nullable=True)
    # SHA-256 of the exact bytes queued: checked before every try, so nothing else can go out under this entry.
    document_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState, "outbox_state"), default=OutboxState.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # A worker holds the entry until this moment while it talks to the supplier (several workers, one send).
    claimed_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_code: Mapped[str] = mapped_column(String(60), default="")
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # The supplier's answer to the send (JSON as received, for https suppliers), for display and the record.
    answer: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Highest supplier record sequence number already linked (https suppliers' records endpoint).
    records_after: Mapped[int] = mapped_column(Integer, default=0)
    last_sync_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime, nullable=True)
