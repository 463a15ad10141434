"""Hypothesis strategies for domain values, shared by unit and property tests."""

from __future__ import annotations

from hypothesis import strategies as st

from app.models.values import DEA_REGISTRANT_TYPE_LETTERS, dea_check_digit

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@st.composite
def dea_numbers(draw) -> str:
    first = draw(st.sampled_from(sorted(DEA_REGISTRANT_TYPE_LETTERS)))
    second = draw(st.sampled_from(UPPER))
    six = draw(st.lists(st.integers(0, 9), min_size=6, max_size=6))
    return first + second + "".join(map(str, six)) + str(dea_check_digit(six))


ndc11 = st.text(alphabet="0123456789", min_size=11, max_size=11)
order_number_suffix = st.text(alphabet="0123456789" + UPPER, min_size=6, max_size=6)
