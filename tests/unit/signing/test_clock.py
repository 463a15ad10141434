"""K6 against a real SNTP server on loopback (UDP), offset chosen per test."""

from __future__ import annotations

import socket

import pytest

from app.sandbox.sntp import SntpServer
from app.services.signing.clock import ClockState, check_clock, query_offset


@pytest.fixture
def sntp():
    with SntpServer() as server:
        yield server


def test_offset_is_measured(sntp):
    sntp.offset = 42.0
    assert query_offset(sntp.host, port=sntp.port) == pytest.approx(42.0, abs=0.5)


@pytest.mark.parametrize("offset, state", [(0.0, ClockState.OK), (299.0, ClockState.OK), (-299.0, ClockState.OK),
                                           (301.0, ClockState.OFF), (-3600.0, ClockState.OFF)])
def test_more_than_five_minutes_off_blocks_signing(sntp, offset, state):
    sntp.offset = offset
    result = check_clock(sntp.host, port=sntp.port)
    assert result.state is state
    assert result.blocks_signing is (state is ClockState.OFF)
    if state is ClockState.OFF:
        assert ("behind" if offset > 0 else "ahead of") in result.message


def test_unreachable_server_leaves_the_clock_unverified(sntp):
    """The raw measurement only says "unknown"; whether that blocks is ClockRule's decision (test_clock_rule.py)."""
    sntp.answer = False
    result = check_clock(sntp.host, port=sntp.port, timeout=0.3)
    assert result.state is ClockState.UNKNOWN and not result.verified
    assert "could not be reached" in result.message


def test_unsynchronised_server_is_not_trusted(sntp):
    sntp.stratum = 0  # "kiss of death" / unsynchronised
    assert check_clock(sntp.host, port=sntp.port, timeout=0.5).state is ClockState.UNKNOWN


def test_nothing_listening_is_unknown():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert check_clock("127.0.0.1", port=port, timeout=0.3).state is ClockState.UNKNOWN
