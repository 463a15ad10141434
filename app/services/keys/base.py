"""One key-store / signer protocol for software key files and PKCS#11 tokens (DESIGN §2, §7).

Everything above this module (CSR building, CMS signing, the signing session, the UI) talks to ``KeyStore`` and
``Signer`` only and never learns whether the key lives in an encrypted file or on a token.

Rules every implementation follows:

* Secrets (password / PIN) are passed per call as the keyword ``secret`` and never kept by the store after the call
  that needed them (K1, K4). They never appear in an error message or a log record.
* Signatures are always over SHA-256 of the data: RSA PKCS#1 v1.5 (``sha256_rsa``) or DER-encoded ECDSA
  (``sha256_ecdsa``) -- the FIPS-approved set of K5.
* Failures are typed ``KeyStoreError`` subclasses with stable codes; no raw library exception escapes.
"""

from __future__ import annotations

import enum
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from app.errors import CsosError

# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


class KeyStoreError(CsosError):
    """Base of every key / token failure."""

    code = "key.error"


class WrongPassword(KeyStoreError):
    code = "key.wrong_password"


class WrongPin(KeyStoreError):
    code = "key.wrong_pin"


class PinLocked(KeyStoreError):
    code = "key.pin_locked"


class PinEntryCancelled(KeyStoreError):
    """The holder cancelled PIN entry on a PIN-pad reader (or it timed out)."""

    code = "key.pin_cancelled"


class WeakPassword(KeyStoreError):
    """A new password broke a rule; ``reason`` names the rule (``too_short``, ``common`` ...)."""

    code = "key.weak_password"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class CorruptKeyFile(KeyStoreError):
    code = "key.corrupt_file"


class KeyNotFound(KeyStoreError):
    code = "key.not_found"


class TokenNotFound(KeyStoreError):
    code = "key.token_not_found"


class TokenRemoved(KeyStoreError):
    code = "key.token_removed"


class TokenError(KeyStoreError):
    """The token or its driver reported a failure we have no more specific name for."""

    code = "key.token_error"


class PinNotInitialized(KeyStoreError):
    """The token was set up without a user PIN: nothing can unlock it until its tool sets one."""

    code = "key.pin_not_initialized"


class PinLengthInvalid(WrongPin):
    """The typed PIN is shorter or longer than the token allows; refused BEFORE login, so no try is used."""

    code = "key.pin_length"


class TokenDriverProblem(KeyStoreError):
    """The token driver could not be used; the subclass names the cause and the message the fix."""

    code = "key.module_not_loadable"

    def __init__(self, message: str, *, group: str | None = None, service: str | None = None) -> None:
        super().__init__(message)
        self.group = group
        self.service = service


class TokenDriverMissing(TokenDriverProblem):
    code = "key.driver_missing"


class TokenDriverInvalid(TokenDriverProblem):
    code = "key.driver_not_pkcs11"


class TokenServiceStopped(TokenDriverProblem):
    code = "key.token_service_stopped"


class TokenAccessDenied(TokenDriverProblem):
    code = "key.token_group_missing"


class TokenDriverFailed(TokenDriverProblem):
    code = "key.driver_failed"


class TokenRefused(KeyStoreError):
    """The token would not do what was asked (e.g. refuses to import a private key)."""

    code = "key.token_refused"


class UnsupportedKey(KeyStoreError):
    code = "key.unsupported_algorithm"


class SessionLocked(KeyStoreError):
    code = "key.session_locked"


class SignerClosed(KeyStoreError):
    code = "key.signer_closed"


class ExportNotAcknowledged(KeyStoreError):
    code = "key.export_not_acknowledged"


class CertificateError(KeyStoreError):
    code = "certificate.unreadable"


class CertificateNoMatchingKey(CertificateError):
    code = "certificate.no_matching_key"


# ---------------------------------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------------------------------

SIGNATURE_SHA256_RSA = "sha256_rsa"
SIGNATURE_SHA256_ECDSA = "sha256_ecdsa"


class KeyAlgorithm(enum.Enum):
    """The key types K5 allows."""

    RSA_2048 = "rsa_2048"
    RSA_3072 = "rsa_3072"
    EC_P256 = "ec_p256"

    @property
    def is_rsa(self) -> bool:
        return self in (KeyAlgorithm.RSA_2048, KeyAlgorithm.RSA_3072)

    @property
    def key_size(self) -> int:
        return {"rsa_2048": 2048, "rsa_3072": 3072, "ec_p256": 256}[self.value]

    @property
    def signature_algorithm(self) -> str:
        return SIGNATURE_SHA256_RSA if self.is_rsa else SIGNATURE_SHA256_ECDSA

    @classmethod
    def of_public_key(cls, public_key: Any) -> "KeyAlgorithm":
        """The algorithm of a cryptography public (or private) key; ``UnsupportedKey`` outside K5."""
        if isinstance(public_key, (rsa.RSAPublicKey, rsa.RSAPrivateKey)):
            if public_key.key_size == 2048:
                return cls.RSA_2048
            if public_key.key_size == 3072:
                return cls.RSA_3072
            raise UnsupportedKey(
                f"This is an RSA-{public_key.key_size} key. CSOS Desk uses RSA-2048, RSA-3072 or ECDSA P-256 keys only.",
            )
        if isinstance(public_key, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey)):
            if isinstance(public_key.curve, ec.SECP256R1):
                return cls.EC_P256
            raise UnsupportedKey(
                f"This is an elliptic-curve key on {public_key.curve.name}. CSOS Desk uses ECDSA P-256 only.",
            )
        raise UnsupportedKey("This key type is not allowed for CSOS (RSA-2048/3072 or ECDSA P-256 only).")


STORE_SOFTWARE = "software"
STORE_PKCS11 = "pkcs11"


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """What identifies a token to a person and to the program: 'token <label>, serial <serial>'."""

    manufacturer: str
    model: str
    serial: str
    label: str

    def describe(self) -> str:
        return f"token '{self.label}' (serial {self.serial}, {self.manufacturer} {self.model})".strip()


@dataclass(frozen=True, slots=True)
class KeyRef:
    """A pointer to a key, safe to store in the database (no secrets).

    ``key_id`` is lower-case hex: the file stem for software keys, the CKA_ID for token keys.
    """

    store: str
    key_id: str
    label: str
    algorithm: KeyAlgorithm
    token: TokenIdentity | None = None

    def __post_init__(self) -> None:
        if self.store not in (STORE_SOFTWARE, STORE_PKCS11):
            raise ValueError(f"unknown key store kind {self.store!r}")
        if self.store == STORE_PKCS11 and self.token is None:
            raise ValueError("a token key reference needs the token identity")
        bytes.fromhex(self.key_id)  # raises ValueError if not hex

    @property
    def key_id_bytes(self) -> bytes:
        return bytes.fromhex(self.key_id)

    def describe(self) -> str:
        where = "key file on this computer" if self.token is None else self.token.describe()
        return f"'{self.label}' ({self.algorithm.name.replace('_', '-')}, {where})"

    def to_json(self) -> str:
        data: dict[str, Any] = {
            "store": self.store,
            "key_id": self.key_id,
            "label": self.label,
            "algorithm": self.algorithm.value,
        }
        if self.token is not None:
            data["token"] = {
                "manufacturer": self.token.manufacturer,
                "model": self.token.model,
                "serial": self.token.serial,
                "label": self.token.label,
            }
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "KeyRef":
        try:
            data = json.loads(text)
            token = data.get("token")
            return cls(
                store=data["store"],
                key_id=data["key_id"],
                label=data["label"],
                algorithm=KeyAlgorithm(data["algorithm"]),
                token=TokenIdentity(**token) if token else None,
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError("The stored key reference is unreadable.", code="key.bad_reference") from exc


# ---------------------------------------------------------------------------------------------------------------------
# Protocols
# ---------------------------------------------------------------------------------------------------------------------


class Signer(ABC):
    """An unlocked private key. Close it as soon as it is not needed (``with`` works)."""

    @property
    @abstractmethod
    def key_ref(self) -> KeyRef: ...

    @property
    @abstractmethod
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey: ...

    @property
    def signature_algorithm(self) -> str:
        """``sha256_rsa`` or ``sha256_ecdsa``."""
        return self.key_ref.algorithm.signature_algorithm

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """Signature over SHA-256(data): PKCS#1 v1.5 for RSA, DER ECDSA-Sig-Value for EC."""

    @abstractmethod
    def close(self) -> None:
        """Drop the key object / token session. Idempotent."""

    @property
    @abstractmethod
    def closed(self) -> bool: ...

    def as_private_key(self) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        """A cryptography private-key object whose ``sign`` goes to this signer (SHA-256 only).

        Lets ``x509.CertificateSigningRequestBuilder().sign(key, hashes.SHA256())`` and similar builders work the
        same for files and tokens. Everything that would reveal the private key raises.
        """
        if self.key_ref.algorithm.is_rsa:
            return _DelegatingRsaKey(self)
        return _DelegatingEcKey(self)

    def __enter__(self) -> "Signer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class KeyStore(ABC):
    """Where private keys live. Implementations: ``SoftwareKeyStore``, ``Pkcs11KeyStore``."""

    kind: ClassVar[str]

    @abstractmethod
    def list_keys(self) -> list[KeyRef]:
        """Keys this store holds, without asking for a secret."""

    @abstractmethod
    def generate_key(self, *, algorithm: KeyAlgorithm, label: str, secret: str | None) -> KeyRef:
        """Create a new key pair. For files ``secret`` is the new password (checked against the password rules)."""

    @abstractmethod
    def open_signer(self, ref: KeyRef, *, secret: str | None) -> Signer: ...

    @abstractmethod
    def delete_key(self, ref: KeyRef, *, secret: str | None) -> None:
        """Destroy the key (and its certificate). Needs the secret: only the holder may destroy the key."""

    @abstractmethod
    def public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        """The public key, without a secret (used to bind issued certificates to keys)."""

    @abstractmethod
    def store_certificate(self, ref: KeyRef, cert_der: bytes) -> None:
        """Keep the issued certificate with its key (replaces an older one). Refuses a certificate for another key."""

    @abstractmethod
    def load_certificate(self, ref: KeyRef) -> bytes | None:
        """The certificate kept with the key (DER), or None."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (threads, sessions)."""

    def _check_ref(self, ref: KeyRef) -> None:
        if ref.store != self.kind:
            raise KeyNotFound(f"The key {ref.describe()} is not kept in this key store.")


def check_certificate_matches(public_key: Any, cert_der: bytes) -> None:
    """Raise ``CertificateNoMatchingKey`` unless the certificate carries ``public_key``."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    try:
        cert = x509.load_der_x509_certificate(cert_der)
        cert_pub = cert.public_key()
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateError("The certificate could not be read (not a DER X.509 certificate).") from exc
    spki = PublicFormat.SubjectPublicKeyInfo
    if cert_pub.public_bytes(Encoding.DER, spki) != public_key.public_bytes(Encoding.DER, spki):
        raise CertificateNoMatchingKey("This certificate was issued for a different key.")


# ---------------------------------------------------------------------------------------------------------------------
# cryptography private-key wrappers
# ---------------------------------------------------------------------------------------------------------------------


def _require_sha256(algorithm: object) -> None:
    if isinstance(algorithm, Prehashed) or not isinstance(algorithm, hashes.SHA256):
        raise UnsupportedKey("Only SHA-256 signatures over the full data are allowed with CSOS keys.")


class _NoExport:
    def private_numbers(self) -> Any:
        raise KeyStoreError("The private key cannot be read out of a signer.", code="key.not_exportable")

    def private_bytes(self, *args: Any, **kwargs: Any) -> bytes:
        raise KeyStoreError("The private key cannot be read out of a signer.", code="key.not_exportable")

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict) -> Any:
        return self


class _DelegatingRsaKey(_NoExport, rsa.RSAPrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding_, padding.PKCS1v15):
            raise UnsupportedKey("CSOS RSA signatures use PKCS#1 v1.5 padding.")
        _require_sha256(algorithm)
        return self._signer.sign(data)

    def decrypt(self, ciphertext: bytes, padding_: padding.AsymmetricPadding) -> bytes:
        raise UnsupportedKey("CSOS signing keys are not used for decryption.")

    @property
    def key_size(self) -> int:
        return self._signer.public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._signer.public_key  # type: ignore[return-value]


class _DelegatingEcKey(_NoExport, ec.EllipticCurvePrivateKey):
    def __init__(self, signer: Signer) -> None:
        self._signer = signer

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedKey("CSOS elliptic-curve signatures use ECDSA.")
        _require_sha256(signature_algorithm.algorithm)
        return self._signer.sign(data)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedKey("CSOS signing keys are not used for key agreement.")

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._signer.public_key.curve  # type: ignore[union-attr]

    @property
    def key_size(self) -> int:
        return self._signer.public_key.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._signer.public_key  # type: ignore[return-value]
