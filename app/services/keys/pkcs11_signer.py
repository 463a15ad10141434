"""A private key on a PKCS#11 token as a ``Signer``, and how the token is asked to sign (DESIGN §7, K5).

Mechanisms are always explicit (python-pkcs11 would default to SHA-512): ``SHA256_RSA_PKCS`` (falls back to
``RSA_PKCS`` over a DigestInfo), ``ECDSA_SHA256`` or -- where the token lacks it, as SoftHSM 2.6 does -- SHA-256 in
software and raw ``ECDSA``; the raw r||s is DER-encoded. Every token signature is verified with the public key before
it is returned (a faulty token must not produce a bad order).
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Future
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Mechanism
from pkcs11.util.ec import encode_ecdsa_signature

from .base import KeyAlgorithm, KeyRef, Signer, TokenError
from .pkcs11_tokens import Login

_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


class SigningStore(Protocol):
    """What a ``Pkcs11Signer`` needs from its store (``pkcs11_store.Pkcs11KeyStore``)."""

    _closed: bool

    def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...

    def _submit(self, fn: Any, *args: Any, **kwargs: Any) -> Future[Any]: ...

    def _w_sign(self, signer: Pkcs11Signer, data: bytes) -> bytes: ...

    def _w_close_signer(self, signer: Pkcs11Signer) -> None: ...


class Pkcs11Signer(Signer):
    """A private key on a token, usable while its logged-in session is open. Only the worker touches ``_key``."""

    def __init__(self, store: SigningStore, ref: KeyRef, login: Login, key: Any,
                 public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey) -> None:
        self._store = store
        self._ref = ref
        self._login: Login | None = login
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

    def sign_later(self, data: bytes) -> Future[bytes]:
        """``sign`` started, not waited for: the token signs on the module's worker thread (python-pkcs11 lets go
        of the GIL in C_Sign) while the caller works on; ``result()`` gives the signature, checked with the public
        key as ``sign``'s, or raises what ``sign`` would raise."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        return self._store._submit(self._store._w_sign, self, bytes(data))

    def close(self) -> None:
        if self._login is None:
            return
        if self._store._closed:  # the store already logged out and closed every session
            self._login = None
            self._key = None
            return
        self._store._run(self._store._w_close_signer, self)


def token_signature(key: Any, algorithm: KeyAlgorithm, mechanisms: frozenset, data: bytes) -> bytes:
    """Sign ``data`` (SHA-256) with a token key through the first mechanism the token offers; PKCS#11 errors are
    left to the caller, which knows the token to name in the message."""
    mechs = mechanisms
    if algorithm.is_rsa:
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
    return signature


def verify_token_signature(public_key: Any, signature: bytes, data: bytes) -> None:
    """A faulty token must not produce a bad order: its signature is checked with the public key."""
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise TokenError("The token produced a signature that does not verify; it was discarded.",
                         code="key.bad_token_signature") from exc


__all__ = ["Pkcs11Signer", "SigningStore", "token_signature", "verify_token_signature"]
