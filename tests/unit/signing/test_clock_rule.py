"""K6 clock rule at signing (issue 19): verified by a time server now, by a check within 24 h with wall and
monotonic time advancing together since, or by the OS time service; otherwise production refuses and training
warns. A real SNTP server on loopback; wall time, monotonic time, boot id and the OS answer are injected."""

from __future__ import annotations

import json
import os

import pytest

from app.sandbox.sntp import SntpServer
from app.services.signing.clock import ClockBasis, ClockRule, ClockState

HOUR = 3600.0


class FakeTime:
    """Wall and monotonic time the test moves; ``reboot`` restarts monotonic time with a new boot id."""

    def __init__(self) -> None:
        self.wall_now, self.mono_now, self.boot = 1_800_000_000.0, 5_000.0, "boot-1"

    def advance(self, seconds: float, *, wall_extra: float = 0.0) -> None:
        self.wall_now += seconds + wall_extra
        self.mono_now += seconds

    def reboot(self, *, keep_boot_id: bool = False) -> None:
        self.mono_now = 30.0
        if not keep_boot_id:
            self.boot = "boot-2"


@pytest.fixture
def sntp():
    with SntpServer() as server:
        yield server


@pytest.fixture
def fake():
    return FakeTime()


def rule(tmp_path, sntp, fake, *, production=True, os_synchronised=False, boot_ids=True):
    return ClockRule(tmp_path / "clock-check.json", server=sntp.host, port=sntp.port, production=production,
                     timeout=0.3, wall=lambda: fake.wall_now, monotonic=lambda: fake.mono_now,
                     boot_id=(lambda: fake.boot) if boot_ids else (lambda: None),
                     os_synchronised=lambda: os_synchronised)


def test_a_check_now_verifies_and_is_remembered_privately(tmp_path, sntp, fake):
    result = rule(tmp_path, sntp, fake).check()
    assert result.state is ClockState.OK and result.basis is ClockBasis.TIME_SERVER and not result.blocks_signing
    saved = json.loads((tmp_path / "clock-check.json").read_text())
    assert saved["wall"] == fake.wall_now and saved["monotonic"] == fake.mono_now and saved["boot_id"] == "boot-1"
    if os.name == "posix":
        assert (tmp_path / "clock-check.json").stat().st_mode & 0o777 == 0o600


def test_unreachable_server_and_nothing_else_refuses_in_production(tmp_path, sntp, fake):
    sntp.answer = False
    result = rule(tmp_path, sntp, fake).check()
    assert result.state is ClockState.UNKNOWN and result.blocks_signing
    assert "not signed" in result.message and "set time automatically" in result.message


def test_training_warns_instead_and_says_it_is_recorded(tmp_path, sntp, fake):
    sntp.answer = False
    result = rule(tmp_path, sntp, fake, production=False).check()
    assert result.state is ClockState.UNKNOWN and not result.blocks_signing
    assert result.audit_note == "clock not verified" and "practice" in result.message


def test_a_recent_check_with_the_clock_untouched_verifies(tmp_path, sntp, fake):
    assert rule(tmp_path, sntp, fake).check().verified
    sntp.answer = False
    fake.advance(23 * HOUR)
    result = rule(tmp_path, sntp, fake).check()
    assert result.state is ClockState.OK and result.basis is ClockBasis.RECENT_CHECK and not result.blocks_signing


@pytest.mark.parametrize("change", ["older_than_24_hours", "clock_moved_forward", "clock_moved_back", "reboot",
                                    "reboot_without_boot_id", "no_check_before"])
def test_the_memory_does_not_vouch_after(tmp_path, sntp, fake, change):
    boot_ids = change != "reboot_without_boot_id"
    if change != "no_check_before":
        assert rule(tmp_path, sntp, fake, boot_ids=boot_ids).check().verified
    sntp.answer = False
    if change == "older_than_24_hours":
        fake.advance(24 * HOUR + 60)
    elif change == "clock_moved_forward":
        fake.advance(HOUR, wall_extra=600)  # someone set the clock 10 minutes ahead
    elif change == "clock_moved_back":
        fake.advance(HOUR, wall_extra=-600)
    elif change.startswith("reboot"):
        fake.advance(HOUR)
        fake.reboot()
    result = rule(tmp_path, sntp, fake, boot_ids=boot_ids).check()
    assert result.state is ClockState.UNKNOWN and result.blocks_signing


def test_the_operating_systems_time_service_verifies(tmp_path, sntp, fake):
    sntp.answer = False
    result = rule(tmp_path, sntp, fake, os_synchronised=True).check()
    assert result.verified and result.basis is ClockBasis.SYSTEM_TIME_SERVICE


@pytest.mark.parametrize("production", [True, False])
def test_more_than_five_minutes_off_blocks_everywhere_whatever_else_vouches(tmp_path, sntp, fake, production):
    assert rule(tmp_path, sntp, fake, production=production).check().verified  # a good memory…
    sntp.offset = 600.0
    result = rule(tmp_path, sntp, fake, production=production, os_synchronised=True).check()  # …and the OS
    assert result.state is ClockState.OFF and result.blocks_signing


def test_no_time_server_set_falls_back_on_memory_and_the_os(tmp_path, fake):
    no_server = ClockRule(tmp_path / "clock-check.json", server=None, production=True, wall=lambda: fake.wall_now,
                          monotonic=lambda: fake.mono_now, boot_id=lambda: fake.boot, os_synchronised=lambda: False)
    result = no_server.check()
    assert result.blocks_signing and "No time server is set" in result.message
