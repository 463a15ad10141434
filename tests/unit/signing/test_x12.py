"""ASC X12 codec: known answers, one test per failure kind (input broken in exactly one way), writer strictness."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from app.errors import CsosError
from app.models.values import PackageUnit
from app.services.signing import x12
from app.services.signing.x12 import (
    AckLine, AckStatus, Acknowledgement855, Envelope, LineStatus, OrderLine850, Party, PurchaseOrder, Shipment856,
    ShipmentLine, VoidNotice, X12Error,
)

# --- Known answers --------------------------------------------------------------------------------------------------
# Written by hand from DESIGN.md §5 (one segment per line here for reading; the bytes have no newlines).
# Segment index:   1 ISA, 2 GS, 3 ST, 4 BEG, 5 N1*BY, 6 N3, 7 N4, 8 N1*SU, 9 N3, 10 N4, 11 PO1, 12 PID, 13 PO4,
#                  14 PO1, 15 PID, 16 PO4, 17 CTT, 18 SE, 19 GE, 20 IEA
KNOWN_850_LINES = [
    "ISA*00*          *00*          *ZZ*PHARM1         *ZZ*ACMEDRUG       *260115*1030*U*00401*000000001*0*P*>~",
    "GS*PO*PHARM1*ACMEDRUG*20260115*1030*1*X*004010~",
    "ST*850*0001~",
    "BEG*00*SA*26X000123**20260115~",
    "N1*BY*MAIN STREET PHARMACY*11*BJ6125341~",
    "N3*100 MAIN ST~",
    "N4*SPRINGFIELD*IL*62701~",
    "N1*SU*ACME DRUG DISTRIBUTORS*11*RA1234563~",
    "N3*1 INDUSTRIAL WAY*DOCK 4~",
    "N4*COLUMBUS*OH*43215~",
    "PO1*1*2*EA***N4*00406052301~",
    "PID*F****OXYCODONE HCL 5 MG TABLET~",
    "PO4*1*100*EA~",
    "PO1*2*1*EA***N4*00054023525~",
    "PID*F****METHADONE HCL 10 MG/ML ORAL CONCENTRATE~",
    "PO4*1*30*ML~",
    "CTT*2~",
    "SE*16*0001~",
    "GE*1*1~",
    "IEA*1*000000001~",
]
KNOWN_850 = "".join(KNOWN_850_LINES).encode("ascii")

ENVELOPE_850 = Envelope(
    sender_id="PHARM1", receiver_id="ACMEDRUG", created_at=dt.datetime(2026, 1, 15, 10, 30),
    interchange_control_number=1, group_control_number=1,
)
ORDER = PurchaseOrder(
    order_number="26X000123",
    date_signed=dt.date(2026, 1, 15),
    purchaser=Party("MAIN STREET PHARMACY", "BJ6125341", ("100 MAIN ST",), "SPRINGFIELD", "IL", "62701"),
    supplier=Party("ACME DRUG DISTRIBUTORS", "RA1234563", ("1 INDUSTRIAL WAY", "DOCK 4"), "COLUMBUS", "OH", "43215"),
    lines=(
        OrderLine850(1, 2, "00406052301", "OXYCODONE HCL 5 MG TABLET", 100, PackageUnit.EACH),
        OrderLine850(2, 1, "00054023525", "METHADONE HCL 10 MG/ML ORAL CONCENTRATE", 30, PackageUnit.MILLILITER),
    ),
)

KNOWN_855 = (
    b"ISA*00*          *00*          *ZZ*ACMEDRUG       *ZZ*PHARM1         *260116*0905*U*00401*000000007*0*P*>~"
    b"GS*PR*ACMEDRUG*PHARM1*20260116*0905*7*X*004010~ST*855*0001~BAK*00*AC*26X000123*20260115*****20260116~"
    b"PO1*1*****N4*00406052301~ACK*IA*2*EA~PO1*2~ACK*IR*0*EA~N9*L1*REASON~MSG*PRODUCT DISCONTINUED~CTT*2~"
    b"SE*10*0001~GE*1*7~IEA*1*000000007~"
)
ACK = Acknowledgement855(
    "26X000123", dt.date(2026, 1, 15), AckStatus.ACCEPTED_WITH_CHANGES, dt.date(2026, 1, 16), None,
    (AckLine(1, LineStatus.ACCEPTED, 2, "00406052301"),
     AckLine(2, LineStatus.REJECTED, 0, None, "PRODUCT DISCONTINUED")),
)
KNOWN_856 = (
    b"ISA*00*          *00*          *ZZ*ACMEDRUG       *ZZ*PHARM1         *260116*0905*U*00401*000000007*0*P*>~"
    b"GS*SH*ACMEDRUG*PHARM1*20260116*0905*7*X*004010~ST*856*0001~BSN*00*SHP0001*20260117*1400~HL*1**S~"
    b"DTM*011*20260117~HL*2*1*O~PRF*26X000123~HL*3*2*I~LIN*1*N4*00406052301~SN1**2*EA~CTT*1~SE*11*0001~GE*1*7~"
    b"IEA*1*000000007~"
)
SHIPMENT = Shipment856("26X000123", "SHP0001", dt.date(2026, 1, 17), dt.datetime(2026, 1, 17, 14, 0),
                       (ShipmentLine(1, "00406052301", 2),))
KNOWN_865_PARTIAL = (
    b"ISA*00*          *00*          *ZZ*ACMEDRUG       *ZZ*PHARM1         *260116*0905*U*00401*000000007*0*P*>~"
    b"GS*CA*ACMEDRUG*PHARM1*20260116*0905*7*X*004010~ST*865*0001~BCA*04**26X000123***20260115****20260116~"
    b"N9*L1*REASON~MSG*NOT IN STOCK~POC*2*DI~CTT*1~SE*7*0001~GE*1*7~IEA*1*000000007~"
)
VOID_PARTIAL = VoidNotice("26X000123", dt.date(2026, 1, 15), dt.date(2026, 1, 16), False, (2,), "NOT IN STOCK")
KNOWN_865_WHOLE = (
    b"ISA*00*          *00*          *ZZ*ACMEDRUG       *ZZ*PHARM1         *260116*0905*U*00401*000000007*0*P*>~"
    b"GS*CA*ACMEDRUG*PHARM1*20260116*0905*7*X*004010~ST*865*0001~BCA*01**26X000123***20260115****20260116~"
    b"CTT*0~SE*4*0001~GE*1*7~IEA*1*000000007~"
)
VOID_WHOLE = VoidNotice("26X000123", dt.date(2026, 1, 15), dt.date(2026, 1, 16), True)
ENVELOPE_SUPPLIER = Envelope(
    sender_id="ACMEDRUG", receiver_id="PHARM1", created_at=dt.datetime(2026, 1, 16, 9, 5),
    interchange_control_number=7, group_control_number=7,
)


def write_order(order: PurchaseOrder = ORDER) -> bytes:
    return x12.write(order, ENVELOPE_850)


def test_known_850_parses_to_every_field():
    interchange = x12.parse_interchange(KNOWN_850)
    assert interchange.envelope == ENVELOPE_850
    order = interchange.document
    assert order == ORDER
    assert order.order_number == "26X000123" and order.date_signed == dt.date(2026, 1, 15)
    assert order.purchaser.dea_number == "BJ6125341"
    assert order.supplier.address_lines == ("1 INDUSTRIAL WAY", "DOCK 4")
    assert [line.ndc for line in order.lines] == ["00406052301", "00054023525"]
    assert order.lines[1].unit is PackageUnit.MILLILITER and order.lines[1].package_quantity == 30
    assert order.lines[0].packages == 2


def test_known_850_written_byte_for_byte():
    assert write_order() == KNOWN_850
    assert x12.write_850(ORDER, interchange_control_number=1, group_control_number=1, sender_id="PHARM1",
                         receiver_id="ACMEDRUG", created_at=dt.datetime(2026, 1, 15, 10, 30, 59)) == KNOWN_850


def test_writer_is_deterministic_and_emits_no_whitespace():
    assert write_order() == write_order()
    assert b"\n" not in KNOWN_850 and b"\r" not in KNOWN_850
    # Equal quantities spelt differently produce the same signed bytes.
    as_decimal = dataclasses.replace(ORDER, lines=(
        ORDER.lines[0], dataclasses.replace(ORDER.lines[1], package_quantity=Decimal("30.00"))))
    assert write_order(as_decimal) == KNOWN_850


def test_decimal_package_quantity_round_trips():
    line = dataclasses.replace(ORDER.lines[1], package_quantity=Decimal("2.50"))
    data = write_order(dataclasses.replace(ORDER, lines=(ORDER.lines[0], line)))
    assert b"PO4*1*2.5*ML~" in data
    assert x12.parse_850(data).lines[1].package_quantity == Decimal("2.5")


@pytest.mark.parametrize("document, known, parse", [
    (ACK, KNOWN_855, x12.parse_855),
    (SHIPMENT, KNOWN_856, x12.parse_856),
    (VOID_PARTIAL, KNOWN_865_PARTIAL, x12.parse_void),
    (VOID_WHOLE, KNOWN_865_WHOLE, x12.parse_865),
])
def test_known_replies(document, known, parse):
    assert x12.write(document, ENVELOPE_SUPPLIER) == known
    assert parse(known) == document
    assert x12.parse_any(known) == document


def test_typed_writers_match_generic_writer():
    kwargs = dict(interchange_control_number=7, group_control_number=7, sender_id="ACMEDRUG", receiver_id="PHARM1",
                  created_at=dt.datetime(2026, 1, 16, 9, 5))
    assert x12.write_855(ACK, **kwargs) == KNOWN_855
    assert x12.write_856(SHIPMENT, **kwargs) == KNOWN_856
    assert x12.write_void(VOID_PARTIAL, **kwargs) == KNOWN_865_PARTIAL
    with pytest.raises(X12Error):
        x12.write_850(ACK, **kwargs)


def test_parse_any_dispatches_on_st01():
    assert isinstance(x12.parse_any(KNOWN_850), PurchaseOrder)
    assert isinstance(x12.parse_any(KNOWN_855), Acknowledgement855)
    assert isinstance(x12.parse_any(KNOWN_856), Shipment856)
    assert isinstance(x12.parse_any(KNOWN_865_WHOLE), VoidNotice)


def test_whitespace_after_terminators_is_accepted():
    with_crlf = KNOWN_850.replace(b"~", b"~\r\n")
    assert x12.parse_850(with_crlf) == ORDER
    assert x12.parse_850(KNOWN_850.replace(b"~", b"~\n  ")) == ORDER


def test_supplier_dea_and_address_may_be_absent():
    order = dataclasses.replace(ORDER, supplier=Party("ACME DRUG DISTRIBUTORS"))
    data = write_order(order)
    assert b"~N1*SU*ACME DRUG DISTRIBUTORS~PO1*1*" in data
    assert b"SE*14*0001~" in data
    assert x12.parse_850(data) == order


def test_four_address_lines_use_two_n3_segments():
    order = dataclasses.replace(ORDER, purchaser=dataclasses.replace(
        ORDER.purchaser, address_lines=("BUILDING A", "100 MAIN ST", "SUITE 4", "ATTN RECEIVING")))
    data = write_order(order)
    assert b"~N3*BUILDING A*100 MAIN ST~N3*SUITE 4*ATTN RECEIVING~" in data
    assert x12.parse_850(data) == order


def test_lists_are_normalised_to_tuples():
    order = PurchaseOrder(ORDER.order_number, ORDER.date_signed, ORDER.purchaser, ORDER.supplier, list(ORDER.lines))
    assert order == ORDER and write_order(order) == KNOWN_850


def test_envelope_fields_round_trip():
    envelope = Envelope(sender_id="0123456789012", receiver_id="ACME", created_at=dt.datetime(2031, 12, 31, 23, 59),
                        interchange_control_number=999999999, group_control_number=42,
                        transaction_control_number=123456, sender_qualifier="01", receiver_qualifier="14",
                        usage_indicator="T", acknowledgment_requested=True, application_sender_id="PHARMAPP",
                        application_receiver_id="ACME")
    data = x12.write(ORDER, envelope)
    assert data.startswith(b"ISA*00*          *00*          *01*0123456789012  *14*ACME           *311231*2359*U*"
                           b"00401*999999999*1*T*>~GS*PO*PHARMAPP*ACME*20311231*2359*42*X*004010~ST*850*123456~")
    assert x12.parse_interchange(data).envelope == envelope


def test_x12_error_is_a_csos_error_with_position():
    with pytest.raises(CsosError) as info:
        x12.parse_850(KNOWN_850.replace(b"CTT*2~", b"CTT*3~"))
    error = info.value
    assert isinstance(error, X12Error)
    assert (error.code, error.segment, error.position) == ("x12.count_mismatch", "CTT", (17, 1))
    assert (error.segment_index, error.element_index) == (17, 1)
    assert "segment 17 (CTT), element CTT01" in error.message


# --- Parser: each input broken in exactly one way ---------------------------------------------------------------------

def broken(old: str, new: str, data: bytes = KNOWN_850) -> bytes:
    assert data.count(old.encode("latin-1")) == 1, old
    return data.replace(old.encode("latin-1"), new.encode("latin-1"))


def _isa(field: int, value: str) -> bytes:
    parts = KNOWN_850_LINES[0][:-1].split("*")
    parts[field] = value
    return ("*".join(parts) + "~" + "".join(KNOWN_850_LINES[1:])).encode("latin-1")


PARSE_CASES = [
    # id, data, code, segment, position
    ("empty", b"", "x12.empty", None, None),
    ("only-whitespace", b" \r\n", "x12.empty", None, None),
    ("short-isa", KNOWN_850[:60], "x12.envelope", "ISA", (1, None)),
    ("not-isa", b"GS" + KNOWN_850[2:], "x12.envelope", "ISA", (1, None)),
    ("isa06-unpadded", broken("PHARM1         *", "PHARM1*"), "x12.envelope", "ISA", (1, None)),
    ("isa-element-separator", b"ISA|" + KNOWN_850[4:], "x12.envelope", "ISA", (1, None)),
    ("isa01-code", _isa(1, "03"), "x12.envelope", "ISA", (1, 1)),
    ("isa12-version", _isa(12, "00501"), "x12.envelope", "ISA", (1, 12)),
    ("isa13-not-digits", _isa(13, "00000000A"), "x12.envelope", "ISA", (1, 13)),
    ("isa15-usage", _isa(15, "X"), "x12.envelope", "ISA", (1, 15)),
    ("isa16-separator", _isa(16, ":"), "x12.envelope", "ISA", (1, 16)),
    ("isa09-differs-from-gs04", _isa(9, "260116"), "x12.envelope", "ISA", (1, 9)),
    ("gs08-version", broken("*X*004010~", "*X*005010~"), "x12.envelope", "GS", (2, 8)),
    ("gs01-wrong-group", broken("GS*PO*", "GS*PR*"), "x12.envelope", "GS", (2, 1)),
    ("iea02-control", broken("IEA*1*000000001~", "IEA*1*000000002~"), "x12.control_mismatch", "IEA", (20, 2)),
    ("ge02-control", broken("GE*1*1~", "GE*1*2~"), "x12.control_mismatch", "GE", (19, 2)),
    ("se02-control", broken("SE*16*0001~", "SE*16*0002~"), "x12.control_mismatch", "SE", (18, 2)),
    ("se01-count", broken("SE*16*", "SE*15*"), "x12.count_mismatch", "SE", (18, 1)),
    ("ctt-count", broken("CTT*2~", "CTT*3~"), "x12.count_mismatch", "CTT", (17, 1)),
    ("ge01-count", broken("GE*1*1~", "GE*2*1~"), "x12.count_mismatch", "GE", (19, 1)),
    ("iea01-count", broken("IEA*1*", "IEA*2*"), "x12.count_mismatch", "IEA", (20, 1)),
    ("subelement-separator-in-data", broken("MAIN STREET", "MAIN>STREET"), "x12.delimiter_in_data", "N1", (5, 2)),
    ("non-ascii", broken("SPRINGFIELD", "SPRÏNGFIELD"), "x12.charset", "N4", (7, 1)),
    ("control-character", broken("100 MAIN ST", "100\tMAIN ST"), "x12.charset", "N3", (6, 1)),
    ("n1-entity", broken("N1*BY*", "N1*ST*"), "x12.unknown_qualifier", "N1", (5, 1)),
    ("n1-id-qualifier", broken("*11*BJ6125341", "*12*BJ6125341"), "x12.unknown_qualifier", "N1", (5, 3)),
    ("po1-product-qualifier", broken("PO1*1*2*EA***N4*", "PO1*1*2*EA***UP*"), "x12.unknown_qualifier", "PO1", (11, 6)),
    ("po1-unit", broken("PO1*1*2*EA*", "PO1*1*2*BX*"), "x12.unknown_qualifier", "PO1", (11, 3)),
    ("po4-unit", broken("PO4*1*30*ML~", "PO4*1*30*LB~"), "x12.unknown_qualifier", "PO4", (16, 3)),
    ("beg-purpose", broken("BEG*00*", "BEG*01*"), "x12.unknown_qualifier", "BEG", (4, 1)),
    ("st01-unsupported", broken("ST*850*", "ST*810*"), "x12.unsupported_transaction_set", "ST", (3, 1)),
    ("dea-check-digit", broken("BJ6125341", "BJ6125342"), "x12.invalid_value", "N1", (5, 4)),
    ("dea-lower-case", broken("BJ6125341", "bj6125341"), "x12.bad_element", "N1", (5, 4)),
    ("ndc-ten-digits", broken("00406052301", "0406052301"), "x12.invalid_value", "PO1", (11, 7)),
    ("ndc-hyphenated", broken("00406052301", "00406-0523-01"), "x12.bad_element", "PO1", (11, 7)),
    ("order-number", broken("26X000123", "26Y000123"), "x12.invalid_value", "BEG", (4, 3)),
    ("date", broken("BEG*00*SA*26X000123**20260115", "BEG*00*SA*26X000123**20261315"), "x12.bad_element", "BEG",
     (4, 5)),
    ("packages-not-numeric", broken("PO1*1*2*", "PO1*1*TWO*"), "x12.bad_element", "PO1", (11, 2)),
    ("packages-zero", broken("PO1*1*2*", "PO1*1*0*"), "x12.bad_element", "PO1", (11, 2)),
    ("packages-negative", broken("PO1*1*2*", "PO1*1*-2*"), "x12.bad_element", "PO1", (11, 2)),
    ("packages-leading-zero", broken("PO1*1*2*", "PO1*1*02*"), "x12.bad_element", "PO1", (11, 2)),
    ("package-quantity-not-numeric", broken("PO4*1*100*", "PO4*1*1E2*"), "x12.bad_element", "PO4", (13, 2)),
    ("package-quantity-zero", broken("PO4*1*100*", "PO4*1*0.0*"), "x12.bad_element", "PO4", (13, 2)),
    ("name-trailing-space", broken("MAIN STREET PHARMACY", "MAIN STREET PHARMACY "), "x12.bad_element", "N1",
     (5, 2)),
    ("state", broken("*IL*", "*Il*"), "x12.bad_element", "N4", (7, 2)),
    ("duplicate-line", broken("PO1*2*1*", "PO1*1*1*"), "x12.duplicate_line", "PO1", (14, 1)),
    ("missing-pid", broken("PID*F****OXYCODONE HCL 5 MG TABLET~", ""), "x12.missing_segment", "PID", (12, None)),
    ("missing-ctt", broken("CTT*2~", ""), "x12.missing_segment", "CTT", (17, None)),
    ("missing-purchaser-address", broken("N3*100 MAIN ST~N4*SPRINGFIELD*IL*62701~", ""), "x12.missing_segment",
     "N3", (6, None)),
    ("missing-n4", broken("N4*COLUMBUS*OH*43215~", ""), "x12.missing_segment", "N4", (10, None)),
    ("missing-iea", KNOWN_850[: -len(b"IEA*1*000000001~")], "x12.missing_segment", "IEA", (20, None)),
    ("supplier-before-purchaser", broken("N1*BY*", "N1*SU*"), "x12.missing_segment", "N1", (5, 1)),
    ("unexpected-segment", broken("BEG*00*SA*26X000123**20260115~", "BEG*00*SA*26X000123**20260115~REF*IA*1~"),
     "x12.unexpected_segment", "REF", (5, None)),
    ("second-transaction-set", broken("SE*16*0001~", "SE*16*0001~ST*850*0002~"), "x12.unexpected_segment", "ST",
     (19, None)),
    ("unexpected-element", broken("BEG*00*SA*26X000123**", "BEG*00*SA*26X000123*R1*"), "x12.unexpected_element",
     "BEG", (4, 4)),
    ("too-many-elements", broken("CTT*2~", "CTT*2*5~"), "x12.unexpected_element", "CTT", (17, 2)),
    ("missing-purchaser-dea", broken("*11*BJ6125341", ""), "x12.missing_element", "N1", (5, 3)),
    ("missing-dea-after-qualifier", broken("*11*BJ6125341", "*11"), "x12.missing_element", "N1", (5, 4)),
    ("missing-description", broken("PID*F****OXYCODONE HCL 5 MG TABLET~", "PID*F~"), "x12.missing_element",
     "PID", (12, 5)),
    ("trailing-empty-element", broken("CTT*2~", "CTT*2*~"), "x12.bad_element", "CTT", (17, 2)),
    ("empty-segment", broken("CTT*2~", "CTT*2~~"), "x12.malformed", "?", (18, None)),
    ("bad-segment-id", broken("CTT*2~", "ctt*2~"), "x12.malformed", "ctt", (17, None)),
    ("trailing-garbage", KNOWN_850 + b"JUNK", "x12.trailing_data", "JUN", (21, None)),
    ("trailing-segment", KNOWN_850 + b"\r\nISA*00~", "x12.trailing_data", "ISA", (21, None)),
    ("truncated", KNOWN_850[:-1], "x12.envelope", "IEA", (20, None)),
]


@pytest.mark.parametrize("data, code, segment, position", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_rejects(data, code, segment, position):
    with pytest.raises(X12Error) as info:
        x12.parse_850(data)
    assert (info.value.code, info.value.segment, info.value.position) == (code, segment, position), info.value.message


def test_invalid_value_keeps_the_value_code():
    with pytest.raises(X12Error) as info:
        x12.parse_850(broken("BJ6125341", "BJ6125342"))
    assert info.value.value_code == "dea.check_digit" and "[dea.check_digit]" in info.value.message
    with pytest.raises(X12Error) as info:
        x12.parse_850(broken("00406052301", "0406052301"))
    assert info.value.value_code == "ndc.ambiguous"


@pytest.mark.parametrize("parse, data", [
    (x12.parse_855, KNOWN_850), (x12.parse_850, KNOWN_855), (x12.parse_856, KNOWN_865_WHOLE),
    (x12.parse_void, KNOWN_856),
])
def test_wrong_transaction_set_for_the_parser_called(parse, data):
    with pytest.raises(X12Error) as info:
        parse(data)
    assert (info.value.code, info.value.segment, info.value.position) == ("x12.wrong_transaction_set", "ST", (3, 1))


@pytest.mark.parametrize("data", [None, "ISA*00", 12, bytearray(b"")])
def test_parse_rejects_non_bytes(data):
    with pytest.raises(X12Error):
        x12.parse_any(data)


REPLY_CASES = [
    ("855-status", broken("BAK*00*AC*", "BAK*00*AK*", KNOWN_855), "x12.unknown_qualifier", "BAK", (4, 2)),
    ("855-line-status", broken("ACK*IA*", "ACK*IX*", KNOWN_855), "x12.unknown_qualifier", "ACK", (6, 1)),
    ("855-quantity", broken("ACK*IA*2*", "ACK*IA*2.5*", KNOWN_855), "x12.bad_element", "ACK", (6, 2)),
    ("855-ndc-without-qualifier", broken("PO1*1*****N4*", "PO1*1******", KNOWN_855), "x12.missing_element", "PO1",
     (5, 6)),
    ("855-msg-missing", broken("MSG*PRODUCT DISCONTINUED~", "", KNOWN_855), "x12.missing_segment", "MSG", (10, None)),
    ("855-ctt", broken("CTT*2~", "CTT*1~", KNOWN_855), "x12.count_mismatch", "CTT", (11, 1)),
    ("855-se01", broken("SE*10*", "SE*11*", KNOWN_855), "x12.count_mismatch", "SE", (12, 1)),
    ("856-dtm-qualifier", broken("DTM*011*", "DTM*017*", KNOWN_856), "x12.unknown_qualifier", "DTM", (6, 1)),
    ("856-hl-level", broken("HL*3*2*I~", "HL*3*2*P~", KNOWN_856), "x12.unknown_qualifier", "HL", (9, 3)),
    ("856-hl-parent", broken("HL*3*2*I~", "HL*3*1*I~", KNOWN_856), "x12.bad_element", "HL", (9, 2)),
    ("856-lin-qualifier", broken("LIN*1*N4*", "LIN*1*UP*", KNOWN_856), "x12.unknown_qualifier", "LIN", (10, 2)),
    ("856-shipped-not-numeric", broken("SN1**2*", "SN1**X*", KNOWN_856), "x12.bad_element", "SN1", (11, 2)),
    ("856-order-number", broken("PRF*26X000123", "PRF*26X00012", KNOWN_856), "x12.invalid_value", "PRF", (8, 1)),
    ("856-no-items", broken("HL*3*2*I~LIN*1*N4*00406052301~SN1**2*EA~", "", KNOWN_856), "x12.missing_segment", "HL",
     (9, None)),
    ("865-purpose", broken("BCA*04*", "BCA*05*", KNOWN_865_PARTIAL), "x12.unknown_qualifier", "BCA", (4, 1)),
    ("865-change-type", broken("POC*2*DI~", "POC*2*QD~", KNOWN_865_PARTIAL), "x12.unknown_qualifier", "POC", (7, 2)),
    ("865-partial-without-lines", broken("POC*2*DI~", "", KNOWN_865_PARTIAL), "x12.missing_segment", "POC",
     (7, None)),
    ("865-whole-with-lines", broken("CTT*0~", "POC*1*DI~CTT*1~", KNOWN_865_WHOLE), "x12.unexpected_segment", "POC",
     (5, None)),
]


@pytest.mark.parametrize("data, code, segment, position", [c[1:] for c in REPLY_CASES],
                         ids=[c[0] for c in REPLY_CASES])
def test_parse_replies_reject(data, code, segment, position):
    with pytest.raises(X12Error) as info:
        x12.parse_any(data)
    assert (info.value.code, info.value.segment, info.value.position) == (code, segment, position), info.value.message


# --- Writer strictness ----------------------------------------------------------------------------------------------

def replace_purchaser(**changes) -> PurchaseOrder:
    return dataclasses.replace(ORDER, purchaser=dataclasses.replace(ORDER.purchaser, **changes))


def replace_line(index: int = 0, **changes) -> PurchaseOrder:
    lines = list(ORDER.lines)
    lines[index] = dataclasses.replace(lines[index], **changes)
    return dataclasses.replace(ORDER, lines=tuple(lines))


WRITE_CASES = [
    ("tilde-in-name", replace_purchaser(name="MAIN~STREET"), "x12.delimiter_in_data", "N1", (5, 2)),
    ("star-in-name", replace_purchaser(name="MAIN*STREET"), "x12.delimiter_in_data", "N1", (5, 2)),
    ("gt-in-description", replace_line(description="OXYCODONE >5 MG"), "x12.delimiter_in_data", "PID", (12, 5)),
    ("star-in-city", replace_purchaser(city="SPRING*FIELD"), "x12.delimiter_in_data", "N4", (7, 1)),
    ("non-ascii", replace_line(description="OXYCODONE 5 µG"), "x12.charset", "PID", (12, 5)),
    ("newline", replace_purchaser(address_lines=("100 MAIN ST\n",)), "x12.charset", "N3", (6, 1)),
    ("leading-space", replace_purchaser(name=" MAIN"), "x12.bad_element", "N1", (5, 2)),
    ("name-too-long", replace_purchaser(name="A" * 61), "x12.bad_element", "N1", (5, 2)),
    ("description-empty", replace_line(description=""), "x12.missing_element", "PID", (12, 5)),
    ("packages-zero", replace_line(packages=0), "x12.bad_element", "PO1", (11, 2)),
    ("packages-negative", replace_line(packages=-3), "x12.bad_element", "PO1", (11, 2)),
    ("packages-bool", replace_line(packages=True), "x12.bad_element", "PO1", (11, 2)),
    ("packages-text", replace_line(packages="2"), "x12.bad_element", "PO1", (11, 2)),
    ("quantity-float", replace_line(package_quantity=2.5), "x12.bad_element", "PO4", (13, 2)),
    ("quantity-zero", replace_line(package_quantity=Decimal("0.00")), "x12.bad_element", "PO4", (13, 2)),
    ("quantity-nan", replace_line(package_quantity=Decimal("NaN")), "x12.bad_element", "PO4", (13, 2)),
    ("quantity-too-many-digits", replace_line(package_quantity=Decimal("1.23456789")), "x12.bad_element", "PO4",
     (13, 2)),
    ("unit-as-text", replace_line(unit="EA"), "x12.unknown_qualifier", "PO4", (13, 3)),
    ("dea-check-digit", replace_purchaser(dea_number="BJ6125342"), "x12.invalid_value", "N1", (5, 4)),
    ("dea-lower-case", replace_purchaser(dea_number="bj6125341"), "x12.bad_element", "N1", (5, 4)),
    ("dea-missing", replace_purchaser(dea_number=None), "x12.missing_element", "N1", (5, 4)),
    ("ndc-hyphenated", replace_line(ndc="00406-0523-01"), "x12.bad_element", "PO1", (11, 7)),
    ("ndc-short", replace_line(ndc="12345"), "x12.invalid_value", "PO1", (11, 7)),
    ("order-number", dataclasses.replace(ORDER, order_number="26X00012"), "x12.invalid_value", "BEG", (4, 3)),
    ("date-is-datetime", dataclasses.replace(ORDER, date_signed=dt.datetime(2026, 1, 15)), "x12.bad_element", "BEG",
     (4, 5)),
    ("no-lines", dataclasses.replace(ORDER, lines=()), "x12.missing_segment", "PO1", (11, None)),
    ("duplicate-line", replace_line(1, line_number=1), "x12.duplicate_line", "PO1", (14, 1)),
    ("no-purchaser-address", replace_purchaser(address_lines=(), city=None, state=None, postal_code=None),
     "x12.missing_segment", "N3", (6, None)),
    ("city-missing", replace_purchaser(city=None), "x12.missing_element", "N4", (7, 1)),
    ("address-line-missing", replace_purchaser(address_lines=()), "x12.missing_element", "N3", (6, 1)),
    ("five-address-lines", replace_purchaser(address_lines=("A",) * 5), "x12.bad_element", "N3", (6, None)),
    ("state", replace_purchaser(state="Illinois"), "x12.bad_element", "N4", (7, 2)),
]


@pytest.mark.parametrize("order, code, segment, position", [c[1:] for c in WRITE_CASES],
                         ids=[c[0] for c in WRITE_CASES])
def test_write_rejects(order, code, segment, position):
    with pytest.raises(X12Error) as info:
        write_order(order)
    assert (info.value.code, info.value.segment, info.value.position) == (code, segment, position), info.value.message


@pytest.mark.parametrize("changes, position", [
    (dict(interchange_control_number=0), (1, 13)),
    (dict(interchange_control_number=1_000_000_000), (1, 13)),
    (dict(group_control_number=-1), (2, 6)),
    (dict(transaction_control_number=0), (3, 2)),
    (dict(sender_qualifier="zz"), (1, 5)),
    (dict(usage_indicator="X"), (1, 15)),
])
def test_write_rejects_bad_envelope(changes, position):
    with pytest.raises(X12Error) as info:
        x12.write(ORDER, dataclasses.replace(ENVELOPE_850, **changes))
    assert info.value.code == "x12.envelope" and info.value.position == position


@pytest.mark.parametrize("sender_id", ["", "A", "SIXTEEN_CHARS_ID", "PHARM*1", " PHARM"])
def test_write_rejects_bad_sender_id(sender_id):
    with pytest.raises(X12Error) as info:
        x12.write(ORDER, dataclasses.replace(ENVELOPE_850, sender_id=sender_id))
    assert info.value.segment == "ISA" and info.value.position == (1, 6)


def test_write_rejects_inconsistent_replies():
    with pytest.raises(X12Error) as info:
        x12.write(dataclasses.replace(VOID_WHOLE, voided_lines=(1,)), ENVELOPE_SUPPLIER)
    assert (info.value.code, info.value.position) == ("x12.bad_element", (4, 1))
    with pytest.raises(X12Error) as info:
        x12.write(dataclasses.replace(VOID_PARTIAL, voided_lines=()), ENVELOPE_SUPPLIER)
    assert (info.value.code, info.value.segment) == ("x12.missing_segment", "POC")
    with pytest.raises(X12Error) as info:
        x12.write(dataclasses.replace(SHIPMENT, lines=()), ENVELOPE_SUPPLIER)
    assert (info.value.code, info.value.segment) == ("x12.missing_segment", "HL")
    with pytest.raises(X12Error) as info:
        x12.write(dataclasses.replace(ACK, reason="A" * 265), ENVELOPE_SUPPLIER)
    assert (info.value.code, info.value.segment) == ("x12.bad_element", "MSG")
    with pytest.raises(X12Error) as info:
        x12.write(dataclasses.replace(ACK, status="AC"), ENVELOPE_SUPPLIER)
    assert (info.value.code, info.value.position) == ("x12.unknown_qualifier", (4, 2))
    with pytest.raises(X12Error):
        x12.write("not a document", ENVELOPE_SUPPLIER)  # type: ignore[arg-type]


def test_ack_status_codes_follow_x12_587():
    # X12 element 587: AC = acknowledge with detail and change, AD = with detail, no change, RJ = rejected.
    assert AckStatus.ACCEPTED.value == "AD"
    assert AckStatus.ACCEPTED_WITH_CHANGES.value == "AC"
    assert AckStatus.REJECTED.value == "RJ"
    assert {s.value for s in LineStatus} == {"IA", "IR", "IB", "IQ"}


def test_codec_does_not_import_sqlalchemy():
    import ast
    import pathlib

    modules = sorted(pathlib.Path(x12.__file__).parent.glob("*.py"))  # the package: core and one module per set
    assert {m.name for m in modules} >= {"__init__.py", "core.py", "po850.py", "ack855.py", "ship856.py", "void865.py"}
    imported: set[str] = set()
    for module in modules:
        tree = ast.parse(module.read_text())
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "app.models.values" in imported  # the walk reaches the modules' imports
    assert not any(name.startswith(("sqlalchemy", "app.models.orderbook", "PySide6")) for name in imported)


def test_the_package_exports_its_public_api_and_every_name_is_there():
    """Callers do ``from app.services.signing import x12`` and use these names; the split into modules keeps them."""
    assert set(x12.__all__) == {
        "SEGMENT_TERMINATOR", "ELEMENT_SEPARATOR", "SUBELEMENT_SEPARATOR", "X12Error", "Party", "OrderLine850",
        "PurchaseOrder", "AckStatus", "LineStatus", "AckLine", "Acknowledgement855", "ShipmentLine", "Shipment856",
        "VoidNotice", "Document", "Envelope", "Interchange", "write", "write_850", "write_855", "write_856",
        "write_void", "write_865", "parse_interchange", "parse_any", "parse_850", "parse_855", "parse_856",
        "parse_void", "parse_865",
    }
    assert all(hasattr(x12, name) for name in x12.__all__)
    assert x12.write_void is x12.write_865 and x12.parse_void is x12.parse_865


def test_an_address_split_one_line_per_n3_is_refused_as_a_second_spelling():
    """Found by the 100k-case fuzz run: N3*a~N3*b parsed to the same order as N3*a*b, so one order had two
    spellings (the writer puts two lines to an N3)."""
    from tests.integration.test_verifier import make_order, x12 as write

    canonical = write(make_order())
    assert b"~N3*100 Main Street~N4*" in canonical  # the purchaser's one-line address
    two_lines = canonical.replace(b"~N3*100 Main Street~N4*", b"~N3*100 Main Street*Suite 2~N4*", 1)
    parsed = x12.parse_850(two_lines)
    assert parsed.purchaser.address_lines == ("100 Main Street", "Suite 2")
    split = two_lines.replace(b"~N3*100 Main Street*Suite 2~", b"~N3*100 Main Street~N3*Suite 2~", 1)
    count = int(split.split(b"~SE*", 1)[1].split(b"*", 1)[0])
    split = split.replace(b"~SE*%d*" % count, b"~SE*%d*" % (count + 1), 1)  # one segment more: the count agrees
    with pytest.raises(x12.X12Error) as refused:
        x12.parse_850(split)
    assert refused.value.code == "x12.missing_element" and refused.value.segment == "N3"


def test_parties_written_once_are_written_alike_after():
    """The N1/N3/N4 segments of a party already written are reused: the bytes are those written afresh, and a
    party refused once is refused again at its place (refusals are never kept)."""
    from app.services.signing.x12 import po850

    po850._PARTY_SEGMENTS.clear()
    fresh = write_order()
    assert po850._PARTY_SEGMENTS and write_order() == fresh == KNOWN_850
    other = replace_purchaser(address_lines=("9 ELM ST", "SUITE 2", "BLDG 3"))
    assert write_order(other) != fresh and x12.parse_850(write_order(other)) == other
    assert write_order(other) == write_order(other)
    for _ in range(2):
        with pytest.raises(X12Error) as info:
            write_order(replace_purchaser(city="SPRING*FIELD"))
        assert (info.value.segment, info.value.position) == ("N4", (7, 1))


def test_segments_kept_once_encoded_still_tell_values_apart():
    """Segments are reused by spec and values with their types: True after 1, or a float after the equal Decimal,
    is still refused; a refused segment is refused again."""
    from app.services.signing.x12 import core

    core._ENCODED.clear()
    assert x12.parse_850(write_order(replace_line(packages=1))).lines[0].packages == 1
    for _ in range(2):
        with pytest.raises(X12Error) as info:
            write_order(replace_line(packages=True))
        assert (info.value.code, info.value.segment) == ("x12.bad_element", "PO1")
    write_order(replace_line(package_quantity=Decimal("2.5")))
    with pytest.raises(X12Error) as info:
        write_order(replace_line(package_quantity=2.5))
    assert (info.value.code, info.value.segment) == ("x12.bad_element", "PO4")
    assert write_order() == KNOWN_850 and core._ENCODED
