"""K6 within one signing session (issue 6/7): a verifying answer of the same ``ClockRule`` is reused for at most
``SESSION_REUSE`` seconds while wall and monotonic time advance together, so a batch does not ask the time server
once per order; a moved clock, the time limit or a non-verifying answer mean a fresh measurement. A real SNTP
server on loopback; wall and monotonic time are injected."""

from __future__ import annotations

import pytest

from app.sandbox.sntp import SntpServer
from app.services.signing.clock import SESSION_REUSE, ClockBasis, ClockRule, ClockState


class FakeTime:
    def __init__(self) -> None:
        self.wall_now, self.mono_now = 1_800_000_000.0, 5_000.0

    def advance(self, seconds: float, *, wall_extra: float = 0.0) -> None:
        self.wall_now += seconds + wall_extra
        self.mono_now += seconds


@pytest.fixture
def sntp():
    with SntpServer() as server:
        yield server


@pytest.fixture
def fake():
    return FakeTime()


@pytest.fixture
def session(tmp_path, sntp, fake):
    return ClockRule(tmp_path / "clock-check.json", server=sntp.host, port=sntp.port, production=True, timeout=0.3,
                     wall=lambda: fake.wall_now, monotonic=lambda: fake.mono_now, boot_id=lambda: "boot-1",
                     os_synchronised=lambda: False)


def test_a_verifying_answer_is_reused_within_the_session(session, sntp, fake):
    first = session.check()
    assert first.verified and first.basis is ClockBasis.TIME_SERVER
    sntp.answer = False  # a second query would now find no server at all
    fake.advance(SESSION_REUSE - 1)
    assert session.check() is first


def test_after_the_reuse_limit_the_clock_is_measured_again(session, sntp, fake):
    assert session.check().verified
    sntp.offset = 600.0
    fake.advance(SESSION_REUSE + 1)
    assert session.check().state is ClockState.OFF


@pytest.mark.parametrize("moved", [600.0, -600.0, 2.0])
def test_a_clock_moved_within_the_session_is_measured_again(session, sntp, fake, moved):
    assert session.check().verified
    sntp.offset = -600.0 if moved > 0 else 600.0
    fake.advance(5, wall_extra=moved)
    assert session.check().state is ClockState.OFF


def test_an_answer_that_does_not_verify_is_never_reused(session, sntp, fake):
    sntp.offset = 600.0
    assert session.check().state is ClockState.OFF
    sntp.offset = 0.0
    assert session.check().verified
    sntp.answer = False
    unverified = ClockRule(None, server=sntp.host, port=sntp.port, production=True, timeout=0.3,
                           os_synchronised=lambda: False)
    assert unverified.check().state is ClockState.UNKNOWN
    sntp.answer = True
    assert unverified.check().verified
