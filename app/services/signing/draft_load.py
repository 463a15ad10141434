"""The draft being signed, read in ONE Core statement: order, registration, supplier, lines and the lines' catalog
names (for the unusual-quantity notice).

Only the columns signing uses are read: the order's number, status and supplier, the two parties' names and
addresses, and every column of the lines (``store_signed`` compares them with the book's under the writer lock).
The ORM load it replaces (``OrderBook.order_for_signing``, joined eager loading) cost about four times as much per
order; reading every column of the three tables cost about twice this one (each line row carried the order's,
registration's and supplier's timestamps and JSON again, each converted again). The detached ORM ``Order`` callers
get in ``SignedOrder.order`` is read (``OrderBook.order_for_signing``) only when asked for.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import String, bindparam, select, type_coerce

from app.errors import NotFound
from app.models.orderbook import Order, OrderLine, Product, Registration, Supplier

_ORDERS, _REGISTRATIONS, _SUPPLIERS = Order.__table__, Registration.__table__, Supplier.__table__
_LINES, _PRODUCTS = OrderLine.__table__, Product.__table__
# What signing reads of each party (``purchase_order_from``, ``interchange_ids``, the order's local date).
_PARTY = ("name", "dea_number", "address_lines", "city", "state", "postal_code")
LINE_COLUMNS = tuple(column.key for column in _LINES.c)  # the order of ``DraftForSigning.line_rows``


@functools.lru_cache(maxsize=1)
def _statement() -> Any:
    def party(table: Any) -> list[Any]:
        # address_lines as the stored JSON text (SQLite): parsed once per distinct text, not once per line row.
        return [type_coerce(table.c[name], String) if name == "address_lines" else table.c[name] for name in _PARTY]

    return (
        select(_ORDERS.c.id, _ORDERS.c.order_number, _ORDERS.c.status, _ORDERS.c.supplier_id,
               *party(_REGISTRATIONS), *party(_SUPPLIERS), *_LINES.c, _PRODUCTS.c.generic_name, _PRODUCTS.c.name)
        .select_from(_ORDERS.join(_REGISTRATIONS, _REGISTRATIONS.c.id == _ORDERS.c.registration_id)
                     .join(_SUPPLIERS, _SUPPLIERS.c.id == _ORDERS.c.supplier_id)
                     .outerjoin(_LINES, _LINES.c.order_id == _ORDERS.c.id)
                     .outerjoin(_PRODUCTS, _PRODUCTS.c.ndc == _LINES.c.ndc))
        .where(_ORDERS.c.id == bindparam("order_id"))
        .order_by(_LINES.c.line_number)
    )


@functools.lru_cache(maxsize=256)
def _address_text(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text) or ())


def _address(value: Any) -> tuple[str, ...]:
    """The address lines from the JSON column read as text (SQLite) or already parsed (PostgreSQL's driver)."""
    if value is None:
        return ()
    return _address_text(value) if isinstance(value, str) else tuple(value)


@dataclass
class DraftForSigning:
    """An order as read for signing. ``registration``, ``supplier`` and each of ``lines`` are plain values with the
    models' attribute names; ``catalog_names`` holds (generic name, name) of each line's catalog product (None when
    the NDC is no longer in the catalog); ``line_rows`` each line's columns in ``LINE_COLUMNS`` order."""

    id: int
    order_number: str
    status: Any
    registration: Any
    supplier: Any
    lines: list[Any]
    catalog_names: list[tuple[str | None, str | None]]
    line_rows: list[tuple[Any, ...]]

    def notice_lines(self) -> list[tuple[Any, ...]]:
        """The controlled lines as ``history.unusual_quantities`` reads them itself (dea, unit, packages, package
        quantity, catalog generic name, catalog name, description): passed to it so they are not read twice."""
        dea = self.registration.dea_number
        return [(dea, line.unit, line.packages, line.package_quantity, generic, name, line.description)
                for line, (generic, name) in zip(self.lines, self.catalog_names) if line.schedule != "NC"]


def load_draft(db: Any, order_id: int) -> DraftForSigning:
    """Read an order for signing in one statement (one snapshot). ``NotFound`` when there is no such order."""
    with db.engine.connect() as connection:
        rows = connection.execute(_statement(), {"order_id": order_id}).all()
    if not rows:
        raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
    first = rows[0]
    width = len(_PARTY)
    registration = SimpleNamespace(**dict(zip(_PARTY, first[4:4 + width])))
    supplier = SimpleNamespace(id=first[3], **dict(zip(_PARTY, first[4 + width:4 + 2 * width])))
    registration.address_lines = _address(registration.address_lines)
    supplier.address_lines = _address(supplier.address_lines)
    at, count = 4 + 2 * width, len(LINE_COLUMNS)
    line_rows, lines, catalog_names = [], [], []
    for row in rows:
        if row[at] is None:  # LEFT OUTER JOIN of an order without lines
            continue
        values = tuple(row[at:at + count])
        line_rows.append(values)
        lines.append(SimpleNamespace(**dict(zip(LINE_COLUMNS, values))))
        catalog_names.append((row[at + count], row[at + count + 1]))
    return DraftForSigning(id=first[0], order_number=first[1], status=first[2], registration=registration,
                           supplier=supplier, lines=lines, catalog_names=catalog_names, line_rows=line_rows)
