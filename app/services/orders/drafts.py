"""Preparing a draft order: the rules the order editor checks as the person types, and saving through the book.

The editor keeps the lines in memory until "Save draft"; every rule (catalog NDC, number of packages, schedule on
the registration, registration still valid) is here so the screen only shows the problems next to their fields.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.errors import InvalidValue, NotFound
from app.models.database import explain_storage_failure
from app.models.integrity import append_audit_event
from app.models.orderbook import Order, Product, Registration, Supplier, utcnow
from app.models.states import OrderStatus
from app.models.values import Ndc, Schedule
from app.services.catalog import find_product, search_products
from app.services.orders.descriptions import x12_safe_description
from app.services.orders.details import registration_allows

MAX_PACKAGES = 99_999


@dataclass(frozen=True)
class DraftLine:
    """One line as the editor holds it: the catalog facts it shows plus the number of packages."""

    ndc: str  # 11 digits
    description: str  # exactly the text the order will sign (``x12_safe_description``)
    schedule: str
    package_quantity: Decimal
    unit: str
    packages: int

    @classmethod
    def from_product(cls, product: Product, packages: int = 1) -> "DraftLine":
        description = x12_safe_description(product.name, product.strength, ndc=Ndc.parse(product.ndc).display)
        return cls(ndc=product.ndc, description=description, schedule=product.schedule,
                   package_quantity=Decimal(product.package_quantity), unit=product.unit, packages=packages)

    @property
    def ndc_display(self) -> str:
        return Ndc.parse(self.ndc).display

    @property
    def per_package(self) -> str:
        return f"{self.package_quantity.normalize():f} {self.unit}"

    def with_packages(self, packages: int) -> "DraftLine":
        return DraftLine(self.ndc, self.description, self.schedule, self.package_quantity, self.unit, packages)


@dataclass(frozen=True)
class Problem:
    """Something wrong with what was entered; ``field`` says where the screen shows it."""

    field: str  # registration | supplier | product | packages | line
    code: str
    message: str
    line_index: int | None = None
    short: str = ""  # a few words for a table cell; ``message`` says what to do


def schedule_label(value: str) -> str:
    try:
        return Schedule.parse(value).label
    except InvalidValue:
        return value


def check_packages(packages: int) -> Problem | None:
    if packages < 1:
        return Problem("packages", "line.packages", "Enter at least 1 package.")
    if packages > MAX_PACKAGES:
        return Problem("packages", "line.packages", f"At most {MAX_PACKAGES:,} packages on one line.")
    return None


def check_registration(registration: Registration | None, *, today: dt.date | None = None) -> Problem | None:
    if registration is None:
        return Problem("registration", "registration.missing", "Choose the registration this order is for.")
    today = today or utcnow().date()
    if registration.expires_on is not None and registration.expires_on < today:
        return Problem("registration", "registration.expired",
                       f"Registration {registration.dea_number} expired on {registration.expires_on:%B %d, %Y}. "
                       "Orders cannot be signed under it: renew it with DEA, or choose another registration.")
    return None


def check_lines(registration: Registration | None, lines: Sequence[DraftLine]) -> list[Problem]:
    """Problems of each line, in line order (index into ``lines``)."""
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, line in enumerate(lines):
        packages = check_packages(line.packages)
        if packages is not None:
            problems.append(Problem("line", packages.code, f"Line {index + 1}: {packages.message}", index,
                                    "Needs at least 1 package" if line.packages < 1 else "Too many packages"))
        if registration is not None and not registration_allows(registration.schedules, line.schedule):
            problems.append(Problem(
                "line", "line.schedule_not_registered",
                f"Line {index + 1}: {line.description} is {schedule_label(line.schedule)}, which registration "
                f"{registration.dea_number} is not registered for. Remove the line or choose another registration.",
                index, f"{schedule_label(line.schedule)} not on this registration"))
        if line.ndc in seen:
            problems.append(Problem("line", "line.duplicate",
                                    f"Line {index + 1} repeats line {seen[line.ndc] + 1} (same NDC). Change the "
                                    "number of packages on one line and remove the other.", index,
                                    f"Same NDC as line {seen[line.ndc] + 1}"))
        seen.setdefault(line.ndc, index)
    return problems


def check_draft(registration: Registration | None, supplier: Supplier | None,
                lines: Sequence[DraftLine], *, today: dt.date | None = None) -> list[Problem]:
    problems: list[Problem] = []
    problem = check_registration(registration, today=today)
    if problem:
        problems.append(problem)
    if supplier is None:
        problems.append(Problem("supplier", "supplier.missing", "Choose the supplier to order from."))
    if not lines:
        problems.append(Problem("product", "order.no_lines", "Add at least one product to the order."))
    problems.extend(check_lines(registration, lines))
    return problems


# -- the catalog as the editor searches it -------------------------------------------------------------------------


def _read(db: Any, call: Any) -> Any:
    try:
        with db.session() as session:
            return call(session)
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, db.url) from exc


def product_suggestions(db: Any, text: str, *, limit: int = 12) -> list[Product]:
    """Catalog products for what is typed so far (name, generic name or NDC)."""
    if len(text.strip()) < 2:
        return []
    return _read(db, lambda session: search_products(session, text, limit=limit))


def catalog_examples(db: Any, *, count: int = 6) -> list[str]:
    """A few product names spread over the catalog, so a search that finds nothing in training's short practice list
    can say what is in it (a new user typed "ibuprofen" and was told only to check the spelling)."""
    names = _read(db, lambda session: list(session.scalars(
        select(Product.name).distinct().order_by(Product.name).limit(500))))
    if len(names) <= count:
        return names
    step = len(names) / count
    return [names[int(i * step)] for i in range(count)]


def product_for_entry(db: Any, text: str) -> Product:
    """The product a person means by pressing Enter in the product box: an exact NDC or the only name match."""
    entered = text.strip()
    if not entered:
        raise InvalidValue("Type a product name or NDC, then choose the product from the list.",
                           code="product.empty")
    looks_like_ndc = all(c.isdigit() or c in "- " for c in entered) and sum(c.isdigit() for c in entered) >= 10
    if looks_like_ndc:
        ndc = Ndc.parse(entered)  # InvalidValue says which NDC rule failed
        product = _read(db, lambda session: find_product(session, ndc))
        if product is None:
            raise NotFound(f"NDC {ndc.display} is not in the product catalog. Check the number on the package, or "
                           "import the latest FDA NDC catalog.", code="catalog.unknown_ndc")
        return product
    matches = product_suggestions(db, entered, limit=2)
    if not matches:
        raise NotFound(f"No product in the catalog matches “{entered}”. Check the spelling, or search by NDC.",
                       code="catalog.no_match")
    if len(matches) > 1:
        raise InvalidValue(f"Several products match “{entered}”. Choose one from the list (arrow keys, then "
                           "Enter).", code="catalog.ambiguous")
    return matches[0]


# -- loading and saving -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftState:
    order_id: int
    order_number: str
    status: OrderStatus
    registration_dea: str
    supplier_name: str
    lines: tuple[DraftLine, ...]


def load_draft(db: Any, order_id: int) -> DraftState:
    def read(session: Any) -> DraftState:
        order = session.get(Order, order_id)
        if order is None:
            raise NotFound("This order is no longer in the order book.", code="order.not_found")
        lines = tuple(DraftLine(ndc=line.ndc, description=line.description, schedule=line.schedule,
                                package_quantity=Decimal(line.package_quantity), unit=line.unit,
                                packages=line.packages) for line in order.lines)
        return DraftState(order.id, order.order_number, order.status, order.registration.dea_number,
                          order.supplier.name, lines)

    return _read(db, read)


def save_draft(book: Any, *, order_id: int | None, registration_dea: str, supplier_name: str,
               lines: Sequence[DraftLine]) -> int:
    """Write the editor's draft through the order book and return the order id.

    Lines that did not change keep their numbers and history; from the first changed line on, the stored lines are
    removed and the new ones added, so line numbers stay 1..n and the audit trail shows exactly what changed.
    """
    registration = book.registration(registration_dea)
    supplier = book.supplier(supplier_name)
    problems = check_draft(registration, supplier, lines, today=book.clock().date())
    if problems:
        raise InvalidValue(problems[0].message, code=problems[0].code)
    if order_id is None:
        order = book.new_order(registration_dea=registration.dea_number, supplier_name=supplier.name)
        order_id = order.id
        stored: tuple[DraftLine, ...] = ()
    else:
        state = load_draft(book.db, order_id)
        if state.status is not OrderStatus.DRAFT:
            raise InvalidValue(f"Order {state.order_number} is {state.status.label.lower()}; only draft orders can "
                               "be changed. Use “New order from this one” instead.", code="order.not_draft")
        if state.registration_dea != registration.dea_number:
            raise InvalidValue("The registration of a saved draft cannot change (the order number belongs to it). "
                               "Start a new order instead.", code="order.registration_fixed")
        if state.supplier_name != supplier.name:
            _change_supplier(book, order_id, supplier)
        stored = state.lines
    keep = 0
    while keep < min(len(stored), len(lines)) and (stored[keep].ndc, stored[keep].packages) == \
            (lines[keep].ndc, lines[keep].packages):
        keep += 1
    for number in range(len(stored), keep, -1):
        book.remove_line(order_id, number)
    for line in lines[keep:]:
        book.add_line(order_id, ndc=line.ndc, packages=line.packages)
    return order_id


def _change_supplier(book: Any, order_id: int, supplier: Supplier) -> None:
    try:
        with book.db.session() as session, session.begin():
            order = session.get(Order, order_id)
            if order is None or order.status is not OrderStatus.DRAFT:
                raise InvalidValue("Only a draft order can go to another supplier.", code="order.not_draft")
            previous = order.supplier.name
            session.execute(update(Order).where(Order.id == order_id)
                            .values(supplier_id=supplier.id, updated_at=book.clock()))
            append_audit_event(session, action="order.supplier_changed", actor=book.actor, order_id=order_id,
                               details={"from": previous, "to": supplier.name})
    except SQLAlchemyError as exc:
        raise explain_storage_failure(exc, book.db.url) from exc


def new_order_from(book: Any, order_id: int) -> int:
    """O6: a supplier did not accept an order; issue a new draft with the same lines. The old order is not touched."""
    state = load_draft(book.db, order_id)
    if state.status is not OrderStatus.NOT_ACCEPTED:
        raise InvalidValue(f"Order {state.order_number} is {state.status.label.lower()}. A new order from it is "
                           "only made when the supplier did not accept it.", code="order.not_unaccepted")
    order = book.new_order(registration_dea=state.registration_dea, supplier_name=state.supplier_name,
                           replaces_order_id=order_id)
    for line in state.lines:
        book.add_line(order.id, ndc=line.ndc, packages=line.packages)
    return order.id


def registrations_and_suppliers(db: Any) -> tuple[list[Registration], list[Supplier]]:
    return _read(db, lambda session: (list(session.scalars(select(Registration).order_by(Registration.name))),
                                      list(session.scalars(select(Supplier).order_by(Supplier.name)))))

