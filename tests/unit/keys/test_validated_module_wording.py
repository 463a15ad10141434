"""The key-location page says plainly which choice uses a validated module (K5, issue 19): a FIPS 140 validated
token does; this computer's key file does not. NSS's softoken in FIPS mode is not offered (docs/compliance.md K5)."""

from __future__ import annotations

from pathlib import Path

from app.services.enrollment.flow_common import KEY_CHOICE_SOFTWARE_TEXT, KEY_CHOICE_TOKEN_TEXT

ROOT = Path(__file__).resolve().parents[3]


def test_the_choices_say_which_one_uses_a_validated_module():
    assert "not a validated (FIPS 140) security module" in KEY_CHOICE_SOFTWARE_TEXT
    assert "uses a validated security module" in KEY_CHOICE_TOKEN_TEXT and "FIPS 140 validated" in KEY_CHOICE_TOKEN_TEXT
    for text in (KEY_CHOICE_SOFTWARE_TEXT, KEY_CHOICE_TOKEN_TEXT):
        assert "1311" not in text and "CFR" not in text  # regulation numbers stay behind "Why does this matter?"


def test_the_key_location_page_shows_them():
    page = (ROOT / "app/ui/wizards/pages.py").read_text()
    assert '("software", "This computer, with a password", KEY_CHOICE_SOFTWARE_TEXT)' in page
    assert '("token", "A USB security token", KEY_CHOICE_TOKEN_TEXT)' in page
