"""The order state machine: the one place that says which status may follow which (DESIGN.md §3)."""

from __future__ import annotations

import enum

from app.errors import InvalidTransition


class OrderStatus(enum.Enum):
    DRAFT = "draft"
    SIGNED = "signed"
    QUEUED = "queued"
    TRANSMITTED = "transmitted"
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    NOT_ACCEPTED = "not_accepted"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    VOIDED = "voided"
    PARTIALLY_VOIDED = "partially_voided"
    CANCELLED = "cancelled"
    LOST = "lost"
    EXPIRED = "expired"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def is_final(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def is_signed(self) -> bool:
        """Once signed, the order's signed content is immutable whatever happens next."""
        return self not in (OrderStatus.DRAFT,)


S = OrderStatus

# Orders the supplier may still ship against (accepted in full or part, possibly partly received or partly voided).
_SHIPPABLE = (S.ACCEPTED, S.PARTIALLY_ACCEPTED, S.PARTIALLY_VOIDED, S.PARTIALLY_RECEIVED)

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.DRAFT: frozenset({S.SIGNED, S.CANCELLED}),
    # Cancelling is only possible before the order leaves the pharmacy.
    S.SIGNED: frozenset({S.QUEUED, S.CANCELLED, S.EXPIRED}),
    S.QUEUED: frozenset({S.TRANSMITTED, S.CANCELLED, S.EXPIRED}),
    S.TRANSMITTED: frozenset({S.ACCEPTED, S.PARTIALLY_ACCEPTED, S.NOT_ACCEPTED, S.VOIDED, S.LOST, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_RECEIVED, S.RECEIVED, S.VOIDED, S.PARTIALLY_VOIDED, S.LOST, S.EXPIRED}),
    S.PARTIALLY_ACCEPTED: frozenset(
        {S.PARTIALLY_RECEIVED, S.RECEIVED, S.VOIDED, S.PARTIALLY_VOIDED, S.LOST, S.EXPIRED}
    ),
    S.PARTIALLY_VOIDED: frozenset({S.PARTIALLY_RECEIVED, S.RECEIVED, S.VOIDED, S.EXPIRED}),
    S.PARTIALLY_RECEIVED: frozenset({S.RECEIVED, S.PARTIALLY_VOIDED, S.EXPIRED}),
    S.NOT_ACCEPTED: frozenset(),
    S.RECEIVED: frozenset(),
    S.VOIDED: frozenset(),
    S.CANCELLED: frozenset(),
    S.LOST: frozenset(),
    S.EXPIRED: frozenset(),
}

SHIPPABLE_STATUSES = frozenset(_SHIPPABLE)


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    """Raise ``InvalidTransition`` unless ``current → target`` is allowed."""
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(s.value for s in TRANSITIONS[current])) or "none (final state)"
        raise InvalidTransition(
            f"An order that is '{current.label.lower()}' cannot become '{target.label.lower()}'. "
            f"Allowed next: {allowed}."
        )
