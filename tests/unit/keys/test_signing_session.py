"""Signing session: unlock, idle lock after 10 minutes (K4), secrets not kept."""

from __future__ import annotations

import gc

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from app.services.keys import (
    KeyAlgorithm,
    SessionLocked,
    SigningSession,
    SoftwareKeyStore,
    WrongPassword,
)

PASSWORD = "Heron-Lantern-6612&z"


class SpyStore:
    """Passes through to a real store and remembers the signers it handed out."""

    def __init__(self, store: SoftwareKeyStore) -> None:
        self.store = store
        self.kind = store.kind
        self.opened = []

    def open_signer(self, ref, *, secret):
        signer = self.store.open_signer(ref, secret=secret)
        self.opened.append(signer)
        return signer


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    store = SoftwareKeyStore(tmp_path_factory.mktemp("keys"))
    return store, store.generate_key(algorithm=KeyAlgorithm.EC_P256, label="Session", secret=PASSWORD)


@pytest.fixture
def session(key):
    store, ref = key
    clock = Clock()
    spy = SpyStore(store)
    locks: list[str] = []
    s = SigningSession(spy, ref, clock=clock, on_lock=locks.append)  # type: ignore[arg-type]
    s.clock, s.spy, s.locks = clock, spy, locks  # type: ignore[attr-defined]
    return s


def test_locked_until_unlocked(session):
    assert not session.is_unlocked
    with pytest.raises(SessionLocked) as err:
        session.sign(b"x")
    assert err.value.code == "key.session_locked"


def test_unlock_and_sign(session):
    session.unlock(PASSWORD)
    assert session.is_unlocked
    sig = session.sign(b"order")
    session.spy.opened[0].public_key.verify(sig, b"order", ec.ECDSA(hashes.SHA256()))


def test_idle_lock_after_ten_minutes(session):
    session.unlock(PASSWORD)
    signer = session.spy.opened[0]
    session.clock.now += 9 * 60 + 59
    assert session.is_unlocked and not signer.closed
    assert session.seconds_left == pytest.approx(1.0)
    session.clock.now += 2  # 10:01
    assert not session.is_unlocked
    assert signer.closed
    assert session.locks == ["idle"]
    with pytest.raises(SessionLocked):
        session.sign(b"late")


def test_use_restarts_the_idle_timer(session):
    session.unlock(PASSWORD)
    session.clock.now += 9 * 60
    session.sign(b"a")
    session.clock.now += 9 * 60  # 18 minutes after unlock, 9 after last use
    session.sign(b"b")
    session.clock.now += 10 * 60 + 1
    with pytest.raises(SessionLocked):
        session.sign(b"c")
    assert session.spy.opened[0].closed


def test_expire_if_idle_for_the_ui_timer(session):
    session.unlock(PASSWORD)
    assert session.expire_if_idle() is False
    session.clock.now += 601
    assert session.expire_if_idle() is True
    assert session.spy.opened[0].closed
    assert session.expire_if_idle() is False


def test_lock_on_demand_closes_signer_and_relock_works(session):
    session.unlock(PASSWORD)
    session.lock()
    assert not session.is_unlocked and session.spy.opened[0].closed
    assert session.locks == ["on_demand"]
    session.unlock(PASSWORD)
    assert session.is_unlocked
    assert len(session.spy.opened) == 2


def test_wrong_password_leaves_session_locked(session):
    with pytest.raises(WrongPassword):
        session.unlock("Wrong-Password-000")
    assert not session.is_unlocked
    session.unlock(PASSWORD)
    # unlocking again closes the previous signer instead of leaking it
    session.unlock(PASSWORD)
    assert session.spy.opened[0].closed and not session.spy.opened[1].closed


def test_session_does_not_keep_the_password(session):
    session.unlock(PASSWORD)
    gc.collect()
    reachable = repr(vars(session)) + repr(vars(session.spy.opened[0]))
    assert PASSWORD not in reachable
    assert all(PASSWORD not in repr(o) for o in gc.get_referents(session))


def test_timeout_cannot_exceed_ten_minutes(key):
    store, ref = key
    with pytest.raises(ValueError):
        SigningSession(store, ref, idle_timeout=11 * 60)


def test_sign_later_with_a_key_that_signs_at_once_is_sign(session):
    """A software key has no thread of its own: ``sign_later`` signs now, with ``sign``'s rules (locked → refused,
    use restarts the idle timer)."""
    with pytest.raises(SessionLocked):
        session.sign_later(b"order")
    session.unlock(PASSWORD)
    session.clock.now += 9 * 60
    pending = session.sign_later(b"order")
    session.spy.opened[0].public_key.verify(pending.result(), b"order", ec.ECDSA(hashes.SHA256()))
    session.clock.now += 9 * 60  # 18 minutes after unlock, 9 after last use
    assert session.is_unlocked
