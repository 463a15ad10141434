"""The X12 codec core: delimiters, character rules, errors, element codecs, segment writing and reading, and the
envelope (ISA/GS/ST ... SE/GE/IEA) that wraps every transaction set.

Delimiters are fixed: ``~`` segment terminator, ``*`` element separator, ``>`` sub-element separator. Data never
contains a delimiter: the writer rejects it (never escapes it), the parser never sees one inside an element.

The codec is canonical. The writer produces exactly one byte string for a document (no whitespace, no trailing
empty elements, numbers without leading zeros, decimals normalised), and the parser accepts only that canonical
form (plus optional whitespace after a segment terminator, which VANs add). So an accepted 850 has one meaning and
one spelling: ``write(parse(data)) == data`` once whitespace after ``~`` is removed. The mapping of every field is
in ``docs/x12-mapping.md``.

Text: printable ASCII only (0x20-0x7E, the X12 basic and extended character sets), minus the three delimiters,
without leading or trailing spaces. Anything else is rejected on write and on parse (``x12.charset``).

Every failure is an :class:`X12Error` with a stable ``code`` and, where it applies, the segment id and its position
(segment index in the interchange, ISA = 1; element index, 1-based).

The names with a leading underscore are the package's own: the transaction set modules (``po850``, ``ack855``,
``ship856``, ``void865``) build on them; callers use the public API of the ``x12`` package.
"""

from __future__ import annotations

import datetime as _dt
import decimal as _decimal
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Union

from app.errors import CsosError, InvalidValue
from app.models.values import Ndc, OrderNumber

__all__ = ["SEGMENT_TERMINATOR", "ELEMENT_SEPARATOR", "SUBELEMENT_SEPARATOR", "X12Error", "Envelope"]

SEGMENT_TERMINATOR = "~"
ELEMENT_SEPARATOR = "*"
SUBELEMENT_SEPARATOR = ">"
_DELIMITERS = frozenset(SEGMENT_TERMINATOR + ELEMENT_SEPARATOR + SUBELEMENT_SEPARATOR)
_WHITESPACE_AFTER_TERMINATOR = " \t\r\n"
_ISA_LENGTH = 106  # "ISA" + 16 separators + 86 characters of fixed-width data + terminator

# ---------------------------------------------------------------------------------------------------------------------
# Errors


class X12Error(CsosError):
    """An X12 document could not be written or parsed.

    ``segment`` is the segment id concerned (``"N1"``), ``position`` is ``(segment index, element index)`` with the
    segment index counted from ISA = 1 across the whole interchange and the element index 1-based (``None`` when the
    whole segment is concerned). ``value_code`` carries the code of a wrapped :class:`InvalidValue`
    (e.g. ``dea.check_digit``) when ``code == "x12.invalid_value"``.
    """

    code = "x12.malformed"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        segment: str | None = None,
        position: tuple[int, int | None] | None = None,
        value_code: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.segment = segment
        self.position = position
        self.value_code = value_code

    @property
    def segment_index(self) -> int | None:
        return self.position[0] if self.position else None

    @property
    def element_index(self) -> int | None:
        return self.position[1] if self.position else None


class _Loc(NamedTuple):
    """Where in the interchange. The parser builds one only when something fails (see ``_HERE``)."""

    segment: str
    index: int
    element: int | None = None

    def describe(self) -> str:
        if self.element is None:
            return f"segment {self.index} ({self.segment})"
        return f"segment {self.index} ({self.segment}), element {self.segment}{self.element:02d}"


class _Unplaced(X12Error):
    """A codec's failure while decoding at ``_HERE``: ``_decode`` re-raises it with the element's location."""

    def __init__(self, code: str, what: str, value_code: str | None) -> None:
        super().__init__(what, code=code, value_code=value_code)
        self.what = what


# Passed as ``loc`` by the parser, which knows the location but builds it only when a codec fails (most elements
# are fine, and a location per element was a good part of the parse time).
_HERE = _Loc("", 0)


def _fail(code: str, loc: _Loc | None, what: str, *, value_code: str | None = None) -> X12Error:
    if loc is _HERE:
        return _Unplaced(code, what, value_code)
    prefix = f"X12 {loc.describe()}: " if loc is not None else "X12: "
    return X12Error(
        prefix + what,
        code=code,
        segment=loc.segment if loc else None,
        position=(loc.index, loc.element) if loc else None,
        value_code=value_code,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Documents: what every transaction set shares


def _as_tuple(obj: Any, name: str) -> None:
    value = getattr(obj, name)
    if isinstance(value, list):
        object.__setattr__(obj, name, tuple(value))


@dataclass(frozen=True, slots=True)
class Envelope:
    """ISA/GS/ST values. Control numbers are the caller's job (unique per sender); the writer only formats them.

    ``application_sender_id``/``application_receiver_id`` (GS02/GS03) default to the interchange ids (ISA06/ISA08);
    they are normalised to ``None`` when equal so a parsed envelope compares equal to the one written.
    ``created_at`` goes to ISA09/ISA10 and GS04/GS05 at minute precision (seconds are dropped, the wall-clock time is
    written as is).
    """

    sender_id: str
    receiver_id: str
    created_at: _dt.datetime
    interchange_control_number: int
    group_control_number: int
    transaction_control_number: int = 1
    sender_qualifier: str = "ZZ"
    receiver_qualifier: str = "ZZ"
    usage_indicator: str = "P"  # P production, T test
    acknowledgment_requested: bool = False
    application_sender_id: str | None = None
    application_receiver_id: str | None = None

    def __post_init__(self) -> None:
        if self.application_sender_id == self.sender_id:
            object.__setattr__(self, "application_sender_id", None)
        if self.application_receiver_id == self.receiver_id:
            object.__setattr__(self, "application_receiver_id", None)


# ---------------------------------------------------------------------------------------------------------------------
# Element codecs: each turns one Python value into one element and back, validating both ways with the same rules.


# Printable ASCII without the three delimiters; the fast path for the common, clean case.
_CLEAN_ELEMENT = re.compile(r"[\x20-\x29\x2B-\x3D\x3F-\x7D]*")
_CLEAN_SEGMENT = re.compile(r"[\x20-\x3D\x3F-\x7D]*")  # the same plus the element separator


def _check_chars(text: str, loc: _Loc) -> None:
    if _CLEAN_ELEMENT.fullmatch(text):
        return
    for ch in text:
        if ch in _DELIMITERS:
            raise _fail("x12.delimiter_in_data", loc, f"the delimiter {ch!r} is not allowed inside data.")
        if not (" " <= ch <= "~"):
            raise _fail(
                "x12.charset", loc,
                f"the character {ch!r} is outside the X12 character set (printable ASCII).",
            )


class _Codec:
    def encode(self, value: Any, loc: _Loc) -> str:
        raise NotImplementedError

    def decode(self, text: str, loc: _Loc) -> Any:
        raise NotImplementedError


class _CheckedText(_Codec):
    """An element written as given, once ``_check`` accepts it (the same check both ways)."""

    label: str

    def _check(self, text: str, loc: _Loc) -> str:
        raise NotImplementedError

    def encode(self, value: Any, loc: _Loc) -> str:
        if not isinstance(value, str):
            raise _fail("x12.bad_element", loc, f"the {self.label} must be text, not {type(value).__name__}.")
        return self._check(value, loc)

    def decode(self, text: str, loc: _Loc) -> str:
        return self._check(text, loc)


class _Text(_CheckedText):
    def __init__(self, min_len: int, max_len: int, label: str) -> None:
        self.min_len, self.max_len, self.label = min_len, max_len, label

    def _check(self, text: str, loc: _Loc) -> str:
        if loc is not _HERE:  # _HERE: an element from _tokenize, whose characters are already checked
            _check_chars(text, loc)
        if text == "":
            raise _fail("x12.missing_element", loc, f"the {self.label} is empty.")
        if text.strip(" ") != text:
            raise _fail("x12.bad_element", loc, f"the {self.label} has leading or trailing spaces.")
        if not self.min_len <= len(text) <= self.max_len:
            raise _fail(
                "x12.bad_element", loc,
                f"the {self.label} has {len(text)} characters; X12 allows {self.min_len} to {self.max_len}.",
            )
        return text


class _Literal(_Codec):
    """A fixed code. A different value is an unknown qualifier (or ``code`` if given)."""

    def __init__(self, literal: str, label: str, code: str = "x12.unknown_qualifier") -> None:
        self.literal, self.label, self.code = literal, label, code

    def encode(self, value: Any, loc: _Loc) -> str:
        if value != self.literal:
            raise _fail(self.code, loc, f"the {self.label} must be {self.literal!r}, not {value!r}.")
        return self.literal

    def decode(self, text: str, loc: _Loc) -> str:
        if text != self.literal:
            raise _fail(self.code, loc, f"the {self.label} must be {self.literal!r}, not {text!r}.")
        return text


class _Code(_Codec):
    """One of a set of codes, mapped to Python values (enum members, strings, booleans...)."""

    def __init__(self, mapping: dict[str, Any], label: str) -> None:
        self.mapping, self.label = mapping, label
        self.reverse = [(v, k) for k, v in mapping.items()]

    def encode(self, value: Any, loc: _Loc) -> str:
        for v, k in self.reverse:
            if type(v) is type(value) and v == value:
                return k
        raise _fail("x12.unknown_qualifier", loc, f"{value!r} is not a valid {self.label}.")

    def decode(self, text: str, loc: _Loc) -> Any:
        if text not in self.mapping:
            allowed = ", ".join(self.mapping)
            raise _fail("x12.unknown_qualifier", loc, f"{text!r} is not a valid {self.label} ({allowed}).")
        return self.mapping[text]


class _Int(_Codec):
    """A whole number without leading zeros (X12 N0 / R without fraction) in ``[minimum, 10**max_digits - 1]``."""

    def __init__(self, label: str, *, minimum: int, max_digits: int) -> None:
        self.label, self.minimum, self.max_digits = label, minimum, max_digits
        self.pattern = re.compile(r"(0|[1-9][0-9]*)")

    def _range(self, number: int, loc: _Loc) -> int:
        if number < self.minimum:
            rule = "greater than zero" if self.minimum == 1 else f"at least {self.minimum}"
            raise _fail("x12.bad_element", loc, f"the {self.label} must be {rule}, not {number}.")
        if number >= 10 ** self.max_digits:
            raise _fail("x12.bad_element", loc, f"the {self.label} has more than {self.max_digits} digits.")
        return number

    def encode(self, value: Any, loc: _Loc) -> str:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail("x12.bad_element", loc, f"the {self.label} must be a whole number, not {value!r}.")
        return str(self._range(value, loc))

    def decode(self, text: str, loc: _Loc) -> int:
        if len(text) > self.max_digits + 1 or not self.pattern.fullmatch(text):
            raise _fail("x12.bad_element", loc, f"the {self.label} {text!r} is not a whole number.")
        return self._range(int(text), loc)


class _Date8(_Codec):
    """CCYYMMDD."""

    def __init__(self, label: str) -> None:
        self.label = label

    def encode(self, value: Any, loc: _Loc) -> str:
        if not isinstance(value, _dt.date) or isinstance(value, _dt.datetime):
            raise _fail("x12.bad_element", loc, f"the {self.label} must be a date, not {value!r}.")
        return f"{value.year:04d}{value.month:02d}{value.day:02d}"

    def decode(self, text: str, loc: _Loc) -> _dt.date:
        if len(text) == 8 and text.isascii() and text.isdigit():
            try:
                return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            except ValueError:
                pass
        raise _fail("x12.bad_element", loc, f"the {self.label} {text!r} is not a date CCYYMMDD.")


class _Time4(_Codec):
    """HHMM."""

    pattern = re.compile(r"([01][0-9]|2[0-3])[0-5][0-9]")

    def __init__(self, label: str) -> None:
        self.label = label

    def encode(self, value: Any, loc: _Loc) -> str:
        if not isinstance(value, _dt.time):
            raise _fail("x12.bad_element", loc, f"the {self.label} must be a time, not {value!r}.")
        return f"{value.hour:02d}{value.minute:02d}"

    def decode(self, text: str, loc: _Loc) -> _dt.time:
        if not self.pattern.fullmatch(text):
            raise _fail("x12.bad_element", loc, f"the {self.label} {text!r} is not a time HHMM.")
        return _dt.time(int(text[:2]), int(text[2:]))


class _Domain(_CheckedText):
    """A domain value from app.models.values: must parse and be written in its canonical spelling."""

    def __init__(self, label: str, parse: Callable[[str], Any], canonical: Callable[[Any], str],
                 shape: re.Pattern[str], shape_hint: str) -> None:
        self.label, self.parse, self.canonical, self.shape, self.shape_hint = label, parse, canonical, shape, shape_hint

    def _check(self, text: str, loc: _Loc) -> str:
        if loc is not _HERE:  # _HERE: an element from _tokenize, whose characters are already checked
            _check_chars(text, loc)
        try:
            parsed = self.parse(text)
        except InvalidValue as exc:
            raise _fail("x12.invalid_value", loc, f"{exc.message} [{exc.code}]", value_code=exc.code) from None
        if self.canonical(parsed) != text or not self.shape.fullmatch(text):
            raise _fail("x12.bad_element", loc, f"the {self.label} {text!r} must be written {self.shape_hint}.")
        return text


_NDC = _Domain("NDC", Ndc.parse, lambda v: v.digits, re.compile(r"[0-9]{11}"), "as 11 digits without hyphens")
_ORDER_NUMBER = _Domain("order number", OrderNumber.parse, lambda v: v.value, re.compile(r"[0-9]{2}X[0-9A-Z]{6}"),
                        "in capitals, e.g. 26X000001")


class _Control(_Codec):
    """Control numbers: ISA13/IEA02 (9 digits, zero-padded), GS06/GE02 (1-9 digits), ST02/SE02 (4-9 digits)."""

    def __init__(self, label: str, width: int) -> None:
        self.label, self.width = label, width

    def encode(self, value: Any, loc: _Loc) -> str:
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 999_999_999:
            raise _fail("x12.envelope", loc, f"the {self.label} must be a whole number 1-999999999, not {value!r}.")
        return f"{value:0{self.width}d}"

    def decode(self, text: str, loc: _Loc) -> int:
        if len(text) <= 9 and text.isascii() and text.isdigit():
            number = int(text)
            if 1 <= number and f"{number:0{self.width}d}" == text:
                return number
        raise _fail("x12.envelope", loc, f"the {self.label} {text!r} is not {self.width}-digit control number.")


_LINE_NUMBER = _Int("line number", minimum=1, max_digits=6)
_QUANTITY = _Int("quantity", minimum=0, max_digits=9)
_COUNT = _Int("count", minimum=0, max_digits=6)
_CONTROL_ISA = _Control("interchange control number", 9)
_CONTROL_GS = _Control("group control number", 1)
_CONTROL_ST = _Control("transaction set control number", 4)


# An element spec is None (must be empty) or (codec, required).
_Spec = Sequence[Union[tuple[_Codec, bool], None]]


def _req(codec: _Codec) -> tuple[_Codec, bool]:
    return (codec, True)


def _opt(codec: _Codec) -> tuple[_Codec, bool]:
    return (codec, False)


_TX_FUNCTIONAL_ID = {"850": "PO", "855": "PR", "856": "SH", "865": "CA"}
_GS_SPEC: _Spec = (
    _req(_Code({v: v for v in _TX_FUNCTIONAL_ID.values()}, "functional identifier code (GS01)")),
    _req(_Text(2, 15, "application sender's code")),
    _req(_Text(2, 15, "application receiver's code")),
    _req(_Date8("group date")),
    _req(_Time4("group time")),
    _req(_CONTROL_GS),
    _req(_Literal("X", "responsible agency code")),
    _req(_Literal("004010", "X12 version", code="x12.envelope")),
)
_ST_SPEC: _Spec = (_req(_Text(3, 3, "transaction set id")), _req(_CONTROL_ST))
_SE_SPEC: _Spec = (_req(_COUNT), _req(_CONTROL_ST))
_GE_SPEC: _Spec = (_req(_COUNT), _req(_CONTROL_GS))
_IEA_SPEC: _Spec = (_req(_COUNT), _req(_CONTROL_ISA))

_CTT_SPEC: _Spec = (_req(_COUNT),)
_N9_SPEC: _Spec = (_req(_Literal("L1", "reference qualifier")), _req(_Literal("REASON", "reference id")))
_MSG_SPEC: _Spec = (_req(_Text(1, 264, "reason")),)


# ---------------------------------------------------------------------------------------------------------------------
# Writing


# Segments already encoded (``_Writer.emit``), by segment id, spec and values.
_ENCODED: dict[tuple[Any, ...], str] = {}
_ENCODED_MAX = 2048


def _value_key(value: Any) -> Any:
    """``value`` with its type (True is not 1, 2.5 is not Decimal("2.5")); Decimals and floats with their spelling
    too (Decimal("30.0") equals Decimal("30") but is another value to encode)."""
    kind = type(value)
    if kind is str or kind is int or value is None:
        return kind, value
    if isinstance(value, (float, _decimal.Decimal)):
        return kind, repr(value)
    return kind, value


class _Writer:
    def __init__(self) -> None:
        self.segments: list[str] = []

    @property
    def next_index(self) -> int:
        return len(self.segments) + 1

    def loc(self, segment: str, element: int | None = None) -> _Loc:
        return _Loc(segment, self.next_index, element)

    def emit(self, segment: str, spec: _Spec, values: Sequence[Any]) -> None:
        """Encode one segment. Like ``_decode``, codecs get ``_HERE`` and the location is built only on failure;
        as ``_HERE`` tells codecs the characters were checked, text is checked here first (and the output after).

        A segment already encoded from the same spec and values (same types, and the same spelling for Decimals
        and floats) is reused: encoding is a function of them alone, and a refused one is never kept."""
        assert len(values) == len(spec), segment
        try:
            key: tuple[Any, ...] | None = (segment, spec, *[_value_key(value) for value in values])
            kept = _ENCODED.get(key)  # type: ignore[arg-type]
        except TypeError:  # a value that cannot be a key: encoded (or refused) the long way
            key, kept = None, None
        if kept is not None:
            self.segments.append(kept)
            return
        self.segments.append(self._encode(segment, spec, values))
        if key is not None:
            if len(_ENCODED) >= _ENCODED_MAX:
                _ENCODED.clear()  # a few hundred distinct segments in practice
            _ENCODED[key] = self.segments[-1]

    def _encode(self, segment: str, spec: _Spec, values: Sequence[Any]) -> str:
        out: list[str] = []
        number = 0
        try:
            for element, value in zip(spec, values):
                number += 1
                if element is None:
                    out.append("")
                elif value is None:
                    if element[1]:
                        raise _fail("x12.missing_element", _HERE, "a required value is missing.")
                    out.append("")
                else:
                    checked = isinstance(value, str)
                    if checked:
                        _check_chars(value, _HERE)
                    text = element[0].encode(value, _HERE)
                    if not checked or text is not value:  # text codecs hand back the very string checked above
                        _check_chars(text, _HERE)
                    out.append(text)
        except _Unplaced as failure:
            raise _fail(failure.code, self.loc(segment, number), failure.what,
                        value_code=failure.value_code) from None
        while out and out[-1] == "":
            out.pop()
        out.insert(0, segment)
        return ELEMENT_SEPARATOR.join(out)

    def raw(self, text: str) -> None:
        self.segments.append(text)

    def bytes(self) -> bytes:
        return "".join(s + SEGMENT_TERMINATOR for s in self.segments).encode("ascii")


def _isa_id(value: Any, loc: _Loc, label: str) -> str:
    text = _Text(2, 15, label).encode(value, loc)
    return text.ljust(15)


def _isa_code(value: Any, loc: _Loc, allowed: set[str] | None, label: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9A-Z]{2}" if allowed is None else r"[A-Z]", value) or (
        allowed is not None and value not in allowed
    ):
        raise _fail("x12.envelope", loc, f"{value!r} is not a valid {label}.")
    return value


def _write_envelope_head(w: _Writer, env: Envelope, transaction_set: str) -> None:
    if not isinstance(env, Envelope):
        raise _fail("x12.envelope", None, f"the envelope must be an Envelope, not {type(env).__name__}.")
    created = env.created_at
    if not isinstance(created, _dt.datetime):
        raise _fail("x12.envelope", _Loc("ISA", 1, 9), f"created_at must be a datetime, not {created!r}.")
    fields = [
        "00", " " * 10, "00", " " * 10,
        _isa_code(env.sender_qualifier, _Loc("ISA", 1, 5), None, "interchange id qualifier"),
        _isa_id(env.sender_id, _Loc("ISA", 1, 6), "interchange sender id"),
        _isa_code(env.receiver_qualifier, _Loc("ISA", 1, 7), None, "interchange id qualifier"),
        _isa_id(env.receiver_id, _Loc("ISA", 1, 8), "interchange receiver id"),
        f"{created.year % 100:02d}{created.month:02d}{created.day:02d}",
        f"{created.hour:02d}{created.minute:02d}",
        "U", "00401",
        _CONTROL_ISA.encode(env.interchange_control_number, _Loc("ISA", 1, 13)),
        "1" if _bool(env.acknowledgment_requested, _Loc("ISA", 1, 14)) else "0",
        _isa_code(env.usage_indicator, _Loc("ISA", 1, 15), {"P", "T"}, "usage indicator (P or T)"),
        SUBELEMENT_SEPARATOR,
    ]
    isa = "ISA" + "".join(ELEMENT_SEPARATOR + f for f in fields)
    assert len(isa) == _ISA_LENGTH - 1
    w.raw(isa)
    w.emit("GS", _GS_SPEC, [
        _TX_FUNCTIONAL_ID[transaction_set],
        env.application_sender_id if env.application_sender_id is not None else env.sender_id,
        env.application_receiver_id if env.application_receiver_id is not None else env.receiver_id,
        created.date(), created.time(), env.group_control_number, "X", "004010",
    ])
    w.emit("ST", _ST_SPEC, [transaction_set, env.transaction_control_number])


def _bool(value: Any, loc: _Loc) -> bool:
    if not isinstance(value, bool):
        raise _fail("x12.bad_element", loc, f"expected True or False, not {value!r}.")
    return value


def _write_envelope_tail(w: _Writer, env: Envelope, st_index: int) -> None:
    w.emit("SE", _SE_SPEC, [w.next_index - st_index + 1, env.transaction_control_number])
    w.emit("GE", _GE_SPEC, [1, env.group_control_number])
    w.emit("IEA", _IEA_SPEC, [1, env.interchange_control_number])


def _expect_type(value: Any, cls: type, loc: _Loc | None) -> None:
    if not isinstance(value, cls):
        raise _fail("x12.bad_element", loc, f"expected a {cls.__name__}, not {type(value).__name__}.")


def _check_unique(number: Any, seen: set[int], loc: _Loc) -> None:
    if isinstance(number, int) and number in seen:
        raise _fail("x12.duplicate_line", loc, f"line number {number} appears more than once.")
    if isinstance(number, int):
        seen.add(number)


def _write_reason(w: _Writer, reason: str | None) -> None:
    if reason is not None:
        w.emit("N9", _N9_SPEC, ["L1", "REASON"])
        w.emit("MSG", _MSG_SPEC, [reason])


def _write_interchange(document: Any, envelope: Envelope, transaction_set: str,
                       body: Callable[[_Writer, Any], None]) -> bytes:
    """One document in one interchange: the envelope around the transaction set's ``body``."""
    w = _Writer()
    _write_envelope_head(w, envelope, transaction_set)
    st_index = len(w.segments)
    body(w, document)
    _write_envelope_tail(w, envelope, st_index)
    return w.bytes()


# ---------------------------------------------------------------------------------------------------------------------
# Parsing


@dataclass(slots=True)
class _Seg:
    id: str
    elements: list[str]
    index: int

    def loc(self, element: int | None = None) -> _Loc:
        return _Loc(self.id, self.index, element)


_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{1,2}")
_CLEAN_AFTER_ISA = re.compile(r"[\x20-\x3D\x3F-\x7E]*")  # _CLEAN_SEGMENT plus the segment terminator


def _tokenize(data: Any, known: frozenset[str]) -> tuple[str, list[_Seg]]:
    """Split an interchange into the ISA text (fixed width, checked later) and the following segments. ``known``
    segment ids skip the segment id pattern check (they all match it)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise _fail("x12.malformed", None, f"X12 data must be bytes, not {type(data).__name__}.")
    raw = bytes(data)
    if not raw.strip(_WHITESPACE_AFTER_TERMINATOR.encode()):
        raise _fail("x12.empty", None, "the document is empty.")
    text = raw.decode("latin-1")  # every byte maps to one character; non-ASCII is rejected per element below
    isa_loc = _Loc("ISA", 1)
    if not text.startswith("ISA"):
        raise _fail("x12.envelope", isa_loc, "an X12 interchange starts with ISA.")
    if len(text) < _ISA_LENGTH:
        raise _fail("x12.envelope", isa_loc, f"the ISA segment is short: an interchange has at least {_ISA_LENGTH} "
                                             f"characters of ISA, this document has {len(text)} in all.")
    if text[3] != ELEMENT_SEPARATOR:
        raise _fail("x12.envelope", isa_loc, f"the element separator must be '*', not {text[3]!r}.")
    if text[_ISA_LENGTH - 1] != SEGMENT_TERMINATOR:
        raise _fail("x12.envelope", isa_loc, f"the ISA segment must be exactly {_ISA_LENGTH} characters long and end "
                                             f"with '~' (found {text[_ISA_LENGTH - 1]!r} at position {_ISA_LENGTH}).")
    isa = text[:_ISA_LENGTH - 1]
    segments: list[_Seg] = []
    rest = text[_ISA_LENGTH:]
    # Usually every byte after the ISA is printable and not '>': then every segment is clean, checked in one go.
    all_clean = _CLEAN_AFTER_ISA.fullmatch(rest) is not None
    pieces = rest.split(SEGMENT_TERMINATOR)
    tail = pieces.pop()
    index = 1
    for piece in pieces:
        index += 1
        body = piece.lstrip(_WHITESPACE_AFTER_TERMINATOR)
        if not body:
            raise _fail("x12.malformed", _Loc("?", index), "empty segment (two terminators in a row).")
        parts = body.split(ELEMENT_SEPARATOR)
        segment_id = parts[0]
        if segment_id not in known and not _SEGMENT_ID.fullmatch(segment_id):
            raise _fail("x12.malformed", _Loc(segment_id[:3], index), f"{segment_id[:20]!r} is not a segment id.")
        del parts[0]
        seg = _Seg(segment_id, parts, index)
        if not all_clean and not _CLEAN_SEGMENT.fullmatch(body):
            for number, element in enumerate(parts, start=1):
                _check_chars(element, seg.loc(number))
        if parts and parts[-1] == "":
            raise _fail("x12.bad_element", seg.loc(len(parts)),
                        "trailing empty element (X12 omits trailing separators).")
        segments.append(seg)
    if tail.strip(_WHITESPACE_AFTER_TERMINATOR):
        index = len(pieces) + 2
        if any(s.id == "IEA" for s in segments):
            raise _fail("x12.trailing_data", _Loc(tail.lstrip()[:3], index), "data after the end of the interchange.")
        raise _fail("x12.envelope", _Loc(tail.lstrip()[:3], index),
                    "the interchange is truncated: the last segment has no terminator '~'.")
    return isa, segments


def _decode(seg: _Seg, spec: _Spec) -> list[Any]:
    """Decode a segment's elements by ``spec``. Elements reach here already checked for the character set (every
    segment passes ``_check_chars`` in ``_tokenize``), so codecs are called with ``_HERE`` and the location is built
    only for a failure."""
    elements = seg.elements
    count = len(elements)
    if count > len(spec):
        raise _fail("x12.unexpected_element", seg.loc(len(spec) + 1),
                    f"{seg.id} has {count} elements; at most {len(spec)} are used.")
    out: list[Any] = []
    number = 0
    try:
        for element in spec:
            text = elements[number] if number < count else ""
            number += 1
            if element is None:
                if text:
                    raise _fail("x12.unexpected_element", seg.loc(number),
                                "this element is not used and must be empty.")
                out.append(None)
            elif text == "":
                if element[1]:
                    raise _fail("x12.missing_element", seg.loc(number), "a required element is missing.")
                out.append(None)
            else:
                out.append(element[0].decode(text, _HERE))
    except _Unplaced as failure:
        raise _fail(failure.code, seg.loc(number), failure.what, value_code=failure.value_code) from None
    return out


class _Reader:
    def __init__(self, segments: list[_Seg], known: frozenset[str]) -> None:
        self.segments, self.known, self.pos = segments, known, 0

    def peek_id(self) -> str | None:
        return self.segments[self.pos].id if self.pos < len(self.segments) else None

    @property
    def next_index(self) -> int:
        if self.pos < len(self.segments):
            return self.segments[self.pos].index
        return (self.segments[-1].index + 1) if self.segments else 2

    def take(self, segment_id: str, what: str = "") -> _Seg:
        what = what or segment_id
        if self.pos >= len(self.segments):
            raise _fail("x12.missing_segment", _Loc(segment_id, self.next_index),
                        f"the document ends where {what} was expected.")
        seg = self.segments[self.pos]
        if seg.id != segment_id:
            if seg.id in self.known:
                raise _fail("x12.missing_segment", _Loc(segment_id, seg.index),
                            f"{what} was expected here, found {seg.id}.")
            raise _fail("x12.unexpected_segment", seg.loc(), f"{seg.id} is not expected here ({what} was).")
        self.pos += 1
        return seg

    def take_if(self, segment_id: str) -> _Seg | None:
        if self.peek_id() == segment_id:
            return self.take(segment_id)
        return None


_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_ISA_QUALIFIER = re.compile(r"[0-9A-Z]{2}")  # what _isa_code accepts for ISA05/ISA07
_ISA_DATE = re.compile(r"[0-9]{6}")
_ISA_SENDER = _Text(2, 15, "interchange sender id")
_ISA_RECEIVER = _Text(2, 15, "interchange receiver id")


def _parse_isa(isa: str) -> dict[str, Any]:
    fields = isa.split(ELEMENT_SEPARATOR)[1:]
    if len(fields) != 16:
        raise _fail("x12.envelope", _Loc("ISA", 1), f"ISA must have 16 elements, not {len(fields)}.")
    # All widths right and ISA01-ISA15 clean (checked in one go), or the element-by-element check says what is wrong.
    if tuple(map(len, fields)) != _ISA_WIDTHS or not _CLEAN_SEGMENT.fullmatch(isa, 0, len(isa) - 1):
        for number, (field, width) in enumerate(zip(fields, _ISA_WIDTHS), start=1):
            loc = _Loc("ISA", 1, number)
            if len(field) != width:
                raise _fail("x12.envelope", loc,
                            f"ISA{number:02d} must be exactly {width} characters, not {len(field)}.")
            if number != 16:
                _check_chars(field, loc)

    def fixed(number: int, expected: str, label: str) -> None:
        if fields[number - 1] != expected:
            raise _fail("x12.envelope", _Loc("ISA", 1, number),
                        f"the {label} must be {expected!r}, not {fields[number - 1]!r}.")

    if fields[0] != "00" or fields[1] != " " * 10 or fields[2] != "00" or fields[3] != " " * 10:
        fixed(1, "00", "authorization information qualifier")
        fixed(2, " " * 10, "authorization information (blank)")
        fixed(3, "00", "security information qualifier")
        fixed(4, " " * 10, "security information (blank)")
    for number in (5, 7):
        if not _ISA_QUALIFIER.fullmatch(fields[number - 1]):
            _isa_code(fields[number - 1], _Loc("ISA", 1, number), None, "interchange id qualifier")
    ids = {6: _ISA_SENDER.decode(fields[5].rstrip(" "), _Loc("ISA", 1, 6)),
           8: _ISA_RECEIVER.decode(fields[7].rstrip(" "), _Loc("ISA", 1, 8))}
    if not _ISA_DATE.fullmatch(fields[8]):
        raise _fail("x12.envelope", _Loc("ISA", 1, 9), f"the interchange date {fields[8]!r} is not YYMMDD.")
    if not _Time4.pattern.fullmatch(fields[9]):
        raise _fail("x12.envelope", _Loc("ISA", 1, 10), f"the interchange time {fields[9]!r} is not HHMM.")
    fixed(11, "U", "interchange control standards identifier")
    fixed(12, "00401", "interchange control version number")
    control = _CONTROL_ISA.decode(fields[12], _Loc("ISA", 1, 13))
    if fields[13] not in ("0", "1"):
        raise _fail("x12.envelope", _Loc("ISA", 1, 14), f"acknowledgment requested must be 0 or 1, not {fields[13]!r}.")
    if fields[14] not in ("P", "T"):
        _isa_code(fields[14], _Loc("ISA", 1, 15), {"P", "T"}, "usage indicator (P or T)")
    if fields[15] != SUBELEMENT_SEPARATOR:
        raise _fail("x12.envelope", _Loc("ISA", 1, 16),
                    f"the sub-element separator must be '>', not {fields[15]!r}.")
    return {
        "sender_qualifier": fields[4], "sender_id": ids[6], "receiver_qualifier": fields[6], "receiver_id": ids[8],
        "date": fields[8], "time": fields[9], "interchange_control_number": control,
        "acknowledgment_requested": fields[13] == "1", "usage_indicator": fields[14],
    }


def _parse_reason(r: _Reader) -> str | None:
    n9 = r.take_if("N9")
    if n9 is None:
        return None
    _decode(n9, _N9_SPEC)
    (reason,) = _decode(r.take("MSG", "MSG (the reason text after N9)"), _MSG_SPEC)
    return reason


def _parse_count(r: _Reader, actual: int, what: str) -> None:
    ctt = r.take("CTT")
    (count,) = _decode(ctt, _CTT_SPEC)
    if count != actual:
        raise _fail("x12.count_mismatch", ctt.loc(1), f"CTT says {count} {what}, the document has {actual}.")


# A transaction set's body parser and the segment ids it reads (beyond the envelope's).
_BodyParser = tuple[Callable[[_Reader], Any], frozenset[str]]
_TRAILERS = frozenset({"SE", "GE", "IEA"})
_ENVELOPE_SEGMENTS = frozenset({"GS", "ST"}).union(_TRAILERS)


def _known_segments(parsers: Mapping[str, _BodyParser]) -> frozenset[str]:
    """Every segment id the interchange may hold: the envelope's and those of the transaction sets read."""
    return _ENVELOPE_SEGMENTS.union(*(known for _, known in parsers.values()))


def _read_interchange(data: bytes, expected: str | None, parsers: Mapping[str, _BodyParser],
                      all_known: frozenset[str]) -> tuple[Envelope, Any]:
    """Check the envelope around the one transaction set and parse its body with ``parsers[ST01]``.

    ``all_known`` is ``_known_segments(parsers)`` (worked out once by the caller). Raises only :class:`X12Error`.
    """
    isa_text, segments = _tokenize(data, all_known)
    isa = _parse_isa(isa_text)
    r = _Reader(segments, all_known)
    gs = r.take("GS", "GS (functional group header)")
    functional_id, app_sender, app_receiver, group_date, group_time, group_control, _, _ = _decode(gs, _GS_SPEC)
    yymmdd = f"{group_date.year % 100:02d}{group_date.month:02d}{group_date.day:02d}"
    if yymmdd != isa["date"]:
        raise _fail("x12.envelope", _Loc("ISA", 1, 9), f"the interchange date (ISA09) {isa['date']} differs from "
                                                       f"the group date (GS04) {group_date:%Y%m%d}.")
    if f"{group_time.hour:02d}{group_time.minute:02d}" != isa["time"]:
        raise _fail("x12.envelope", _Loc("ISA", 1, 10), f"the interchange time (ISA10) {isa['time']} differs from "
                                                        f"the group time (GS05).")
    st = r.take("ST", "ST (transaction set header)")
    transaction_set, transaction_control = _decode(st, _ST_SPEC)
    if transaction_set not in parsers:
        raise _fail("x12.unsupported_transaction_set", st.loc(1),
                    f"transaction set {transaction_set} is not one CSOS Desk reads (850, 855, 856, 865).")
    if expected is not None and transaction_set != expected:
        raise _fail("x12.wrong_transaction_set", st.loc(1), f"expected a {expected}, this is a {transaction_set}.")
    if _TX_FUNCTIONAL_ID[transaction_set] != functional_id:
        raise _fail("x12.envelope", gs.loc(1), f"functional group {functional_id} cannot hold a {transaction_set} "
                                               f"(expected {_TX_FUNCTIONAL_ID[transaction_set]}).")
    body, known = parsers[transaction_set]
    r.known = known | _TRAILERS
    document = body(r)
    se = r.take("SE", "SE (transaction set trailer)")
    count, se_control = _decode(se, _SE_SPEC)
    if count != se.index - st.index + 1:
        raise _fail("x12.count_mismatch", se.loc(1),
                    f"SE01 says {count} segments, the transaction set has {se.index - st.index + 1} (ST to SE).")
    if se_control != transaction_control:
        raise _fail("x12.control_mismatch", se.loc(2), f"SE02 {se_control} differs from ST02 {transaction_control}.")
    ge = r.take("GE", "GE (functional group trailer)")
    group_count, ge_control = _decode(ge, _GE_SPEC)
    if group_count != 1:
        raise _fail("x12.count_mismatch", ge.loc(1), f"GE01 says {group_count} transaction sets, the group has 1.")
    if ge_control != group_control:
        raise _fail("x12.control_mismatch", ge.loc(2), f"GE02 {ge_control} differs from GS06 {group_control}.")
    iea = r.take("IEA", "IEA (interchange trailer)")
    interchange_count, iea_control = _decode(iea, _IEA_SPEC)
    if interchange_count != 1:
        raise _fail("x12.count_mismatch", iea.loc(1), f"IEA01 says {interchange_count} groups, the interchange has 1.")
    if iea_control != isa["interchange_control_number"]:
        raise _fail("x12.control_mismatch", iea.loc(2),
                    f"IEA02 {iea_control} differs from ISA13 {isa['interchange_control_number']}.")
    if r.pos < len(r.segments):
        extra = r.segments[r.pos]
        raise _fail("x12.trailing_data", extra.loc(), "data after the end of the interchange (IEA).")
    envelope = Envelope(
        sender_id=isa["sender_id"], receiver_id=isa["receiver_id"],
        created_at=_dt.datetime.combine(group_date, group_time),
        interchange_control_number=isa["interchange_control_number"], group_control_number=group_control,
        transaction_control_number=transaction_control, sender_qualifier=isa["sender_qualifier"],
        receiver_qualifier=isa["receiver_qualifier"], usage_indicator=isa["usage_indicator"],
        acknowledgment_requested=isa["acknowledgment_requested"],
        application_sender_id=app_sender, application_receiver_id=app_receiver,
    )
    return envelope, document
