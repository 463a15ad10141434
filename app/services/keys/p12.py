"""Import of .p12/.pfx files and issued certificates; the one explicit export (K2).

* ``read_p12`` opens modern (AES/PBKDF2) and legacy (3DES / RC2-40, SHA-1 MAC) PKCS#12 files. A wrong password and a
  damaged file are told apart by parsing the outer structure first.
* ``import_p12`` puts the key into a store: a key file re-encrypted with the modern settings (new password, checked by
  the password rules), or onto a token (best effort, ``TokenRefused`` if the token will not take keys).
* ``import_certificate`` reads PEM, DER or PKCS#7 (DER/PEM) and binds the certificate to the key with the same public
  key (``certificate.no_matching_key`` when there is none). Other certificates in the file (the CA chain) are returned.
* ``export_p12`` exists only as an explicit call with ``acknowledge_backup_risk=True`` (the UI asks after a warning),
  for software keys only (token keys cannot leave the token), and writes a mode-0600 file. Note for the warning text:
  the PKCS#12 format lets cryptography encrypt the key with 600,000 PBKDF2 rounds but protects the file MAC with only
  2,048 rounds of the PKCS#12 KDF, so the export password must be strong -- the rules are enforced.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.hazmat.primitives.serialization.pkcs12 import PBES

from .base import (
    CertificateError,
    CertificateNoMatchingKey,
    CorruptKeyFile,
    ExportNotAcknowledged,
    KeyRef,
    KeyStore,
    KeyStoreError,
    UnsupportedKey,
    WrongPassword,
    check_certificate_matches,
)
from .passwords import check_password
from .software import PBKDF2_ITERATIONS, SoftwareKeyStore, write_private_file

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000


@dataclass
class P12Contents:
    private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    certificate: x509.Certificate | None
    additional_certificates: list[x509.Certificate] = field(default_factory=list)
    friendly_name: str | None = None


def read_p12(data: bytes, *, password: str) -> P12Contents:
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise CorruptKeyFile("The file is empty.")
    if len(data) > MAX_FILE_BYTES:
        raise CorruptKeyFile("The file is too large to be a .p12/.pfx key file.")
    try:
        pfx = asn1_pkcs12.Pfx.load(bytes(data), strict=True)
        pfx["auth_safe"]["content"].native  # noqa: B018 - force parsing of the outer layers
    except (ValueError, TypeError, KeyError) as exc:
        raise CorruptKeyFile("This file is damaged or is not a .p12/.pfx key file.") from exc
    candidates = [password.encode("utf-8")] if password else [b"", None]
    last: Exception | None = None
    for candidate in candidates:
        try:
            loaded = pkcs12.load_pkcs12(bytes(data), candidate)
            break
        except ValueError as exc:
            last = exc
    else:
        raise WrongPassword("The password of the .p12/.pfx file is not correct.") from last
    key = loaded.key
    if key is None:
        raise CorruptKeyFile("The .p12/.pfx file holds no private key (only certificates).")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise UnsupportedKey("The .p12/.pfx file holds a key type CSOS Desk does not use.")
    cert = loaded.cert.certificate if loaded.cert is not None else None
    name = loaded.cert.friendly_name if loaded.cert is not None else None
    return P12Contents(
        private_key=key,
        certificate=cert,
        additional_certificates=[c.certificate for c in loaded.additional_certs],
        friendly_name=name.decode("utf-8", "replace") if name else None,
    )


def import_p12(store: KeyStore, data: bytes, *, password: str, label: str, secret: str | None,
               personal_words: Iterable[str] = ()) -> KeyRef:
    """Import the key (and its certificate) from a .p12/.pfx file into ``store``.

    ``secret`` is the NEW password of the key file (software store) or the token PIN (token store).
    """
    contents = read_p12(data, password=password)
    cert_der = (contents.certificate.public_bytes(serialization.Encoding.DER)
                if contents.certificate is not None else None)
    if cert_der is not None:
        try:
            check_certificate_matches(contents.private_key.public_key(), cert_der)
        except CertificateNoMatchingKey:
            log.warning("the certificate in the .p12 file is for another key; importing the key alone")
            cert_der = None
    if isinstance(store, SoftwareKeyStore):
        ref = store.import_private_key(contents.private_key, label=label, secret=secret,  # type: ignore[arg-type]
                                       certificate_der=cert_der, personal_words=personal_words)
    else:
        from .pkcs11_store import Pkcs11KeyStore

        if not isinstance(store, Pkcs11KeyStore):
            raise KeyStoreError("This key store cannot import keys.", code="key.import_unsupported")
        ref = store.import_private_key(contents.private_key, label=label, secret=secret, certificate_der=cert_der)
    log.info("key imported from .p12: store=%s id=%s", ref.store, ref.key_id)
    return ref


# ---------------------------------------------------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------------------------------------------------


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """All certificates in a PEM (one or more), DER, or PKCS#7 (DER or PEM) file, in file order."""
    if not data:
        raise CertificateError("The certificate file is empty.")
    stripped = data.lstrip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            if b"-----BEGIN PKCS7-----" in data or b"-----BEGIN CERTIFICATE CHAIN-----" in data:
                return list(pkcs7.load_pem_pkcs7_certificates(data))
            certs = x509.load_pem_x509_certificates(data)
            if certs:
                return list(certs)
            raise ValueError("no certificate")
        try:
            return [x509.load_der_x509_certificate(data)]
        except (ValueError, x509.InvalidVersion):
            return list(pkcs7.load_der_pkcs7_certificates(data))
    except (ValueError, x509.InvalidVersion) as exc:
        raise CertificateError("This file holds no readable certificate (PEM, DER or PKCS#7 expected).") from exc


@dataclass
class CertificateImport:
    key_ref: KeyRef
    certificate: x509.Certificate
    chain: list[x509.Certificate]


def import_certificate(store: KeyStore, data: bytes, *, refs: Iterable[KeyRef] | None = None,
                       secret: str | None = None) -> CertificateImport:
    """Bind an issued certificate to the key in ``store`` with the same public key and keep it with the key.

    ``refs`` limits the keys considered (default: all keys of the store). ``secret`` is only used by token stores that
    need the PIN to write objects.
    """
    certs = load_certificates(data)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    candidates = list(refs) if refs is not None else store.list_keys()
    key_spki: dict[bytes, KeyRef] = {}
    for ref in candidates:
        try:
            key_spki.setdefault(store.public_key(ref).public_bytes(serialization.Encoding.DER, spki), ref)
        except KeyStoreError as exc:
            log.debug("skipping key %s while binding a certificate: %s", ref.key_id, exc.code)
    for cert in certs:
        ref = key_spki.get(cert.public_key().public_bytes(serialization.Encoding.DER, spki))
        if ref is None:
            continue
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        from .pkcs11_store import Pkcs11KeyStore

        if isinstance(store, Pkcs11KeyStore):
            store.store_certificate(ref, cert_der, secret=secret)
        else:
            store.store_certificate(ref, cert_der)
        chain = [c for c in certs if c is not cert]
        log.info("certificate bound to key id=%s", ref.key_id)
        return CertificateImport(key_ref=ref, certificate=cert, chain=chain)
    raise CertificateNoMatchingKey(
        "None of your keys matches this certificate. It was issued for a key that is not on this computer or token."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Export (K2)
# ---------------------------------------------------------------------------------------------------------------------


def export_p12(store: KeyStore, ref: KeyRef, *, secret: str, export_password: str, path: str | os.PathLike[str],
               acknowledge_backup_risk: bool = False, overwrite: bool = False,
               personal_words: Iterable[str] = ()) -> Path:
    """Write the key and its certificate to a password-protected .p12 file (mode 0600) -- an explicit backup.

    Only with ``acknowledge_backup_risk=True``: the holder was told that every copy of the key must be guarded and
    that loss or compromise must be reported within 24 hours (K2, K3).
    """
    if acknowledge_backup_risk is not True:
        raise ExportNotAcknowledged(
            "Exporting the private key makes a copy that must be guarded like the key itself. Confirm the warning first."
        )
    if not isinstance(store, SoftwareKeyStore):
        raise KeyStoreError("A key on a token cannot be exported: it never leaves the token.",
                            code="key.not_exportable")
    check_password(export_password, personal_words=personal_words)
    target = Path(path)
    if target.exists() and not overwrite:
        raise KeyStoreError(f"The file {target.name} already exists.", code="key.export_exists")
    private_key = store._load_private_key(ref, secret=secret)
    cert_der = store.load_certificate(ref)
    cert = x509.load_der_x509_certificate(cert_der) if cert_der else None
    encryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PBKDF2_ITERATIONS)
        .key_cert_algorithm(PBES.PBESv2SHA256AndAES256CBC)
        .hmac_hash(hashes.SHA256())
        .build(export_password.encode("utf-8"))
    )
    data = pkcs12.serialize_key_and_certificates(ref.label.encode("utf-8"), private_key, cert, None, encryption)
    del private_key
    try:
        write_private_file(target, data)
    except OSError as exc:
        raise KeyStoreError(f"The export file could not be written ({exc.strerror}).", code="key.io_error") from exc
    log.warning("private key exported by its holder: id=%s file=%s", ref.key_id, target.name)
    return target
