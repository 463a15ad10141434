from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidValue
from app.models.values import DeaNumber, Ndc, OrderNumber, PackageUnit, Schedule, dea_check_digit
from tests.strategies import dea_numbers, ndc11, order_number_suffix


# -- DEA numbers --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["BJ6125341", "bj6125341", "  AB1234563 ", "FN5623740"])
def test_valid_dea_numbers_normalise_to_upper_case(text):
    assert DeaNumber.parse(text).value == text.strip().upper()


@pytest.mark.parametrize("text, code", [
    ("", "dea.empty"),
    ("BJ612534", "dea.format"),
    ("BJ61253411", "dea.format"),
    ("B16125341", "dea.format"),
    ("BJ61253A1", "dea.format"),
    ("ZJ6125341", "dea.registrant_type"),
    ("IJ6125341", "dea.registrant_type"),
    ("BJ6125342", "dea.check_digit"),
])
def test_invalid_dea_numbers_name_the_rule(text, code):
    with pytest.raises(InvalidValue) as caught:
        DeaNumber.parse(text)
    assert caught.value.code == code
    assert caught.value.message


def test_check_digit_formula_known_answer():
    # 6,1,2,5,3,4: (6+2+3) + 2*(1+5+4) = 11 + 20 = 31 -> 1
    assert dea_check_digit([6, 1, 2, 5, 3, 4]) == 1


@given(dea_numbers())
def test_every_generated_valid_dea_number_parses(text):
    assert DeaNumber.parse(text.lower()).value == text


@given(dea_numbers(), st.integers(0, 8))
def test_changing_any_one_digit_breaks_the_check(text, position):
    digits = list(text)
    index = 2 + position if position < 7 else 8
    original = digits[index]
    digits[index] = str((int(original) + 1) % 10)
    changed = "".join(digits)
    # Changing d2/d4/d6 by one shifts the sum by 2, d1/d3/d5/d7 by 1: never a multiple of 10, so always caught.
    with pytest.raises(InvalidValue) as caught:
        DeaNumber.parse(changed)
    assert caught.value.code == "dea.check_digit"


@given(st.text(max_size=12))
def test_dea_parse_only_raises_invalid_value(text):
    try:
        DeaNumber.parse(text)
    except InvalidValue:
        pass


# -- NDC ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, digits, display", [
    ("0406-0552-62", "00406055262", "00406-0552-62"),   # 4-4-2
    ("59011-410-10", "59011041010", "59011-0410-10"),   # 5-3-2
    ("00093-0150-1", "00093015001", "00093-0150-01"),   # 5-4-1
    ("00093-0150-01", "00093015001", "00093-0150-01"),  # 5-4-2
    ("00093015001", "00093015001", "00093-0150-01"),    # 11 digits
])
def test_ndc_forms_normalise_to_eleven_digits(text, digits, display):
    ndc = Ndc.parse(text)
    assert ndc.digits == digits
    assert ndc.display == display
    assert str(ndc) == display


@pytest.mark.parametrize("text, code", [
    ("", "ndc.empty"),
    ("0406055262", "ndc.ambiguous"),
    ("123-4567-89", "ndc.layout"),
    ("12345-67-890", "ndc.layout"),
    ("1234567", "ndc.length"),
    ("12345-678A-90", "ndc.format"),
    ("١٢٣٤٥٦٧٨٩٠١", "ndc.format"),  # non-ASCII digits
])
def test_invalid_ndcs_name_the_rule(text, code):
    with pytest.raises(InvalidValue) as caught:
        Ndc.parse(text)
    assert caught.value.code == code


@given(ndc11)
def test_ndc_display_round_trips(digits):
    ndc = Ndc.parse(digits)
    assert Ndc.parse(ndc.display) == ndc


@given(st.text(max_size=16))
def test_ndc_parse_only_raises_invalid_value(text):
    try:
        Ndc.parse(text)
    except InvalidValue:
        pass


# -- order numbers ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, code", [
    ("", "order_number.empty"),
    ("26X00001", "order_number.length"),
    ("26Y000001", "order_number.format"),
    ("2XX000001", "order_number.format"),
    ("26X00000-", "order_number.format"),
])
def test_invalid_order_numbers_name_the_rule(text, code):
    with pytest.raises(InvalidValue) as caught:
        OrderNumber.parse(text)
    assert caught.value.code == code


@given(st.integers(2000, 2099), order_number_suffix)
def test_order_number_build_and_parse(year, suffix):
    number = OrderNumber.build(year, suffix)
    assert number.value == f"{year % 100:02d}X{suffix}"
    assert OrderNumber.parse(number.value.lower()) == number
    assert number.suffix == suffix


# -- schedules ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fda, narcotic, expected", [
    ("CI", None, Schedule.I), ("CII", None, Schedule.II), ("CII", False, Schedule.IIN), ("CII", True, Schedule.II),
    ("CIII", None, Schedule.III), ("CIII", False, Schedule.IIIN), ("CIV", None, Schedule.IV),
    ("CV", None, Schedule.V), ("", None, Schedule.NON_CONTROLLED), ("cii", None, Schedule.II),
])
def test_fda_deaschedule_mapping(fda, narcotic, expected):
    assert Schedule.from_fda(fda, narcotic=narcotic) is expected


def test_unknown_fda_schedule_is_rejected():
    with pytest.raises(InvalidValue) as caught:
        Schedule.from_fda("CVI")
    assert caught.value.code == "schedule.fda_unknown"


@pytest.mark.parametrize("text, expected", [("II", Schedule.II), ("2n", Schedule.IIN), ("nc", Schedule.NON_CONTROLLED),
                                            ("IIIN", Schedule.IIIN), ("5", Schedule.V)])
def test_schedule_parse(text, expected):
    assert Schedule.parse(text) is expected


def test_schedule_parse_rejects_unknown():
    with pytest.raises(InvalidValue):
        Schedule.parse("VI")
    assert not Schedule.NON_CONTROLLED.is_controlled and Schedule.V.is_controlled


def test_package_units():
    assert PackageUnit.parse("ml") is PackageUnit.MILLILITER
    with pytest.raises(InvalidValue):
        PackageUnit.parse("LB")
