"""Private keys: software key files and PKCS#11 tokens behind one ``KeyStore`` / ``Signer`` protocol (DESIGN §7).

The PKCS#11 store is imported lazily (``from app.services.keys.pkcs11_store import Pkcs11KeyStore``) so that code
that only needs key files does not load python-pkcs11.
"""

from .base import (
    SIGNATURE_SHA256_ECDSA,
    SIGNATURE_SHA256_RSA,
    STORE_PKCS11,
    STORE_SOFTWARE,
    CertificateError,
    CertificateNoMatchingKey,
    CorruptKeyFile,
    ExportNotAcknowledged,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    KeyStore,
    KeyStoreError,
    PinEntryCancelled,
    PinLocked,
    SessionLocked,
    Signer,
    SignerClosed,
    TokenError,
    TokenIdentity,
    TokenNotFound,
    TokenRefused,
    TokenRemoved,
    UnsupportedKey,
    WeakPassword,
    WrongPassword,
    WrongPin,
)
from .csr import build_csr
from .passwords import check_password, password_problems
from .session import IDLE_TIMEOUT_SECONDS, SigningSession
from .software import SoftwareKeyStore

__all__ = [
    "IDLE_TIMEOUT_SECONDS",
    "SIGNATURE_SHA256_ECDSA",
    "SIGNATURE_SHA256_RSA",
    "STORE_PKCS11",
    "STORE_SOFTWARE",
    "CertificateError",
    "CertificateNoMatchingKey",
    "CorruptKeyFile",
    "ExportNotAcknowledged",
    "KeyAlgorithm",
    "KeyNotFound",
    "KeyRef",
    "KeyStore",
    "KeyStoreError",
    "PinEntryCancelled",
    "PinLocked",
    "SessionLocked",
    "Signer",
    "SignerClosed",
    "SigningSession",
    "SoftwareKeyStore",
    "TokenError",
    "TokenIdentity",
    "TokenNotFound",
    "TokenRefused",
    "TokenRemoved",
    "UnsupportedKey",
    "WeakPassword",
    "WrongPassword",
    "WrongPin",
    "build_csr",
    "check_password",
    "password_problems",
]
