"""A tiny SNTP server for the training sandbox and tests: answers with this machine's time plus a chosen offset."""

from __future__ import annotations

import socket
import struct
import threading
import time

from app.services.signing.clock import NTP_EPOCH_OFFSET


def _ntp(timestamp: float) -> tuple[int, int]:
    return int(timestamp) + NTP_EPOCH_OFFSET, int((timestamp % 1) * (1 << 32)) & 0xFFFFFFFF


class SntpServer:
    """Serve SNTP on 127.0.0.1 (port chosen by the OS) in a daemon thread. ``offset`` may be changed live."""

    def __init__(self, *, offset: float = 0.0, host: str = "127.0.0.1", port: int = 0, stratum: int = 1) -> None:
        self.offset = offset
        self.stratum = stratum
        self.answer = True
        self.answered = 0  # queries answered (tests count how often the clock is checked)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind((host, port))
        self._socket.settimeout(0.2)
        self.host, self.port = self._socket.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sntp-server", daemon=True)

    def __enter__(self) -> "SntpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> "SntpServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._socket.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(data) < 48 or not self.answer:
                continue
            received = time.time() + self.offset
            version = (data[0] >> 3) & 0x7
            reply = bytearray(48)
            reply[0] = (0 << 6) | (version << 3) | 4
            reply[1] = self.stratum
            reply[2] = data[2]
            reply[3] = 0xEC  # precision ~ 2^-20 s
            struct.pack_into("!4s", reply, 12, b"LOCL")
            struct.pack_into("!II", reply, 16, *_ntp(received))  # reference
            reply[24:32] = data[40:48]  # originate = client's transmit
            struct.pack_into("!II", reply, 32, *_ntp(received))
            struct.pack_into("!II", reply, 40, *_ntp(time.time() + self.offset))
            self._socket.sendto(bytes(reply), peer)
            self.answered += 1
