"""The 865 seller-initiated change, used as CSOS Desk's void notice: whole order or per line (duty O8).

BCA (cancellation or change, order number and date, void date), an optional reason (N9*L1*REASON + MSG), one
POC*<line>*DI per voided line for a partial void, CTT.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from .core import (
    _CTT_SPEC, _LINE_NUMBER, _ORDER_NUMBER, _Code, _Date8, _Literal, _Loc, _Reader, _Spec, _Writer, _as_tuple,
    _bool, _check_unique, _decode, _expect_type, _fail, _parse_count, _parse_reason, _req, _write_reason,
)

__all__ = ["VoidNotice"]


@dataclass(frozen=True, slots=True)
class VoidNotice:
    """865 seller-initiated change. Whole order: BCA01 = 01 (cancellation), no POC. Partial: BCA01 = 04 (change),
    one ``POC*<line>*DI`` (delete item) per voided line."""

    order_number: str
    order_date: _dt.date  # BCA06, mandatory: the date the order was signed
    date: _dt.date  # BCA10: date of the void
    whole_order: bool
    voided_lines: tuple[int, ...] = ()
    reason: str | None = None

    def __post_init__(self) -> None:
        _as_tuple(self, "voided_lines")


# ---------------------------------------------------------------------------------------------------------------------
# Segments


_BCA_SPEC: _Spec = (
    _req(_Code({"01": True, "04": False}, "transaction set purpose code (01 = cancellation, 04 = change)")),
    None,
    _req(_ORDER_NUMBER),
    None, None,
    _req(_Date8("order date")),
    None, None, None,
    _req(_Date8("void date")),
)
_POC_SPEC: _Spec = (_req(_LINE_NUMBER), _req(_Literal("DI", "change type code (DI = delete item)")))


# ---------------------------------------------------------------------------------------------------------------------
# Writing and parsing


def _write_865_body(w: _Writer, void: VoidNotice) -> None:
    whole = _bool(void.whole_order, w.loc("BCA", 1))
    _expect_type(void.voided_lines, tuple, w.loc("POC"))
    if whole and void.voided_lines:
        raise _fail("x12.bad_element", w.loc("BCA", 1),
                    "a whole-order void lists no lines (voided_lines must be empty).")
    w.emit("BCA", _BCA_SPEC, [whole, None, void.order_number, None, None, void.order_date, None, None, None,
                              void.date])
    _write_reason(w, void.reason)
    if not whole and not void.voided_lines:
        raise _fail("x12.missing_segment", w.loc("POC"), "a partial void lists at least one voided line.")
    seen: set[int] = set()
    for line_number in void.voided_lines:
        _check_unique(line_number, seen, w.loc("POC", 1))
        w.emit("POC", _POC_SPEC, [line_number, "DI"])
    w.emit("CTT", _CTT_SPEC, [len(void.voided_lines)])


def _parse_865_body(r: _Reader) -> VoidNotice:
    bca = r.take("BCA")
    whole, _, order_number, _, _, order_date, _, _, _, void_date = _decode(bca, _BCA_SPEC)
    reason = _parse_reason(r)
    voided: list[int] = []
    seen: set[int] = set()
    while r.peek_id() == "POC":
        poc = r.take("POC")
        if whole:
            raise _fail("x12.unexpected_segment", poc.loc(), "a whole-order void (BCA01 = 01) lists no lines.")
        line_number, _ = _decode(poc, _POC_SPEC)
        _check_unique(line_number, seen, poc.loc(1))
        voided.append(line_number)
    if not whole and not voided:
        raise _fail("x12.missing_segment", _Loc("POC", r.next_index), "a partial void (BCA01 = 04) lists its lines.")
    _parse_count(r, len(voided), "voided lines")
    return VoidNotice(order_number, order_date, void_date, whole, tuple(voided), reason)


_SEGMENTS_865 = frozenset({"BCA", "N9", "MSG", "POC", "CTT"})
