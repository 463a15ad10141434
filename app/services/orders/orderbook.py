"""Order book operations: registrations, suppliers, draft orders, state transitions, listing.

Every state change goes through ``transition`` so it is validated by ``app.models.states`` and written to the audit
chain in the same transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Sequence

from sqlalchemy import and_, bindparam, exists, func, literal, or_, select, tuple_, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as SAIntegrityError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload

from app.errors import CsosError, InvalidValue, NotFound
from app.models.database import Database, explain_storage_failure
from app.models.locking import lock_writers
from app.models.integrity import append_audit_event, append_audit_row, chain_tip_statement
from app.models.orderbook import (
    LinkedRecord,
    Order,
    OrderLine,
    OrderNumberCounter,
    Product,
    Registration,
    Supplier,
    UtcDateTime,
    utcnow,
)
from app.models.order_rows import OrderRow, PageKey
from app.models.states import OrderStatus, check_transition
from app.models.values import DeaNumber, Ndc, OrderNumber, Schedule
from app.services.orders.parties import (
    RegistrationForm,
    SupplierForm,
    check_registration,
    check_supplier,
    raise_first,
    same_name,
)
from app.services.orders.local_dates import local_date, zone_for
from app.services.orders.descriptions import x12_safe_description

MAX_ORDER_SEQUENCE = 999_999
_LINE_RETRIES = 20
_ORDER_NUMBER_PREFIX = re.compile(r"^[0-9]{2}X[0-9A-Z]{0,6}$")


class DuplicateRecord(CsosError):
    code = "duplicate"


def _schedules_text(schedules: Iterable[Schedule | str]) -> str:
    parsed = {s if isinstance(s, Schedule) else Schedule.parse(s) for s in schedules}
    order = [s for s in Schedule if s in parsed and s.is_controlled]
    return ",".join(s.value for s in order)


def _insert_ignore(session: Session, table: Any, values: dict[str, Any], keys: list[str]) -> None:
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:  # pragma: no cover - other engines are not supported
        raise CsosError(f"Database engine {dialect} is not supported.", code="storage.engine")
    session.execute(dialect_insert(table).values(**values).on_conflict_do_nothing(index_elements=keys))


@dataclass(frozen=True)
class OrderFilter:
    """What the order book view (or `order list`) narrows to; empty means everything."""

    statuses: frozenset[OrderStatus] = frozenset()
    supplier_id: int | None = None
    registration_id: int | None = None
    created_from: dt.datetime | None = None
    created_to: dt.datetime | None = None
    schedule: Schedule | None = None
    text: str = ""

    def clauses(self, session: Session) -> list[Any]:
        where: list[Any] = []
        if self.statuses:
            where.append(Order.status.in_(sorted(self.statuses, key=lambda s: s.value)))
        if self.supplier_id is not None:
            where.append(Order.supplier_id == self.supplier_id)
        if self.registration_id is not None:
            where.append(Order.registration_id == self.registration_id)
        if self.created_from is not None:
            where.append(Order.created_at >= self.created_from)
        if self.created_to is not None:
            where.append(Order.created_at < self.created_to)
        if self.schedule is not None:
            where.append(exists().where(and_(OrderLine.order_id == Order.id,
                                             OrderLine.schedule == self.schedule.value)))
        text = self.text.strip()
        if text and _ORDER_NUMBER_PREFIX.match(text.upper()):
            # An order number (or its start): a range on the indexed column, nothing else can look like it.
            prefix = text.upper()
            where.append(and_(Order.order_number >= prefix, Order.order_number <= prefix + "~"))
        elif text:
            where.append(_product_clause(session, text))
        return where


# Below this many matching lines, find the orders through the lines' NDC index; above it, walking orders newest-first
# finds a page of matches quickly.
_SELECTIVE_LINE_COUNT = 2000


def _product_clause(session: Session, text: str) -> Any:
    """Orders with a line for a product whose name or NDC matches ``text``.

    Lines always carry a catalog NDC (``add_line`` requires one), so the catalog (small) is searched first and the
    order lines (large) only through their NDC index.
    """
    ndc_prefix = _ndc_prefix(text)
    if ndc_prefix is not None:
        product_match = [and_(Product.ndc >= ndc_prefix, Product.ndc <= ndc_prefix + "~")]
    else:
        # Start of the product or generic name, through the lower(name) indexes: what people type ("oxyc").
        low = text.lower()
        high = low[:-1] + chr(ord(low[-1]) + 1)
        product_match = [and_(func.lower(Product.name) >= low, func.lower(Product.name) < high),
                         and_(func.lower(Product.generic_name) >= low, func.lower(Product.generic_name) < high)]
    ndcs = list(session.scalars(select(Product.ndc).where(or_(*product_match)).limit(5000)))
    if not ndcs:
        return literal(False)
    matching_lines = select(OrderLine.order_id).where(OrderLine.ndc.in_(ndcs))
    count = session.scalar(select(func.count()).select_from(matching_lines.limit(_SELECTIVE_LINE_COUNT + 1)
                                                            .subquery()))
    if count <= _SELECTIVE_LINE_COUNT:
        return Order.id.in_(list(session.scalars(matching_lines)))
    return exists().where(and_(OrderLine.order_id == Order.id, OrderLine.ndc.in_(ndcs)))


def _ndc_prefix(text: str) -> str | None:
    """The 11-digit-NDC prefix a typed (partial) NDC stands for, or None when the text is not an NDC."""
    compact = text.replace(" ", "")
    if not compact or not all(c.isdigit() or c == "-" for c in compact) or sum(c.isdigit() for c in compact) < 4:
        return None
    try:
        return Ndc.parse(compact).digits
    except InvalidValue:
        pass
    segments = compact.split("-")
    if len(segments) == 1:
        return segments[0][:11]
    widths = (5, 4, 2)
    padded = [segment.zfill(width) if i < len(segments) - 1 else segment
              for i, (segment, width) in enumerate(zip(segments, widths))]
    return "".join(padded)




@dataclass
class OrderSummary:
    total: int
    by_status: dict[str, int] = field(default_factory=dict)
    registrations: int = 0
    suppliers: int = 0
    products: int = 0


class OrderBook:
    """The operations the CLI, the GUI and the services above them call."""

    def __init__(self, db: Database, *, actor: str = "", clock: Callable[[], dt.datetime] = utcnow,
                 time_zones: Mapping[str, str] | None = None) -> None:
        """``time_zones``: DEA number → time zone name (setting ``time_zones``); others use the computer's zone."""
        self.db = db
        self.actor = actor
        self.clock = clock
        self.time_zones = dict(time_zones or {})

    # -- registrations and suppliers -----------------------------------------------------------------------------

    def add_registration(self, *, dea_number: str, name: str, address_lines: Sequence[str], city: str, state: str,
                         postal_code: str, schedules: Iterable[Schedule | str] = (),
                         expires_on: dt.date | None = None, business_activity: str = "RETAIL PHARMACY") -> Registration:
        dea = DeaNumber.parse(dea_number)
        form = RegistrationForm(dea_number=dea.value, name=name, address_lines=tuple(address_lines), city=city,
                                state=state, postal_code=postal_code,
                                schedules=tuple(s.value if isinstance(s, Schedule) else s for s in schedules),
                                business_activity=business_activity)
        with self._write() as session:
            if session.scalar(select(Registration.id).where(Registration.dea_number == dea.value)):
                raise DuplicateRecord(f"Registration {dea.value} is already in the order book.",
                                      code="registration.duplicate")
            raise_first(check_registration(form))
            self._refuse_name_clash(session, Registration, name, what="registration")
            registration = Registration(dea_number=dea.value, expires_on=expires_on, **_registration_values(form))
            session.add(registration)
            session.flush()
            append_audit_event(session, action="registration.added", actor=self.actor,
                               details={"dea_number": dea.value, "name": registration.name})
        return registration

    def update_registration(self, dea_number: str, *, expires_on: dt.date | None = None,
                            **changes: Any) -> Registration:
        """Change a registration's details (not its DEA number); signed orders keep what they were signed with."""
        with self._write() as session:
            registration = self._registration_in(session, dea_number)
            current = RegistrationForm(
                dea_number=registration.dea_number, name=registration.name,
                address_lines=tuple(registration.address_lines or ()), city=registration.city,
                state=registration.state, postal_code=registration.postal_code,
                schedules=tuple(s for s in registration.schedules.split(",") if s),
                business_activity=registration.business_activity)
            wanted = {key: (tuple(value) if key in ("address_lines", "schedules") else value)
                      for key, value in changes.items() if value is not None}
            form = dataclasses.replace(current, **wanted)
            raise_first(check_registration(form))
            self._refuse_name_clash(session, Registration, form.name, what="registration", other_than=registration.id)
            changed = sorted(key for key in wanted if getattr(form, key) != getattr(current, key))
            for key, value in _registration_values(form).items():
                setattr(registration, key, value)
            if expires_on is not None and expires_on != registration.expires_on:
                registration.expires_on = expires_on
                changed.append("expires_on")
            append_audit_event(session, action="registration.updated", actor=self.actor,
                               details={"dea_number": registration.dea_number, "changed": changed})
            session.flush()
            session.expunge(registration)
        return registration

    def remove_registration(self, dea_number: str) -> None:
        """Remove a registration nothing refers to (no order, no certificate); otherwise say what refers to it."""
        from app.models.orderbook import CertificateRecord

        with self._write() as session:
            registration = self._registration_in(session, dea_number)
            numbers = list(session.scalars(select(Order.order_number).where(Order.registration_id == registration.id)
                                           .order_by(Order.id).limit(4)))
            orders = session.scalar(select(func.count(Order.id)).where(Order.registration_id == registration.id))
            certificates = session.scalar(select(func.count(CertificateRecord.id))
                                          .where(CertificateRecord.registration_id == registration.id))
            if orders or certificates:
                raise InvalidValue(f"Registration {registration.dea_number} cannot be removed: "
                                   f"{_references(orders, numbers, certificates)} refer to it, and those records "
                                   "are kept. You can change its details with `registration edit`.",
                                   code="registration.in_use")
            session.execute(OrderNumberCounter.__table__.delete().where(
                OrderNumberCounter.registration_id == registration.id))
            session.delete(registration)
            append_audit_event(session, action="registration.removed", actor=self.actor,
                               details={"dea_number": registration.dea_number, "name": registration.name})

    def _registration_in(self, session: Session, dea_number: str) -> Registration:
        dea = DeaNumber.parse(dea_number)
        found = session.scalar(select(Registration).where(Registration.dea_number == dea.value))
        if found is None:
            raise NotFound(f"Registration {dea.value} is not in the order book.", code="registration.not_found")
        return found

    def _refuse_name_clash(self, session: Session, model: Any, name: str, *, what: str,
                           other_than: int | None = None) -> None:
        """Names are unique under Unicode case folding ("ACME DRUG" is "Acme Drug")."""
        query = select(model.id, model.name)
        if other_than is not None:
            query = query.where(model.id != other_than)
        clash = same_name(session.execute(query).all(), name)
        if clash:
            raise DuplicateRecord(f"A {what} called “{clash[0][1]}” is already in the order book (capitals do not "
                                  "count); use a different name.", code=f"{what}.duplicate")

    def list_registrations(self) -> list[Registration]:
        with self.db.session() as session:
            return list(session.scalars(select(Registration).order_by(Registration.name)))

    def registration(self, dea_number: str) -> Registration:
        """By DEA number, or by name (same rule as the duplicate check) when the text is not a DEA number."""
        try:
            dea = DeaNumber.parse(dea_number)
        except InvalidValue:
            with self.db.session() as session:
                found = self._by_name(session, Registration, dea_number, what="registrations")
            if found is None:
                raise
            return found
        with self.db.session() as session:
            found = session.scalar(select(Registration).where(Registration.dea_number == dea.value))
        if found is None:
            raise NotFound(f"Registration {dea.value} is not in the order book. Add it first.",
                           code="registration.not_found")
        return found

    @staticmethod
    def _by_name(session: Session, model: Any, name: str, *, what: str) -> Any:
        matches = same_name(session.execute(select(model.id, model.name)).all(), name)
        if len(matches) > 1:
            named = " and ".join(f"“{n}”" for _, n in matches)
            raise InvalidValue(f"The {what} {named} have the same name except for capitals. Rename one "
                               f"(`{what[:-1]} edit`) so each can be told apart.",
                               code=f"{what[:-1]}.names_clash")
        return session.get(model, matches[0][0]) if matches else None

    def add_supplier(self, *, name: str, dea_number: str | None = None, address_lines: Sequence[str] = (),
                     city: str | None = None, state: str | None = None, postal_code: str | None = None,
                     connector: dict[str, Any] | None = None) -> Supplier:
        connector = connector or {"kind": "manual"}
        raise_first(check_supplier(SupplierForm(
            name=name, dea_number=dea_number or "", address_lines=tuple(address_lines), city=city or "",
            state=state or "", postal_code=postal_code or "", kind=str(connector.get("kind") or "manual"),
            url=str(connector.get("url") or ""), folder=str(connector.get("folder") or ""),
            tls_bundle=str(connector.get("tls_bundle") or ""))))
        dea = DeaNumber.parse(dea_number).value if dea_number else None
        supplier = Supplier(name=name.strip(), dea_number=dea,
                            address_lines=[line.strip() for line in address_lines if line.strip()],
                            city=(city or "").strip() or None, state=(state or "").strip().upper() or None,
                            postal_code=(postal_code or "").strip() or None, connector=connector)
        with self._write() as session:
            self._refuse_name_clash(session, Supplier, supplier.name, what="supplier")
            session.add(supplier)
            session.flush()
            append_audit_event(session, action="supplier.added", actor=self.actor,
                               details={"name": supplier.name, "dea_number": dea})
        return supplier

    def remove_supplier(self, name: str) -> None:
        """Remove a supplier no order refers to; otherwise say which orders do."""
        with self._write() as session:
            supplier = self._by_name(session, Supplier, name, what="suppliers")
            if supplier is None:
                raise NotFound(f"Supplier '{name}' is not in the order book.", code="supplier.not_found")
            numbers = list(session.scalars(select(Order.order_number).where(Order.supplier_id == supplier.id)
                                           .order_by(Order.id).limit(4)))
            orders = session.scalar(select(func.count(Order.id)).where(Order.supplier_id == supplier.id))
            if orders:
                raise InvalidValue(f"Supplier {supplier.name} cannot be removed: {_references(orders, numbers, 0)} "
                                   "refer to it, and those records are kept. You can change its details with "
                                   "`supplier edit`.", code="supplier.in_use")
            session.delete(supplier)
            append_audit_event(session, action="supplier.removed", actor=self.actor,
                               details={"supplier_id": supplier.id, "name": supplier.name})

    def list_suppliers(self) -> list[Supplier]:
        with self.db.session() as session:
            return list(session.scalars(select(Supplier).order_by(Supplier.name)))

    def supplier(self, name: str) -> Supplier:
        """By name, compared as the duplicate check compares (Unicode case folding): "éclair drug" finds "Éclair
        Drug"; two stored names that fold alike are reported, never one of them picked silently."""
        with self.db.session() as session:
            found = self._by_name(session, Supplier, name, what="suppliers")
        if found is None:
            raise NotFound(f"Supplier '{name}' is not in the order book. Add it first.", code="supplier.not_found")
        return found

    # -- order numbers ------------------------------------------------------------------------------------------

    def allocate_order_number(self, registration_id: int, *, year: int | None = None) -> OrderNumber:
        """Issue the next unused order number of a registration for a year (duty O2).

        The counter moves in one atomic UPDATE in its own short transaction, so two windows or workstations
        allocating at the same moment get different numbers; numbers already used (e.g. typed by hand) are skipped.
        """
        year = year or self._local_year(registration_id)
        for attempt in range(50):
            try:
                with self.db.session() as session, session.begin():
                    _insert_ignore(session, OrderNumberCounter.__table__,
                                   {"registration_id": registration_id, "year": year, "next_value": 1},
                                   ["registration_id", "year"])
                    while True:
                        value = session.execute(
                            update(OrderNumberCounter)
                            .where(OrderNumberCounter.registration_id == registration_id,
                                   OrderNumberCounter.year == year)
                            .values(next_value=OrderNumberCounter.next_value + 1)
                            .returning(OrderNumberCounter.next_value)
                        ).scalar_one() - 1
                        if value > MAX_ORDER_SEQUENCE:
                            raise CsosError(f"All order numbers for {year} are used for this registration.",
                                            code="order_number.exhausted")
                        number = OrderNumber.build(year, f"{value:06d}")
                        taken = session.scalar(select(Order.id).where(Order.registration_id == registration_id,
                                                                      Order.order_number == number.value))
                        if taken is None:
                            return number
            except OperationalError as exc:
                if "locked" not in str(exc).lower() or attempt == 49:
                    raise explain_storage_failure(exc, self.db.url) from exc
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")

    def _local_year(self, registration_id: int) -> int:
        """The order-number year is the pharmacy's local year (31 December evening is still the old year)."""
        dea = None
        if self.time_zones:
            with self.db.session() as session:
                dea = session.scalar(select(Registration.dea_number).where(Registration.id == registration_id))
        return local_date(self.clock(), zone_for(self.time_zones, dea)).year

    # -- orders -------------------------------------------------------------------------------------------------

    def new_order(self, *, registration_dea: str, supplier_name: str, order_number: str | None = None,
                  replaces_order_id: int | None = None, note: str = "") -> Order:
        registration = self.registration(registration_dea)
        supplier = self.supplier(supplier_name)
        if order_number is not None:
            number = OrderNumber.parse(order_number)
            year = self._local_year(registration.id)
            if number.year_two_digits != f"{year % 100:02d}":
                raise InvalidValue(f"Order number {number.value} starts with {number.year_two_digits}, but an order "
                                   f"made now must start with this year's {year % 100:02d} (e.g. "
                                   f"{year % 100:02d}X{number.suffix}). Leave the number out to get the next free one.",
                                   code="order_number.year")
            with self.db.session() as session:
                if session.scalar(select(Order.id).where(Order.registration_id == registration.id,
                                                         Order.order_number == number.value)) is not None:
                    raise DuplicateRecord(f"Order number {number.value} is already used for registration "
                                          f"{registration.dea_number}; each order needs its own number. Leave the "
                                          "number out to get the next free one.", code="order_number.duplicate")
        else:
            number = self.allocate_order_number(registration.id)
        order = Order(order_number=number.value, registration_id=registration.id, supplier_id=supplier.id,
                      status=OrderStatus.DRAFT, created_at=self.clock(), updated_at=self.clock(),
                      replaces_order_id=replaces_order_id, note=note)
        try:
            with self._write() as session:
                session.add(order)
                session.flush()
                append_audit_event(session, action="order.created", actor=self.actor, order_id=order.id,
                                   details={"order_number": number.value, "registration": registration.dea_number,
                                            "supplier": supplier.name, "replaces_order_id": replaces_order_id})
        except SAIntegrityError:
            raise DuplicateRecord(f"Order number {number.value} is already used for registration "
                                  f"{registration.dea_number}; each order needs its own number.",
                                  code="order_number.duplicate") from None
        return self.get_order(order.id)

    def get_order(self, order_id: int) -> Order:
        from sqlalchemy.orm import selectinload

        with self.db.session() as session:
            order = session.scalar(
                select(Order).where(Order.id == order_id)
                .options(selectinload(Order.lines).selectinload(OrderLine.receipts),
                         selectinload(Order.linked_records))
            )
        if order is None:
            raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
        return order

    def find_order(self, order_number: str, *, registration_dea: str | None = None) -> Order:
        number = OrderNumber.parse(order_number)
        with self.db.session() as session:
            query = select(Order.id).where(Order.order_number == number.value)
            if registration_dea:
                query = query.join(Registration).where(
                    Registration.dea_number == DeaNumber.parse(registration_dea).value)
            ids = list(session.scalars(query))
        if not ids:
            raise NotFound(f"Order {number.value} is not in the order book.", code="order.not_found")
        if len(ids) > 1:
            raise InvalidValue(f"Order number {number.value} exists for several registrations; say which one "
                               "(--registration).", code="order.ambiguous")
        return self.get_order(ids[0])

    def add_line(self, order_id: int, *, ndc: str, packages: int) -> OrderLine:
        """Add a catalog product to a draft order. Description, package size and schedule come from the catalog."""
        product_ndc = Ndc.parse(ndc)
        if not isinstance(packages, int) or isinstance(packages, bool) or packages < 1:
            raise InvalidValue("The number of packages must be a whole number of at least 1.",
                               code="line.packages")
        if packages > 99_999:
            raise InvalidValue("The number of packages is implausibly large (over 99,999).", code="line.packages")
        # Two windows (or a window and the command line) adding a line to one draft at the same moment both read
        # the same highest line number; the loser's INSERT meets the UNIQUE (order, line number) and is retried
        # with the next number, so both lines are added.
        for attempt in range(_LINE_RETRIES):
            try:
                with self._write() as session:
                    order = session.get(Order, order_id)
                    if order is None:
                        raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
                    if order.status is not OrderStatus.DRAFT:
                        raise InvalidValue(f"Order {order.order_number} is {order.status.label.lower()}; only "
                                           "draft orders can be changed. Issue a new order instead.",
                                           code="order.not_draft")
                    product = session.scalar(select(Product).where(Product.ndc == product_ndc.digits))
                    if product is None:
                        raise NotFound(f"NDC {product_ndc.display} is not in the product catalog. Import the FDA "
                                       "NDC directory (or add the product) first, so its schedule can be checked.",
                                       code="catalog.unknown_ndc")
                    next_number = (session.scalar(select(func.max(OrderLine.line_number))
                                                  .where(OrderLine.order_id == order.id)) or 0) + 1
                    description = x12_safe_description(product.name, product.strength, ndc=product_ndc.display)
                    line = OrderLine(order_id=order.id, line_number=next_number, product_id=product.id,
                                     ndc=product.ndc, description=description, schedule=product.schedule,
                                     packages=packages, package_quantity=Decimal(product.package_quantity),
                                     unit=product.unit)
                    session.add(line)
                    order.updated_at = self.clock()
                    session.flush()
                    append_audit_event(session, action="order.line_added", actor=self.actor, order_id=order.id,
                                       details={"line": next_number, "ndc": product.ndc, "packages": packages})
                    return line
            except SAIntegrityError as exc:
                if "line_number" not in str(exc.orig) and "uq_order_lines" not in str(exc.orig):
                    raise
                time.sleep(0.005 * (attempt + 1))
        raise CsosError("Someone else kept changing this order at the same moment; the line was not added. Try "
                        "again.", code="order.busy")

    def remove_line(self, order_id: int, line_number: int) -> None:
        with self._write() as session:
            order = session.get(Order, order_id)
            if order is None or order.status is not OrderStatus.DRAFT:
                raise InvalidValue("Only lines of a draft order can be removed.", code="order.not_draft")
            line = session.scalar(select(OrderLine).where(OrderLine.order_id == order_id,
                                                          OrderLine.line_number == line_number))
            if line is None:
                raise NotFound(f"Line {line_number} does not exist.", code="line.not_found")
            session.delete(line)
            append_audit_event(session, action="order.line_removed", actor=self.actor, order_id=order_id,
                               details={"line": line_number})

    def transition(self, order_id: int, target: OrderStatus, *, details: dict[str, Any] | None = None,
                   session: Session | None = None) -> Order:
        """Move an order to ``target`` if the state machine allows it, writing an audit event.

        Pass ``session`` to make the transition part of a larger transaction (e.g. storing the signed document).
        """
        if session is not None:
            return self._transition_in(session, order_id, target, details)
        with self._write() as own:
            order = self._transition_in(own, order_id, target, details)
        return order

    def _transition_in(self, session: Session, order_id: int, target: OrderStatus,
                       details: dict[str, Any] | None) -> Order:
        order = session.get(Order, order_id)
        if order is None:
            raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
        current = order.status
        check_transition(current, target)
        if target is OrderStatus.SIGNED and not order.signed_document:
            raise InvalidValue("An order becomes signed only together with its signed document.",
                               code="order.unsigned")
        order.status = target
        order.updated_at = self.clock()
        append_audit_event(session, action="order.status", actor=self.actor, order_id=order.id,
                           details={"from": current.value, "to": target.value, **(details or {})})
        return order

    # -- the signing path (app.services.signing.order_signing) ---------------------------------------------------------------------

    def order_for_signing(self, order_id: int) -> Order:
        """An order row with its registration, supplier and lines, in ONE query, detached (each line's ``order``
        set): ``SignedOrder.order`` of a signing.

        ``get_order`` also loads receipts and linked records (three more round trips); a draft has neither use for
        them when it is signed, and on the returned (detached) order they are left unloaded.
        """
        with self.db.session() as session:
            order = order_with_lines(session, order_id)
            for line in order.lines:
                line.order  # noqa: B018 - the back-reference, from the identity map (no query), usable detached
        return order

    def store_signed(self, order_id: int, *, document: bytes, payload_sha256: str, signed_at: dt.datetime,
                     signer_fingerprint: str, details: dict[str, Any] | None = None,
                     signed_lines: Sequence[Sequence[Any]] | None = None) -> bool:
        """Store a signed document and move the order ``draft → signed`` with its audit event, in ONE transaction.

        Returns False (and writes nothing) when the order is no longer an unsigned draft. The transition is checked
        by the state machine like every other (``check_transition``) and audited like ``transition`` does; the row
        is written with one conditional UPDATE (``status = draft AND signed_document IS NULL``), an atomic
        compare-and-set, so a document is never stored over another even by a racing workstation. Signed content is
        immutable from then on: later ORM updates meet the before-flush rule of ``app.models.integrity``.

        ``signed_lines``: the order's lines as they were read for signing (each line's columns in table order, in
        line order; ``app.services.signing.draft_load``). Also False, nothing written, when they are no longer the
        lines in the book — a line added, changed or removed in another window while this one signed — so the
        stored lines are always the ones the document carries. They are read after the UPDATE, in its transaction:
        on SQLite the UPDATE is what takes the write lock (a SELECT before it would run outside any write
        transaction), on PostgreSQL the writer lock is held from the start; either way no edit can slip in between
        this check and the store.
        """
        check_transition(OrderStatus.DRAFT, OrderStatus.SIGNED)
        try:
            with _WriteConnection(self.db) as connection:
                stored = connection.execute(_STORE_SIGNED, {
                    "b_order_id": order_id, "signed_document": document, "payload_sha256": payload_sha256,
                    "signed_at": signed_at, "signer_fingerprint": signer_fingerprint, "status": OrderStatus.SIGNED,
                    "updated_at": self.clock()})
                if stored.rowcount != 1:
                    return False  # nothing was written; the empty transaction ends
                tip = None
                if signed_lines is not None:
                    # The lines, and on each row the audit chain's tip (one statement; the writer lock is held).
                    current = connection.execute(_DRAFT_LINES_AND_TIP, {"b_order_id": order_id}).all()
                    if [tuple(line[:-1]) for line in current] != [tuple(line) for line in signed_lines]:
                        raise _LinesChanged  # the UPDATE is rolled back
                    tip = current[0][-1] if current else None
                append_audit_row(connection, action="order.status", actor=self.actor, order_id=order_id,
                                 details={"from": OrderStatus.DRAFT.value, "to": OrderStatus.SIGNED.value,
                                          **(details or {})}, chain_tip=tip)
        except _LinesChanged:
            return False
        return True

    def link_record(self, session: Session, order_id: int, record: LinkedRecord) -> LinkedRecord:
        import hashlib

        record.order_id = order_id
        record.raw_sha256 = hashlib.sha256(record.raw or b"").hexdigest()
        session.add(record)
        session.flush()
        append_audit_event(session, action="order.linked_record", actor=self.actor, order_id=order_id,
                           details={"kind": record.kind.value, "record_id": record.id, "sha256": record.raw_sha256})
        return record

    # -- listing ------------------------------------------------------------------------------------------------

    def order_ids_page(self, session: Session, order_filter: OrderFilter = OrderFilter(), *,
                       after: PageKey | None = None, limit: int = 100,
                       newest_first: bool = True) -> list[PageKey]:
        """Keyset pagination by (created_at, id): constant cost for any page depth."""
        query = select(Order.created_at, Order.id).where(*order_filter.clauses(session))
        if after is not None:
            # Row-value comparison so the (created_at, id) index serves any depth.
            key = tuple_(Order.created_at, Order.id)
            bound = tuple_(literal(after.created_at, UtcDateTime()), literal(after.id))
            query = query.where(key < bound if newest_first else key > bound)
        if newest_first:
            query = query.order_by(Order.created_at.desc(), Order.id.desc())
        else:
            query = query.order_by(Order.created_at.asc(), Order.id.asc())
        return [PageKey(created_at, order_id) for created_at, order_id in session.execute(query.limit(limit))]

    def count_orders(self, session: Session, order_filter: OrderFilter = OrderFilter()) -> int:
        return session.scalar(select(func.count(Order.id)).where(*order_filter.clauses(session))) or 0

    def order_rows(self, session: Session, ids: Sequence[int]) -> dict[int, OrderRow]:
        if not ids:
            return {}
        line_counts = (select(OrderLine.order_id, func.count(OrderLine.id).label("n"))
                       .where(OrderLine.order_id.in_(ids)).group_by(OrderLine.order_id).subquery())
        query = (select(Order.id, Order.order_number, Order.status, Registration.dea_number, Supplier.name,
                        Order.created_at, Order.signed_at, func.coalesce(line_counts.c.n, 0))
                 .join(Registration, Registration.id == Order.registration_id)
                 .join(Supplier, Supplier.id == Order.supplier_id)
                 .outerjoin(line_counts, line_counts.c.order_id == Order.id)
                 .where(Order.id.in_(ids)))
        return {row[0]: OrderRow(*row) for row in session.execute(query)}

    def summary(self) -> OrderSummary:
        with self.db.session() as session:
            by_status = {status.value: count for status, count in session.execute(
                select(Order.status, func.count(Order.id)).group_by(Order.status))}
            return OrderSummary(
                total=sum(by_status.values()), by_status=by_status,
                registrations=session.scalar(select(func.count(Registration.id))) or 0,
                suppliers=session.scalar(select(func.count(Supplier.id))) or 0,
                products=session.scalar(select(func.count(Product.id))) or 0,
            )

    # -- plumbing -----------------------------------------------------------------------------------------------

    def _write(self) -> "_WriteTransaction":
        return _WriteTransaction(self.db)


# The signing path's two statements, built once (building a statement costs more than running it on SQLite).
_ORDER_WITH_LINES = select(Order).where(Order.id == bindparam("b_order_id")).options(joinedload(Order.lines))


def order_with_lines(session: Session, order_id: int) -> Order:
    """An order with its lines in one query (signing, recording a delivery); its other collections load when first
    used in ``session``."""
    order = session.scalars(_ORDER_WITH_LINES, {"b_order_id": order_id}).unique().one_or_none()
    if order is None:
        raise NotFound(f"Order {order_id} does not exist.", code="order.not_found")
    return order


_DRAFT_LINES_AND_TIP = (
    select(OrderLine.__table__, chain_tip_statement().scalar_subquery())
    .where(OrderLine.__table__.c.order_id == bindparam("b_order_id")).order_by(OrderLine.__table__.c.line_number))
_STORE_SIGNED = update(Order.__table__).where(  # SET columns come from the execute() parameters
    Order.__table__.c.id == bindparam("b_order_id"), Order.__table__.c.status == OrderStatus.DRAFT,
    Order.__table__.c.signed_document.is_(None))


class _LinesChanged(Exception):
    """``store_signed``: the draft's lines are not the ones signed (rolls its transaction back)."""


class _WriteTransaction:
    """A session in a transaction that commits on success and turns driver failures into StorageError."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.session: Session | None = None

    def __enter__(self) -> Session:
        self.session = self.db.session()
        self.session.begin()
        try:
            lock_writers(self.session)  # PostgreSQL: one writer at a time, as on SQLite (audit chain tip)
        except OperationalError as failure:
            self.session.close()
            raise explain_storage_failure(failure, self.db.url) from failure
        return self.session

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        assert self.session is not None
        _end_transaction(exc, commit=self.session.commit, rollback=self.session.rollback, close=self.session.close,
                         url=self.db.url)
        return False


def _end_transaction(exc: BaseException | None, *, commit: Callable[[], None], rollback: Callable[[], None],
                     close: Callable[[], None], url: str) -> None:
    """Commit (or roll back after ``exc``), always close; a driver failure becomes a plain storage error."""
    try:
        if exc is None:
            try:
                commit()
            except OperationalError as failure:
                rollback()
                raise explain_storage_failure(failure, url) from failure
        else:
            rollback()
            if isinstance(exc, OperationalError):
                raise explain_storage_failure(exc, url) from exc
    finally:
        close()


class _WriteConnection:
    """``_WriteTransaction`` for writes made of Core statements only (the signing path's ``store_signed``): a bare
    Connection in a transaction, without the ORM Session whose bookkeeping (begin, flush, commit, close) cost about
    0.1 ms a transaction here. Same writer lock, same commit-or-rollback, same explained driver failures."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __enter__(self) -> Connection:
        try:
            self.connection = self.db.engine.connect()
        except OperationalError as failure:
            raise explain_storage_failure(failure, self.db.url) from failure
        try:
            self.transaction = self.connection.begin()
            lock_writers(self.connection)
        except OperationalError as failure:
            self.connection.close()
            raise explain_storage_failure(failure, self.db.url) from failure
        return self.connection

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        _end_transaction(exc, commit=self.transaction.commit, rollback=self.transaction.rollback,
                         close=self.connection.close, url=self.db.url)
        return False


def _registration_values(form: RegistrationForm) -> dict[str, Any]:
    return {"name": form.name.strip(), "address_lines": [line.strip() for line in form.address_lines if line.strip()],
            "city": form.city.strip(), "state": form.state.strip().upper(), "postal_code": form.postal_code.strip(),
            "schedules": _schedules_text(form.schedules), "business_activity": form.business_activity.strip()}


def _references(orders: int, numbers: list[str], certificates: int) -> str:
    parts = []
    if orders:
        shown = ", ".join(numbers[:3]) + (" …" if orders > 3 else "")
        parts.append(f"{orders} order{'s' if orders != 1 else ''} ({shown})")
    if certificates:
        parts.append(f"{certificates} certificate{'s' if certificates != 1 else ''}")
    return " and ".join(parts)
