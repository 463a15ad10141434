"""The plain 850 reader (x12/plain850.py) against the general reader: it takes every 850 the writer makes, and
whatever it takes it reads exactly as the general reader does; anything else it leaves to the general reader."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.services.signing import x12
from app.services.signing.x12 import X12Error, core, interchange
from app.services.signing.x12.plain850 import read_plain_850
from tests.unit.signing.test_x12 import KNOWN_850
from tests.unit.signing.test_x12_properties import MUTATION_BYTES, SAFE_ALPHABET, envelopes, orders

EXAMPLES = int(os.environ.get("CSOS_FUZZ_EXAMPLES", "300"))


def general(data: bytes):
    try:
        return ("ok", core._read_interchange(data, "850", interchange._PARSERS, interchange._ALL_KNOWN))
    except X12Error as exc:
        return ("error", exc.code)


def check(data: bytes) -> bool:
    """The plain reader agrees with the general one; True when it took the document."""
    plain = read_plain_850(data)
    if plain is None:
        return False
    assert general(data) == ("ok", plain)
    assert read_plain_850(data, envelope=False) == (None, plain[1]) and x12.parse_850(data) == plain[1]
    return True


@settings(max_examples=200, deadline=None)
@given(orders(), envelopes())
def test_every_written_850_is_read_by_the_plain_reader_as_by_the_general_one(order, envelope):
    assert check(x12.write(order, envelope))


ELEMENT_VALUES = st.one_of(
    st.text(SAFE_ALPHABET, max_size=12), st.text("0123456789", min_size=1, max_size=12),
    st.sampled_from(["", " ", "0", "00", "01", "1", "11", "BY", "SU", "EA", "ML", "GR", "N4", "F", "PO", "850",
                     "0000", "000000000", "20260231", "20261304", "2400", "2360", "1.50", "1.0", "0.5", "00406055201",
                     "0040605520", "BJ6125341", "BJ6125342", "bj6125341", "QJ6125341", "26X000001", "26x000001",
                     "26X00000", "IL", "il", "I1", " A", "A ", "99999999", "123456789", "1234567890"]),
)


@st.composite
def changed_850s(draw) -> bytes:
    data = x12.write(draw(orders()), draw(envelopes()))
    for _ in range(draw(st.integers(1, 2))):
        segments = data.split(b"~")
        kind = draw(st.sampled_from(["element", "element", "element", "bytes", "segment", "whitespace"]))
        index = draw(st.integers(0, len(segments) - 1))
        if kind == "element" and index > 0:
            elements = segments[index].split(b"*")
            position = draw(st.integers(0, len(elements)))  # len: one element more
            value = draw(ELEMENT_VALUES).encode()
            if position == len(elements):
                elements.append(value)
            else:
                elements[position] = value
            segments[index] = b"*".join(elements)
        elif kind == "segment":
            other = draw(st.integers(1, len(segments) - 1))
            action = draw(st.sampled_from(["drop", "duplicate", "swap"]))
            if action == "drop":
                del segments[index]
            elif action == "duplicate":
                segments.insert(index, segments[other])
            else:
                segments[index], segments[other] = segments[other], segments[index]
        elif kind == "whitespace":
            segments[index] = draw(st.sampled_from([b" ", b"\r\n", b"\t"])) + segments[index]
        data = b"~".join(segments)
        if kind == "bytes" and data:
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + draw(MUTATION_BYTES | st.binary(min_size=1, max_size=2)) + data[at + 1:]
    return data


@settings(max_examples=EXAMPLES, deadline=None)
@given(changed_850s())
def test_a_changed_850_is_read_as_the_general_reader_reads_it_or_left_to_it(data):
    check(data)


def test_what_the_plain_reader_leaves_to_the_general_one():
    assert check(KNOWN_850)
    for spaced in (KNOWN_850.replace(b"~GS", b"~\r\nGS"), KNOWN_850 + b"\n"):
        assert not check(spaced) and general(spaced)[0] == "ok"  # whitespace after a terminator: general reader
    assert read_plain_850(bytearray(KNOWN_850)) is None and x12.parse_850(bytearray(KNOWN_850)) == x12.parse_850(
        KNOWN_850)
    for broken in (KNOWN_850 + b"X", KNOWN_850[:-1], KNOWN_850.replace(b"*SPRINGFIELD", b"*SPRINGF\xc9LD"),
                   KNOWN_850.replace(b"N3*100 MAIN ST~", b"N3*100 MAIN ST~N3*SUITE 2~"),
                   KNOWN_850.replace(b"CTT*2", b"CTT*2*"), KNOWN_850.replace(b"CTT*2", b"CTT*3"),
                   KNOWN_850.replace(b"*20260115~N1", b"*20260231~N1"), KNOWN_850.replace(b"PO1*2", b"PO1*1")):
        assert read_plain_850(broken) is None
        with pytest.raises(X12Error):
            x12.parse_850(broken)


def test_the_plain_reader_is_used_for_850_only():
    from tests.unit.signing.test_x12 import KNOWN_855

    assert read_plain_850(KNOWN_855) is None
    with pytest.raises(X12Error) as caught:
        x12.parse_855(KNOWN_850)
    assert caught.value.code == "x12.wrong_transaction_set"
