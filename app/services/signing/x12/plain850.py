"""The fast reader of ``parse_850``/``parse_interchange``: a plain 850 read with one regular expression per segment.

Verification reads an 850 per order, so this is on the hot path of every check. The general reader (``core``:
tokenize, then decode element by element through the codecs) stays the one that decides: this reader accepts only
the common shape, a canonical 850 in ASCII without whitespace between segments, and returns ``None`` for anything
else, so the general reader runs and words the error exactly as before. When it does accept, its result is the one
the general reader would give (tests/unit/signing/test_x12_plain.py compares the two on many mutated documents).

Its segment patterns are built from the very element specs the general reader decodes with (``_N1_SPEC``...), so a
change to a spec changes both readers; an element codec it does not know stops the import rather than guessing.
Domain values (DEA number, NDC, order number, state) are checked by their own codec, as the general reader does.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from typing import Any

from .core import (
    _CONTROL_ISA, _CTT_SPEC, _GE_SPEC, _GS_SPEC, _IEA_SPEC, _ISA_LENGTH, _SE_SPEC, _ST_SPEC, _TX_FUNCTIONAL_ID,
    _Code, _Codec, _Control, _Date8, _Domain, _HERE, _Int, _Literal, _Spec, _Text, _Time4, Envelope,
    X12Error,
)
from .po850 import (
    _BEG_SPEC, _N1_SPEC, _N3_SPEC, _N4_SPEC, _PID_SPEC, _PO1_850_SPEC, _PO4_SPEC, OrderLine850, Party,
    PurchaseOrder, _PackageQuantity,
)

# Element characters as the general reader allows them: printable ASCII without the three delimiters (* > ~).
_CHAR = r"[\x20-\x29\x2B-\x3D\x3F-\x7D]"
_SOLID = r"[\x21-\x29\x2B-\x3D\x3F-\x7D]"  # the same without the space (no leading or trailing spaces)


class _Refused(Exception):
    """This reader does not take the document: the general reader decides."""


def _text_pattern(codec: _Text) -> str:
    low, high = codec.min_len, codec.max_len
    if not 1 <= low <= high:
        raise AssertionError(f"unexpected text length {low}-{high}")
    if high == 1:
        return _SOLID
    if low == 1:
        return f"{_SOLID}(?:{_CHAR}{{0,{high - 2}}}{_SOLID})?"
    return f"{_SOLID}{_CHAR}{{{low - 2},{high - 2}}}{_SOLID}"


def _int_pattern(digits: int, minimum: int) -> str:
    if minimum == 0:
        return f"(?:0|[1-9][0-9]{{0,{digits - 1}}})"
    if minimum == 1:
        return f"[1-9][0-9]{{0,{digits - 1}}}"
    raise AssertionError(f"unexpected minimum {minimum}")


def _to_date(text: str) -> _dt.date:
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise _Refused from None


def _to_time(text: str) -> _dt.time:
    return _dt.time(int(text[:2]), int(text[2:]))


def _to_control(text: str) -> int:
    number = int(text)
    if number < 1:
        raise _Refused
    return number


_MEMO_SIZE = 4096


def _checked_by(codec: _Codec) -> Callable[[str], Any]:
    """The codec's own decode (with ``_HERE``: characters already checked), a refusal instead of its error. A pure
    function of the text, so its answers are kept: the same DEA numbers and NDCs come in order after order."""
    memo: dict[str, Any] = {}

    def convert(text: str) -> Any:
        value = memo.get(text, memo)
        if value is memo:
            try:
                value = codec.decode(text, _HERE)
            except X12Error:
                value = _Refused
            if len(memo) >= _MEMO_SIZE:
                memo.clear()
            memo[text] = value
        if value is _Refused:
            raise _Refused
        return value
    return convert


def _uncaptured(pattern: str) -> str:
    """``pattern`` with its groups made non-capturing (the codecs' patterns are plain: no escaped parentheses)."""
    assert "\\(" not in pattern and "(?" not in pattern, pattern
    return pattern.replace("(", "(?:")


def _element(codec: _Codec) -> tuple[str, Callable[[str], Any] | None]:
    """(pattern, converter or None for the text itself) accepting only what ``codec.decode`` accepts, and giving
    what it gives."""
    kind = type(codec)
    if kind is _Text:
        return _text_pattern(codec), None  # type: ignore[arg-type]
    if kind is _Literal:
        return re.escape(codec.literal), None  # type: ignore[attr-defined]
    if kind is _Code:
        mapping = codec.mapping  # type: ignore[attr-defined]
        return "|".join(re.escape(key) for key in mapping), mapping.__getitem__
    if kind is _Int:
        return _int_pattern(codec.max_digits, codec.minimum), int  # type: ignore[attr-defined]
    if kind is _Date8:
        return "[0-9]{8}", _to_date
    if kind is _Time4:
        return _uncaptured(_Time4.pattern.pattern), _to_time
    if kind is _Control:
        width = codec.width  # type: ignore[attr-defined]
        pattern = "[0-9]{9}" if width == 9 else f"[0-9]{{{width}}}|[1-9][0-9]{{{width},8}}"
        return pattern, _to_control
    if kind is _Domain:  # the shape is necessary; the value's own parse decides
        return _uncaptured(codec.shape.pattern), _checked_by(codec)  # type: ignore[attr-defined]
    if kind is _PackageQuantity:
        return _uncaptured(codec.pattern.pattern), _checked_by(codec)  # type: ignore[attr-defined]
    raise AssertionError(f"the plain 850 reader does not know the element codec {kind.__name__}")


class _Segment:
    """One segment id with its spec. ``read(text)`` gives the values ``_decode`` gives, except for the elements that
    must be empty and the required fixed codes (``_Literal``), which the pattern checks and leaves out; or raises
    ``_Refused``."""

    def __init__(self, segment_id: str, spec: _Spec) -> None:
        assert isinstance(spec, tuple) and spec
        last_required = max((number for number, element in enumerate(spec) if element and element[1]), default=-1)
        self.converters: list[tuple[int, Callable[[str], Any]]] = []
        pattern, closing, groups = re.escape(segment_id), "", 0
        for number, element in enumerate(spec):
            if element is None:
                part = r"\*"
            else:
                codec, required = element
                element_pattern, converter = _element(codec)
                if required and type(codec) is _Literal:
                    part = rf"\*{element_pattern}"
                else:
                    part = rf"\*({element_pattern})" + ("" if required else "?")
                    if converter is not None:
                        self.converters.append((groups, converter))
                    groups += 1
            if number > last_required:  # trailing elements may be left out
                part = f"(?:{part}"
                closing += ")?"
            pattern += part
        self.fullmatch = re.compile(pattern + closing).fullmatch
        self.size = groups
        assert re.compile(pattern + closing).groups == groups

    def read(self, text: str) -> Any:
        match = self.fullmatch(text)
        if match is None or text[-1] == "*":  # a trailing empty element is an error
            raise _Refused
        values = match.groups()
        if not self.converters:
            return values
        out = list(values)
        for index, converter in self.converters:
            value = out[index]
            if value is not None:
                out[index] = converter(value)
        return out


_GS = _Segment("GS", _GS_SPEC)
_ST = _Segment("ST", _ST_SPEC)
_BEG = _Segment("BEG", _BEG_SPEC)
_N1 = _Segment("N1", _N1_SPEC)
_N3 = _Segment("N3", _N3_SPEC)
_N4 = _Segment("N4", _N4_SPEC)
_PO1 = _Segment("PO1", _PO1_850_SPEC)
_PID = _Segment("PID", _PID_SPEC)
_PO4 = _Segment("PO4", _PO4_SPEC)
_CTT = _Segment("CTT", _CTT_SPEC)
_SE = _Segment("SE", _SE_SPEC)
_GE = _Segment("GE", _GE_SPEC)
_IEA = _Segment("IEA", _IEA_SPEC)

# ISA as _parse_isa accepts it (fixed widths, ISA01-ISA04 blank, qualifiers, ids of 2-15 characters padded with
# spaces, YYMMDD, HHMM, U, 00401, control number, 0/1, P/T, '>') and its terminator.
_ISA = re.compile(
    rf"ISA\*00\* {{10}}\*00\* {{10}}\*([0-9A-Z]{{2}})\*({_CHAR}{{15}})\*([0-9A-Z]{{2}})\*({_CHAR}{{15}})"
    rf"\*([0-9]{{6}})\*((?:[01][0-9]|2[0-3])[0-5][0-9])\*U\*00401\*([0-9]{{9}})\*([01])\*([PT])\*>~")
assert _CONTROL_ISA.width == 9 and _Time4.pattern.pattern == "([01][0-9]|2[0-3])[0-5][0-9]"


def _isa_id(field: str) -> str:
    value = field.rstrip(" ")
    if len(value) < 2 or value[0] == " ":
        raise _Refused
    return value


def read_plain_850(data: Any) -> tuple[Envelope, PurchaseOrder] | None:
    """The envelope and order of a plain canonical 850, or None (the general reader then decides)."""
    if type(data) is not bytes or not data.startswith(b"ISA*"):
        return None
    try:
        return _read(data.decode("ascii"))
    except (_Refused, UnicodeDecodeError, StopIteration):
        return None


def _read(text: str) -> tuple[Envelope, PurchaseOrder]:
    isa = _ISA.match(text)
    if isa is None or isa.end() != _ISA_LENGTH:
        raise _Refused
    (sender_qualifier, sender, receiver_qualifier, receiver, isa_date, isa_time, isa_control, acknowledgment,
     usage) = isa.groups()
    sender, receiver, isa_control_number = _isa_id(sender), _isa_id(receiver), _to_control(isa_control)
    pieces = text[_ISA_LENGTH:].split("~")
    if pieces.pop() != "":
        raise _Refused  # trailing data or whitespace, or a missing terminator
    segments = iter(pieces)
    functional_id, app_sender, app_receiver, group_date, group_time, group_control = _GS.read(next(segments))
    if (functional_id != _TX_FUNCTIONAL_ID["850"]
            or f"{group_date.year % 100:02d}{group_date.month:02d}{group_date.day:02d}" != isa_date
            or f"{group_time.hour:02d}{group_time.minute:02d}" != isa_time):
        raise _Refused
    transaction_set, transaction_control = _ST.read(next(segments))
    if transaction_set != "850":
        raise _Refused
    order_number, date_signed = _BEG.read(next(segments))
    piece = next(segments)
    purchaser, piece = _party(piece, segments, "BY", require_dea=True, require_address=True)
    supplier, piece = _party(piece, segments, "SU", require_dea=False, require_address=False)
    lines: list[OrderLine850] = []
    seen: set[int] = set()
    while piece.startswith("PO1*"):
        line_number, packages, ndc = _PO1.read(piece)
        if line_number in seen:
            raise _Refused
        seen.add(line_number)
        (description,) = _PID.read(next(segments))
        quantity, unit = _PO4.read(next(segments))
        lines.append(OrderLine850(line_number, packages, ndc, description, quantity, unit))
        piece = next(segments)
    (count,) = _CTT.read(piece)
    if not lines or count != len(lines):
        raise _Refused
    # ST is segment 3 of the interchange; SE01 counts ST to SE.
    se_count, se_control = _SE.read(next(segments))
    if se_count != len(pieces) - 3 or se_control != transaction_control:
        raise _Refused
    group_count, ge_control = _GE.read(next(segments))
    interchange_count, iea_control = _IEA.read(next(segments))
    if group_count != 1 or ge_control != group_control or interchange_count != 1 or iea_control != isa_control_number:
        raise _Refused
    if next(segments, None) is not None:
        raise _Refused
    envelope = Envelope(
        sender_id=sender, receiver_id=receiver, created_at=_dt.datetime.combine(group_date, group_time),
        interchange_control_number=isa_control_number, group_control_number=group_control,
        transaction_control_number=transaction_control, sender_qualifier=sender_qualifier,
        receiver_qualifier=receiver_qualifier, usage_indicator=usage, acknowledgment_requested=acknowledgment == "1",
        application_sender_id=app_sender, application_receiver_id=app_receiver,
    )
    return envelope, PurchaseOrder(order_number, date_signed, purchaser, supplier, tuple(lines))


def _party(piece: str, segments, entity: str, *, require_dea: bool, require_address: bool) -> tuple[Party, str]:
    """N1 [N3 [N3] N4] as ``po850._parse_party`` reads it; returns the party and the segment after it."""
    code, name, qualifier, dea = _N1.read(piece)
    if code != entity or (qualifier is None) != (dea is None) or (require_dea and dea is None):
        raise _Refused
    lines: list[str] = []
    piece = next(segments)
    n3_count = 0
    while piece.startswith("N3*"):
        n3_count += 1
        pair = [value for value in _N3.read(piece) if value is not None]
        piece = next(segments)
        if n3_count > 2 or (len(pair) == 1 and piece.startswith("N3*")):
            raise _Refused
        lines.extend(pair)
    city = state = postal = None
    if piece.startswith("N4*"):
        if not lines:
            raise _Refused
        city, state, postal = _N4.read(piece)
        piece = next(segments)
    elif lines or require_address:
        raise _Refused
    return Party(name, dea, tuple(lines), city, state, postal), piece
