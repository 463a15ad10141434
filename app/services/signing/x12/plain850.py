"""The fast reader of ``parse_850``/``parse_interchange``: a plain 850 read with one regular expression for the
whole interchange (and one per order line).

Verification reads an 850 per order, so this is on the hot path of every check. The general reader (``core``:
tokenize, then decode element by element through the codecs) stays the one that decides: this reader accepts only
the common shape, a canonical 850 in ASCII without whitespace between segments, and returns ``None`` for anything
else, so the general reader runs and words the error exactly as before. When it does accept, its result is the one
the general reader would give (tests/unit/signing/test_x12_plain.py compares the two on many mutated documents).

Its patterns are built from the very element specs the general reader decodes with (``_N1_SPEC``...), so a
change to a spec changes both readers; an element codec it does not know stops the import rather than guessing.
Domain values (DEA number, NDC, order number, state) are checked by their own codec, as the general reader does.
"""

from __future__ import annotations

import datetime as _dt
import functools
import re
from collections.abc import Callable
from typing import Any

from .core import (
    _CONTROL_ISA, _CTT_SPEC, _GE_SPEC, _GS_SPEC, _IEA_SPEC, _SE_SPEC, _ST_SPEC, _TX_FUNCTIONAL_ID,
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


@functools.lru_cache(maxsize=4096)  # dates and times are immutable, and the same few come in order after order
def _to_date(text: str) -> _dt.date:
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise _Refused from None


@functools.lru_cache(maxsize=4096)
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
        identity = all(type(value) is str and value == key for key, value in mapping.items())
        return "|".join(re.escape(key) for key in mapping), None if identity else mapping.__getitem__
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
    """One segment id with its spec: ``source``, a pattern with one group per element ``_decode`` gives a value for
    (not the elements that must be empty, nor the required fixed codes, ``_Literal``, which the pattern checks), and
    ``convert``, those groups → the values ``_decode`` gives. A trailing empty element is not excluded here (the
    reader refuses ``*~`` anywhere)."""

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
        self.source = pattern + closing
        self.size = groups
        assert re.compile(self.source).groups == groups


class _Layout:
    """A pattern made of segments (each followed by the terminator) and bits of pattern around them; ``at[name]`` is
    where a segment's groups start."""

    def __init__(self) -> None:
        self.source, self.size, self.at = "", 0, {}
        self.converters: list[tuple[int, Callable[[str], Any]]] = []  # (group index, converter) of every segment

    def add(self, name: str, segment: _Segment) -> None:
        self.at[name] = self.size
        self.converters += [(self.size + index, converter) for index, converter in segment.converters]
        self.source += segment.source + "~"
        self.size += segment.size

    def values(self, groups: tuple) -> list[Any]:
        """The groups of a match with every segment's converter applied: what ``_decode`` gives, segment by
        segment."""
        out = list(groups)
        for index, converter in self.converters:
            value = out[index]
            if value is not None:
                out[index] = converter(value)
        return out

    def raw(self, pattern: str, groups: int = 0) -> None:
        self.source += pattern
        self.size += groups


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
_ISA = (rf"ISA\*00\* {{10}}\*00\* {{10}}\*([0-9A-Z]{{2}})\*({_CHAR}{{15}})\*([0-9A-Z]{{2}})\*({_CHAR}{{15}})"
        rf"\*([0-9]{{6}})\*((?:[01][0-9]|2[0-3])[0-5][0-9])\*U\*00401\*([0-9]{{9}})\*([01])\*([PT])\*>~")
assert _CONTROL_ISA.width == 9 and _Time4.pattern.pattern == "([01][0-9]|2[0-3])[0-5][0-9]"


def _party_layout(layout: _Layout, name: str, *, address_required: bool) -> None:
    """N1, then N3 [N3] N4 (required or not): at most two N3, N4 only after an N3, as ``po850._parse_party``."""
    layout.add(name, _N1)
    layout.raw("" if address_required else "(?:")
    layout.add(name + ".N3", _N3)
    layout.raw("(?:")
    layout.add(name + ".N3b", _N3)
    layout.raw(")?")
    layout.add(name + ".N4", _N4)
    layout.raw("" if address_required else ")?")


def _document_layout() -> _Layout:
    """The whole interchange: ISA GS ST BEG N1*BY N3 [N3] N4 N1*SU [N3 [N3] N4] (PO1 PID PO4)... CTT SE GE IEA."""
    layout = _Layout()
    layout.raw(_ISA, 9)
    for name, segment in (("GS", _GS), ("ST", _ST), ("BEG", _BEG)):
        layout.add(name, segment)
    _party_layout(layout, "BY", address_required=True)
    _party_layout(layout, "SU", address_required=False)
    layout.at["lines"] = layout.size  # one group holding every line; its inner groups (the last line's) unused
    layout.raw(f"((?:{_LINE.source})+)", 1 + _LINE.size)
    for name, segment in (("CTT", _CTT), ("SE", _SE), ("GE", _GE), ("IEA", _IEA)):
        layout.add(name, segment)
    return layout


def _line_layout() -> _Layout:
    layout = _Layout()
    for name, segment in (("PO1", _PO1), ("PID", _PID), ("PO4", _PO4)):
        layout.add(name, segment)
    return layout


_LINE = _line_layout()
_DOCUMENT = _document_layout()
_DOCUMENT_MATCH = re.compile(_DOCUMENT.source).fullmatch
_LINE_MATCH = re.compile(_LINE.source).match
# The converters of a line's values (PO1: line number, packages, NDC; PID: description as is; PO4: quantity, unit),
# every element of a line being required (so no value is None).
_TO_LINE_NUMBER, _TO_PACKAGES, _TO_NDC, _TO_QUANTITY, _TO_UNIT = (dict(_LINE.converters)[index]
                                                                  for index in (0, 1, 2, 4, 5))
assert [index for index, _ in _LINE.converters] == [0, 1, 2, 4, 5]
assert all(element[1] for element in (*_PO1_850_SPEC, *_PID_SPEC, *_PO4_SPEC) if element is not None)
assert re.compile(_DOCUMENT.source).groups == _DOCUMENT.size and re.compile(_LINE.source).groups == _LINE.size


def _isa_id(field: str) -> str:
    value = field.rstrip(" ")
    if len(value) < 2 or value[0] == " ":
        raise _Refused
    return value


def read_plain_850(data: Any, *, envelope: bool = True) -> tuple[Envelope | None, PurchaseOrder] | None:
    """The envelope and order of a plain canonical 850, or None (the general reader then decides). With
    ``envelope=False`` the envelope is checked all the same but not built (None in its place)."""
    if type(data) is not bytes or not data.startswith(b"ISA*") or b"*~" in data:  # *~: a trailing empty element
        return None
    try:
        return _read(data.decode("ascii"), envelope)
    except (_Refused, UnicodeDecodeError):
        return None


def _read(text: str, with_envelope: bool) -> tuple[Envelope | None, PurchaseOrder]:
    match = _DOCUMENT_MATCH(text)
    if match is None:
        raise _Refused
    g = _DOCUMENT.values(match.groups())
    (sender_qualifier, sender, receiver_qualifier, receiver, isa_date, isa_time, isa_control, acknowledgment,
     usage) = g[:9]
    sender, receiver, isa_control_number = _isa_id(sender), _isa_id(receiver), _to_control(isa_control)
    functional_id, app_sender, app_receiver, group_date, group_time, group_control = g[_GS_AT:_GS_AT + 6]
    if (functional_id != _TX_FUNCTIONAL_ID["850"]
            or f"{group_date.year % 100:02d}{group_date.month:02d}{group_date.day:02d}" != isa_date
            or f"{group_time.hour:02d}{group_time.minute:02d}" != isa_time):
        raise _Refused
    transaction_set, transaction_control, order_number, date_signed = g[_ST_AT:_ST_AT + 4]  # ST, BEG
    if transaction_set != "850":
        raise _Refused
    purchaser = _party(g, _BY_AT, "BY", require_dea=True)
    supplier = _party(g, _SU_AT, "SU", require_dea=False)
    lines: list[OrderLine850] = []
    seen: set[int] = set()
    block, pos = g[_LINES_AT], 0
    while pos < len(block):
        line = _LINE_MATCH(block, pos)
        if line is None:
            raise _Refused  # cannot happen: the block is made of lines
        line_number, packages, ndc, description, quantity, unit = line.groups()  # PO1, PID, PO4: all required
        line_number = _TO_LINE_NUMBER(line_number)
        if line_number in seen:
            raise _Refused
        seen.add(line_number)
        lines.append(OrderLine850(line_number, _TO_PACKAGES(packages), _TO_NDC(ndc), description,
                                  _TO_QUANTITY(quantity), _TO_UNIT(unit)))
        pos = line.end()
    count, se_count, se_control, group_count, ge_control, interchange_count, iea_control = g[_CTT_AT:]
    # SE01 counts ST to SE: every segment but ISA, GS, GE and IEA.
    if (count != len(lines) or se_count != text.count("~") - 4 or se_control != transaction_control
            or group_count != 1 or ge_control != group_control or interchange_count != 1
            or iea_control != isa_control_number):
        raise _Refused
    order = PurchaseOrder(order_number, date_signed, purchaser, supplier, tuple(lines))
    if not with_envelope:
        return None, order
    envelope = Envelope(
        sender_id=sender, receiver_id=receiver, created_at=_dt.datetime.combine(group_date, group_time),
        interchange_control_number=isa_control_number, group_control_number=group_control,
        transaction_control_number=transaction_control, sender_qualifier=sender_qualifier,
        receiver_qualifier=receiver_qualifier, usage_indicator=usage, acknowledgment_requested=acknowledgment == "1",
        application_sender_id=app_sender, application_receiver_id=app_receiver,
    )
    return envelope, order


def _party(g: list, at: int, entity: str, *, require_dea: bool) -> Party:
    """The party as ``po850._parse_party`` reads it, from the values of ``_party_layout`` (N1, N3, N3, N4)."""
    code, name, qualifier, dea, line1, line2, line3, line4, city, state, postal = g[at:at + 11]
    if code != entity or (qualifier is None) != (dea is None) or (require_dea and dea is None):
        raise _Refused
    if line3 is not None and line2 is None:
        raise _Refused  # one spelling only: lines go two to an N3, so only the last N3 may carry a single line
    lines = tuple(line for line in (line1, line2, line3, line4) if line is not None)
    return Party(name, dea, lines, city, state, postal)


# Where the values of each part start, and the layout the unpacking above relies on.
_GS_AT, _ST_AT, _BY_AT, _SU_AT = _DOCUMENT.at["GS"], _DOCUMENT.at["ST"], _DOCUMENT.at["BY"], _DOCUMENT.at["SU"]
_LINES_AT, _CTT_AT = _DOCUMENT.at["lines"], _DOCUMENT.at["CTT"]
assert (_GS.size, _ST.size, _BEG.size, _N1.size, _N3.size, _N4.size) == (6, 2, 2, 4, 2, 3)
assert _DOCUMENT.at["BEG"] == _ST_AT + 2 and _BY_AT == _ST_AT + 4 and _SU_AT == _BY_AT + 11
assert _DOCUMENT.at["BY.N4"] == _BY_AT + 8 and _DOCUMENT.at["SU.N4"] == _SU_AT + 8 and _LINES_AT == _SU_AT + 11
assert (_PO1.size, _PID.size, _PO4.size) == (3, 1, 2) and _LINE.size == 6
assert _CTT_AT == _LINES_AT + 1 + _LINE.size and _DOCUMENT.size == _CTT_AT + 7
