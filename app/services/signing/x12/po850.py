"""The 850 purchase order: the payload that gets signed (duties O1, O2, O3).

BEG (order number, date signed), the purchaser (N1*BY with DEA number and address, N3/N4) and the supplier (N1*SU,
DEA number and address optional: the supplier completes them), one PO1/PID/PO4 loop per line, CTT.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.models.values import DeaNumber, PackageUnit

from .core import (
    _CTT_SPEC, _LINE_NUMBER, _NDC, _ORDER_NUMBER, _Code, _Codec, _Date8, _Domain, _Int, _Literal, _Loc, _Reader,
    _Spec, _Text, _Writer, _as_tuple, _check_unique, _decode, _expect_type, _fail, _opt, _parse_count, _req,
)

__all__ = ["Party", "OrderLine850", "PurchaseOrder"]


@dataclass(frozen=True, slots=True)
class Party:
    """N1 loop. ``dea_number`` and the address may be absent for the supplier only (O1: the supplier completes them);
    the address is all or nothing: 1-4 address lines, city, state, postal code."""

    name: str
    dea_number: str | None = None
    address_lines: tuple[str, ...] = ()
    city: str | None = None
    state: str | None = None
    postal_code: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "address_lines")


@dataclass(frozen=True, slots=True)
class OrderLine850:
    """One PO1 loop: PO1 (line number, packages, NDC) + PID (description) + PO4 (quantity in one package, unit)."""

    line_number: int
    packages: int
    ndc: str  # 11 digits, no hyphens
    description: str  # product name and strength
    package_quantity: int | Decimal
    unit: PackageUnit


@dataclass(frozen=True, slots=True)
class PurchaseOrder:
    """850. The signed payload."""

    order_number: str
    date_signed: _dt.date
    purchaser: Party
    supplier: Party
    lines: tuple[OrderLine850, ...]

    def __post_init__(self) -> None:
        _as_tuple(self, "lines")


# ---------------------------------------------------------------------------------------------------------------------
# Elements and segments


class _PackageQuantity(_Codec):
    """PO402 (R, 1-8 digits): a positive int or Decimal. Written without exponent, leading or trailing zeros."""

    pattern = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]*[1-9])?")
    label = "quantity in one package"

    def _digits_ok(self, text: str, loc: _Loc) -> None:
        if sum(c.isdigit() for c in text) > 8:
            raise _fail("x12.bad_element", loc, f"the {self.label} {text} has more than 8 digits.")

    def encode(self, value: Any, loc: _Loc) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
            raise _fail("x12.bad_element", loc, f"the {self.label} must be an int or Decimal, not {value!r}.")
        if isinstance(value, Decimal) and not value.is_finite():
            raise _fail("x12.bad_element", loc, f"the {self.label} must be a number, not {value}.")
        if value <= 0:
            raise _fail("x12.bad_element", loc, f"the {self.label} must be greater than zero, not {value}.")
        if isinstance(value, int):
            text = str(value)
        else:
            text = format(value.normalize(), "f")
            if "." in text:
                text = text.rstrip("0").rstrip(".")
        self._digits_ok(text, loc)
        return text

    def decode(self, text: str, loc: _Loc) -> int | Decimal:
        if len(text) > 10 or not self.pattern.fullmatch(text):
            raise _fail("x12.bad_element", loc,
                        f"the {self.label} {text!r} is not a number as X12 writes it (e.g. 100 or 2.5).")
        self._digits_ok(text, loc)
        value: int | Decimal = Decimal(text) if "." in text else int(text)
        if value <= 0:
            raise _fail("x12.bad_element", loc, f"the {self.label} must be greater than zero, not {text}.")
        return value


_DEA = _Domain("DEA number", DeaNumber.parse, lambda v: v.value, re.compile(r"[A-Z]{2}[0-9]{7}"),
               "as 2 capital letters and 7 digits")
_UNIT = _Code({u.value: u for u in PackageUnit}, "package unit (PO403)")
_PACKAGES = _Int("number of packages", minimum=1, max_digits=9)

_N1_SPEC: _Spec = (
    _req(_Code({"BY": "BY", "SU": "SU"}, "entity identifier code (N101)")),
    _req(_Text(1, 60, "name")),
    _opt(_Literal("11", "identification code qualifier (11 = DEA number)")),
    _opt(_DEA),
)
_N3_SPEC: _Spec = (_req(_Text(1, 55, "address line")), _opt(_Text(1, 55, "address line")))
_N4_SPEC: _Spec = (
    _req(_Text(2, 30, "city")),
    _req(_Domain("state", lambda s: s, lambda s: s, re.compile(r"[A-Z]{2}"), "as 2 capital letters")),
    _req(_Text(3, 15, "postal code")),
)
_BEG_SPEC: _Spec = (
    _req(_Literal("00", "transaction set purpose code (00 = original)")),
    _req(_Literal("SA", "purchase order type code (SA = stand-alone)")),
    _req(_ORDER_NUMBER),
    None,
    _req(_Date8("date signed")),
)
_PO1_850_SPEC: _Spec = (
    _req(_LINE_NUMBER),
    _req(_PACKAGES),
    _req(_Literal("EA", "unit of the number of packages")),
    None,
    None,
    _req(_Literal("N4", "product id qualifier (N4 = NDC 5-4-2)")),
    _req(_NDC),
)
_PID_SPEC: _Spec = (_req(_Literal("F", "item description type (F = free-form)")), None, None, None,
                    _req(_Text(1, 80, "product name and strength")))
_PO4_SPEC: _Spec = (_req(_Literal("1", "pack", code="x12.bad_element")), _req(_PackageQuantity()), _req(_UNIT))


# ---------------------------------------------------------------------------------------------------------------------
# Writing


# The N1/N3/N4 segments of the parties already written: a pharmacy signs for the same few registrations and
# suppliers, each written out once (segments are plain text, the same wherever they stand in an interchange).
_PARTY_SEGMENTS: dict[tuple[Any, ...], tuple[str, ...]] = {}
_PARTY_SEGMENTS_MAX = 64


def _write_party(w: _Writer, entity: str, party: Party, *, require_dea: bool, require_address: bool) -> None:
    try:
        key: tuple[Any, ...] | None = (type(party), entity, party, require_dea, require_address)
        written = _PARTY_SEGMENTS.get(key)  # type: ignore[arg-type]
    except TypeError:  # a field that cannot be a key (not text): written, and refused, the long way
        key, written = None, None
    if written is not None:
        w.segments.extend(written)
        return
    start = len(w.segments)
    _write_party_segments(w, entity, party, require_dea=require_dea, require_address=require_address)
    if key is not None and type(party) is Party:
        if len(_PARTY_SEGMENTS) >= _PARTY_SEGMENTS_MAX:
            _PARTY_SEGMENTS.clear()
        _PARTY_SEGMENTS[key] = tuple(w.segments[start:])


def _write_party_segments(w: _Writer, entity: str, party: Party, *, require_dea: bool,
                          require_address: bool) -> None:
    _expect_type(party, Party, w.loc("N1"))
    if require_dea and party.dea_number is None:
        raise _fail("x12.missing_element", w.loc("N1", 4), "the purchaser's DEA number is required.")
    dea = party.dea_number
    w.emit("N1", _N1_SPEC, [entity, party.name, None if dea is None else "11", dea])
    lines = party.address_lines
    _expect_type(lines, tuple, w.loc("N3"))
    if not lines and party.city is None and party.state is None and party.postal_code is None:
        if require_address:
            raise _fail("x12.missing_segment", w.loc("N3"), "the purchaser's address is required.")
        return
    if not lines:
        raise _fail("x12.missing_element", w.loc("N3", 1), "the address has a city but no address line.")
    if len(lines) > 4:
        raise _fail("x12.bad_element", w.loc("N3"), f"an address has at most 4 lines, not {len(lines)}.")
    for start in range(0, len(lines), 2):
        pair = list(lines[start:start + 2])
        w.emit("N3", _N3_SPEC, pair + [None] * (2 - len(pair)))
    w.emit("N4", _N4_SPEC, [party.city, party.state, party.postal_code])


def _write_850_body(w: _Writer, order: PurchaseOrder) -> None:
    w.emit("BEG", _BEG_SPEC, ["00", "SA", order.order_number, None, order.date_signed])
    _write_party(w, "BY", order.purchaser, require_dea=True, require_address=True)
    _write_party(w, "SU", order.supplier, require_dea=False, require_address=False)
    _expect_type(order.lines, tuple, w.loc("PO1"))
    if not order.lines:
        raise _fail("x12.missing_segment", w.loc("PO1"), "an order needs at least one line.")
    seen: set[int] = set()
    for line in order.lines:
        _expect_type(line, OrderLine850, w.loc("PO1"))
        _check_unique(line.line_number, seen, w.loc("PO1", 1))
        w.emit("PO1", _PO1_850_SPEC, [line.line_number, line.packages, "EA", None, None, "N4", line.ndc])
        w.emit("PID", _PID_SPEC, ["F", None, None, None, line.description])
        w.emit("PO4", _PO4_SPEC, ["1", line.package_quantity, line.unit])
    w.emit("CTT", _CTT_SPEC, [len(order.lines)])


# ---------------------------------------------------------------------------------------------------------------------
# Parsing


def _parse_party(r: _Reader, entity: str, *, require_dea: bool, require_address: bool) -> Party:
    role = "purchaser (N1*BY)" if entity == "BY" else "supplier (N1*SU)"
    n1 = r.take("N1", f"the {role}")
    code, name, qualifier, dea = _decode(n1, _N1_SPEC)
    if code != entity:
        raise _fail("x12.missing_segment", n1.loc(1), f"the {role} was expected here, found N1*{code}.")
    if qualifier is not None and dea is None:
        raise _fail("x12.missing_element", n1.loc(4), "the DEA number is missing after qualifier 11.")
    if dea is not None and qualifier is None:
        raise _fail("x12.missing_element", n1.loc(3), "the identification code qualifier (11) is missing.")
    if require_dea and dea is None:
        raise _fail("x12.missing_element", n1.loc(3), f"the {role} must carry its DEA number (N1*BY*name*11*DEA).")
    lines: list[str] = []
    n3_count = 0
    while r.peek_id() == "N3":
        n3 = r.take("N3")
        n3_count += 1
        if n3_count > 2:
            raise _fail("x12.unexpected_segment", n3.loc(), "at most two N3 segments per party.")
        pair = [v for v in _decode(n3, _N3_SPEC) if v is not None]
        if len(pair) == 1 and r.peek_id() == "N3":
            # One spelling only: lines go two to an N3, so only the last N3 may carry a single line.
            raise _fail("x12.missing_element", n3.loc(2), "an N3 followed by another N3 must carry two address "
                                                          "lines (N301 and N302).")
        lines.extend(pair)
    city = state = postal = None
    n4 = r.take_if("N4")
    if n4 is not None:
        city, state, postal = _decode(n4, _N4_SPEC)
        if not lines:
            raise _fail("x12.missing_segment", _Loc("N3", n4.index), f"the {role} has N4 but no N3 address line.")
    elif lines:
        raise _fail("x12.missing_segment", _Loc("N4", r.next_index), f"the {role} address has no N4 (city, state).")
    elif require_address:
        raise _fail("x12.missing_segment", _Loc("N3", r.next_index), f"the {role} address is required.")
    return Party(name, dea, tuple(lines), city, state, postal)


def _parse_850_body(r: _Reader) -> PurchaseOrder:
    _, _, order_number, _, date_signed = _decode(r.take("BEG"), _BEG_SPEC)
    purchaser = _parse_party(r, "BY", require_dea=True, require_address=True)
    supplier = _parse_party(r, "SU", require_dea=False, require_address=False)
    lines: list[OrderLine850] = []
    seen: set[int] = set()
    while r.peek_id() == "PO1" or not lines:
        po1 = r.take("PO1", "PO1 (at least one order line)")
        line_number, packages, _, _, _, _, ndc = _decode(po1, _PO1_850_SPEC)
        _check_unique(line_number, seen, po1.loc(1))
        *_, description = _decode(r.take("PID", "PID (product name and strength)"), _PID_SPEC)
        _, quantity, unit = _decode(r.take("PO4", "PO4 (quantity in one package)"), _PO4_SPEC)
        lines.append(OrderLine850(line_number, packages, ndc, description, quantity, unit))
    _parse_count(r, len(lines), "line items")
    return PurchaseOrder(order_number, date_signed, purchaser, supplier, tuple(lines))


_SEGMENTS_850 = frozenset({"BEG", "N1", "N3", "N4", "PO1", "PID", "PO4", "CTT"})
