"""PKCS#11 tokens: the module's worker thread, token discovery, logins and error translation (DESIGN §7, K4).

* Tokens are found by serial and/or label, never by slot id (slot ids change between runs and readers).
* PIN-pad readers (CKF_PROTECTED_AUTHENTICATION_PATH) are logged in with ``PROTECTED_AUTH``: the PIN is typed on the
  reader and the ``secret`` argument is ignored.

Threading: the module is initialised with ``C_Initialize(NULL)`` (python-pkcs11), which tells the library the
application will not call it from several threads at once. So every PKCS#11 call for one module path runs on ONE
worker thread, shared by all ``Pkcs11KeyStore`` objects for that path (``TokenModule``); public methods marshal onto
it and wait. Login state is per application and token in PKCS#11 (logging in on one session logs in all; ``C_Logout``
on one logs out all), so the login table lives on the same shared object: at most one logged-in session per token,
reference counted by the signers using it. A second unlock while the token is logged in is checked against an
in-memory HMAC of the PIN that opened the login (keyed with a random per-process key, dropped with the login) --
without that check any PIN would "work" while another signer is open.

``Pkcs11Tokens`` is the base of ``pkcs11_store.Pkcs11KeyStore``: the plumbing every key operation runs on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from pkcs11 import TokenFlag
from pkcs11 import exceptions as p11x

from . import pkcs11_driver
from .base import (
    KeyNotFound,
    KeyRef,
    KeyStoreError,
    PinEntryCancelled,
    PinLengthInvalid,
    PinLocked,
    PinNotInitialized,
    TokenError,
    TokenIdentity,
    TokenNotFound,
    TokenRefused,
    TokenRemoved,
    WrongPin,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class TokenInfo:
    """A token as a person sees it in the 'choose your token' list."""

    manufacturer: str
    model: str
    serial: str
    label: str
    flags: int
    slot_description: str

    @property
    def identity(self) -> TokenIdentity:
        return TokenIdentity(manufacturer=self.manufacturer, model=self.model, serial=self.serial, label=self.label)

    @property
    def protected_authentication_path(self) -> bool:
        """True for PIN-pad readers: the PIN is entered on the reader, not in CSOS Desk."""
        return bool(self.flags & TokenFlag.PROTECTED_AUTHENTICATION_PATH)

    @property
    def initialized(self) -> bool:
        return bool(self.flags & TokenFlag.TOKEN_INITIALIZED)

    @property
    def write_protected(self) -> bool:
        return bool(self.flags & TokenFlag.WRITE_PROTECTED)

    @property
    def pin_count_low(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_COUNT_LOW)

    @property
    def pin_final_try(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_FINAL_TRY)

    @property
    def pin_locked(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_LOCKED)

    @property
    def pin_to_be_changed(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_TO_BE_CHANGED)

    @property
    def pin_initialized(self) -> bool:
        return bool(self.flags & TokenFlag.USER_PIN_INITIALIZED)

    @property
    def pin_notice(self) -> str:
        """What the person must know before typing the PIN (empty when nothing): read from the token's flags."""
        if not self.initialized:
            return ""
        if self.pin_locked:
            return PIN_LOCKED_TEXT
        if not self.pin_initialized:
            return PIN_NOT_INITIALIZED_TEXT
        if self.pin_final_try:
            return FINAL_TRY_TEXT
        if self.pin_count_low:
            return COUNT_LOW_TEXT
        return ""


PIN_LOCKED_TEXT = ("The PIN of this token is locked after too many wrong PINs. It must be unblocked with the token's "
                   "administrator (SO) PIN or tool before it can be used.")
PIN_NOT_INITIALIZED_TEXT = ("This token has no PIN for its user yet, so nothing can unlock it. Set the user PIN with "
                            "the token's own tool (its 'set user PIN' or 'initialise PIN' step), then try again.")
FINAL_TRY_TEXT = ("One try left before the token locks. Type the PIN carefully; if you are not sure of it, stop and "
                  "ask whoever manages the token.")
COUNT_LOW_TEXT = "A wrong PIN was typed on this token; it locks after a few more wrong tries."


def serial_text(token: Any) -> str:
    raw = token.serial
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return str(raw).strip()


def info_of(token: Any) -> TokenInfo:
    slot = token.slot
    try:
        slot_description = slot.slot_description.strip()
    except Exception:  # noqa: BLE001 - cosmetic only
        slot_description = ""
    return TokenInfo(
        manufacturer=token.manufacturer_id.strip(),
        model=token.model.strip(),
        serial=serial_text(token),
        label=token.label.strip(),
        flags=int(token.flags),
        slot_description=slot_description,
    )


# ---------------------------------------------------------------------------------------------------------------------
# One worker thread + login table per module path
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Login:
    serial: str
    session: Any
    verifier: bytes | None  # HMAC of the PIN; None for PIN-pad logins
    mechanisms: frozenset
    users: int = 0


@dataclass(eq=False)
class TokenModule:
    path: str
    executor: ThreadPoolExecutor
    stores: int = 0
    lib: Any = None
    thread_id: int | None = None
    logins: dict[str, Login] = field(default_factory=dict)
    pin_key: bytes = field(default_factory=lambda: os.urandom(32))


_MODULES: dict[str, TokenModule] = {}
_MODULES_LOCK = threading.Lock()


def acquire_module(path: str) -> TokenModule:
    with _MODULES_LOCK:
        mod = _MODULES.get(path)
        if mod is None:
            mod = TokenModule(path=path, executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkcs11"))
            _MODULES[path] = mod
        mod.stores += 1
        return mod


def release_module(mod: TokenModule) -> None:
    with _MODULES_LOCK:
        mod.stores -= 1
        if mod.stores > 0:
            return
        _MODULES.pop(mod.path, None)

    def drop_logins() -> None:
        for login in list(mod.logins.values()):
            close_quietly(login.session)
        mod.logins.clear()

    mod.executor.submit(drop_logins).result()
    # The library itself stays loaded and initialised: python-pkcs11 caches it per path for the whole process.
    mod.executor.shutdown(wait=True)


def close_quietly(session: Any) -> None:
    try:
        session.close()
    except Exception as exc:  # noqa: BLE001 - the token may be gone; the session is dead either way
        log.debug("closing token session failed: %s", type(exc).__name__)


# ---------------------------------------------------------------------------------------------------------------------
# Worker-side token plumbing
# ---------------------------------------------------------------------------------------------------------------------


class Pkcs11Tokens:
    """What every PKCS#11 key operation runs on: the shared worker thread, finding tokens, logins, typed errors.

    The subclass sets the attributes below in its ``__init__``; the ``_w_`` methods run on the worker thread only.
    """

    module_path: str
    token_label: str | None
    token_serial: str | None
    _mod: TokenModule
    _closed: bool
    _disabled: frozenset

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the module's worker thread and wait for it; PKCS#11 errors come back typed."""
        if self._closed:
            raise KeyStoreError("The token connection is closed.", code="key.store_closed")
        if threading.get_ident() == self._mod.thread_id:
            return fn(*args, **kwargs)
        return self._mod.executor.submit(fn, *args, **kwargs).result()

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        """``_run`` without the wait: ``fn`` is queued on the worker thread (behind whatever is queued there), and the
        future gives its result or its exception. On the worker thread itself it runs at once."""
        if self._closed:
            raise KeyStoreError("The token connection is closed.", code="key.store_closed")
        if threading.get_ident() != self._mod.thread_id:
            return self._mod.executor.submit(fn, *args, **kwargs)
        done: Future[T] = Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks the future, as the executor would
            done.set_exception(exc)
        return done

    def _w_load(self) -> None:
        self._mod.thread_id = threading.get_ident()
        if self._mod.lib is not None:
            return
        if not os.path.exists(self.module_path):
            raise pkcs11_driver.load_problem(self.module_path, "missing")
        try:
            self._mod.lib = pkcs11.lib(self.module_path)
        except p11x.PKCS11Error as exc:
            if type(exc) is p11x.PKCS11Error:  # dlopen failed or no C_GetFunctionList: not a PKCS#11 library
                raise pkcs11_driver.load_problem(self.module_path, str(exc)) from exc
            raise pkcs11_driver.initialize_problem(self.module_path, type(exc).__name__) from exc
        except (RuntimeError, OSError) as exc:
            raise pkcs11_driver.load_problem(self.module_path, str(exc)) from exc

    def _w_tokens(self) -> list[Any]:
        """All present tokens. Per slot, so one bad slot does not hide the others: after a token is deleted
        SoftHSM answers C_GetTokenInfo on its old slot with CKR_GENERAL_ERROR, which makes python-pkcs11's
        ``lib.get_tokens()`` raise for every caller."""
        try:
            slots = self._mod.lib.get_slots(token_present=True)
        except p11x.PKCS11Error as exc:
            raise TokenError(f"The token driver could not list its readers ({type(exc).__name__}).") from exc
        tokens = []
        for slot in slots:
            try:
                tokens.append(slot.get_token())
            except p11x.PKCS11Error as exc:
                log.debug("skipping slot without a usable token: %s", type(exc).__name__)
        return tokens

    def _w_list_tokens(self) -> list[TokenInfo]:
        return [info_of(t) for t in self._w_tokens()]

    def _w_find(self, *, label: str | None, serial: str | None, wanted: str | None = None) -> Any:
        matches = []
        for token in self._w_tokens():
            try:
                info = info_of(token)
            except p11x.PKCS11Error:
                continue
            if not info.initialized:
                continue
            if serial is not None and info.serial != serial:
                continue
            if label is not None and info.label != label:
                continue
            matches.append(token)
        if not matches:
            parts = [f"'{label}'" if label else "", f"serial {serial}" if serial else ""]
            what = wanted or " ".join(p for p in parts if p)
            text = f"Insert the token {what}: it was not found in any reader." if what else "Insert a token."
            raise TokenNotFound(text)
        if len(matches) > 1:
            raise TokenNotFound(
                "Several tokens match. Choose the token by its serial number.", code="key.token_ambiguous"
            )
        return matches[0]

    def _w_find_token_info(self, label: str | None, serial: str | None) -> TokenInfo:
        return info_of(self._w_find(label=label, serial=serial))

    def _w_selected_token(self) -> Any:
        return self._w_find(label=self.token_label, serial=self.token_serial)

    def _w_token_of(self, ref: KeyRef) -> Any:
        assert ref.token is not None
        return self._w_find(label=None, serial=ref.token.serial, wanted=ref.token.describe().replace("token ", ""))

    def _w_present(self, serial: str) -> bool:
        try:
            return any(serial_text(t) == serial for t in self._w_tokens())
        except Exception:  # noqa: BLE001 - a driver that cannot even list is as good as gone
            return False

    def _w_mechanisms(self, token: Any) -> frozenset:
        return frozenset(m for m in token.slot.get_mechanisms() if m not in self._disabled)

    # -- errors ---------------------------------------------------------------------------------------------------

    def _w_translate(self, exc: BaseException, serial: str | None, identity: TokenIdentity | None = None) -> KeyStoreError:
        if isinstance(exc, KeyStoreError):
            return exc
        name = identity.describe() if identity else "the token"
        if isinstance(exc, (p11x.PinIncorrect, p11x.PinInvalid, p11x.PinLenRange)):
            return WrongPin("The PIN is not correct.")
        if isinstance(exc, p11x.PinLocked):
            return PinLocked(
                f"The PIN of {name} is locked after too many wrong PINs. It must be unblocked with the token's "
                "administrator (SO) PIN or tool before it can be used."
            )
        if isinstance(exc, p11x.UserPinNotInitialized):
            return PinNotInitialized(PIN_NOT_INITIALIZED_TEXT)
        if isinstance(exc, p11x.PinExpired):
            return KeyStoreError(f"The PIN of {name} has expired; change it with the token's tool.",
                                 code="key.pin_expired")
        if isinstance(exc, p11x.FunctionCancelled):
            return PinEntryCancelled("PIN entry was cancelled on the reader.")
        if serial is not None and not self._w_present(serial):
            self._w_drop_login(serial)
            return TokenRemoved(f"{name[0].upper()}{name[1:]} was removed. Insert it and unlock again.")
        if isinstance(exc, (p11x.TokenNotPresent, p11x.DeviceRemoved, p11x.TokenNotRecognised)):
            if serial is not None:
                self._w_drop_login(serial)
            return TokenRemoved(f"{name[0].upper()}{name[1:]} was removed. Insert it and unlock again.")
        if isinstance(exc, (p11x.SessionHandleInvalid, p11x.SessionClosed, p11x.UserNotLoggedIn)):
            if serial is not None:
                self._w_drop_login(serial)
            return TokenError(f"The connection to {name} was lost. Unlock the key again.",
                              code="key.token_session_lost")
        if isinstance(exc, (p11x.ObjectHandleInvalid, p11x.KeyHandleInvalid, p11x.NoSuchKey)):
            return KeyNotFound(f"The key is no longer on {name}.")
        if isinstance(exc, (p11x.MechanismInvalid, p11x.MechanismParamInvalid, p11x.FunctionNotSupported)):
            return TokenError(f"{name[0].upper()}{name[1:]} cannot do this kind of signature.",
                              code="key.mechanism_unsupported")
        if isinstance(exc, p11x.TokenWriteProtected):
            return TokenRefused(f"{name[0].upper()}{name[1:]} is write-protected.")
        if isinstance(exc, (p11x.DeviceMemory, p11x.HostMemory)):
            return TokenError(f"{name[0].upper()}{name[1:]} is full.", code="key.token_full")
        return TokenError(f"The token reported an error ({type(exc).__name__}).")

    # -- logins ---------------------------------------------------------------------------------------------------

    def _w_pin_mac(self, secret: str) -> bytes:
        return hmac.new(self._mod.pin_key, secret.encode("utf-8"), hashlib.sha256).digest()

    def _w_login(self, token: Any, secret: str | None) -> Login:
        info = info_of(token)
        serial = info.serial
        login = self._mod.logins.get(serial)
        if login is not None:
            if login.verifier is not None:
                if not isinstance(secret, str) or not hmac.compare_digest(login.verifier, self._w_pin_mac(secret)):
                    raise WrongPin("The PIN is not correct.")
            login.users += 1
            return login
        try:
            if info.protected_authentication_path:
                log.info("logging in to token serial=%s on its PIN pad", serial)
                session = token.open(rw=True, user_pin=pkcs11.PROTECTED_AUTH)
                verifier = None
            else:
                if not isinstance(secret, str) or not secret:
                    raise WrongPin("Enter the PIN of the token.")
                self._w_check_before_login(token, info, secret)
                session = token.open(rw=True, user_pin=secret)
                verifier = self._w_pin_mac(secret)
            mechanisms = self._w_mechanisms(token)
        except p11x.UserAlreadyLoggedIn as exc:
            # Another part of this process logged in outside this store: we cannot check the PIN, so refuse.
            raise TokenError("The token is already unlocked by another program part. Lock it and try again.",
                             code="key.token_busy") from exc
        except p11x.PKCS11Error as exc:
            error = self._w_translate(exc, serial, info.identity)
            if type(error) is WrongPin:
                error = self._w_after_wrong_pin(token, error)
            raise error from exc
        login = Login(serial=serial, session=session, verifier=verifier, mechanisms=mechanisms, users=1)
        self._mod.logins[serial] = login
        log.info("token serial=%s unlocked", serial)
        return login

    def _w_check_before_login(self, token: Any, info: TokenInfo, secret: str) -> None:
        """What can be refused without using one of the token's tries: a locked PIN, no user PIN, a PIN whose
        length the token cannot accept (its limits come from C_GetTokenInfo, see ``pkcs11_driver.pin_limits``)."""
        if info.pin_locked:
            raise PinLocked(PIN_LOCKED_TEXT)
        if info.initialized and not info.pin_initialized:
            raise PinNotInitialized(PIN_NOT_INITIALIZED_TEXT)
        limits = pkcs11_driver.pin_limits(self.module_path, token.slot.slot_id)
        problem = limits.check(secret) if limits is not None else None
        if problem:
            raise PinLengthInvalid(problem)

    def _w_after_wrong_pin(self, token: Any, error: KeyStoreError) -> KeyStoreError:
        """A wrong PIN: read the token's flags again and say how close it is to locking."""
        try:
            fresh = info_of(token.slot.get_token())
        except p11x.PKCS11Error:
            return error
        if fresh.pin_locked:
            return PinLocked(PIN_LOCKED_TEXT)
        if fresh.pin_final_try or fresh.pin_count_low:
            return WrongPin(f"{error.message} {fresh.pin_notice}")
        return error

    def _w_release(self, login: Login) -> None:
        if self._mod.logins.get(login.serial) is not login:
            # Already dropped (token removed, connection lost) and its session closed then. Closing it again could
            # close an unrelated new session that was given the same handle number.
            return
        login.users -= 1
        if login.users > 0:
            return
        del self._mod.logins[login.serial]
        close_quietly(login.session)
        log.info("token serial=%s locked", login.serial)

    def _w_drop_login(self, serial: str) -> None:
        login = self._mod.logins.pop(serial, None)
        if login is not None:
            login.users = 0
            close_quietly(login.session)

    def _w_with_login(self, token: Any, secret: str | None, fn: Callable[[Login], T]) -> T:
        login = self._w_login(token, secret)
        try:
            return fn(login)
        except p11x.PKCS11Error as exc:
            info = info_of(token)
            raise self._w_translate(exc, info.serial, info.identity) from exc
        finally:
            self._w_release(login)

    def _w_with_public_session(self, token: Any, fn: Callable[[Any], T], *, rw: bool = False) -> T:
        info = info_of(token)
        login = self._mod.logins.get(info.serial)
        try:
            if login is not None:
                return fn(login.session)
            session = token.open(rw=rw)
            try:
                return fn(session)
            finally:
                close_quietly(session)
        except p11x.PKCS11Error as exc:
            raise self._w_translate(exc, info.serial, info.identity) from exc


__all__ = ["Login", "Pkcs11Tokens", "TokenInfo", "TokenModule", "acquire_module", "close_quietly", "info_of",
           "release_module", "serial_text"]
