"""PKCS#11 token key store (python-pkcs11) -- DESIGN §7, K1, K4, K5.

* Tokens are found by serial and/or label, never by slot id (slot ids change between runs and readers).
* Key pairs are generated ON the token: private key sensitive, non-extractable, private, sign-only, with a random
  16-byte CKA_ID; the public key and the issued certificate are public objects under the same CKA_ID, so keys can be
  listed and certificates bound without the PIN.
* Mechanisms are always explicit (python-pkcs11 would default to SHA-512): ``SHA256_RSA_PKCS`` (falls back to
  ``RSA_PKCS`` over a DigestInfo), ``ECDSA_SHA256`` or -- where the token lacks it, as SoftHSM 2.6 does -- SHA-256 in
  software and raw ``ECDSA``; the raw r||s is DER-encoded. Every token signature is verified with the public key
  before it is returned (a faulty token must not produce a bad order).
* PIN-pad readers (CKF_PROTECTED_AUTHENTICATION_PATH) are logged in with ``PROTECTED_AUTH``: the PIN is typed on the
  reader and the ``secret`` argument is ignored.

Threading: the module is initialised with ``C_Initialize(NULL)`` (python-pkcs11), which tells the library the
application will not call it from several threads at once. So every PKCS#11 call for one module path runs on ONE
worker thread, shared by all ``Pkcs11KeyStore`` objects for that path (``_Module``); public methods marshal onto it and
wait. Login state is per application and token in PKCS#11 (logging in on one session logs in all; ``C_Logout`` on one
logs out all), so the login table lives on the same shared object: at most one logged-in session per token, reference
counted by the signers using it. A second unlock while the token is logged in is checked against an in-memory HMAC of
the PIN that opened the login (keyed with a random per-process key, dropped with the login) -- without that check any
PIN would "work" while another signer is open.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, CertificateType, KeyType, Mechanism, MechanismFlag, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11x
from pkcs11.util.ec import decode_ec_private_key, decode_ec_public_key, encode_ec_public_key
from pkcs11.util.ec import encode_ecdsa_signature, encode_named_curve_parameters
from pkcs11.util.rsa import decode_rsa_private_key, decode_rsa_public_key

from .base import (
    STORE_PKCS11,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    KeyStore,
    KeyStoreError,
    PinEntryCancelled,
    PinLocked,
    Signer,
    SignerClosed,
    TokenError,
    TokenIdentity,
    TokenNotFound,
    TokenRefused,
    TokenRemoved,
    UnsupportedKey,
    WrongPin,
    check_certificate_matches,
)
from .software import check_label

log = logging.getLogger(__name__)

T = TypeVar("T")

CKA_ID_BYTES = 16
_P256_PARAMS = encode_named_curve_parameters("secp256r1")
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


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


def _serial_text(token: Any) -> str:
    raw = token.serial
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    return str(raw).strip()


def _info_of(token: Any) -> TokenInfo:
    slot = token.slot
    try:
        slot_description = slot.slot_description.strip()
    except Exception:  # noqa: BLE001 - cosmetic only
        slot_description = ""
    return TokenInfo(
        manufacturer=token.manufacturer_id.strip(),
        model=token.model.strip(),
        serial=_serial_text(token),
        label=token.label.strip(),
        flags=int(token.flags),
        slot_description=slot_description,
    )


# ---------------------------------------------------------------------------------------------------------------------
# One worker thread + login table per module path
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Login:
    serial: str
    session: Any
    verifier: bytes | None  # HMAC of the PIN; None for PIN-pad logins
    mechanisms: frozenset
    users: int = 0


@dataclass(eq=False)
class _Module:
    path: str
    executor: ThreadPoolExecutor
    stores: int = 0
    lib: Any = None
    thread_id: int | None = None
    logins: dict[str, _Login] = field(default_factory=dict)
    pin_key: bytes = field(default_factory=lambda: os.urandom(32))


_MODULES: dict[str, _Module] = {}
_MODULES_LOCK = threading.Lock()


def _acquire_module(path: str) -> _Module:
    with _MODULES_LOCK:
        mod = _MODULES.get(path)
        if mod is None:
            mod = _Module(path=path, executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="pkcs11"))
            _MODULES[path] = mod
        mod.stores += 1
        return mod


def _release_module(mod: _Module) -> None:
    with _MODULES_LOCK:
        mod.stores -= 1
        if mod.stores > 0:
            return
        _MODULES.pop(mod.path, None)

    def drop_logins() -> None:
        for login in list(mod.logins.values()):
            _close_quietly(login.session)
        mod.logins.clear()

    mod.executor.submit(drop_logins).result()
    # The library itself stays loaded and initialised: python-pkcs11 caches it per path for the whole process.
    mod.executor.shutdown(wait=True)


def _close_quietly(session: Any) -> None:
    try:
        session.close()
    except Exception as exc:  # noqa: BLE001 - the token may be gone; the session is dead either way
        log.debug("closing token session failed: %s", type(exc).__name__)


# ---------------------------------------------------------------------------------------------------------------------
# Signer
# ---------------------------------------------------------------------------------------------------------------------


class Pkcs11Signer(Signer):
    """A private key on a token, usable while its logged-in session is open. Only the worker touches ``_key``."""

    def __init__(self, store: "Pkcs11KeyStore", ref: KeyRef, login: _Login, key: Any,
                 public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> None:
        self._store = store
        self._ref = ref
        self._login: _Login | None = login
        self._key = key
        self._public = public_key

    @property
    def key_ref(self) -> KeyRef:
        return self._ref

    @property
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        return self._public

    @property
    def closed(self) -> bool:
        return self._login is None

    def sign(self, data: bytes) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        return self._store._run(self._store._w_sign, self, bytes(data))

    def close(self) -> None:
        if self._login is None:
            return
        if self._store._closed:  # the store already logged out and closed every session
            self._login = None
            self._key = None
            return
        self._store._run(self._store._w_close_signer, self)


# ---------------------------------------------------------------------------------------------------------------------
# Store
# ---------------------------------------------------------------------------------------------------------------------


class Pkcs11KeyStore(KeyStore):
    """Keys on PKCS#11 tokens reached through the module at ``module_path``.

    ``token_label`` / ``token_serial`` choose the token used by ``generate_key`` / ``import_private_key`` and listed by
    ``list_keys``; with neither, the only initialised token is used (several → ``key.token_ambiguous``). Key
    references carry their token's serial, so ``open_signer`` finds the right token whatever the selection.
    ``disable_mechanisms`` makes the store behave as if the token lacked those mechanisms (to work around a broken
    driver, and to test the fall-backs).
    """

    kind = STORE_PKCS11

    def __init__(
        self,
        module_path: str,
        *,
        token_label: str | None = None,
        token_serial: str | None = None,
        disable_mechanisms: Iterable[Mechanism] = (),
    ) -> None:
        self.module_path = os.path.abspath(module_path)
        self.token_label = token_label
        self.token_serial = token_serial
        self._disabled = frozenset(disable_mechanisms)
        self._mod = _acquire_module(self.module_path)
        self._closed = False
        self._signers: weakref.WeakSet[Pkcs11Signer] = weakref.WeakSet()
        try:
            self._run(self._w_load)
        except BaseException:
            self.close()
            raise

    # -- marshalling --------------------------------------------------------------------------------------------------

    def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` on the module's worker thread and wait for it; PKCS#11 errors come back typed."""
        if self._closed:
            raise KeyStoreError("The token connection is closed.", code="key.store_closed")
        if threading.get_ident() == self._mod.thread_id:
            return fn(*args, **kwargs)
        return self._mod.executor.submit(fn, *args, **kwargs).result()

    def close(self) -> None:
        """Close this store's signers (logging out where it held the last use of a login) and its worker share."""
        if self._closed:
            return

        def close_signers() -> None:
            for signer in list(self._signers):
                self._w_close_signer(signer)

        try:
            self._run(close_signers)
        finally:
            self._closed = True
            _release_module(self._mod)

    def __enter__(self) -> "Pkcs11KeyStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------------------------------------

    def list_tokens(self, *, include_uninitialized: bool = False) -> list[TokenInfo]:
        infos = self._run(self._w_list_tokens)
        return [i for i in infos if include_uninitialized or i.initialized]

    def find_token(self, *, label: str | None = None, serial: str | None = None) -> TokenInfo:
        return self._run(self._w_find_token_info, label, serial)

    def list_keys(self) -> list[KeyRef]:
        return self._run(self._w_list_keys)

    def generate_key(self, *, algorithm: KeyAlgorithm, label: str, secret: str | None) -> KeyRef:
        label = check_label(label)
        return self._run(self._w_generate, algorithm, label, secret)

    def open_signer(self, ref: KeyRef, *, secret: str | None) -> Pkcs11Signer:
        self._check_ref(ref)
        return self._run(self._w_open_signer, ref, secret)

    def delete_key(self, ref: KeyRef, *, secret: str | None) -> None:
        self._check_ref(ref)
        self._run(self._w_delete, ref, secret)

    def public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        self._check_ref(ref)
        return self._run(self._w_public_key, ref)

    def store_certificate(self, ref: KeyRef, cert_der: bytes, *, secret: str | None = None) -> None:
        """Write the certificate under the key's CKA_ID (replacing older ones).

        Uses the open login if there is one, else logs in with ``secret`` if given, else a public read/write session
        (PKCS#11 allows public objects there; a token that insists on a login gives ``key.pin_required``).
        """
        self._check_ref(ref)
        check_certificate_matches(self.public_key(ref), cert_der)
        self._run(self._w_store_certificate, ref, cert_der, secret)

    def load_certificate(self, ref: KeyRef) -> bytes | None:
        self._check_ref(ref)
        return self._run(self._w_load_certificate, ref)

    def key_attributes(self, ref: KeyRef, *, secret: str | None) -> dict[str, bool]:
        """The private key's protection attributes (sensitive, extractable, local...) for the compliance view."""
        self._check_ref(ref)
        return self._run(self._w_key_attributes, ref, secret)

    def import_private_key(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, label: str,
                           secret: str | None, certificate_der: bytes | None = None) -> KeyRef:
        """Best effort: put an existing key on the token as sensitive and non-extractable (C_CreateObject).

        Tokens that refuse raise ``TokenRefused``. The key is then not 'generated on the token' (CKA_LOCAL false).
        """
        label = check_label(label)
        KeyAlgorithm.of_public_key(private_key)
        if certificate_der is not None:
            check_certificate_matches(private_key.public_key(), certificate_der)
        return self._run(self._w_import, private_key, label, secret, certificate_der)

    def logged_in_tokens(self) -> list[str]:
        """Serials of tokens this process holds a login on (for tests and the status bar)."""
        return self._run(lambda: sorted(self._mod.logins))

    # =================================================================================================================
    # Worker side: everything below runs on the module's worker thread only.
    # =================================================================================================================

    def _w_load(self) -> None:
        self._mod.thread_id = threading.get_ident()
        if self._mod.lib is not None:
            return
        try:
            self._mod.lib = pkcs11.lib(self.module_path)
        except (RuntimeError, OSError, p11x.PKCS11Error) as exc:
            raise KeyStoreError(
                f"The token driver '{self.module_path}' could not be loaded. Check the driver path in Settings.",
                code="key.module_not_loadable",
            ) from exc

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
        return [_info_of(t) for t in self._w_tokens()]

    def _w_find(self, *, label: str | None, serial: str | None, wanted: str | None = None) -> Any:
        matches = []
        for token in self._w_tokens():
            try:
                info = _info_of(token)
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
        return _info_of(self._w_find(label=label, serial=serial))

    def _w_selected_token(self) -> Any:
        return self._w_find(label=self.token_label, serial=self.token_serial)

    def _w_token_of(self, ref: KeyRef) -> Any:
        assert ref.token is not None
        return self._w_find(label=None, serial=ref.token.serial, wanted=ref.token.describe().replace("token ", ""))

    def _w_present(self, serial: str) -> bool:
        try:
            return any(_serial_text(t) == serial for t in self._w_tokens())
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

    def _w_login(self, token: Any, secret: str | None) -> _Login:
        info = _info_of(token)
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
                session = token.open(rw=True, user_pin=secret)
                verifier = self._w_pin_mac(secret)
            mechanisms = self._w_mechanisms(token)
        except p11x.UserAlreadyLoggedIn as exc:
            # Another part of this process logged in outside this store: we cannot check the PIN, so refuse.
            raise TokenError("The token is already unlocked by another program part. Lock it and try again.",
                             code="key.token_busy") from exc
        except p11x.PKCS11Error as exc:
            raise self._w_translate(exc, serial, info.identity) from exc
        login = _Login(serial=serial, session=session, verifier=verifier, mechanisms=mechanisms, users=1)
        self._mod.logins[serial] = login
        log.info("token serial=%s unlocked", serial)
        return login

    def _w_release(self, login: _Login) -> None:
        if self._mod.logins.get(login.serial) is not login:
            # Already dropped (token removed, connection lost) and its session closed then. Closing it again could
            # close an unrelated new session that was given the same handle number.
            return
        login.users -= 1
        if login.users > 0:
            return
        del self._mod.logins[login.serial]
        _close_quietly(login.session)
        log.info("token serial=%s locked", login.serial)

    def _w_drop_login(self, serial: str) -> None:
        login = self._mod.logins.pop(serial, None)
        if login is not None:
            login.users = 0
            _close_quietly(login.session)

    def _w_with_login(self, token: Any, secret: str | None, fn: Callable[[_Login], T]) -> T:
        login = self._w_login(token, secret)
        try:
            return fn(login)
        except p11x.PKCS11Error as exc:
            info = _info_of(token)
            raise self._w_translate(exc, info.serial, info.identity) from exc
        finally:
            self._w_release(login)

    def _w_with_public_session(self, token: Any, fn: Callable[[Any], T], *, rw: bool = False) -> T:
        info = _info_of(token)
        login = self._mod.logins.get(info.serial)
        try:
            if login is not None:
                return fn(login.session)
            session = token.open(rw=rw)
            try:
                return fn(session)
            finally:
                _close_quietly(session)
        except p11x.PKCS11Error as exc:
            raise self._w_translate(exc, info.serial, info.identity) from exc

    # -- objects --------------------------------------------------------------------------------------------------

    @staticmethod
    def _w_public_from_object(pub: Any) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        key_type = pub[Attribute.KEY_TYPE]
        if key_type == KeyType.RSA:
            n = int.from_bytes(pub[Attribute.MODULUS], "big")
            e = int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")
            return rsa.RSAPublicNumbers(e, n).public_key()
        if key_type == KeyType.EC:
            loaded = serialization.load_der_public_key(encode_ec_public_key(pub))
            return loaded  # type: ignore[return-value]
        raise UnsupportedKey("This token key is not an RSA or elliptic-curve key.")

    def _w_ref(self, token_identity: TokenIdentity, ckid: bytes, label: str,
               public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> KeyRef:
        return KeyRef(store=STORE_PKCS11, key_id=ckid.hex(), label=label,
                      algorithm=KeyAlgorithm.of_public_key(public_key), token=token_identity)

    def _w_keys_on(self, token: Any) -> list[KeyRef]:
        identity = _info_of(token).identity

        def collect(session: Any) -> list[KeyRef]:
            found: dict[bytes, KeyRef] = {}
            for pub in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                try:
                    ckid = bytes(pub[Attribute.ID])
                    ref = self._w_ref(identity, ckid, pub[Attribute.LABEL], self._w_public_from_object(pub))
                except (UnsupportedKey, ValueError, p11x.PKCS11Error) as exc:
                    log.debug("skipping token public key: %s", type(exc).__name__)
                    continue
                if ckid:
                    found.setdefault(ckid, ref)
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE}):
                try:
                    ckid = bytes(cert[Attribute.ID])
                    if not ckid or ckid in found:
                        continue
                    pk = x509.load_der_x509_certificate(bytes(cert[Attribute.VALUE])).public_key()
                    found[ckid] = self._w_ref(identity, ckid, cert[Attribute.LABEL], pk)  # type: ignore[arg-type]
                except (UnsupportedKey, ValueError, x509.InvalidVersion, p11x.PKCS11Error) as exc:
                    log.debug("skipping token certificate: %s", type(exc).__name__)
            return sorted(found.values(), key=lambda r: (r.label, r.key_id))

        return self._w_with_public_session(token, collect)

    def _w_list_keys(self) -> list[KeyRef]:
        if self.token_label is not None or self.token_serial is not None:
            return self._w_keys_on(self._w_selected_token())
        refs: list[KeyRef] = []
        for token in self._w_tokens():
            if _info_of(token).initialized:
                refs.extend(self._w_keys_on(token))
        return refs

    def _w_public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        token = self._w_token_of(ref)

        def read(session: Any) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
            for pub in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: ref.key_id_bytes}):
                return self._w_public_from_object(pub)
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                             Attribute.ID: ref.key_id_bytes}):
                return x509.load_der_x509_certificate(bytes(cert[Attribute.VALUE])).public_key()  # type: ignore
            raise KeyNotFound(f"The key '{ref.label}' is not on {ref.token.describe()}.")  # type: ignore[union-attr]

        return self._w_with_public_session(token, read)

    def _w_private(self, session: Any, ref: KeyRef) -> Any:
        try:
            return session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=ref.key_id_bytes)
        except p11x.NoSuchKey as exc:
            raise KeyNotFound(
                f"The key '{ref.label}' is not on {ref.token.describe()}."  # type: ignore[union-attr]
            ) from exc
        except p11x.MultipleObjectsReturned as exc:
            raise TokenError("The token holds several private keys with the same id.",
                             code="key.duplicate_id") from exc

    # -- generate / import ----------------------------------------------------------------------------------------

    def _w_generate(self, algorithm: KeyAlgorithm, label: str, secret: str | None) -> KeyRef:
        token = self._w_selected_token()
        identity = _info_of(token).identity
        ckid = os.urandom(CKA_ID_BYTES)

        def generate(login: _Login) -> KeyRef:
            session = login.session
            common = {Attribute.TOKEN: True, Attribute.ID: ckid, Attribute.LABEL: label}
            public_template = {**common, Attribute.PRIVATE: False, Attribute.VERIFY: True,
                               Attribute.ENCRYPT: False, Attribute.WRAP: False, Attribute.DERIVE: False}
            private_template = {**common, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                                Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.DECRYPT: False,
                                Attribute.UNWRAP: False, Attribute.DERIVE: False}
            caps = MechanismFlag.SIGN | MechanismFlag.VERIFY
            if algorithm.is_rsa:
                if Mechanism.RSA_PKCS_KEY_PAIR_GEN not in login.mechanisms:
                    raise TokenRefused("This token cannot generate RSA keys. Choose ECDSA P-256.")
                pub, priv = session.generate_keypair(
                    KeyType.RSA, algorithm.key_size, id=ckid, label=label, store=True, capabilities=caps,
                    mechanism=Mechanism.RSA_PKCS_KEY_PAIR_GEN,
                    public_template=public_template, private_template=private_template)
            else:
                if Mechanism.EC_KEY_PAIR_GEN not in login.mechanisms:
                    raise TokenRefused("This token cannot generate elliptic-curve keys. Choose RSA-2048.")
                public_template[Attribute.EC_PARAMS] = _P256_PARAMS
                pub, priv = session.generate_keypair(
                    KeyType.EC, None, id=ckid, label=label, store=True, capabilities=caps,
                    mechanism=Mechanism.EC_KEY_PAIR_GEN,
                    public_template=public_template, private_template=private_template)
            # Trust but verify: a token that ignored the template must not hold a CSOS key.
            if priv[Attribute.SENSITIVE] is not True or priv[Attribute.EXTRACTABLE] is not False:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token would not make the key non-extractable; the key was destroyed.")
            public_key = self._w_public_from_object(pub)
            ref = self._w_ref(identity, ckid, label, public_key)
            if ref.algorithm is not algorithm:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token generated a different kind of key than asked; it was destroyed.")
            return ref

        ref = self._w_with_login(token, secret, generate)
        log.info("token key generated: serial=%s id=%s algorithm=%s", identity.serial, ref.key_id,
                 algorithm.value)
        return ref

    def _w_import(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, label: str,
                  secret: str | None, certificate_der: bytes | None) -> KeyRef:
        token = self._w_selected_token()
        identity = _info_of(token).identity
        ckid = os.urandom(CKA_ID_BYTES)
        public_key = private_key.public_key()

        def do_import(login: _Login) -> KeyRef:
            session = login.session
            if isinstance(private_key, rsa.RSAPrivateKey):
                priv_attrs = decode_rsa_private_key(private_key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()), capabilities=MechanismFlag.SIGN)
                pub_attrs = decode_rsa_public_key(public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.PKCS1), capabilities=MechanismFlag.VERIFY)
            else:
                priv_attrs = decode_ec_private_key(private_key.private_bytes(
                    serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                    serialization.NoEncryption()))
                pub_attrs = decode_ec_public_key(public_key.public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
            common = {Attribute.TOKEN: True, Attribute.ID: ckid, Attribute.LABEL: label}
            priv_attrs.update(common)
            priv_attrs.update({Attribute.PRIVATE: True, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                               Attribute.SIGN: True, Attribute.DECRYPT: False, Attribute.UNWRAP: False})
            pub_attrs.update(common)
            pub_attrs.update({Attribute.PRIVATE: False, Attribute.VERIFY: True})
            pub_attrs.pop(Attribute.ENCRYPT, None)
            pub_attrs.pop(Attribute.WRAP, None)
            try:
                priv = session.create_object(priv_attrs)
            except (p11x.TemplateInconsistent, p11x.TemplateIncomplete, p11x.AttributeValueInvalid,
                    p11x.AttributeTypeInvalid, p11x.AttributeReadOnly, p11x.FunctionNotSupported,
                    p11x.FunctionFailed, p11x.GeneralError) as exc:
                raise TokenRefused(
                    f"The token refused to take this key ({type(exc).__name__}). Keep the key in a key file, or "
                    "generate a new key on the token and renew the certificate."
                ) from exc
            try:
                pub = session.create_object(pub_attrs)
            except p11x.PKCS11Error as exc:
                priv.destroy()
                raise TokenRefused(f"The token refused the public key ({type(exc).__name__}).") from exc
            if priv[Attribute.SENSITIVE] is not True or priv[Attribute.EXTRACTABLE] is not False:
                priv.destroy()
                pub.destroy()
                raise TokenRefused("The token would not protect the imported key; it was removed again.")
            ref = self._w_ref(identity, ckid, label, public_key)
            if certificate_der is not None:
                self._w_write_certificate(session, ref, certificate_der)
            return ref

        ref = self._w_with_login(token, secret, do_import)
        log.info("key imported onto token serial=%s id=%s", identity.serial, ref.key_id)
        return ref

    # -- certificates ---------------------------------------------------------------------------------------------

    def _w_write_certificate(self, session: Any, ref: KeyRef, cert_der: bytes) -> None:
        cert = x509.load_der_x509_certificate(cert_der)
        old = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: ref.key_id_bytes}))
        session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.ID: ref.key_id_bytes,
            Attribute.LABEL: ref.label,
            Attribute.SUBJECT: cert.subject.public_bytes(),
            Attribute.ISSUER: cert.issuer.public_bytes(),
            Attribute.SERIAL_NUMBER: asn1_core.Integer(cert.serial_number).dump(),
            Attribute.VALUE: cert_der,
        })
        for obj in old:  # replace only after the new one is safely written
            obj.destroy()

    def _w_store_certificate(self, ref: KeyRef, cert_der: bytes, secret: str | None) -> None:
        token = self._w_token_of(ref)
        info = _info_of(token)
        if info.serial not in self._mod.logins and secret is not None:
            self._w_with_login(token, secret, lambda login: self._w_write_certificate(login.session, ref, cert_der))
        else:
            try:
                self._w_with_public_session(token, lambda s: self._w_write_certificate(s, ref, cert_der), rw=True)
            except TokenError as exc:
                if exc.code != "key.token_session_lost":
                    raise
                raise KeyStoreError("The token needs its PIN to store the certificate.",
                                    code="key.pin_required") from exc
        log.info("certificate stored on token serial=%s id=%s", info.serial, ref.key_id)

    def _w_load_certificate(self, ref: KeyRef) -> bytes | None:
        token = self._w_token_of(ref)

        def read(session: Any) -> bytes | None:
            for cert in session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                             Attribute.ID: ref.key_id_bytes}):
                return bytes(cert[Attribute.VALUE])
            return None

        return self._w_with_public_session(token, read)

    # -- signing --------------------------------------------------------------------------------------------------

    def _w_open_signer(self, ref: KeyRef, secret: str | None) -> Pkcs11Signer:
        token = self._w_token_of(ref)
        login = self._w_login(token, secret)
        try:
            key = self._w_private(login.session, ref)
            public_key = self._w_public_key(ref)
            if KeyAlgorithm.of_public_key(public_key) is not ref.algorithm:
                raise KeyNotFound("The key on the token is not the one this reference describes.")
        except BaseException as exc:
            self._w_release(login)
            if isinstance(exc, p11x.PKCS11Error):
                raise self._w_translate(exc, login.serial, ref.token) from exc
            raise
        signer = Pkcs11Signer(self, ref, login, key, public_key)
        self._signers.add(signer)
        return signer

    def _w_close_signer(self, signer: Pkcs11Signer) -> None:
        login = signer._login
        signer._login = None
        signer._key = None
        if login is not None:
            self._w_release(login)

    def _w_sign(self, signer: Pkcs11Signer, data: bytes) -> bytes:
        login = signer._login
        key = signer._key
        if login is None or key is None:
            raise SignerClosed("The key is locked. Enter the PIN again to sign.")
        if self._mod.logins.get(login.serial) is not login:
            self._w_close_signer(signer)
            raise TokenError("The connection to the token was lost. Unlock the key again.",
                             code="key.token_session_lost")
        mechs = login.mechanisms
        try:
            if signer.key_ref.algorithm.is_rsa:
                if Mechanism.SHA256_RSA_PKCS in mechs:
                    signature = key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
                elif Mechanism.RSA_PKCS in mechs:
                    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(data).digest()
                    signature = key.sign(digest_info, mechanism=Mechanism.RSA_PKCS)
                else:
                    raise TokenError("The token offers no RSA PKCS#1 v1.5 signature mechanism.",
                                     code="key.mechanism_unsupported")
            else:
                if Mechanism.ECDSA_SHA256 in mechs:
                    raw = key.sign(data, mechanism=Mechanism.ECDSA_SHA256)
                elif Mechanism.ECDSA in mechs:
                    raw = key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
                else:
                    raise TokenError("The token offers no ECDSA signature mechanism.",
                                     code="key.mechanism_unsupported")
                signature = encode_ecdsa_signature(raw)
        except p11x.PKCS11Error as exc:
            error = self._w_translate(exc, login.serial, signer.key_ref.token)
            if isinstance(error, (TokenRemoved,)) or error.code == "key.token_session_lost":
                signer._login = None
                signer._key = None
            raise error from exc
        self._w_verify(signer.public_key, signature, data)
        return signature

    @staticmethod
    def _w_verify(public_key: Any, signature: bytes, data: bytes) -> None:
        try:
            if isinstance(public_key, rsa.RSAPublicKey):
                public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature as exc:
            raise TokenError("The token produced a signature that does not verify; it was discarded.",
                             code="key.bad_token_signature") from exc

    # -- delete / inspect -------------------------------------------------------------------------------------------

    def _w_delete(self, ref: KeyRef, secret: str | None) -> None:
        token = self._w_token_of(ref)

        def delete(login: _Login) -> None:
            objects = list(login.session.get_objects({Attribute.ID: ref.key_id_bytes}))
            if not any(o[Attribute.CLASS] == ObjectClass.PRIVATE_KEY for o in objects):
                raise KeyNotFound(f"The key '{ref.label}' is not on the token.")
            for obj in objects:
                obj.destroy()

        self._w_with_login(token, secret, delete)
        log.info("token key deleted: serial=%s id=%s", ref.token.serial if ref.token else "?", ref.key_id)

    def _w_key_attributes(self, ref: KeyRef, secret: str | None) -> dict[str, bool]:
        token = self._w_token_of(ref)
        names = {
            "sensitive": Attribute.SENSITIVE,
            "extractable": Attribute.EXTRACTABLE,
            "always_sensitive": Attribute.ALWAYS_SENSITIVE,
            "never_extractable": Attribute.NEVER_EXTRACTABLE,
            "local": Attribute.LOCAL,
            "private": Attribute.PRIVATE,
            "sign": Attribute.SIGN,
            "decrypt": Attribute.DECRYPT,
        }

        def read(login: _Login) -> dict[str, bool]:
            key = self._w_private(login.session, ref)
            out = {}
            for name, attr in names.items():
                try:
                    out[name] = bool(key[attr])
                except p11x.AttributeTypeInvalid:
                    continue
            return out

        return self._w_with_login(token, secret, read)
