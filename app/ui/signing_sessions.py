"""The signing sessions of the open window: one per certificate, each locked after 10 minutes without use (K4).

The sessions themselves (``app.services.keys.session.SigningSession``) enforce the idle lock at every use; the timer
here locks them on time even when nobody touches the program, so the key leaves memory when it should, and
``locked(fingerprint)`` lets an open signing screen ask for the password again.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from app.services.keys.session import IDLE_TIMEOUT_SECONDS, SigningSession

log = logging.getLogger(__name__)

CHECK_EVERY_MS = 15_000


class SessionSigner:
    """What CMS signing needs (``sign`` + ``signature_algorithm``), backed by the session so each use counts."""

    def __init__(self, session: SigningSession) -> None:
        self._session = session
        self.signature_algorithm = session.signer.signature_algorithm

    def sign(self, data: bytes) -> bytes:
        return self._session.sign(data)

    def sign_later(self, data: bytes) -> Any:
        """A token signs on its own thread while the signing service works on (``SigningSession.sign_later``)."""
        return self._session.sign_later(data)


class SigningSessions(QObject):
    locked = Signal(str)  # certificate fingerprint

    def __init__(self, certificates: Any, *, clock: Callable[[], float] = time.monotonic,
                 idle_timeout: float = IDLE_TIMEOUT_SECONDS, check_every_ms: int = CHECK_EVERY_MS,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.certificates = certificates
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._sessions: dict[str, SigningSession] = {}
        self._guard = threading.Lock()
        self.timer = QTimer(self)
        self.timer.setInterval(check_every_ms)
        self.timer.timeout.connect(self.expire_idle)
        self.timer.start()

    def session_for(self, record: Any) -> SigningSession:
        """The session of a certificate's key (created locked on first use)."""
        from app.services.certificates.book import record_key_ref

        fingerprint = record.fingerprint
        with self._guard:
            session = self._sessions.get(fingerprint)
            if session is None:
                ref = record_key_ref(record)
                store = self.certificates.store_for(ref, module=(record.key_ref or {}).get("module"))
                session = SigningSession(store, ref, clock=self.clock, idle_timeout=self.idle_timeout,
                                         on_lock=lambda reason, f=fingerprint: self._on_lock(f, reason))
                self._sessions[fingerprint] = session
            return session

    def is_unlocked(self, record: Any) -> bool:
        with self._guard:
            session = self._sessions.get(record.fingerprint)
        return session is not None and session.is_unlocked

    def seconds_left(self, record: Any) -> float:
        with self._guard:
            session = self._sessions.get(record.fingerprint)
        return session.seconds_left if session is not None else 0.0

    def unlocked_signer(self, record: Any, secret: str | None) -> SessionSigner:
        """Unlock with the password / PIN if needed (the secret is not kept), else count this as use."""
        session = self.session_for(record)
        if session.is_unlocked:
            session.touch()
        else:
            session.unlock(secret)
        return SessionSigner(session)

    def expire_idle(self) -> None:
        with self._guard:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.expire_if_idle()

    def lock_all(self) -> None:
        with self._guard:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.lock()

    def stop(self) -> None:
        """Lock every key and stop the idle check: after the window closed, nothing may fire later."""
        self.timer.stop()
        self.lock_all()

    def _on_lock(self, fingerprint: str, reason: str) -> None:
        log.info("signing session locked (%s)", reason)
        self.locked.emit(fingerprint)  # queued to the GUI thread when a worker locked it
