"""The token's PIN flags read into plain words (issue 19). SoftHSM never sets FINAL_TRY or LOCKED, so this logic is
tested on thin fakes of the token-info object only; the login path is tested on a real token in tests/hsm."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pkcs11 import TokenFlag

from app.services.keys.base import PinLengthInvalid, PinLocked, PinNotInitialized, WrongPin
from app.services.keys.pkcs11_driver import PinLimits
from app.services.keys.pkcs11_tokens import (
    COUNT_LOW_TEXT,
    FINAL_TRY_TEXT,
    PIN_LOCKED_TEXT,
    PIN_NOT_INITIALIZED_TEXT,
    Pkcs11Tokens,
    TokenInfo,
)

READY = TokenFlag.TOKEN_INITIALIZED | TokenFlag.USER_PIN_INITIALIZED | TokenFlag.LOGIN_REQUIRED


def info(flags: int) -> TokenInfo:
    return TokenInfo(manufacturer="M", model="X", serial="1", label="L", flags=int(flags), slot_description="")


@pytest.mark.parametrize("flags, text", [
    (READY, ""),
    (READY | TokenFlag.USER_PIN_COUNT_LOW, COUNT_LOW_TEXT),
    (READY | TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY, FINAL_TRY_TEXT),
    (READY | TokenFlag.USER_PIN_LOCKED, PIN_LOCKED_TEXT),
    (TokenFlag.TOKEN_INITIALIZED | TokenFlag.LOGIN_REQUIRED, PIN_NOT_INITIALIZED_TEXT),
    (TokenFlag.RNG, ""),  # not initialised at all: not offered, nothing to say about its PIN
])
def test_pin_notice_from_flags(flags, text):
    assert info(flags).pin_notice == text


def test_final_try_is_said_in_plain_words():
    assert FINAL_TRY_TEXT.startswith("One try left before the token locks")


class _FakeToken:
    """Only what the checks read: flags (via info_of) and a slot. ``open`` must never be reached."""

    def __init__(self, flags: int, after: int | None = None) -> None:
        self.flags, self.serial, self.label, self.manufacturer_id, self.model = flags, b"1", "L", "M", "X"
        self.slot = SimpleNamespace(slot_id=0, slot_description="",
                                    get_token=lambda: _FakeToken(after if after is not None else flags))

    def open(self, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("C_Login must not be called")


def _tokens(limits: PinLimits | None, monkeypatch) -> Pkcs11Tokens:
    from app.services.keys import pkcs11_driver

    monkeypatch.setattr(pkcs11_driver, "pin_limits", lambda path, slot: limits)
    t = Pkcs11Tokens()
    t.module_path = "/fake/module.so"
    return t


@pytest.mark.parametrize("flags, pin, error", [
    (READY | TokenFlag.USER_PIN_LOCKED, "123456", PinLocked),
    (TokenFlag.TOKEN_INITIALIZED | TokenFlag.LOGIN_REQUIRED, "123456", PinNotInitialized),
    (READY, "12", PinLengthInvalid),
    (READY, "1" * 17, PinLengthInvalid),
])
def test_refused_before_login(flags, pin, error, monkeypatch):
    tokens = _tokens(PinLimits(4, 16), monkeypatch)
    token = _FakeToken(int(flags))
    with pytest.raises(error):
        tokens._w_check_before_login(token, info(flags), pin)


def test_a_pin_within_limits_passes_the_checks(monkeypatch):
    _tokens(PinLimits(4, 16), monkeypatch)._w_check_before_login(_FakeToken(int(READY)), info(READY), "123456")
    _tokens(None, monkeypatch)._w_check_before_login(_FakeToken(int(READY)), info(READY), "1")  # limits unknown


@pytest.mark.parametrize("after, expected_type, words", [
    (READY | TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_FINAL_TRY, WrongPin, FINAL_TRY_TEXT),
    (READY | TokenFlag.USER_PIN_LOCKED, PinLocked, PIN_LOCKED_TEXT),
    (READY, WrongPin, "The PIN is not correct."),
])
def test_after_a_wrong_pin_the_flags_are_read_again(after, expected_type, words, monkeypatch):
    tokens = _tokens(None, monkeypatch)
    error = tokens._w_after_wrong_pin(_FakeToken(int(READY), after=int(after)), WrongPin("The PIN is not correct."))
    assert type(error) is expected_type and words in error.message
