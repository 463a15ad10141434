"""The draft being signed, read in ONE Core statement: order, registration, supplier, lines and the lines' catalog
names (for the unusual-quantity notice).

The ORM load it replaces (``OrderBook.order_for_signing``, joined eager loading) cost about four times as much per
order for the same rows. What signing needs is read from plain values (``DraftForSigning``, attribute names as on
the models, so ``purchase_order_from`` and ``interchange_ids`` take it as they take an ``Order``); the detached ORM
``Order`` callers get in ``SignedOrder.order`` is built from the same values only when asked for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import make_transient_to_detached

from app.errors import NotFound
from app.models.orderbook import Order, OrderLine, Product, Registration, Supplier

_ORDERS, _REGISTRATIONS, _SUPPLIERS = Order.__table__, Registration.__table__, Supplier.__table__
_LINES, _PRODUCTS = OrderLine.__table__, Product.__table__


@functools.lru_cache(maxsize=1)
def _statement() -> tuple[Any, tuple[tuple[str, ...], ...]]:
    """The statement and the column names of each part of its rows (order, registration, supplier, line)."""
    parts = (_ORDERS, _REGISTRATIONS, _SUPPLIERS, _LINES)
    names = tuple(tuple(column.key for column in table.c) for table in parts)
    statement = (
        select(*(column for table in parts for column in table.c), _PRODUCTS.c.generic_name, _PRODUCTS.c.name)
        .select_from(_ORDERS.join(_REGISTRATIONS, _REGISTRATIONS.c.id == _ORDERS.c.registration_id)
                     .join(_SUPPLIERS, _SUPPLIERS.c.id == _ORDERS.c.supplier_id)
                     .outerjoin(_LINES, _LINES.c.order_id == _ORDERS.c.id)
                     .outerjoin(_PRODUCTS, _PRODUCTS.c.ndc == _LINES.c.ndc))
        .where(_ORDERS.c.id == bindparam("order_id"))
        .order_by(_LINES.c.line_number)
    )
    return statement, names


@dataclass
class DraftForSigning:
    """An order as read for signing. ``registration``, ``supplier`` and each of ``lines`` are plain values with the
    models' attribute names; ``catalog_names`` holds (generic name, name) of each line's catalog product (None when
    the NDC is no longer in the catalog)."""

    id: int
    order_number: str
    status: Any
    registration: Any
    supplier: Any
    lines: list[Any]
    catalog_names: list[tuple[str | None, str | None]]
    columns: tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[dict[str, Any]]]

    def notice_lines(self) -> list[tuple[Any, ...]]:
        """The controlled lines as ``history.unusual_quantities`` reads them itself (dea, unit, packages, package
        quantity, catalog generic name, catalog name, description): passed to it so they are not read twice."""
        dea = self.registration.dea_number
        return [(dea, line.unit, line.packages, line.package_quantity, generic, name, line.description)
                for line, (generic, name) in zip(self.lines, self.catalog_names) if line.schedule != "NC"]

    def detached_order(self, **changes: Any) -> Order:
        """A detached ``Order`` as ``OrderBook.order_for_signing`` returns it (registration, supplier and lines
        loaded, receipts and linked records not), with ``changes`` applied."""
        order_values, registration_values, supplier_values, line_values = self.columns
        order = Order(**{**order_values, **changes})
        order.registration = Registration(**registration_values)
        order.supplier = Supplier(**supplier_values)
        order.lines = [OrderLine(**values) for values in line_values]
        for instance in (order.registration, order.supplier, *order.lines, order):
            make_transient_to_detached(instance)  # persistent identity: merged or refreshed, never inserted again
        return order


def load_draft(db: Any, order_id: int) -> DraftForSigning:
    """Read an order for signing in one statement (one snapshot). ``NotFound`` when there is no such order."""
    statement, (order_names, registration_names, supplier_names, line_names) = _statement()
    with db.engine.connect() as connection:
        rows = connection.execute(statement, {"order_id": order_id}).all()
    if not rows:
        raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
    first = rows[0]
    at = 0
    values = []
    for names in (order_names, registration_names, supplier_names):
        values.append(dict(zip(names, first[at:at + len(names)])))
        at += len(names)
    order_values, registration_values, supplier_values = values
    line_values, catalog_names = [], []
    width = len(line_names)
    for row in rows:
        if row[at] is None:  # LEFT OUTER JOIN of an order without lines
            continue
        line_values.append(dict(zip(line_names, row[at:at + width])))
        catalog_names.append((row[at + width], row[at + width + 1]))
    return DraftForSigning(
        id=order_values["id"], order_number=order_values["order_number"], status=order_values["status"],
        registration=SimpleNamespace(**registration_values), supplier=SimpleNamespace(**supplier_values),
        lines=[SimpleNamespace(**line) for line in line_values], catalog_names=catalog_names,
        columns=(order_values, registration_values, supplier_values, line_values))
