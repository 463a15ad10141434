"""Signed orders not yet sent when their certificate is revoked (issue 22): the supplier would refuse them.

There is no "held" order state: the state machine lets a signed or queued order be cancelled before it leaves, and a
cancelled order be issued again as a new draft. So "holding" an order is exactly that, audited by the order book:
the queued entry and the order are cancelled (kept for the records, with the reason), and a new draft with the same
products waits to be signed with the renewed or new certificate.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import select

from app.errors import CsosError
from app.models.database import Database
from app.models.orderbook import Order
from app.models.states import OrderStatus

#: signed with the certificate and not yet in the supplier's hands
UNSENT = (OrderStatus.SIGNED, OrderStatus.QUEUED)

HOLD_REASON = ("Signed with a certificate that was revoked before the order was sent; suppliers refuse such orders. "
               "A new draft with the same products was made to sign again.")


def unsent_orders(db: Database, fingerprints: Sequence[str]) -> list[dict[str, Any]]:
    """Orders signed with one of these certificates that have not left the pharmacy, oldest first."""
    wanted = [f for f in fingerprints if f]
    if not wanted:
        return []
    with db.session() as session:
        orders = session.scalars(select(Order).where(Order.signer_fingerprint.in_(wanted),
                                                     Order.status.in_(UNSENT)).order_by(Order.id)).all()
        return [{"order_id": o.id, "order_number": o.order_number, "supplier": o.supplier.name,
                 "registration": o.registration.dea_number, "status": o.status.value,
                 "signed_at": o.signed_at.isoformat() if o.signed_at else None} for o in orders]


def hold_unsent_orders(db: Database, fingerprints: Sequence[str], *,
                       clock: Callable[[], dt.datetime] | None = None,
                       actor: str = "revocation") -> tuple[list[dict[str, Any]], list[str]]:
    """Cancel each unsent order signed with these certificates and make a new draft of it to sign again.

    Returns (held: order number → new draft number, problems in plain words). An order being sent right now cannot
    be stopped; that is reported, never hidden.
    """
    from app.services.orders.lifecycle import Lifecycle
    from app.services.orders.orderbook import OrderBook

    book = OrderBook(db, actor=actor, **({"clock": clock} if clock else {}))
    lifecycle = Lifecycle(book)
    held: list[dict[str, Any]] = []
    problems: list[str] = []
    for order in unsent_orders(db, fingerprints):
        try:
            lifecycle.cancel(order["order_id"], reason=HOLD_REASON)
        except CsosError as exc:
            problems.append(f"Order {order['order_number']}: {exc.message}")
            continue
        try:
            draft = lifecycle.new_from(order["order_id"])
        except CsosError as exc:
            problems.append(f"Order {order['order_number']} was held, but no new draft was made: {exc.message}")
            held.append({**order, "new_order_id": None, "new_order_number": None})
            continue
        held.append({**order, "new_order_id": draft.id, "new_order_number": draft.order_number})
    return held, problems


__all__ = ["HOLD_REASON", "UNSENT", "hold_unsent_orders", "unsent_orders"]
