"""Clock check (duty K6): the workstation clock must be within 5 minutes of NIST time before anyone signs.

A plain SNTP (RFC 4330) query over UDP: no library needed for 48 bytes, and no system tool is assumed. More than
5 minutes off blocks signing; an unreachable server only warns (a pharmacy with a firewall must still work).
"""

from __future__ import annotations

import datetime as dt
import enum
import socket
import struct
import time
from dataclasses import dataclass
from typing import Callable

from app.errors import CsosError

DEFAULT_SERVER = "time.nist.gov"
MAX_OFFSET = dt.timedelta(minutes=5)
NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01
_PACKET = struct.Struct("!BBbb11I")


class ClockState(enum.Enum):
    OK = "ok"
    OFF = "off"  # blocks signing
    UNKNOWN = "unknown"  # server unreachable: warn, don't block


@dataclass(frozen=True)
class ClockCheck:
    state: ClockState
    offset_seconds: float | None
    server: str
    message: str

    @property
    def blocks_signing(self) -> bool:
        return self.state is ClockState.OFF


class ClockOff(CsosError):
    code = "clock.off"


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
