"""Software key store: one encrypted key file per key in the data directory (DESIGN §7, K1, K2, K5).

File format (``<key id>.key``, mode 0600, text)::

    CSOS Desk signing key -- private to its holder; do not copy (21 CFR 1311.30).
    X-CSOS-Key: {"algorithm": "rsa_2048", "format": 1, "key_id": "...", "label": "..."}
    -----BEGIN ENCRYPTED PRIVATE KEY-----      PKCS#8 EncryptedPrivateKeyInfo: PBES2, PBKDF2-HMAC-SHA256,
    ...                                        600,000 iterations, 16-byte salt, AES-256-CBC
    -----END ENCRYPTED PRIVATE KEY-----
    -----BEGIN PUBLIC KEY-----                 so keys can be listed and certificates bound without the password
    -----END PUBLIC KEY-----
    -----BEGIN CERTIFICATE-----                optional: the issued certificate, added later
    -----END CERTIFICATE-----

Why PKCS#8 and not PKCS#12: cryptography writes PKCS#12 with the key bag at 600,000 PBKDF2 rounds but the *MAC* at
2,048 rounds of the PKCS#12 KDF, and the MAC is checked with the same password -- an offline guesser tests passwords
against the cheap MAC. An encrypted PKCS#8 has no such shortcut. ``openssl pkcs8 -in <file>`` reads the key block.

No backup copies (K2): files are written through a temporary file in the same directory and ``os.replace``; the
temporary file is removed on failure and nothing else is written anywhere.
"""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import os
import re
import sys
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from .base import (
    STORE_SOFTWARE,
    CorruptKeyFile,
    KeyAlgorithm,
    KeyNotFound,
    KeyRef,
    KeyStore,
    KeyStoreError,
    Signer,
    SignerClosed,
    WrongPassword,
    check_certificate_matches,
)
from .passwords import FailureThrottle, check_password

log = logging.getLogger(__name__)

PBKDF2_ITERATIONS = 600_000
SALT_BYTES = 16
KEY_FILE_SUFFIX = ".key"
FORMAT_VERSION = 1

_META_PREFIX = "X-CSOS-Key: "
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.S)
_KEY_ID = re.compile(r"^[0-9a-f]{32}$")


def check_label(label: str) -> str:
    if not isinstance(label, str) or not label.strip():
        raise KeyStoreError("Give the key a name (for example your name and the year).", code="key.bad_label")
    label = label.strip()
    if len(label) > 64 or any(unicodedata.category(c).startswith("C") for c in label):
        raise KeyStoreError("The key name must be one line of at most 64 characters.", code="key.bad_label")
    return label


def _secret_bytes(secret: str | None) -> bytearray:
    """The password as UTF-8 in a buffer the caller wipes (``wipe``) after use. The ``str`` it came from cannot be
    wiped: Python strings are immutable (K4 limits in docs/compliance.md)."""
    if not isinstance(secret, str) or secret == "":
        raise WrongPassword("Enter the password of the key file.")
    encoded = unicodedata.normalize("NFC", secret).encode("utf-8")
    try:
        return bytearray(encoded)
    finally:
        wipe_bytes(encoded)


def wipe(buffer: bytearray | memoryview) -> None:
    """Overwrite a mutable buffer with zeros (key material, passwords, derived keys) once it is no longer needed."""
    if isinstance(buffer, memoryview):
        buffer.cast("B")[:] = bytes(buffer.nbytes)
    else:
        buffer[:] = bytes(len(buffer))


def wipe_bytes(data: bytes) -> None:
    """Zero the buffer of a ``bytes`` object that only the caller holds (what cryptography returns from
    ``private_bytes``). CPython only; a no-op elsewhere and for the shared 0/1-byte objects."""
    if sys.implementation.name != "cpython" or not isinstance(data, bytes) or len(data) < 2:
        return
    offset = sys.getsizeof(data) - len(data) - 1  # the bytes object's data follows its header; +1 for the NUL
    ctypes.memset(id(data) + offset, 0, len(data))


# ---------------------------------------------------------------------------------------------------------------------
# PKCS#8 PBES2 (PBKDF2-HMAC-SHA256 / AES-256-CBC)
# ---------------------------------------------------------------------------------------------------------------------


def encrypt_pkcs8(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: bytes,
                  *, iterations: int = PBKDF2_ITERATIONS) -> bytes:
    """DER EncryptedPrivateKeyInfo with PBES2 / PBKDF2-HMAC-SHA256 / AES-256-CBC."""
    exported = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pad = 16 - len(exported) % 16
    padded = bytearray(exported) + bytearray([pad]) * pad  # PKCS#7, built in a buffer that is wiped below
    wipe_bytes(exported)
    salt = os.urandom(SALT_BYTES)
    iv = os.urandom(16)
    key = bytearray(32)
    try:
        PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive_into(password, key)
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        ciphertext = _encrypt_buffer(encryptor, padded)
    finally:
        wipe(padded)
        wipe(key)
    info = asn1_keys.EncryptedPrivateKeyInfo(
        {
            "encryption_algorithm": {
                "algorithm": "pbes2",
                "parameters": {
                    "key_derivation_func": {
                        "algorithm": "pbkdf2",
                        "parameters": {
                            "salt": asn1_algos.Pbkdf2Salt(name="specified", value=asn1_core.OctetString(salt)),
                            "iteration_count": iterations,
                            "prf": {"algorithm": "sha256", "parameters": asn1_core.Null()},
                        },
                    },
                    "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv},
                },
            },
            "encrypted_data": ciphertext,
        }
    )
    return info.dump()


def _encrypt_buffer(encryptor: object, padded: bytearray) -> bytes:
    out = bytearray(len(padded) + 16)
    n = encryptor.update_into(padded, out)  # type: ignore[attr-defined]
    tail = encryptor.finalize()  # type: ignore[attr-defined]
    return bytes(out[:n]) + tail


@dataclass(frozen=True)
class Pkcs8Parameters:
    kdf: str
    prf: str
    iterations: int
    cipher: str


def pkcs8_parameters(der: bytes) -> Pkcs8Parameters:
    """What protects an encrypted PKCS#8 blob (for tests, diagnostics and the compliance view)."""
    info = _parse_epki(der)
    alg = info["encryption_algorithm"]
    return Pkcs8Parameters(kdf=alg.kdf, prf=alg.kdf_hmac, iterations=alg.kdf_iterations,
                           cipher=f"{alg.encryption_cipher}-{alg.key_length * 8}-{alg.encryption_mode}")


def _parse_epki(der: bytes) -> asn1_keys.EncryptedPrivateKeyInfo:
    try:
        info = asn1_keys.EncryptedPrivateKeyInfo.load(der, strict=True)
        alg = info["encryption_algorithm"]
        ok = (
            alg["algorithm"].native == "pbes2"
            and alg.kdf == "pbkdf2"
            and alg.kdf_hmac == "sha256"
            and alg.encryption_cipher == "aes"
            and alg.key_length == 32
            and alg.encryption_mode == "cbc"
        )
        info["encrypted_data"].native  # noqa: B018 - force parsing
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptKeyFile("The key file is damaged: the encrypted key cannot be read.") from exc
    if not ok:
        raise CorruptKeyFile("The key file uses an encryption CSOS Desk does not accept.")
    return info


def decrypt_pkcs8(der: bytes, password: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    info = _parse_epki(der)
    alg = info["encryption_algorithm"]
    if alg.kdf_iterations < 1 or alg.kdf_iterations > 10_000_000:
        raise CorruptKeyFile("The key file is damaged (impossible iteration count).")
    ciphertext = info["encrypted_data"].native
    if len(ciphertext) == 0 or len(ciphertext) % 16:
        raise CorruptKeyFile("The key file is damaged (truncated encrypted key).")
    # The plaintext only ever lives in ``padded`` (and the AES key in ``key``): both are zeroed before returning.
    key = bytearray(32)
    padded = bytearray(len(ciphertext) + 16)
    try:
        PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=alg.kdf_salt,
                   iterations=alg.kdf_iterations).derive_into(password, key)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(alg.encryption_iv)).decryptor()
        n = decryptor.update_into(ciphertext, padded)
        if decryptor.finalize():
            raise ValueError("unexpected trailing block")
        pad = padded[n - 1] if n else 0
        if not 1 <= pad <= 16 or padded[n - pad:n] != bytearray([pad]) * pad:
            raise ValueError("bad padding")
        with memoryview(padded) as view, view[:n - pad] as plain:
            private_key = serialization.load_der_private_key(plain, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # Without a MAC a wrong password and a damaged ciphertext look the same; the wrong password is far likelier.
        raise WrongPassword("The password is not correct for this key file.") from exc
    finally:
        wipe(padded)
        wipe(key)
    if not isinstance(private_key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CorruptKeyFile("The key file holds a key type CSOS Desk does not use.")
    return private_key


# ---------------------------------------------------------------------------------------------------------------------
# File format
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeyFile:
    key_id: str
    label: str
    algorithm: KeyAlgorithm
    encrypted_key: bytes
    public_key_der: bytes
    certificate_der: bytes | None

    def render(self) -> bytes:
        meta = json.dumps(
            {"format": FORMAT_VERSION, "key_id": self.key_id, "label": self.label, "algorithm": self.algorithm.value},
            sort_keys=True, ensure_ascii=True,
        )
        parts = [
            "CSOS Desk signing key -- private to its holder; do not copy (21 CFR 1311.30).\n",
            _META_PREFIX + meta + "\n",
            _pem("ENCRYPTED PRIVATE KEY", self.encrypted_key),
            _pem("PUBLIC KEY", self.public_key_der),
        ]
        if self.certificate_der:
            parts.append(_pem("CERTIFICATE", self.certificate_der))
        return "".join(parts).encode("ascii")

    @classmethod
    def parse(cls, data: bytes) -> "_KeyFile":
        try:
            text = data.decode("ascii")
            meta_line = next(line for line in text.splitlines() if line.startswith(_META_PREFIX))
            meta = json.loads(meta_line[len(_META_PREFIX):])
            if meta.get("format") != FORMAT_VERSION:
                raise CorruptKeyFile("The key file was written by a newer CSOS Desk or is damaged.")
            blocks: dict[str, bytes] = {}
            for name, body in _PEM_BLOCK.findall(text):
                blocks.setdefault(name, base64.b64decode("".join(body.split()), validate=True))
            key_id = str(meta["key_id"])
            if not _KEY_ID.match(key_id):
                raise ValueError("bad key id")
            return cls(
                key_id=key_id,
                label=str(meta["label"]),
                algorithm=KeyAlgorithm(meta["algorithm"]),
                encrypted_key=blocks["ENCRYPTED PRIVATE KEY"],
                public_key_der=blocks["PUBLIC KEY"],
                certificate_der=blocks.get("CERTIFICATE"),
            )
        except CorruptKeyFile:
            raise
        except (ValueError, KeyError, StopIteration, TypeError, UnicodeDecodeError) as exc:
            raise CorruptKeyFile("The key file is damaged or is not a CSOS Desk key file.") from exc


def _pem(name: str, der: bytes) -> str:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    return f"-----BEGIN {name}-----\n" + "\n".join(lines) + f"\n-----END {name}-----\n"


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 (temp file in the same directory + os.replace)."""
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".part")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            if hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), 0o600)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _encrypt_with(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, secret: str | None,
                  iterations: int) -> bytes:
    password = _secret_bytes(secret)
    try:
        return encrypt_pkcs8(private_key, password, iterations=iterations)
    finally:
        wipe(password)


# ---------------------------------------------------------------------------------------------------------------------
# Store and signer
# ---------------------------------------------------------------------------------------------------------------------


class SoftwareSigner(Signer):
    def __init__(self, ref: KeyRef, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        self._ref = ref
        self._key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = private_key
        self._public = private_key.public_key()
        self._lock = threading.Lock()

    @property
    def key_ref(self) -> KeyRef:
        return self._ref

    @property
    def public_key(self) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        return self._public

    @property
    def closed(self) -> bool:
        return self._key is None

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            key = self._key
            if key is None:
                raise SignerClosed("The key is locked. Enter the password again to sign.")
            if isinstance(key, rsa.RSAPrivateKey):
                return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            return key.sign(data, ec.ECDSA(hashes.SHA256()))

    def close(self) -> None:
        with self._lock:
            self._key = None


class SoftwareKeyStore(KeyStore):
    """Encrypted key files in ``directory`` (created with mode 0700 if missing)."""

    kind = STORE_SOFTWARE

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        iterations: int = PBKDF2_ITERATIONS,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if iterations < PBKDF2_ITERATIONS:
            raise ValueError(f"K5 requires at least {PBKDF2_ITERATIONS} PBKDF2 iterations")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._iterations = iterations
        kwargs = {}
        if sleep is not None:
            kwargs["sleep"] = sleep
        if clock is not None:
            kwargs["clock"] = clock
        self.throttle = FailureThrottle(**kwargs)
        self._lock = threading.RLock()

    # -- paths -----------------------------------------------------------------------------------------------------

    def path_of(self, ref: KeyRef) -> Path:
        self._check_ref(ref)
        if not _KEY_ID.match(ref.key_id):
            raise KeyNotFound(f"The key {ref.describe()} is not a key of this computer.")
        return self.directory / f"{ref.key_id}{KEY_FILE_SUFFIX}"

    def _read(self, ref: KeyRef) -> _KeyFile:
        path = self.path_of(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise KeyNotFound(f"The key file for {ref.describe()} is missing from this computer.") from exc
        except OSError as exc:
            raise KeyStoreError(f"The key file could not be read ({exc.strerror}).", code="key.io_error") from exc
        kf = _KeyFile.parse(data)
        if kf.key_id != ref.key_id:
            raise CorruptKeyFile("The key file does not belong to this key (its id differs).")
        return kf

    def _write(self, kf: _KeyFile) -> None:
        path = self.directory / f"{kf.key_id}{KEY_FILE_SUFFIX}"
        try:
            write_private_file(path, kf.render())
        except OSError as exc:
            raise KeyStoreError(f"The key file could not be written ({exc.strerror}).", code="key.io_error") from exc

    @staticmethod
    def _ref_of(kf: _KeyFile) -> KeyRef:
        return KeyRef(store=STORE_SOFTWARE, key_id=kf.key_id, label=kf.label, algorithm=kf.algorithm)

    # -- KeyStore ---------------------------------------------------------------------------------------------------

    def list_keys(self) -> list[KeyRef]:
        refs = []
        for path in sorted(self.directory.glob(f"*{KEY_FILE_SUFFIX}")):
            try:
                refs.append(self._ref_of(_KeyFile.parse(path.read_bytes())))
            except (CorruptKeyFile, OSError):
                log.warning("skipping unreadable key file %s", path.name)
        return refs

    def generate_key(self, *, algorithm: KeyAlgorithm, label: str, secret: str | None,
                     personal_words: Iterable[str] = ()) -> KeyRef:
        label = check_label(label)
        check_password(secret, personal_words=personal_words)  # type: ignore[arg-type]
        if algorithm.is_rsa:
            private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
                public_exponent=65537, key_size=algorithm.key_size)
        else:
            private_key = ec.generate_private_key(ec.SECP256R1())
        return self._save_new(private_key, label=label, secret=secret, certificate_der=None)  # type: ignore[arg-type]

    def import_private_key(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, label: str,
                           secret: str, certificate_der: bytes | None = None,
                           personal_words: Iterable[str] = ()) -> KeyRef:
        """Store an existing key (from a .p12) under a new password, with the modern encryption."""
        label = check_label(label)
        KeyAlgorithm.of_public_key(private_key)
        check_password(secret, personal_words=personal_words)
        if certificate_der is not None:
            check_certificate_matches(private_key.public_key(), certificate_der)
        return self._save_new(private_key, label=label, secret=secret, certificate_der=certificate_der)

    def _save_new(self, private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, *, label: str, secret: str,
                  certificate_der: bytes | None) -> KeyRef:
        algorithm = KeyAlgorithm.of_public_key(private_key)
        kf = _KeyFile(
            key_id=os.urandom(16).hex(),
            label=label,
            algorithm=algorithm,
            encrypted_key=_encrypt_with(private_key, secret, self._iterations),
            public_key_der=private_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
            certificate_der=certificate_der,
        )
        with self._lock:
            self._write(kf)
        log.info("software key created: id=%s algorithm=%s", kf.key_id, algorithm.value)
        return self._ref_of(kf)

    def _unlock(self, ref: KeyRef, secret: str | None) -> tuple[_KeyFile, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
        kf = self._read(ref)
        self.throttle.wait_before_attempt(ref.key_id)
        try:
            password = _secret_bytes(secret)
            try:
                private_key = decrypt_pkcs8(kf.encrypted_key, password)
            finally:
                wipe(password)
        except WrongPassword:
            n = self.throttle.record_failure(ref.key_id)
            log.info("wrong password for software key id=%s (failure %d in a row)", ref.key_id, n)
            raise
        public_der = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if public_der != kf.public_key_der:
            raise CorruptKeyFile("The key file is damaged: its private and public parts do not match.")
        self.throttle.record_success(ref.key_id)
        return kf, private_key

    def open_signer(self, ref: KeyRef, *, secret: str | None) -> SoftwareSigner:
        kf, private_key = self._unlock(ref, secret)
        return SoftwareSigner(self._ref_of(kf), private_key)

    def _load_private_key(self, ref: KeyRef, *, secret: str | None) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        """For the explicit, acknowledged export in ``p12.export_p12`` only."""
        return self._unlock(ref, secret)[1]

    def change_password(self, ref: KeyRef, *, old_secret: str, new_secret: str,
                        personal_words: Iterable[str] = ()) -> None:
        check_password(new_secret, personal_words=personal_words)
        with self._lock:
            kf, private_key = self._unlock(ref, old_secret)
            new = _KeyFile(kf.key_id, kf.label, kf.algorithm,
                           _encrypt_with(private_key, new_secret, self._iterations),
                           kf.public_key_der, kf.certificate_der)
            self._write(new)
        log.info("password changed for software key id=%s", ref.key_id)

    def delete_key(self, ref: KeyRef, *, secret: str | None) -> None:
        with self._lock:
            self._unlock(ref, secret)  # only the holder may destroy the key
            self.path_of(ref).unlink()
        log.info("software key deleted: id=%s", ref.key_id)

    def public_key(self, ref: KeyRef) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
        kf = self._read(ref)
        try:
            pub = serialization.load_der_public_key(kf.public_key_der)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise CorruptKeyFile("The key file is damaged (public key unreadable).") from exc
        return pub  # type: ignore[return-value]

    def store_certificate(self, ref: KeyRef, cert_der: bytes) -> None:
        with self._lock:
            kf = self._read(ref)
            check_certificate_matches(self.public_key(ref), cert_der)
            self._write(_KeyFile(kf.key_id, kf.label, kf.algorithm, kf.encrypted_key, kf.public_key_der, cert_der))
        log.info("certificate stored with software key id=%s", ref.key_id)

    def load_certificate(self, ref: KeyRef) -> bytes | None:
        return self._read(ref).certificate_der

    def load_certificate_object(self, ref: KeyRef) -> x509.Certificate | None:
        der = self.load_certificate(ref)
        return None if der is None else x509.load_der_x509_certificate(der)
