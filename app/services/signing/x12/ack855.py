"""The 855 purchase order acknowledgement: acceptance, acceptance with changes, non-acceptance (duty O6).

BAK (status, order number and date, acknowledgement date), an optional reason (N9*L1*REASON + MSG), one
PO1/ACK loop per line answered (each with an optional reason), CTT.
"""

from __future__ import annotations

import datetime as _dt
import enum
from dataclasses import dataclass

from .core import (
    _CTT_SPEC, _LINE_NUMBER, _NDC, _ORDER_NUMBER, _QUANTITY, _Code, _Date8, _Literal, _Reader, _Spec, _Writer,
    _as_tuple, _check_unique, _decode, _expect_type, _fail, _opt, _parse_count, _parse_reason, _req, _write_reason,
)

__all__ = ["AckStatus", "LineStatus", "AckLine", "Acknowledgement855"]


class AckStatus(enum.Enum):
    """BAK02 (X12 element 587). Member names give the meaning X12 assigns to each code."""

    ACCEPTED = "AD"  # Acknowledge - With Detail, No Change
    ACCEPTED_WITH_CHANGES = "AC"  # Acknowledge - With Detail and Change
    REJECTED = "RJ"  # Rejected (statement of non-acceptance, O6)


class LineStatus(enum.Enum):
    """ACK01 (X12 element 668)."""

    ACCEPTED = "IA"  # Item Accepted
    REJECTED = "IR"  # Item Rejected
    BACKORDERED = "IB"  # Item Backordered
    QUANTITY_CHANGED = "IQ"  # Item Accepted - Quantity Changed


@dataclass(frozen=True, slots=True)
class AckLine:
    """One 855 PO1 loop: PO1 (line number, optional NDC) + ACK (status, packages) + optional N9/MSG reason."""

    line_number: int
    status: LineStatus
    quantity: int  # packages the status applies to (accepted, backordered, new quantity...); 0 allowed
    ndc: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement855:
    order_number: str
    order_date: _dt.date  # BAK04, mandatory in 004010: the date the order was signed
    status: AckStatus
    date: _dt.date  # BAK09 acknowledgement date
    reason: str | None = None  # heading N9*L1*REASON + MSG
    lines: tuple[AckLine, ...] = ()

    def __post_init__(self) -> None:
        _as_tuple(self, "lines")


# ---------------------------------------------------------------------------------------------------------------------
# Elements and segments


_ACK_STATUS = _Code({s.value: s for s in AckStatus}, "acknowledgement type (BAK02)")
_LINE_STATUS = _Code({s.value: s for s in LineStatus}, "line item status (ACK01)")

_BAK_SPEC: _Spec = (
    _req(_Literal("00", "transaction set purpose code (00 = original)")),
    _req(_ACK_STATUS),
    _req(_ORDER_NUMBER),
    _req(_Date8("order date")),
    None, None, None, None,
    _req(_Date8("acknowledgement date")),
)
_PO1_855_SPEC: _Spec = (
    _req(_LINE_NUMBER), None, None, None, None,
    _opt(_Literal("N4", "product id qualifier (N4 = NDC 5-4-2)")),
    _opt(_NDC),
)
_ACK_SPEC: _Spec = (_req(_LINE_STATUS), _req(_QUANTITY), _req(_Literal("EA", "unit of the quantity")))


# ---------------------------------------------------------------------------------------------------------------------
# Writing and parsing


def _write_855_body(w: _Writer, ack: Acknowledgement855) -> None:
    w.emit("BAK", _BAK_SPEC, ["00", ack.status, ack.order_number, ack.order_date, None, None, None, None, ack.date])
    _write_reason(w, ack.reason)
    _expect_type(ack.lines, tuple, w.loc("PO1"))
    seen: set[int] = set()
    for line in ack.lines:
        _expect_type(line, AckLine, w.loc("PO1"))
        _check_unique(line.line_number, seen, w.loc("PO1", 1))
        w.emit("PO1", _PO1_855_SPEC, [line.line_number, None, None, None, None,
                                      None if line.ndc is None else "N4", line.ndc])
        w.emit("ACK", _ACK_SPEC, [line.status, line.quantity, "EA"])
        _write_reason(w, line.reason)
    w.emit("CTT", _CTT_SPEC, [len(ack.lines)])


def _parse_855_body(r: _Reader) -> Acknowledgement855:
    _, status, order_number, order_date, *_, ack_date = _decode(r.take("BAK"), _BAK_SPEC)
    reason = _parse_reason(r)
    lines: list[AckLine] = []
    seen: set[int] = set()
    while r.peek_id() == "PO1":
        po1 = r.take("PO1")
        line_number, _, _, _, _, qualifier, ndc = _decode(po1, _PO1_855_SPEC)
        if (qualifier is None) != (ndc is None):
            raise _fail("x12.missing_element", po1.loc(7 if ndc is None else 6),
                        "the product id qualifier (N4) and the NDC go together.")
        _check_unique(line_number, seen, po1.loc(1))
        line_status, quantity, _ = _decode(r.take("ACK", "ACK (line item status)"), _ACK_SPEC)
        lines.append(AckLine(line_number, line_status, quantity, ndc, _parse_reason(r)))
    _parse_count(r, len(lines), "line items")
    return Acknowledgement855(order_number, order_date, status, ack_date, reason, tuple(lines))


_SEGMENTS_855 = frozenset({"BAK", "N9", "MSG", "PO1", "ACK", "CTT"})
