"""Clock check (duty K6): the workstation clock must be within 5 minutes of NIST time before anyone signs.

A plain SNTP (RFC 4330) query over UDP: no library needed for 48 bytes. ``check_clock`` is the raw measurement;
``ClockRule`` is what signing obeys (DESIGN.md §8): the clock counts as verified when a check succeeds now, or the
last successful check (remembered in the profile's folder) is under 24 h old and wall and monotonic time have
advanced together since (nobody moved the clock, no reboot), or the operating system says its time service is
synchronised. More than 5 minutes off blocks signing everywhere; an unverified clock blocks production and is
recorded in training. There is no bypass.

Within one ``ClockRule`` (one signing session) a verifying answer is reused for ``SESSION_REUSE`` seconds while wall
and monotonic time advance together, so signing a batch does not ask the time server (or the OS) once per order;
a clock moved in between voids it, as it voids the remembered check.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import os
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from app.errors import CsosError

DEFAULT_SERVER = "time.nist.gov"
MAX_OFFSET = dt.timedelta(minutes=5)
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_PACKET = struct.Struct("!BBbb11I")


RECENT_CHECK_VALID = dt.timedelta(hours=24)
SESSION_REUSE = 60.0  # seconds a verifying answer is reused within one ClockRule (see the module docstring)
STATE_FILE = "clock-check.json"


class ClockState(enum.Enum):
    OK = "ok"  # verified: a time server now, a recent check with the clock untouched since, or the OS time service
    OFF = "off"  # more than 5 minutes off: blocks signing everywhere
    UNKNOWN = "unknown"  # not verified: production refuses to sign, training warns and records it


class ClockBasis(enum.Enum):
    TIME_SERVER = "time server now"
    RECENT_CHECK = "time server within 24 h, clock untouched since"
    SYSTEM_TIME_SERVICE = "system time service synchronised"
    NONE = "clock not verified"


@dataclass(frozen=True)
class ClockCheck:
    state: ClockState
    offset_seconds: float | None
    server: str
    message: str
    basis: ClockBasis = ClockBasis.NONE
    required: bool = False  # production: an unverified clock blocks signing

    @property
    def verified(self) -> bool:
        return self.state is ClockState.OK

    @property
    def blocks_signing(self) -> bool:
        return self.state is ClockState.OFF or (self.state is ClockState.UNKNOWN and self.required)

    @property
    def audit_note(self) -> str:
        """What the audit trail records about the clock at signing."""
        return self.basis.value if self.verified else ClockBasis.NONE.value


class ClockOff(CsosError):
    code = "clock.off"


class ClockNotVerified(CsosError):
    """Production only: neither a time server, nor a recent check, nor the system's time service vouches for the
    clock, so the signing time cannot be trusted."""

    code = "clock.not_verified"


def _to_ntp(timestamp: float) -> tuple[int, int]:
    seconds = int(timestamp) + NTP_EPOCH_OFFSET
    fraction = int((timestamp - int(timestamp)) * (1 << 32)) & 0xFFFFFFFF
    return seconds, fraction


def _from_ntp(seconds: int, fraction: int) -> float:
    return seconds - NTP_EPOCH_OFFSET + fraction / (1 << 32)


def query_offset(server: str = DEFAULT_SERVER, *, port: int = 123, timeout: float = 2.0,
                 clock: Callable[[], float] = time.time) -> float:
    """Seconds to add to the local clock to reach the server's time. Raises OSError when unreachable."""
    request = bytearray(48)
    request[0] = (0 << 6) | (4 << 3) | 3  # LI 0, version 4, mode 3 (client)
    t1 = clock()
    seconds, fraction = _to_ntp(t1)
    struct.pack_into("!II", request, 40, seconds, fraction)  # transmit timestamp, echoed as originate
    family, address = _resolve(server, port, timeout)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(bytes(request), address)
        data, _ = sock.recvfrom(512)
    t4 = clock()
    if len(data) < 48:
        raise OSError("short SNTP answer")
    fields = _PACKET.unpack_from(data)
    mode = fields[0] & 0x7
    stratum = fields[1]
    if mode not in (4, 5) or stratum == 0 or stratum > 15:
        raise OSError("SNTP server refused or is unsynchronised")
    originate = fields[9:11]
    if originate != (seconds, fraction):
        raise OSError("SNTP answer does not match the request")
    t2 = _from_ntp(*fields[11:13])  # receive
    t3 = _from_ntp(*fields[13:15])  # transmit
    return ((t2 - t1) + (t3 - t4)) / 2


def _resolve(server: str, port: int, timeout: float) -> tuple[int, tuple]:
    """Name lookup with a deadline: getaddrinfo itself cannot time out, and a pharmacy behind a broken DNS must
    not wait a minute before signing."""
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="sntp-resolve")
    try:
        future = pool.submit(socket.getaddrinfo, server, port, 0, socket.SOCK_DGRAM)
        try:
            infos = future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise OSError(f"looking up {server} took too long") from None
    finally:
        pool.shutdown(wait=False)
    if not infos:
        raise OSError(f"{server} has no address")
    family, _type, _proto, _name, address = infos[0]
    return family, address


def check_clock(server: str = DEFAULT_SERVER, *, port: int = 123, timeout: float = 2.0,
                clock: Callable[[], float] = time.time) -> ClockCheck:
    try:
        offset = query_offset(server, port=port, timeout=timeout, clock=clock)
    except OSError:
        return ClockCheck(ClockState.UNKNOWN, None, server,
                          f"The time server {server} could not be reached, so the clock was not checked. Make sure "
                          "this computer's date and time are right before signing.")
    if abs(offset) > MAX_OFFSET.total_seconds():
        direction = "behind" if offset > 0 else "ahead of"
        return ClockCheck(ClockState.OFF, offset, server,
                          f"This computer's clock is {_describe(abs(offset))} {direction} official time. DEA rules "
                          "allow at most 5 minutes: correct the date and time settings, then sign.")
    return ClockCheck(ClockState.OK, offset, server, f"Clock is right (within {_describe(abs(offset))}).")


def _describe(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} seconds"
    if seconds < 7200:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.0f} days"


def _boottime() -> float:
    """Seconds since boot, counting suspend where the OS can (Linux CLOCK_BOOTTIME): it restarts at every boot."""
    clock_id = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock_id) if clock_id is not None else time.monotonic()


def _boot_id() -> str | None:
    """An identifier of this boot where the OS has one (Linux); elsewhere a reboot shows as monotonic time going
    backwards or lagging wall time."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def os_reports_synchronised(timeout: float = 2.0) -> bool:
    """Best effort: does the operating system's time service say the clock is synchronised?

    Linux: ``timedatectl show -p NTPSynchronized --value`` prints ``yes``. Windows: ``w32tm /query /status`` names
    a real source (not the local CMOS clock / free-running clock) with no leap alarm. Anything else: False.
    """
    try:
        if sys.platform.startswith("linux"):
            done = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], capture_output=True,
                                  text=True, timeout=timeout, check=False)
            return done.returncode == 0 and done.stdout.strip().lower() == "yes"
        if sys.platform == "win32":
            done = subprocess.run(["w32tm", "/query", "/status"], capture_output=True, text=True, timeout=timeout,
                                  check=False)
            if done.returncode != 0:
                return False
            fields = {k.strip().lower(): v.strip() for k, _, v in
                      (line.partition(":") for line in done.stdout.splitlines()) if v}
            source = fields.get("source", "").lower()
            leap = fields.get("leap indicator", "")
            return bool(source) and "local cmos" not in source and "free-running" not in source \
                and leap.startswith("0")
    except (OSError, subprocess.SubprocessError, ValueError):
        return False
    return False


class ClockRule:
    """K6 as signing obeys it; see the module docstring. One instance per profile (``state_path`` in its folder).

    ``server`` None: no time server is configured (training before the practice server runs): only the memory of
    an earlier check and the OS time service can vouch for the clock. ``wall``/``monotonic``/``boot_id``/
    ``os_synchronised`` are injectable so tests can move time and reboot without touching the machine.
    """

    def __init__(self, state_path: str | os.PathLike[str] | None, *, server: str | None, port: int = 123,
                 production: bool, timeout: float = 2.0, wall: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = _boottime, boot_id: Callable[[], str | None] = _boot_id,
                 os_synchronised: Callable[[], bool] = os_reports_synchronised) -> None:
        self.state_path = Path(state_path) if state_path is not None else None
        self.server, self.port, self.production, self.timeout = server, port, production, timeout
        self.wall, self.monotonic, self.boot_id, self.os_synchronised = wall, monotonic, boot_id, os_synchronised
        self._session: tuple[float, float, ClockCheck] | None = None  # (wall, monotonic, verifying answer)

    def __call__(self) -> ClockCheck:
        return self.check()

    def check(self) -> ClockCheck:
        """The answer of this session's last check if it verified under ``SESSION_REUSE`` seconds ago with the
        clock untouched since; else ``measure``."""
        if self._session is not None:
            then_wall, then_mono, answer = self._session
            wall_elapsed, mono_elapsed = self.wall() - then_wall, self.monotonic() - then_mono
            if 0 <= mono_elapsed <= SESSION_REUSE and abs(wall_elapsed - mono_elapsed) <= 1.0:
                return answer
            self._session = None
        answer = self.measure()
        if answer.verified:
            self._session = (self.wall(), self.monotonic(), answer)
        return answer

    def measure(self) -> ClockCheck:
        """Measure now if possible; otherwise fall back on the last check, then on the OS time service."""
        name = self.server or "(no time server set)"
        if self.server is not None:
            measured = check_clock(self.server, port=self.port, timeout=self.timeout)
            if measured.state is ClockState.OFF:
                return replace(measured, required=True)
            if measured.state is ClockState.OK:
                self._remember(measured)
                return replace(measured, basis=ClockBasis.TIME_SERVER, required=self.production)
        since = self._recent_check()
        if since is not None:
            return ClockCheck(ClockState.OK, None, name,
                              f"The time server could not be reached just now; the clock was confirmed "
                              f"{_describe(since)} ago and has not been changed since.",
                              basis=ClockBasis.RECENT_CHECK, required=self.production)
        if self.os_synchronised():
            return ClockCheck(ClockState.OK, None, name, "The computer's own time service says the clock is right.",
                              basis=ClockBasis.SYSTEM_TIME_SERVICE, required=self.production)
        reached = (f"The time server {self.server} could not be reached" if self.server
                   else "No time server is set")
        if self.production:
            message = (f"This computer's time could not be confirmed, so the order was not signed. {reached}, and "
                       "the computer's own time service does not say it is synchronised. Connect to the internet "
                       "(or ask your IT support to allow the time server), or turn on \"set time automatically\" "
                       "in the date and time settings, then sign again.")
        else:
            message = (f"This computer's time could not be confirmed ({reached.lower()[0] + reached[1:]}). In "
                       "practice mode you may still sign; the order's history records that the clock was not "
                       "verified. Make sure the date and time are right.")
        return ClockCheck(ClockState.UNKNOWN, None, name, message, required=self.production)

    # -- memory of the last successful check --------------------------------------------------------------------

    def _remember(self, measured: ClockCheck) -> None:
        if self.state_path is None:
            return
        record = {"wall": self.wall(), "monotonic": self.monotonic(), "boot_id": self.boot_id(),
                  "offset": measured.offset_seconds, "server": measured.server}
        try:
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_name(self.state_path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            os.replace(tmp, self.state_path)
        except OSError:
            pass  # an unwritable folder only means the next offline signing cannot lean on this check

    def _recent_check(self) -> float | None:
        """Seconds since the last successful check when it still vouches for the clock, else None."""
        if self.state_path is None:
            return None
        try:
            record = json.loads(self.state_path.read_text(encoding="utf-8"))
            then_wall, then_mono = float(record["wall"]), float(record["monotonic"])
            then_boot = record.get("boot_id")
        except (OSError, ValueError, KeyError, TypeError):
            return None
        now_wall, now_mono, now_boot = self.wall(), self.monotonic(), self.boot_id()
        if then_boot is not None and now_boot is not None and then_boot != now_boot:
            return None  # rebooted: monotonic time started again, nothing ties the clock to the old check
        wall_elapsed, mono_elapsed = now_wall - then_wall, now_mono - then_mono
        if mono_elapsed < 0 or wall_elapsed < 0 or mono_elapsed > RECENT_CHECK_VALID.total_seconds():
            return None
        # Together: within 5 s plus what a disciplined clock may slew (500 ppm); a clock change is larger.
        if abs(wall_elapsed - mono_elapsed) > 5.0 + 0.0005 * mono_elapsed:
            return None
        return mono_elapsed
