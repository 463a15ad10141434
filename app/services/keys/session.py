"""Signing session: the unlocked key, locked again after 10 minutes without use (K4).

The session keeps the ``Signer`` (the decrypted key or the logged-in token session), never the password or PIN: the
secret goes to ``store.open_signer`` and is forgotten when ``unlock`` returns. Locking closes the signer, which drops
the key object (software) or logs out and closes the token session (PKCS#11).

Idle time is measured with an injectable monotonic clock. Expiry is enforced at every use (``sign``, ``is_unlocked``)
and by ``expire_if_idle()``, which the UI calls from a timer (e.g. every 15 s) so the key leaves memory on time even
when nobody touches the program.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from .base import KeyRef, KeyStore, SessionLocked, Signer, SignerClosed, TokenRemoved

log = logging.getLogger(__name__)

IDLE_TIMEOUT_SECONDS = 10 * 60


class SigningSession:
    def __init__(
        self,
        store: KeyStore,
        ref: KeyRef,
        *,
        clock: Callable[[], float] = time.monotonic,
        idle_timeout: float = IDLE_TIMEOUT_SECONDS,
        on_lock: Callable[[str], None] | None = None,
    ) -> None:
        if idle_timeout <= 0 or idle_timeout > IDLE_TIMEOUT_SECONDS:
            raise ValueError("K4: the idle timeout must be positive and at most 10 minutes")
        self.store = store
        self.key_ref = ref
        self._clock = clock
        self._idle_timeout = idle_timeout
        self._on_lock = on_lock
        self._signer: Signer | None = None
        self._last_used = 0.0
        self._lock = threading.RLock()

    # -- state ----------------------------------------------------------------------------------------------------

    @property
    def is_unlocked(self) -> bool:
        with self._lock:
            self._expire_locked()
            return self._signer is not None

    @property
    def seconds_left(self) -> float:
        """Seconds until the idle lock (0 when locked)."""
        with self._lock:
            self._expire_locked()
            if self._signer is None:
                return 0.0
            return max(0.0, self._last_used + self._idle_timeout - self._clock())

    @property
    def signer(self) -> Signer:
        """The unlocked signer (counts as use). ``SessionLocked`` when locked."""
        with self._lock:
            signer = self._active()
            self._last_used = self._clock()
            return signer

    # -- operations -----------------------------------------------------------------------------------------------

    def unlock(self, secret: str | None) -> None:
        """Open the key with the password / PIN (``None`` for a PIN-pad reader). Wrong secret: typed error, locked."""
        with self._lock:
            self._close_signer("relock")
            signer = self.store.open_signer(self.key_ref, secret=secret)
            del secret
            self._signer = signer
            self._last_used = self._clock()
        log.info("signing session unlocked: key=%s", self.key_ref.key_id)

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            signer = self._active()
            try:
                signature = signer.sign(data)
            except Exception as exc:
                self._after_failure(exc)
                raise
            self._last_used = self._clock()
            return signature

    def sign_later(self, data: bytes) -> "PendingSignature":
        """``sign`` started, not waited for, where the key signs on a thread of its own (a token: see
        ``Pkcs11Signer.sign_later``); other keys sign now. ``result()`` gives the signature or raises what ``sign``
        would, and the session reacts the same way (use counted, a lost token locks it). A lock requested meanwhile
        closes the token session after this signature: both go through the token's one worker thread, in order."""
        with self._lock:
            signer = self._active()
            start = getattr(signer, "sign_later", None)
            if start is None:
                return PendingSignature(self, signature=self.sign(data))
            try:
                pending = start(data)
            except Exception as exc:
                self._after_failure(exc)
                raise
            self._last_used = self._clock()
            return PendingSignature(self, pending=pending, signer=signer)

    def touch(self) -> None:
        """Count user activity with the key (e.g. reviewing the order about to be signed) as use."""
        with self._lock:
            self._active()
            self._last_used = self._clock()

    def lock(self) -> None:
        with self._lock:
            self._close_signer("on_demand")

    def expire_if_idle(self) -> bool:
        """Lock if idle too long; True if this call locked the session."""
        with self._lock:
            return self._expire_locked()

    def close(self) -> None:
        self.lock()

    def __enter__(self) -> "SigningSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock()

    # -- internals ------------------------------------------------------------------------------------------------

    def _active(self) -> Signer:
        if self._expire_locked() or self._signer is None:
            raise SessionLocked("The key is locked. Enter your password or PIN to sign.")
        return self._signer

    def _after_failure(self, exc: Exception) -> None:
        if isinstance(exc, (SignerClosed, TokenRemoved)):
            self._close_signer("token_removed")
        elif getattr(exc, "code", "") == "key.token_session_lost":
            self._close_signer("token_session_lost")

    def _expire_locked(self) -> bool:
        if self._signer is not None and self._clock() - self._last_used >= self._idle_timeout:
            self._close_signer("idle")
            return True
        return False

    def _close_signer(self, reason: str) -> None:
        signer, self._signer = self._signer, None
        if signer is None:
            return
        try:
            signer.close()
        except Exception as exc:  # noqa: BLE001 - the key is dropped from the session either way
            log.warning("closing the signer failed (%s); the session is locked anyway", getattr(exc, "code", exc))
        log.info("signing session locked: key=%s reason=%s", self.key_ref.key_id, reason)
        if self._on_lock is not None:
            self._on_lock(reason)


class PendingSignature:
    """A signature a ``SigningSession`` has started (``sign_later``); ``result()`` waits for it."""

    def __init__(self, session: SigningSession, *, pending: Future[bytes] | None = None,
                 signature: bytes | None = None, signer: Signer | None = None) -> None:
        self._session = session
        self._pending = pending
        self._signature = signature
        self._signer = signer  # the session's signer that started it: only that one is closed after a failure

    def result(self) -> bytes:
        if self._signature is None:
            assert self._pending is not None
            try:
                self._signature = self._pending.result()
            except Exception as exc:
                with self._session._lock:
                    if self._session._signer is self._signer:
                        self._session._after_failure(exc)
                raise
            with self._session._lock:
                if self._session._signer is self._signer:
                    self._session._last_used = self._session._clock()
        return self._signature
