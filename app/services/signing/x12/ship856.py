"""The 856 ship notice: the packages shipped per order line and the ship date (duties O4, O5).

BSN (shipment id, when the notice was made), HL shipment level with DTM*011 (ship date), HL order level with PRF
(order number), one HL item level with LIN (line number, NDC) and SN1 (packages shipped) per line, CTT.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from .core import (
    _CTT_SPEC, _LINE_NUMBER, _NDC, _ORDER_NUMBER, _QUANTITY, _Code, _Date8, _Int, _Literal, _Reader, _Seg, _Spec,
    _Text, _Time4, _Writer, _as_tuple, _check_unique, _decode, _expect_type, _fail, _opt, _parse_count, _req,
)

__all__ = ["ShipmentLine", "Shipment856"]


@dataclass(frozen=True, slots=True)
class ShipmentLine:
    line_number: int  # LIN01: the order's PO1 line number
    ndc: str
    packages_shipped: int  # SN102; 0 allowed


@dataclass(frozen=True, slots=True)
class Shipment856:
    order_number: str
    shipment_id: str  # BSN02, 2-30 characters
    ship_date: _dt.date  # DTM*011
    created_at: _dt.datetime  # BSN03/BSN04: when the supplier made the notice (minute precision)
    lines: tuple[ShipmentLine, ...]

    def __post_init__(self) -> None:
        _as_tuple(self, "lines")


# ---------------------------------------------------------------------------------------------------------------------
# Elements and segments


_HL_ID = _Int("hierarchical id", minimum=1, max_digits=6)

_BSN_SPEC: _Spec = (
    _req(_Literal("00", "transaction set purpose code (00 = original)")),
    _req(_Text(2, 30, "shipment id")),
    _req(_Date8("notice date")),
    _req(_Time4("notice time")),
)
_HL_SPEC: _Spec = (
    _req(_HL_ID), _opt(_HL_ID),
    _req(_Code({"S": "S", "O": "O", "I": "I"}, "hierarchical level code (S, O, I)")),
)
_DTM_SPEC: _Spec = (_req(_Literal("011", "date/time qualifier (011 = shipped)")), _req(_Date8("ship date")))
_PRF_SPEC: _Spec = (_req(_ORDER_NUMBER),)
_LIN_SPEC: _Spec = (_req(_LINE_NUMBER), _req(_Literal("N4", "product id qualifier (N4 = NDC 5-4-2)")), _req(_NDC))
_SN1_SPEC: _Spec = (None, _req(_QUANTITY), _req(_Literal("EA", "unit of the packages shipped")))


# ---------------------------------------------------------------------------------------------------------------------
# Writing and parsing


def _write_856_body(w: _Writer, shipment: Shipment856) -> None:
    created = shipment.created_at
    if not isinstance(created, _dt.datetime):
        raise _fail("x12.bad_element", w.loc("BSN", 3), f"created_at must be a datetime, not {created!r}.")
    w.emit("BSN", _BSN_SPEC, ["00", shipment.shipment_id, created.date(), created.time()])
    w.emit("HL", _HL_SPEC, [1, None, "S"])
    w.emit("DTM", _DTM_SPEC, ["011", shipment.ship_date])
    w.emit("HL", _HL_SPEC, [2, 1, "O"])
    w.emit("PRF", _PRF_SPEC, [shipment.order_number])
    _expect_type(shipment.lines, tuple, w.loc("HL"))
    if not shipment.lines:
        raise _fail("x12.missing_segment", w.loc("HL"), "a ship notice needs at least one item.")
    seen: set[int] = set()
    for number, line in enumerate(shipment.lines, start=3):
        _expect_type(line, ShipmentLine, w.loc("HL"))
        w.emit("HL", _HL_SPEC, [number, 2, "I"])
        _check_unique(line.line_number, seen, w.loc("LIN", 1))
        w.emit("LIN", _LIN_SPEC, [line.line_number, "N4", line.ndc])
        w.emit("SN1", _SN1_SPEC, [None, line.packages_shipped, "EA"])
    w.emit("CTT", _CTT_SPEC, [len(shipment.lines)])


def _parse_hl(r: _Reader, expected_id: int, parent: int | None, level: str) -> _Seg:
    hl = r.take("HL", f"HL level {level}")
    hl_id, hl_parent, hl_level = _decode(hl, _HL_SPEC)
    if hl_level != level:
        raise _fail("x12.bad_element", hl.loc(3), f"hierarchical level {level} expected here, found {hl_level}.")
    if hl_id != expected_id:
        raise _fail("x12.bad_element", hl.loc(1), f"hierarchical id {expected_id} expected, found {hl_id}.")
    if hl_parent != parent:
        raise _fail("x12.bad_element", hl.loc(2), f"parent hierarchical id {parent} expected, found {hl_parent}.")
    return hl


def _parse_856_body(r: _Reader) -> Shipment856:
    _, shipment_id, notice_date, notice_time = _decode(r.take("BSN"), _BSN_SPEC)
    _parse_hl(r, 1, None, "S")
    _, ship_date = _decode(r.take("DTM", "DTM*011 (ship date)"), _DTM_SPEC)
    _parse_hl(r, 2, 1, "O")
    (order_number,) = _decode(r.take("PRF", "PRF (order number)"), _PRF_SPEC)
    lines: list[ShipmentLine] = []
    seen: set[int] = set()
    while r.peek_id() == "HL" or not lines:
        _parse_hl(r, len(lines) + 3, 2, "I")
        lin = r.take("LIN", "LIN (order line and NDC)")
        line_number, _, ndc = _decode(lin, _LIN_SPEC)
        _check_unique(line_number, seen, lin.loc(1))
        _, shipped, _ = _decode(r.take("SN1", "SN1 (packages shipped)"), _SN1_SPEC)
        lines.append(ShipmentLine(line_number, ndc, shipped))
    _parse_count(r, len(lines), "items")
    created_at = _dt.datetime.combine(notice_date, notice_time)
    return Shipment856(order_number, shipment_id, ship_date, created_at, tuple(lines))


_SEGMENTS_856 = frozenset({"BSN", "HL", "DTM", "PRF", "LIN", "SN1", "CTT"})
