"""Controlled-substance ordering history and the "unusual quantity" notice before signing (issue 21).

Why: a supplier must hold orders that are unusual in size (21 CFR 1301.74(b)); the pharmacy only learns of it when
an order is held. Here it sees its own pattern — per registration, substance, supplier and month — and is told
before it signs when an order would make this month unusual. A notice never blocks signing.

What counts: orders signed and later, except cancelled, not accepted and lost ones (a lost order's goods are ordered
again by its replacement). Ordered = packages and dosage units (packages × quantity in one package: tablets, mL or
g) of the signed lines; fulfilled = packages received (receipts) × quantity in one package, counted in the month the
order was signed. Months are the pharmacy's local months (the registration's ``time_zones`` setting, else the
computer's zone).

Substance: the first name of ``resources/controlled_substances.csv`` (in the table's order) found as a whole word in
the product's generic name, brand name or the line's description — so every NDC of oxycodone counts together.
Controlled lines whose product names no listed substance count under ``OTHER``.

Each chart is ONE query, aggregated in the database, the same on SQLite and PostgreSQL. It reads ``history_days``
(app.models.orderbook.HistoryDay: controlled lines of counted orders summed per registration, UTC day, supplier and
package, kept by database triggers in the same transaction as the order, line or receipt), so a 300k-order book
costs a few thousand rows, not every line. A local month rarely starts at UTC midnight: the UTC day it starts inside
is read line by line instead, so every line still lands in its local month. The rows come back summed per NDC and
month (the month from precomputed boundaries in a CASE, so no per-dialect date functions); Python names each
product's substance once (cached) and sums the few rows per substance.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Integer,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from app.errors import InvalidValue
from app.models.database import Database
from app.models.orderbook import (
    HistoryDay,
    Order,
    OrderLine,
    Product,
    Receipt,
    Registration,
    Supplier,
    UtcDateTime,
)
from app.models.states import OrderStatus

log = logging.getLogger(__name__)

DEFAULT_MONTHS = 24
BASELINE_MONTHS = 6
DEFAULT_FACTOR = Decimal(2)
OTHER = "other"  # controlled lines whose product names no listed substance

# Signed and later; cancelled and not-accepted orders never reached the supplier's books, a lost order is ordered
# again by its replacement.
COUNTED_STATUSES = tuple(s for s in OrderStatus if s.is_signed
                         and s not in (OrderStatus.CANCELLED, OrderStatus.NOT_ACCEPTED, OrderStatus.LOST))
UNIT_WORDS = {"EA": "units", "ML": "mL", "GR": "g"}
_SEPARATORS = (",", ";", "/", "(", ")", "-", ".", "+", "&")


class HistoryError(InvalidValue):
    code = "history.invalid"


# -- substances ------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def substance_names() -> tuple[str, ...]:
    """The bundled controlled-substance table's names, in its order (the order decides a two-substance product)."""
    from app.services.catalog import load_controlled_substances

    return tuple(s.name for s in load_controlled_substances())


def substance_label(name: str | None) -> str:
    if not name or name == OTHER:
        return "Other controlled products"
    return name[:1].upper() + name[1:]


def _normalise_text(text: str) -> str:
    lowered = text.lower()
    for separator in _SEPARATORS:
        lowered = lowered.replace(separator, " ")
    return f" {lowered} "


def substance_of(text: str, names: Sequence[str] | None = None) -> str:
    """The first listed name found as a whole word in ``text`` (the product's generic name, name and the line's
    description); the history names each product this way, once (cached)."""
    normalised = _normalise_text(text)
    for name in names or substance_names():
        if f" {name} " in normalised:
            return name
    return OTHER


@functools.lru_cache(maxsize=4096)
def _substance_of_text(text: str, names: tuple[str, ...]) -> str:
    """Cached per product text: a book has few distinct NDC/description pairs, named once each."""
    return substance_of(text, names)


def _product_substance(generic_name: str | None, name: str | None, description: str | None,
                       names: tuple[str, ...]) -> str:
    return _substance_of_text(f"{generic_name or ''} {name or ''} {description or ''}", names)


# -- months ----------------------------------------------------------------------------------------------------------


def pharmacy_zone(settings: Mapping[str, Any] | None = None, registration: str | None = None) -> Any:
    """The registration's zone from the ``time_zones`` setting (the one the order's date uses,
    ``app.services.orders.local_dates``); None = this computer's zone."""
    from app.services.orders.local_dates import zone_for, zone_named

    return zone_named(zone_for((settings or {}).get("time_zones"), registration))


def _local(moment: dt.datetime, zone: ZoneInfo | None) -> dt.datetime:
    return moment.astimezone(zone) if zone is not None else moment.astimezone()


def _month_start_utc(month: dt.date, zone: ZoneInfo | None) -> dt.datetime:
    naive = dt.datetime(month.year, month.month, 1)
    # A naive time's astimezone() reads it as the computer's local time, daylight saving included.
    local = naive.replace(tzinfo=zone) if zone is not None else naive.astimezone()
    return local.astimezone(dt.timezone.utc)


def _add_months(month: dt.date, count: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + count
    return dt.date(index // 12, index % 12 + 1, 1)


def month_window(now: dt.datetime, months: int, zone: ZoneInfo | None) -> tuple[list[dt.date], list[dt.datetime]]:
    """The last ``months`` local months ending with the current one, and their ``months + 1`` UTC boundaries."""
    if not 1 <= months <= 120:
        raise HistoryError("The history covers 1 to 120 months.", code="history.months")
    local_now = _local(now, zone)
    current = dt.date(local_now.year, local_now.month, 1)
    firsts = [_add_months(current, offset) for offset in range(1 - months, 1)]
    bounds = [_month_start_utc(m, zone) for m in firsts] + [_month_start_utc(_add_months(current, 1), zone)]
    return firsts, bounds


# -- the aggregation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    registration: str | None = None  # DEA number
    supplier: str | None = None  # supplier name
    schedule: str | None = None  # "II", "IIN", …
    substances: tuple[str, ...] = ()  # substance names; empty = all


@dataclass(frozen=True)
class HistoryRow:
    registration: str
    supplier: str
    month: dt.date
    substance: str
    schedule: str
    unit: str
    ordered_packages: int
    ordered_units: Decimal
    fulfilled_packages: int
    fulfilled_units: Decimal

    def to_json(self) -> dict[str, Any]:
        return {"registration": self.registration, "supplier": self.supplier, "month": self.month.strftime("%Y-%m"),
                "substance": self.substance, "schedule": self.schedule, "unit": self.unit,
                "ordered_packages": self.ordered_packages, "ordered_units": str(self.ordered_units),
                "fulfilled_packages": self.fulfilled_packages, "fulfilled_units": str(self.fulfilled_units)}


CSV_HEADER = ("registration", "supplier", "month", "substance", "schedule", "unit", "ordered_packages",
              "ordered_units", "fulfilled_packages", "fulfilled_units")


@dataclass
class HistoryReport:
    months: list[dt.date]
    rows: list[HistoryRow]
    zone_name: str = ""

    def totals(self, key: str = "substance") -> dict[tuple[str, str], dict[str, list[Decimal]]]:
        """Per (``key`` value, unit): ordered and fulfilled dosage units per month (the chart's series)."""
        index = {month: position for position, month in enumerate(self.months)}
        series: dict[tuple[str, str], dict[str, list[Decimal]]] = {}
        for row in self.rows:
            name = getattr(row, key)
            entry = series.setdefault((name, row.unit), {"ordered": [Decimal(0)] * len(self.months),
                                                         "fulfilled": [Decimal(0)] * len(self.months)})
            entry["ordered"][index[row.month]] += row.ordered_units
            entry["fulfilled"][index[row.month]] += row.fulfilled_units
        return dict(sorted(series.items()))

    def filtered(self, *, registration: str | None = None, supplier: str | None = None,
                 schedule: str | None = None, substance: str | None = None) -> "HistoryReport":
        """The same months with only the matching rows (the window filters without asking the database again)."""
        wanted = {"registration": registration, "supplier": supplier, "schedule": schedule, "substance": substance}
        rows = [row for row in self.rows if all(value is None or getattr(row, key) == value
                                                for key, value in wanted.items())]
        return HistoryReport(months=self.months, rows=rows, zone_name=self.zone_name)

    def csv_rows(self) -> list[list[str]]:
        return [[str(v) for v in row.to_json().values()] for row in self.rows]

    def choices(self) -> dict[str, list[str]]:
        """The values present, for the window's filters."""
        return {"registration": sorted({r.registration for r in self.rows}),
                "schedule": sorted({r.schedule for r in self.rows}),
                "substance": sorted({r.substance for r in self.rows}),
                "supplier": sorted({r.supplier for r in self.rows})}


def _quantity(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.001")).normalize() + Decimal(0)


def _month_case(column: Any, bounds: Sequence[Any], low: int, high: int) -> Any:
    """Index of the month holding ``column`` among ``bounds[low:high + 1]``, found by halving (about five
    comparisons a row instead of up to 24); the WHERE clause keeps rows inside the window."""
    if high - low == 1:
        return literal(low)
    middle = (low + high) // 2
    return case((column < bounds[middle], _month_case(column, bounds, low, middle)),
                else_=_month_case(column, bounds, middle, high))


@dataclass(frozen=True)
class _SplitDay:
    """A UTC day a local month starts inside: its smaller side (``start``–``end``, at most 12 hours) is read line by
    line; its ``history_days`` rows less those lines are the other side, in month ``other`` (-1: outside the
    window)."""

    day: dt.date
    start: dt.datetime
    end: dt.datetime
    other: int


def _day_plan(bounds: Sequence[dt.datetime]) -> tuple[list[dt.date], list[_SplitDay]]:
    """For the UTC month boundaries: the first whole UTC day of each month (``history_days`` rows from that day on
    belong to it, up to the next one) and the split days."""
    utc = [b.astimezone(dt.timezone.utc) for b in bounds]
    last = len(utc) - 1
    thresholds, split = [], []
    for index, bound in enumerate(utc):
        day_start = bound.replace(hour=0, minute=0, second=0, microsecond=0)
        if bound == day_start:
            thresholds.append(bound.date())
            continue
        thresholds.append(bound.date() + dt.timedelta(days=1))
        day_end = day_start + dt.timedelta(days=1)
        if bound - day_start <= day_end - bound:  # read before the boundary; the rest is month ``index``
            split.append(_SplitDay(bound.date(), day_start, bound, index if index < last else -1))
        else:  # read from the boundary on; the rest is the month before
            split.append(_SplitDay(bound.date(), bound, day_end, index - 1))
    thresholds[-1] = utc[-1].date()  # the window's last day counts only whole
    return thresholds, split


def history_query(months_bounds: Sequence[dt.datetime], history_filter: HistoryFilter) -> tuple[Any, dict[str, Any]]:
    """The one SELECT behind a chart (see the module docstring) and the values to run it with."""
    thresholds, split = _day_plan(months_bounds)
    statement = _history_statement(len(months_bounds), len(split), bool(history_filter.registration),
                                   bool(history_filter.supplier), bool(history_filter.schedule))
    values: dict[str, Any] = {f"bound_{i}": b for i, b in enumerate(months_bounds)}
    values.update({f"day_{i}": d for i, d in enumerate(thresholds)})
    for i, part in enumerate(split):
        values.update({f"split_{i}": part.day, f"split_from_{i}": part.start, f"split_to_{i}": part.end,
                       f"split_other_{i}": part.other})
    values.update(registration=history_filter.registration, supplier=history_filter.supplier,
                  schedule=history_filter.schedule)
    return statement, {k: v for k, v in values.items() if v is not None}


_PACKAGE = ("registration_id", "supplier_id", "ndc", "schedule", "unit", "package_quantity", "description")


@functools.lru_cache(maxsize=32)
def _history_statement(bound_count: int, split_count: int, by_registration: bool, by_supplier: bool,
                       by_schedule: bool) -> Any:
    """Built once per shape. Whole UTC days come from ``history_days`` (kept by triggers, a few rows a day). A UTC
    day a local month starts inside: its smaller side is read line by line, each line into its local month, and
    its ``history_days`` rows less those lines (same package and description) make the other side — exact, and at
    most 12 hours of lines per month boundary."""
    o, line, product = Order.__table__.c, OrderLine.__table__.c, Product.__table__.c
    days, receipts = HistoryDay.__table__.c, Receipt.__table__.c
    registration, supplier = Registration.__table__.c, Supplier.__table__.c
    bound = [bindparam(f"bound_{i}", type_=UtcDateTime) for i in range(bound_count)]
    day_bound = [bindparam(f"day_{i}", type_=Date) for i in range(bound_count)]
    split = [bindparam(f"split_{i}", type_=Date) for i in range(split_count)]

    def key_filters(registration_id: Any, supplier_id: Any, schedule: Any) -> list[Any]:
        found = []
        if by_registration:
            found.append(registration_id == select(registration.id).where(
                registration.dea_number == bindparam("registration", type_=String)).scalar_subquery())
        if by_supplier:
            found.append(supplier_id == select(supplier.id).where(
                supplier.name == bindparam("supplier", type_=String)).scalar_subquery())
        if by_schedule:
            found.append(schedule == bindparam("schedule", type_=String))
        return found

    summed = [days.day >= day_bound[0], days.day < day_bound[-1], days.lines > 0,
              *key_filters(days.registration_id, days.supplier_id, days.schedule)]
    if split:
        summed.append(days.day.not_in(split))
    parts = [select(days.registration_id, days.supplier_id,
                    _month_case(days.day, day_bound, 0, len(day_bound) - 1).label("month_index"), days.ndc,
                    days.schedule, days.unit, days.package_quantity, days.description, days.packages,
                    days.fulfilled).where(and_(*summed))]
    if split:
        # Per line, through the receipts' index (cheaper than grouping every receipt of the book first).
        got = func.coalesce(select(func.sum(receipts.packages_received)).where(receipts.order_line_id == line.id)
                            .scalar_subquery(), 0)
        ranges = [(bindparam(f"split_from_{i}", type_=UtcDateTime), bindparam(f"split_to_{i}", type_=UtcDateTime))
                  for i in range(split_count)]
        # Only the ranges in the WHERE clause, so both engines read them through ix_orders_signed_at.
        read = (select(o.registration_id, o.supplier_id, o.signed_at,
                       case(*[(o.signed_at < end, split[i]) for i, (_start, end) in enumerate(ranges)]).label("day"),
                       line.ndc, line.schedule, line.unit, line.package_quantity, line.description, line.packages,
                       got.label("fulfilled"))
                .select_from(OrderLine.__table__.join(Order.__table__, o.id == line.order_id))
                .where(or_(*[and_(o.signed_at >= start, o.signed_at < end) for start, end in ranges]),
                       o.status.in_([s.value for s in COUNTED_STATUSES]), line.schedule != "NC",
                       *key_filters(o.registration_id, o.supplier_id, line.schedule))
                .cte("read_lines"))
        parts.append(select(read.c.registration_id, read.c.supplier_id,
                            _month_case(read.c.signed_at, bound, 0, len(bound) - 1).label("month_index"),
                            read.c.ndc, read.c.schedule, read.c.unit, read.c.package_quantity, read.c.description,
                            read.c.packages, read.c.fulfilled)
                     .where(read.c.signed_at >= bound[0], read.c.signed_at < bound[-1]))
        read_sums = (select(read.c.day, *[read.c[name] for name in _PACKAGE], func.count().label("lines"),
                            func.sum(read.c.packages).label("packages"),
                            func.sum(read.c.fulfilled).label("fulfilled"))
                     .group_by(read.c.day, *[read.c[name] for name in _PACKAGE]).subquery("read_sums"))
        other = case(*[(days.day == split[i], bindparam(f"split_other_{i}", type_=Integer))
                       for i in range(split_count)])
        parts.append(select(days.registration_id, days.supplier_id, other.label("month_index"), days.ndc,
                            days.schedule, days.unit, days.package_quantity, days.description,
                            days.packages - func.coalesce(read_sums.c.packages, 0),
                            days.fulfilled - func.coalesce(read_sums.c.fulfilled, 0))
                     .select_from(HistoryDay.__table__.outerjoin(read_sums, and_(
                         read_sums.c.day == days.day, *[read_sums.c[name] == days[name] for name in _PACKAGE])))
                     .where(days.day.in_(split), days.lines - func.coalesce(read_sums.c.lines, 0) > 0,
                            *key_filters(days.registration_id, days.supplier_id, days.schedule)))
    both = union_all(*parts).subquery("both") if len(parts) > 1 else parts[0].subquery("both")
    # Per NDC and package size, so dosage units are packages × size once per group; the description as the lines
    # gave it (the greatest one) names the substance with the product's names.
    per_ndc = (select(both.c.registration_id, both.c.supplier_id, both.c.month_index, both.c.ndc, both.c.schedule,
                      both.c.unit, both.c.package_quantity, func.max(both.c.description).label("description"),
                      func.sum(both.c.packages).label("packages"), func.sum(both.c.fulfilled).label("fulfilled"))
               .where(both.c.month_index >= 0)
               .group_by(both.c.registration_id, both.c.supplier_id, both.c.month_index, both.c.ndc,
                         both.c.schedule, both.c.unit, both.c.package_quantity)
               .subquery("per_ndc"))
    return (select(registration.dea_number, supplier.name, per_ndc.c.month_index, per_ndc.c.schedule,
                   per_ndc.c.unit, per_ndc.c.package_quantity, product.generic_name, product.name,
                   per_ndc.c.description, per_ndc.c.packages, per_ndc.c.fulfilled)
            .select_from(per_ndc.join(Registration.__table__, registration.id == per_ndc.c.registration_id)
                         .join(Supplier.__table__, supplier.id == per_ndc.c.supplier_id)
                         .outerjoin(Product.__table__, product.ndc == per_ndc.c.ndc)))


def _history_rows(rows: Any, firsts: Sequence[dt.date], names: tuple[str, ...],
                  substances: Sequence[str] = ()) -> list[HistoryRow]:
    """The query's per-NDC rows named by substance and summed per registration, supplier, month, substance,
    schedule and unit; ordered by registration, substance, month and supplier."""
    wanted = set(substances)
    sums: dict[tuple[str, str, int, str, str, str], list[Any]] = {}
    for dea, supplier, index, schedule, unit, size, generic, name, description, packages, fulfilled in rows:
        if index is None:
            continue
        substance = _product_substance(generic, name, description, names)
        if wanted and substance not in wanted:
            continue
        size = Decimal(str(size or 0))
        entry = sums.setdefault((dea, substance, int(index), supplier, schedule, unit),
                                [0, Decimal(0), 0, Decimal(0)])
        entry[0] += int(packages or 0)
        entry[1] += int(packages or 0) * size
        entry[2] += int(fulfilled or 0)
        entry[3] += int(fulfilled or 0) * size
    return [HistoryRow(registration=dea, supplier=supplier, month=firsts[index], substance=substance,
                       schedule=schedule, unit=unit, ordered_packages=packages, ordered_units=_quantity(units),
                       fulfilled_packages=fulfilled, fulfilled_units=_quantity(fulfilled_units))
            for (dea, substance, index, supplier, schedule, unit), (packages, units, fulfilled, fulfilled_units)
            in sorted(sums.items())]


def monthly_history(db: Database | Session, history_filter: HistoryFilter = HistoryFilter(), *,
                    months: int = DEFAULT_MONTHS, now: dt.datetime | None = None,
                    zone: ZoneInfo | None = None) -> HistoryReport:
    """Ordered and fulfilled quantities per registration, substance, supplier and local month (one query)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    firsts, bounds = month_window(now, months, zone)
    query, values = history_query(bounds, history_filter)
    if isinstance(db, Session):
        result = db.execute(query, values).all()
    else:
        with db.engine.connect() as connection:
            result = connection.execute(query, values).all()
    rows = _history_rows(result, firsts, substance_names(), history_filter.substances)
    zone_name = getattr(zone, "key", None) or (_local(now, None).tzname() or "")
    return HistoryReport(months=firsts, rows=rows, zone_name=zone_name)


# -- per-substance limits (settings.json) ------------------------------------------------------------------------


def monthly_limits(settings: Mapping[str, Any] | None) -> dict[tuple[str, str], Decimal]:
    """``monthly_limits``: {DEA number: {substance: dosage units a month}} as the pharmacy entered them."""
    limits: dict[tuple[str, str], Decimal] = {}
    configured = (settings or {}).get("monthly_limits")
    if not isinstance(configured, dict):
        return limits
    for dea, per_substance in configured.items():
        if not isinstance(per_substance, dict):
            continue
        for substance, value in per_substance.items():
            try:
                amount = Decimal(str(value))
            except ArithmeticError:
                continue
            if amount > 0:
                limits[(str(dea), str(substance).lower())] = amount
    return limits


def with_monthly_limit(settings: Mapping[str, Any], *, registration: str, substance: str,
                       limit: str | Decimal | None) -> dict[str, Any]:
    """The new ``monthly_limits`` value with one limit set (or removed when ``limit`` is empty)."""
    name = substance.strip().lower()
    if name not in substance_names():
        raise HistoryError(f"“{substance}” is not in the controlled-substance table. Use its generic name, e.g. "
                           "oxycodone.", code="history.substance")
    current = {dea: dict(values) for dea, values in ((settings or {}).get("monthly_limits") or {}).items()
               if isinstance(values, dict)}
    text = "" if limit is None else str(limit).strip().replace(",", "")
    if not text:
        current.get(registration, {}).pop(name, None)
    else:
        try:
            amount = Decimal(text)
        except ArithmeticError:
            amount = Decimal(-1)
        if not amount.is_finite() or amount <= 0:
            raise HistoryError(f"“{limit}” is not a quantity. Enter the number of tablets, mL or g a month, e.g. "
                               "3000.", code="history.limit")
        current.setdefault(registration, {})[name] = format(amount.normalize(), "f")
    return {dea: values for dea, values in current.items() if values}


# -- the notice ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageNotice:
    """One controlled substance of an order being signed that would make this month unusual."""

    substance: str
    unit: str
    this_order: Decimal
    month_before: Decimal  # already ordered this month, without this order
    usual: Decimal  # monthly average of the previous BASELINE_MONTHS months
    limit: Decimal | None  # the pharmacy's own limit, when it entered one
    registration: str
    message: str = field(default="")

    @property
    def projected(self) -> Decimal:
        return self.month_before + self.this_order

    @property
    def ratio(self) -> Decimal | None:
        return (self.projected / self.usual).quantize(Decimal("0.1")) if self.usual else None

    def to_json(self) -> dict[str, Any]:
        return {"substance": self.substance, "unit": self.unit, "registration": self.registration,
                "this_order": str(self.this_order), "month_before": str(self.month_before),
                "projected": str(self.projected), "usual_monthly": str(self.usual),
                "ratio": None if self.ratio is None else str(self.ratio),
                "limit": None if self.limit is None else str(self.limit), "message": self.message}


def _amount(value: Decimal, unit: str) -> str:
    number = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.1f}"
    return f"{number} {UNIT_WORDS.get(unit, unit.lower())}"


@functools.lru_cache(maxsize=1)
def _order_lines_statement() -> Any:
    line, product, order = OrderLine.__table__.c, Product.__table__.c, Order.__table__.c
    return (select(Registration.__table__.c.dea_number, line.unit, line.packages, line.package_quantity,
                   product.generic_name, product.name, line.description)
            .select_from(OrderLine.__table__.join(Order.__table__, order.id == line.order_id)
                         .join(Registration.__table__, Registration.__table__.c.id == order.registration_id)
                         .outerjoin(Product.__table__, product.ndc == line.ndc))
            .where(line.order_id == bindparam("order_id"), line.schedule != "NC"))


def _order_lines(session: Session | Connection, order_id: int, names: tuple[str, ...]) -> tuple[str | None,
                                                                                 list[tuple[str, str, Decimal]]]:
    return _substance_lines(session.execute(_order_lines_statement(), {"order_id": order_id}).all(), names)


def _substance_lines(rows: Sequence[tuple[Any, ...]], names: tuple[str, ...]) -> tuple[str | None,
                                                                                      list[tuple[str, str, Decimal]]]:
    dea = rows[0][0] if rows else None
    lines = [(_product_substance(generic, name, description, names), unit,
              _quantity(int(packages or 0) * Decimal(str(size or 0))))
             for _dea, unit, packages, size, generic, name, description in rows]
    return dea, [(name, unit, units) for name, unit, units in lines if name != OTHER]


@functools.lru_cache(maxsize=1)
def _registration_products_statement() -> Any:
    """A registration's distinct NDC/description/unit triples in ``history_days``, with the product's names: a few
    steps of ix_history_days_products (migration 0005) however long the history."""
    days, product, registration = HistoryDay.__table__.c, Product.__table__.c, Registration.__table__.c
    registration_id = select(registration.id).where(
        registration.dea_number == bindparam("registration", type_=String)).scalar_subquery()
    triples = (select(days.registration_id, days.ndc, days.description, days.unit).distinct()
               .where(days.registration_id == registration_id).subquery("triples"))
    return (select(triples.c.registration_id, triples.c.ndc, triples.c.description, triples.c.unit,
                   product.generic_name, product.name)
            .select_from(triples.outerjoin(Product.__table__, product.ndc == triples.c.ndc)))


def _substance_products(session: Session | Connection, registration: str, substances: Sequence[str],
                        names: tuple[str, ...]) -> tuple[int | None, list[tuple[str, str, str, str]]]:
    """The registration's id and the (NDC, description, unit, substance) of its history that name one of
    ``substances`` — named as the charts name them (the product's names, then the line's description)."""
    wanted = set(substances)
    registration_id, found = None, []
    for registration_id, ndc, description, unit, generic, name in session.execute(
            _registration_products_statement(), {"registration": registration}).all():
        substance = _product_substance(generic, name, description, names)
        if substance in wanted:
            found.append((ndc, description, unit, substance))
    return registration_id, found


def _is_product(ndc: Any, description: Any, unit: Any, index: int) -> Any:
    return and_(ndc == bindparam(f"product_ndc_{index}", type_=String),
                description == bindparam(f"product_description_{index}", type_=String),
                unit == bindparam(f"product_unit_{index}", type_=String))


def _ndcs_in(column: Any, ndc_count: int) -> Any:
    """``column IN (:ndc_0, …)``: one bound value per NDC, not an expanding one, whose SQL is rewritten at every
    execution."""
    return column.in_([bindparam(f"ndc_{i}", type_=String) for i in range(ndc_count)])


@functools.lru_cache(maxsize=64)
def _notice_days_statement(product_count: int, bound_count: int, split_count: int, ndc_count: int) -> Any:
    """Whole UTC days of the notice's products: one row per day (grouped in the primary key's own order, so the
    database sorts nothing) with one sum of dosage units per product and the day's month. A few milliseconds on a
    300k-order book, where a chart's grouping by supplier, schedule and package took several times that."""
    days = HistoryDay.__table__.c
    day_bound = [bindparam(f"day_{i}", type_=Date) for i in range(bound_count)]
    split = [bindparam(f"split_{i}", type_=Date) for i in range(split_count)]
    # The sums as the driver gives them (SQLite: int or float, PostgreSQL: Decimal), without Numeric's conversion
    # of each one: ``_monthly_units`` sums exact values per month and rounds once (``_quantity``).
    sums = [type_coerce(func.sum(case((_is_product(days.ndc, days.description, days.unit, i),
                                       days.packages * days.package_quantity))), NullType())
            for i in range(product_count)]
    return (select(_month_case(days.day, day_bound, 0, len(day_bound) - 1), *sums)
            .where(days.registration_id == bindparam("registration_id", type_=Integer), days.lines > 0,
                   _ndcs_in(days.ndc, ndc_count), days.day >= day_bound[0],
                   days.day < day_bound[-1], *([days.day.not_in(split)] if split else []))
            .group_by(days.day))


@functools.lru_cache(maxsize=64)
def _notice_split_statement(product_count: int, split_count: int, ndc_count: int) -> Any:
    """The UTC days a local month starts inside (see ``_history_statement``): per product and split day, the day's
    ``history_days`` total (kind 1) and its smaller side's lines (kind 2); ``_monthly_units`` moves the smaller
    side into its own month."""
    o, line, days = Order.__table__.c, OrderLine.__table__.c, HistoryDay.__table__.c
    split = [bindparam(f"split_{i}", type_=Date) for i in range(split_count)]

    def product_of(ndc: Any, description: Any, unit: Any) -> Any:
        return case(*[(_is_product(ndc, description, unit, i), literal(i)) for i in range(product_count)])

    day_product = product_of(days.ndc, days.description, days.unit)
    split_position = case(*[(days.day == split[i], literal(i)) for i in range(split_count)])
    split_days = (select(literal(1).label("kind"), day_product.label("product"), split_position.label("position"),
                         func.sum(days.packages * days.package_quantity).label("units"))
                  .where(days.registration_id == bindparam("registration_id", type_=Integer), days.lines > 0,
                         _ndcs_in(days.ndc, ndc_count), days.day.in_(split))
                  .group_by(day_product, split_position))
    ranges = [(bindparam(f"split_from_{i}", type_=UtcDateTime), bindparam(f"split_to_{i}", type_=UtcDateTime))
              for i in range(split_count)]
    line_product = product_of(line.ndc, line.description, line.unit)
    side_position = case(*[(o.signed_at < end, literal(i)) for i, (_start, end) in enumerate(ranges)])
    side = (select(literal(2).label("kind"), line_product.label("product"), side_position.label("position"),
                   func.sum(line.packages * line.package_quantity).label("units"))
            .select_from(OrderLine.__table__.join(Order.__table__, o.id == line.order_id))
            .where(or_(*[and_(o.signed_at >= start, o.signed_at < end) for start, end in ranges]),
                   o.status.in_([s.value for s in COUNTED_STATUSES]), line.schedule != "NC",
                   o.registration_id == bindparam("registration_id", type_=Integer),
                   _ndcs_in(line.ndc, ndc_count))
            .group_by(line_product, side_position))
    return union_all(split_days, side)


def _monthly_units(session: Session | Connection, registration_id: int,
                   products: Sequence[tuple[str, str, str, str]],
                   bounds: Sequence[dt.datetime]) -> dict[tuple[str, str], list[Decimal]]:
    """Dosage units per (substance, unit) and local month (between ``bounds``) of the given products: whole UTC
    days from ``history_days`` by day, and the UTC days a local month starts inside split as the charts split
    them."""
    months = len(bounds) - 1
    thresholds, split = _day_plan_of(tuple(bounds))
    ndcs = sorted({ndc for ndc, _d, _u, _s in products})
    values: dict[str, Any] = {"registration_id": registration_id}
    values.update({f"ndc_{i}": ndc for i, ndc in enumerate(ndcs)})
    values.update({f"day_{i}": d for i, d in enumerate(thresholds)})
    for i, (ndc, description, unit, _substance) in enumerate(products):
        values.update({f"product_ndc_{i}": ndc, f"product_description_{i}": description, f"product_unit_{i}": unit})
    for i, part in enumerate(split):
        values.update({f"split_{i}": part.day, f"split_from_{i}": part.start, f"split_to_{i}": part.end})
    keys = [(substance, unit) for _ndc, _description, unit, substance in products]
    totals: dict[tuple[str, str], list[Decimal]] = {key: [Decimal(0)] * months for key in keys}
    exact: list[list[Any]] = [[0] * months for _ in keys]  # per product: ints summed as ints, else Decimals
    for position, *amounts in session.execute(
            _notice_days_statement(len(products), len(bounds), len(split), len(ndcs)), values).all():
        if position is None:
            continue
        for index, amount in enumerate(amounts):
            if amount:
                exact[index][position] += amount if isinstance(amount, (int, Decimal)) else Decimal(str(amount))
    for key, per_month in zip(keys, exact):
        for position, amount in enumerate(per_month):
            if amount:
                totals[key][position] += _quantity(amount)
    if not split:
        return totals
    sides = [bisect.bisect_right(bounds, part.start) - 1 for part in split]  # each smaller side's month
    for kind, product, position, amount in session.execute(
            _notice_split_statement(len(products), len(split), len(ndcs)), values).all():
        if product is None or position is None or not amount:
            continue
        row, amount, other = totals[keys[product]], _quantity(amount), split[position].other
        if kind == 1 and other >= 0:
            row[other] += amount
        elif kind == 2:
            if other >= 0:
                row[other] -= amount
            if 0 <= sides[position] < months:
                row[sides[position]] += amount
    return totals


@functools.lru_cache(maxsize=32)
def _day_plan_of(bounds: tuple[dt.datetime, ...]) -> tuple[list[dt.date], list[_SplitDay]]:
    """``_day_plan``, once per window (the notice's window changes once a month). Callers do not change them."""
    return _day_plan(bounds)


def _notice_months(now: dt.datetime, zone: Any) -> tuple[list[dt.date], list[dt.datetime]]:
    """``month_window(now, BASELINE_MONTHS + 1, zone)``, worked out once per local month and zone (the computer's
    zone, None, keyed by its current names, so a change of the computer's zone is a new key)."""
    local_now = _local(now, zone)
    return _notice_months_of(local_now.year, local_now.month, zone, None if zone is not None else time.tzname)


@functools.lru_cache(maxsize=32)
def _notice_months_of(year: int, month: int, zone: Any, _local_names: Any) -> tuple[list[dt.date], list[dt.datetime]]:
    # The middle of the month: its local month is (year, month) in any zone.
    return month_window(dt.datetime(year, month, 15, 12, tzinfo=zone) if zone is not None
                        else dt.datetime(year, month, 15, 12).astimezone(), BASELINE_MONTHS + 1, zone)


def unusual_quantities(db: Database, order_id: int, *, now: dt.datetime | None = None,
                       settings: Mapping[str, Any] | None = None, zone: Any = "settings",
                       limits: Mapping[tuple[str, str], Decimal] | None = None,
                       factor: Decimal = DEFAULT_FACTOR,
                       lines: Sequence[tuple[Any, ...]] | None = None) -> list[UsageNotice]:
    """The notices for an order about to be signed: per controlled substance of its lines, this month's total with
    this order above the pharmacy's limit for it (when entered), else above ``factor`` × the average of the
    previous six months. Small queries: the order's lines, the registration's products (which NDCs name those
    substances), their units by day, and (for months that start inside a UTC day) those days' split.

    ``settings`` gives the limits (``monthly_limits``) and the zone (``time_zones``) unless passed explicitly.
    ``lines``: the order's controlled lines when the caller has already read them (signing does), as the first
    query would return them: (registration DEA number, unit, packages, package quantity, catalog generic name,
    catalog name, description); then only the history is read."""
    now = now or dt.datetime.now(dt.timezone.utc)
    names = substance_names()
    limits = monthly_limits(settings) if limits is None else limits
    # A Core connection, not an ORM session: these are plain SELECTs, and the notice runs at every signing.
    with db.engine.connect() as session:
        dea, lines = (_order_lines(session, order_id, names) if lines is None
                      else _substance_lines(lines, names))
        if not lines or dea is None:
            return []
        if isinstance(zone, str) and zone == "settings":
            zone = pharmacy_zone(settings, dea)
        wanted: dict[tuple[str, str], Decimal] = {}
        for name, unit, units in lines:
            wanted[(name, unit)] = wanted.get((name, unit), Decimal(0)) + units
        firsts, bounds = _notice_months(now, zone)
        substances = tuple(sorted({n for n, _u in wanted}))
        registration_id, products = _substance_products(session, dea, substances, names)
        found = _monthly_units(session, registration_id, products, bounds) if products and registration_id else {}
        per_month = {key: found.get(key, [Decimal(0)] * len(firsts)) for key in wanted}
    notices = []
    for (name, unit), this_order in wanted.items():
        months = per_month[(name, unit)]
        usual = (sum(months[:-1], Decimal(0)) / BASELINE_MONTHS).quantize(Decimal("0.1"))
        notice = UsageNotice(substance=name, unit=unit, this_order=this_order, month_before=months[-1],
                             usual=usual, limit=limits.get((dea, name)), registration=dea)
        message = _notice_message(notice, factor)
        if message:
            notices.append(UsageNotice(**{**notice.__dict__, "message": message}))
    return notices


def _notice_message(notice: UsageNotice, factor: Decimal) -> str:
    label = substance_label(notice.substance)
    if notice.limit is not None:
        if notice.projected <= notice.limit:
            return ""
        return (f"{label} this month would be {_amount(notice.projected, notice.unit)}, above the "
                f"{_amount(notice.limit, notice.unit)} a month you set: your supplier may hold this order for "
                "review.")
    if not notice.usual or notice.projected <= factor * notice.usual:
        return ""
    return (f"{label} this month would be {notice.ratio}× your usual: your supplier may hold this order for "
            f"review. ({_amount(notice.projected, notice.unit)} with this order; about "
            f"{_amount(notice.usual, notice.unit)} a month over the last {BASELINE_MONTHS} months.)")


def history_rows_for_records(db: Database, *, now: dt.datetime | None = None, months: int = DEFAULT_MONTHS,
                             zone: ZoneInfo | None = None) -> list[dict[str, Any]]:
    """Per registration and substance: ordered and fulfilled dosage units per month, for the records PDF's page."""
    report = monthly_history(db, months=months, now=now, zone=zone)
    table: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in report.rows:
        entry = table.setdefault((row.registration, row.substance, row.unit), {
            "registration": row.registration, "substance": substance_label(row.substance),
            "unit": UNIT_WORDS.get(row.unit, row.unit), "months": {}})
        ordered, fulfilled = entry["months"].get(row.month.strftime("%Y-%m"), (Decimal(0), Decimal(0)))
        entry["months"][row.month.strftime("%Y-%m")] = (ordered + row.ordered_units,
                                                        fulfilled + row.fulfilled_units)
    return [dict(value, months=[(month, str(o), str(f)) for month, (o, f) in sorted(value["months"].items())])
            for _key, value in sorted(table.items())]
