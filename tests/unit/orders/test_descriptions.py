"""The X12-safe line description (issue 16 item 4): real FDA names, trademark signs, accents and delimiters become
text the X12 writer signs; any unicode input gives at most 80 characters, always the same for the same input."""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.models.values import PackageUnit
from app.services.orders.descriptions import MAX_LENGTH, x12_safe_description
from app.services.signing import x12
from app.services.signing.x12 import Envelope, OrderLine850, Party, PurchaseOrder

ADDERALL = ("Dextroamphetamine Saccharate, Amphetamine Aspartate Monohydrate, Dextroamphetamine Sulfate and "
            "Amphetamine Sulfate")
ENVELOPE = Envelope(sender_id="PHARM1", receiver_id="ACMEDRUG", created_at=dt.datetime(2026, 1, 15, 10, 30),
                    interchange_control_number=1, group_control_number=1)
ORDER = PurchaseOrder(
    order_number="26X000123", date_signed=dt.date(2026, 1, 15),
    purchaser=Party("MAIN STREET PHARMACY", "BJ6125341", ("100 MAIN ST",), "SPRINGFIELD", "IL", "62701"),
    supplier=Party("ACME DRUG DISTRIBUTORS", "RA1234563", ("1 INDUSTRIAL WAY",), "COLUMBUS", "OH", "43215"),
    lines=(OrderLine850(1, 2, "00406052301", "placeholder", 100, PackageUnit.EACH),),
)


def signed_description(description: str) -> str:
    """What the X12 writer puts in PID05 for ``description`` (raises X12Error when it refuses it)."""
    order = dataclasses.replace(ORDER, lines=(dataclasses.replace(ORDER.lines[0], description=description),))
    return x12.parse_850(x12.write(order, ENVELOPE)).lines[0].description


def test_a_long_fda_name_keeps_its_strength_and_is_cut_at_a_word():
    text = x12_safe_description(ADDERALL, "1.25 mg/1; 1.25 mg/1; 1.25 mg/1; 1.25 mg/1")
    assert len(text) <= MAX_LENGTH
    assert text.endswith(" 1.25 mg/1; 1.25 mg/1; 1.25 mg/1; 1.25 mg/1")
    assert text.startswith("Dextroamphetamine Saccharate") and "..." in text
    assert signed_description(text) == text


def test_trademark_signs_accents_and_delimiters():
    assert x12_safe_description("Xanax\u00ae", "0.5 mg") == "Xanax 0.5 mg"
    assert x12_safe_description("Fentora\u2122", "100 \u00b5g") == "Fentora 100 mcg"
    assert x12_safe_description("Laborat\u00f3rios Pr\u00e9mio", "") == "Laboratorios Premio"
    assert x12_safe_description("Oxy*Kit > Part~1", "5 mg") == "Oxy Kit Part 1 5 mg"
    assert x12_safe_description("  Morphine\tSulfate\n ", " 15  mg ") == "Morphine Sulfate 15 mg"
    for name in ("Xanax\u00ae", "Oxy*Kit", "Cr\u00e8me \u2013 \u00bd"):
        text = x12_safe_description(name, "1 mg")
        assert signed_description(text) == text


def test_short_names_are_unchanged_and_an_empty_name_falls_back_to_the_ndc():
    assert x12_safe_description("Oxycodone Hydrochloride", "5 mg/1") == "Oxycodone Hydrochloride 5 mg/1"
    assert x12_safe_description("\u6c49\u5b57", "", ndc="00406-0523-01") == "NDC 00406-0523-01"
    assert x12_safe_description("", "") == "Product"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300), st.text(max_size=120))
def test_any_unicode_name_and_strength_give_a_signable_description(name, strength):
    text = x12_safe_description(name, strength)
    assert 1 <= len(text) <= MAX_LENGTH
    assert text == x12_safe_description(name, strength)  # deterministic
    assert signed_description(text) == text  # the X12 writer accepts it as it is
