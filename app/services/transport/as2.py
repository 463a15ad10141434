"""The ``as2`` supplier connector (RFC 4130): how EDI reaches wholesalers, and this pharmacy's AS2 identity.

- The pharmacy's AS2 identity is an AS2 ID plus its own transport key and self-signed certificate, kept in the
  profile's data folder (``as2/``; key file 0600, unencrypted so the outbox can send unattended). It is never the CSOS
  signing key: the CSOS signature is inside the order; AS2 only signs and encrypts the transfer.
- Per supplier (settings of the supplier record, never secrets): ``url``, ``partner_as2_id``,
  ``partner_certificate`` (PEM text), ``encryption`` (``aes256_cbc`` default), ``signature`` (``sha256``),
  ``content_type`` (``application/x-csos-signed-order`` default, e.g. ``application/edi-x12`` for a translator),
  optionally ``records_url`` (the supplier's https records API, where 855/856/865 answers are fetched) and
  ``tls_bundle``.
- Every send asks for a synchronous signed MDN and checks it: signed by the partner's certificate on file, for our
  Message-ID, ``processed``, and returning the MIC we computed. Only then the order counts as delivered, and the MDN is
  kept as the delivery proof among the order's linked records. Anything else is a retryable ``TransportError``: the
  order stays queued with the reason and the outbox tries again by its usual rules.
- The Message-ID is derived from the document (order number, purchaser, SHA-256 of the signed bytes), so a retry
  carries the same Message-ID and a partner that already acknowledged it recognises the duplicate.

Message and MDN format: ``app.services.transport.as2_mime`` (and why it is not pyas2lib).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from app.errors import ConfigError, CsosError
from app.services.signing.cms import MEDIA_TYPE
from app.services.transport import as2_mime
from app.services.transport.as2_mime import As2FormatError, fingerprint
from app.services.transport.connectors import (
    CONNECTOR_FACTORIES,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    Connector,
    Delivery,
    HttpsConnector,
    SupplierRecord,
    TransportError,
)

log = logging.getLogger(__name__)

IDENTITY_FOLDER = "as2"
KEY_FILE = "transport-key.pem"
CERTIFICATE_FILE = "transport-certificate.pem"
IDENTITY_FILE = "identity.json"
CERTIFICATE_YEARS = 3
MDN_MEDIA_TYPE = "multipart/signed"
PROOF_KIND = "as2_mdn"


@dataclass(frozen=True)
class DeliveryProof:
    """What proves the supplier's system took a document (the signed MDN), kept among the order's linked records."""

    kind: str
    data: bytes
    media_type: str
    parsed: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class As2Delivery(Delivery):
    """A delivery confirmed by a verified MDN; ``proofs`` are linked to the order by the outbox."""

    proofs: tuple[DeliveryProof, ...] = ()


class As2IdentityError(CsosError):
    """The pharmacy's AS2 identity is missing, damaged or cannot be created."""

    code = "as2.identity"


# ---------------------------------------------------------------------------------------------------------------------
# the pharmacy's AS2 identity


@dataclass(frozen=True)
class As2Identity:
    as2_id: str
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    folder: Path

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.certificate)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def to_json(self) -> dict[str, Any]:
        return {"as2_id": self.as2_id, "fingerprint_sha256": self.fingerprint,
                "subject": self.certificate.subject.rfc4514_string(),
                "valid_from": self.certificate.not_valid_before_utc.isoformat(),
                "valid_until": self.certificate.not_valid_after_utc.isoformat(),
                "certificate_file": str(self.folder / CERTIFICATE_FILE)}


def identity_folder(data_dir: str | Path) -> Path:
    return Path(data_dir) / IDENTITY_FOLDER


def create_identity(data_dir: str | Path, as2_id: str, *, replace: bool = False,
                    now: dt.datetime | None = None) -> As2Identity:
    """A new RSA-2048 transport key (what AS2 partners expect; the certificate lives 3 years, inside NIST's 2030 horizon) and self-signed certificate for ``as2_id``. Refuses to replace an existing
    identity unless ``replace`` (suppliers hold the old certificate: replacing it means handing them the new one)."""
    as2_id = _checked_id(as2_id)
    folder = identity_folder(data_dir)
    if (folder / KEY_FILE).exists() and not replace:
        raise As2IdentityError("This pharmacy already has an AS2 identity; suppliers hold its certificate. Show it "
                               "with `csos-desk as2 identity`.", code="as2.identity_exists")
    now = now or dt.datetime.now(dt.timezone.utc)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, as2_id),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "AS2 transport (CSOS Desk)")])
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * CERTIFICATE_YEARS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256()))
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        _write_private(folder / KEY_FILE, key.private_bytes(serialization.Encoding.PEM,
                                                            serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
        (folder / CERTIFICATE_FILE).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        (folder / IDENTITY_FILE).write_text(json.dumps({"as2_id": as2_id, "created_at": now.isoformat()}, indent=2),
                                            "utf-8")
    except OSError as exc:
        raise As2IdentityError(f"The AS2 identity cannot be saved in {folder} ({exc.strerror}).",
                               code="as2.identity_unwritable") from None
    log.info("AS2 identity created (certificate %s)", fingerprint(certificate))
    return As2Identity(as2_id, key, certificate, folder)


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name("." + path.name + ".part")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)


def load_identity(data_dir: str | Path) -> As2Identity:
    folder = identity_folder(data_dir)
    if not (folder / KEY_FILE).exists():
        raise As2IdentityError("This pharmacy has no AS2 identity yet, so nothing can be sent over AS2. Create it in "
                               "Settings → Suppliers (an AS2 supplier) or with `csos-desk as2 identity --create "
                               "--as2-id YOUR-AS2-ID`, and give the certificate to the supplier.",
                               code="as2.no_identity")
    try:
        as2_id = json.loads((folder / IDENTITY_FILE).read_text("utf-8"))["as2_id"]
        key, certificate = _parsed_pair((folder / KEY_FILE).read_bytes(), (folder / CERTIFICATE_FILE).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        raise As2IdentityError(f"The AS2 identity in {folder} cannot be read; restore it from a backup, or create a "
                               "new one and give the new certificate to every AS2 supplier.",
                               code="as2.identity_unreadable") from None
    if key is None:
        raise As2IdentityError(f"The AS2 key and certificate in {folder} do not belong together.",
                               code="as2.identity_unreadable")
    return As2Identity(_checked_id(as2_id), key, certificate, folder)


_PARSED: dict[tuple[bytes, bytes], tuple[rsa.RSAPrivateKey | None, x509.Certificate]] = {}


def _parsed_pair(key_pem: bytes, certificate_pem: bytes) -> tuple[rsa.RSAPrivateKey | None, x509.Certificate]:
    """The transport key and certificate parsed, remembered by the SHA-256 of the files' bytes: parsing an RSA key
    (with its consistency check) took ~40 ms, and every AS2 send loads the identity afresh. The key is None when
    it is not an RSA key matching the certificate. Changed files are parsed again (their digest differs)."""
    marker = (hashlib.sha256(key_pem).digest(), hashlib.sha256(certificate_pem).digest())
    found = _PARSED.get(marker)
    if found is None:
        key = serialization.load_pem_private_key(key_pem, password=None)
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        matches = isinstance(key, rsa.RSAPrivateKey) and \
            key.public_key().public_numbers() == certificate.public_key().public_numbers()
        found = (key if matches else None, certificate)  # type: ignore[assignment]
        if len(_PARSED) >= 8:
            _PARSED.clear()
        _PARSED[marker] = found
    return found


def _checked_id(as2_id: str) -> str:
    try:
        return as2_mime.check_as2_id(as2_id)
    except As2FormatError as exc:
        raise ConfigError(exc.message, code="as2.bad_id") from None


def load_partner_certificate(data: bytes | str, *, source: str = "the partner certificate") -> x509.Certificate:
    """A partner's AS2 certificate from PEM or DER."""
    raw = data.encode("ascii") if isinstance(data, str) else bytes(data)
    try:
        if b"-----BEGIN" in raw:
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise ConfigError(f"{source} is not a certificate (PEM or DER expected).",
                          code="connector.as2_partner_certificate") from None


def partner_certificate_pem(path: str | Path) -> str:
    """Read a partner certificate file for the supplier settings (stored as PEM text)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}).", code="connector.as2_partner_certificate") \
            from None
    certificate = load_partner_certificate(data, source=str(path))
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


# ---------------------------------------------------------------------------------------------------------------------
# the connector


def message_id_for(purpose: str, *, order_number: str, purchaser_dea: str, document: bytes, as2_id: str) -> str:
    """One Message-ID per document: a retry of the same order carries the same ID (RFC 5322 msg-id form). The digest
    covers the purchaser's DEA number (inside the signed order), which is not shown in the header itself."""
    digest = hashlib.sha256(purchaser_dea.encode("ascii") + b"\0" + document).hexdigest()[:24]
    domain = re.sub(r"[^A-Za-z0-9.-]", "-", as2_id).strip(".-") or "pharmacy"
    return f"<csos-{purpose}-{order_number}-{digest}@{domain}.as2>"


@dataclass(frozen=True)
class As2Settings:
    url: str
    partner_as2_id: str
    partner_certificate: x509.Certificate
    encryption: str = as2_mime.DEFAULT_ENCRYPTION
    signature: str = as2_mime.DEFAULT_SIGNATURE
    content_type: str = MEDIA_TYPE
    tls_bundle: str | None = None
    records_url: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT


def settings_from(name: str, settings: Mapping[str, Any], *, tls_bundle: str | Path | None = None) -> As2Settings:
    """Check a supplier's as2 settings; every problem is a ConfigError naming the setting to fix."""
    url = str(settings.get("url") or "")
    if not url.lower().startswith(("https://", "http://")):
        raise ConfigError(f"Supplier '{name}' is set to send over AS2 but has no AS2 address (url).",
                          code="connector.no_url")
    partner = str(settings.get("partner_as2_id") or "")
    if not partner:
        raise ConfigError(f"Supplier '{name}' has no partner AS2 ID (partner_as2_id); ask the supplier for it.",
                          code="connector.as2_partner_id")
    _checked_id(partner)
    if not settings.get("partner_certificate"):
        raise ConfigError(f"Supplier '{name}' has no AS2 certificate on file (partner_certificate); ask the "
                          "supplier for it.", code="connector.as2_partner_certificate")
    certificate = load_partner_certificate(str(settings["partner_certificate"]),
                                           source=f"The AS2 certificate of supplier '{name}'")
    encryption = str(settings.get("encryption") or as2_mime.DEFAULT_ENCRYPTION)
    if encryption not in as2_mime.ENCRYPTIONS:
        raise ConfigError(f"Supplier '{name}': encryption '{encryption}' is not offered (use "
                          f"{', '.join(as2_mime.ENCRYPTIONS)}).", code="connector.settings")
    signature = str(settings.get("signature") or as2_mime.DEFAULT_SIGNATURE)
    if signature not in as2_mime.SIGNATURES:
        raise ConfigError(f"Supplier '{name}': signature '{signature}' is not offered (use sha256).",
                          code="connector.settings")
    content_type = str(settings.get("content_type") or MEDIA_TYPE)
    if not re.match(r"^[a-z0-9][a-z0-9.+-]*/[a-z0-9][a-z0-9.+-]*$", content_type, re.IGNORECASE):
        raise ConfigError(f"Supplier '{name}': '{content_type}' is not a content type.", code="connector.settings")
    bundle = settings.get("tls_bundle") or tls_bundle
    return As2Settings(url=url, partner_as2_id=partner, partner_certificate=certificate, encryption=encryption,
                       signature=signature, content_type=content_type, tls_bundle=str(bundle) if bundle else None,
                       records_url=str(settings.get("records_url") or "") or None,
                       connect_timeout=float(settings.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
                       read_timeout=float(settings.get("read_timeout", DEFAULT_READ_TIMEOUT)))


class As2Connector(Connector):
    """Signed + encrypted AS2 messages, one synchronous signed MDN per send, answers fetched from ``records_url``."""

    kind = "as2"

    def __init__(self, settings: As2Settings, identity: As2Identity, *, supplier_name: str = "the supplier") -> None:
        from app.services.transport.tls import verified_session

        self.settings = settings
        self.identity = identity
        self.name = supplier_name
        # No proxies or bundles from the environment; each bundle read once per process (``transport.tls``).
        self.session = verified_session()
        self.verify: str | bool = settings.tls_bundle or True  # https is always verified
        # The records API is usually the AS2 server's own host: its requests share this session (one connection
        # pool, so a server that keeps connections open answers over the one the message went on), each verified
        # against the same bundle.
        self.records = (HttpsConnector(settings.records_url, tls_bundle=settings.tls_bundle,
                                       connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
                                       max_attempts=1, session=self.session)
                        if settings.records_url and settings.tls_bundle else None)

    @property
    def answers_at_once(self) -> bool:
        """Answers (855/856/865) can be fetched when the supplier offers its records API."""
        return self.records is not None

    def close(self) -> None:
        self.session.close()
        if self.records is not None:
            self.records.close()

    def send_order(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        mdn, message = self._send("order", order_number, purchaser_dea, document, f"{order_number}.csos")
        records: tuple[SupplierRecord, ...] = ()
        if self.records is not None:
            try:  # the answer may already be there; if not, the next sync fetches it
                records = tuple(self.records.fetch_records(order_number=order_number, purchaser_dea=purchaser_dea,
                                                           after=0))
            except TransportError as exc:
                log.info("AS2 delivery of %s confirmed; answer not fetched yet (%s)", order_number, exc.code)
        return As2Delivery(answered=False, records=records, proofs=(self._proof(mdn, message),),
                        answer=self._answer(mdn, message), where=self.settings.url)

    def send_statement(self, *, order_number: str, purchaser_dea: str, document: bytes) -> Delivery:
        mdn, message = self._send("statement", order_number, purchaser_dea, document,
                                  f"{order_number}-lost-statement.csos")
        return As2Delivery(answered=True, status="recorded", proofs=(self._proof(mdn, message),),
                        answer=self._answer(mdn, message), where=self.settings.url)

    def fetch_records(self, *, order_number: str, purchaser_dea: str, after: int) -> list[SupplierRecord]:
        if self.records is None:
            return []
        return self.records.fetch_records(order_number=order_number, purchaser_dea=purchaser_dea, after=after)

    # -- plumbing ---------------------------------------------------------------------------------------------------

    def _send(self, purpose: str, order_number: str, purchaser_dea: str, document: bytes,
              filename: str) -> tuple[as2_mime.ReceivedMdn, as2_mime.OutgoingMessage]:
        settings = self.settings
        message_id = message_id_for(purpose, order_number=order_number, purchaser_dea=purchaser_dea,
                                    document=document, as2_id=self.identity.as2_id)
        subject = f"CSOS {'order' if purpose == 'order' else 'lost-order statement'} {order_number}"
        try:
            message = as2_mime.build_message(
                document, message_id=message_id, as2_from=self.identity.as2_id, as2_to=settings.partner_as2_id,
                media_type=settings.content_type, filename=filename, key=self.identity.key,
                certificate=self.identity.certificate, partner_certificate=settings.partner_certificate,
                encryption=settings.encryption, subject=subject)
        except As2FormatError as exc:
            raise ConfigError(exc.message, code="connector.settings") from None
        what = f"{purpose} {order_number}"
        headers, body = self._post(message, what)
        try:
            mdn = as2_mime.read_mdn(headers, body, partner_certificate=settings.partner_certificate,
                                    partner=self.name)
        except As2FormatError as exc:
            if exc.code == "as2.wrong_signer":
                raise TransportError(
                    f"The delivery receipt for {what} is not signed with the AS2 certificate on file for "
                    f"{self.name}, so delivery cannot be confirmed. Check with the supplier that the certificate "
                    f"in Settings is theirs (on file: {fingerprint(settings.partner_certificate)}). The order stays "
                    "in the outbox.", code="transport.as2_wrong_certificate") from None
            code = {"as2.no_mdn": "transport.as2_no_mdn", "as2.mdn_unsigned": "transport.as2_no_mdn"}.get(
                exc.code, "transport.as2_bad_mdn")
            raise TransportError(f"{exc.message} Delivery of {what} is not confirmed; it stays in the outbox and "
                                 "is sent again.", code=code) from None
        if mdn.original_message_id != message_id:
            raise TransportError(f"{self.name}'s receipt is for another message ({mdn.original_message_id}); "
                                 f"delivery of {what} is not confirmed and it is sent again.",
                                 code="transport.as2_bad_mdn")
        if not mdn.processed:
            raise TransportError(f"{self.name}'s system received {what} but did not accept the delivery "
                                 f"({mdn.error}). It stays in the outbox and is sent again; if this repeats, check "
                                 "the AS2 settings with the supplier.", code="transport.as2_negative_mdn")
        if not as2_mime.mic_matches(mdn, message.mic):
            raise TransportError(f"{self.name}'s receipt does not confirm the exact content sent for {what} (the "
                                 "checksum differs). It stays in the outbox and is sent again.",
                                 code="transport.as2_mic_mismatch")
        log.info("AS2 %s delivered, MDN verified (%s)", purpose, message_id)
        return mdn, message

    def _post(self, message: as2_mime.OutgoingMessage, what: str) -> tuple[dict[str, str], bytes]:
        import requests

        url = self.settings.url
        try:
            response = self.session.post(url, data=message.body, headers=message.headers, verify=self.verify,
                                         timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                                         allow_redirects=False)
        except requests.exceptions.SSLError:
            raise TransportError(f"The AS2 server of {self.name} at {url} could not prove its identity (TLS "
                                 "certificate not trusted). Nothing was sent.", code="transport.tls") from None
        except requests.exceptions.Timeout:
            raise TransportError(f"The AS2 server of {self.name} did not answer in time for {what}; it is sent "
                                 "again.", code="transport.timeout") from None
        except requests.exceptions.RequestException:
            raise TransportError(f"The connection to the AS2 server of {self.name} at {url} failed while sending "
                                 f"{what}.", code="transport.connection") from None
        try:
            if response.status_code != 200:
                raise TransportError(f"The AS2 server of {self.name} refused {what} (HTTP {response.status_code}) "
                                     "without a receipt; it stays in the outbox and is sent again.",
                                     code="transport.as2_no_mdn")
            return dict(response.headers), response.content
        finally:
            response.close()

    def _proof(self, mdn: as2_mime.ReceivedMdn, message: as2_mime.OutgoingMessage) -> DeliveryProof:
        parsed = {"type": PROOF_KIND, "summary": f"Delivery receipt (AS2) from {self.name}: processed, content "
                                                 "checksum confirmed",
                  "message_id": message.message_id, "partner_as2_id": self.settings.partner_as2_id,
                  "our_as2_id": self.identity.as2_id, "disposition": mdn.disposition,
                  "received_content_mic": f"{mdn.mic}, {mdn.mic_algorithm}", "mic_sent": message.mic,
                  "signed_entity_sha256": message.signed_entity_sha256,
                  "partner_certificate_sha256": fingerprint(self.settings.partner_certificate),
                  "reporting_ua": mdn.reporting_ua, "url": self.settings.url}
        return DeliveryProof(kind=PROOF_KIND, data=mdn.raw, media_type=MDN_MEDIA_TYPE, parsed=parsed)

    def _answer(self, mdn: as2_mime.ReceivedMdn, message: as2_mime.OutgoingMessage) -> dict[str, Any]:
        return {"as2_message_id": message.message_id, "mdn_disposition": mdn.disposition,
                "mic": f"{mdn.mic}, {mdn.mic_algorithm}"}


def as2_connector(supplier: Any, settings: Mapping[str, Any], *, data_dir: str | Path,
                  tls_bundle: str | Path | None = None) -> As2Connector:
    """The factory ``connector_for`` calls for ``kind: as2``."""
    checked = settings_from(supplier.name, settings, tls_bundle=tls_bundle)
    return As2Connector(checked, load_identity(data_dir), supplier_name=supplier.name)


def supplier_settings(*, url: str, partner_as2_id: str, partner_certificate_file: str | Path,
                      encryption: str = as2_mime.DEFAULT_ENCRYPTION, signature: str = as2_mime.DEFAULT_SIGNATURE,
                      content_type: str = MEDIA_TYPE, **extra: Any) -> dict[str, Any]:
    """The connector settings a supplier record stores for AS2 (CLI `supplier add --connector as2`, Settings)."""
    connector = {"kind": "as2", "url": url, "partner_as2_id": partner_as2_id,
                 "partner_certificate": partner_certificate_pem(partner_certificate_file), "encryption": encryption,
                 "signature": signature, "content_type": content_type}
    connector.update({k: v for k, v in extra.items() if v not in (None, "")})
    settings_from("new supplier", connector)  # refuse what could never send
    return connector


CONNECTOR_FACTORIES["as2"] = as2_connector

__all__ = ["As2Connector", "As2Identity", "As2IdentityError", "As2Settings", "as2_connector", "create_identity",
           "load_identity", "message_id_for", "partner_certificate_pem", "settings_from", "supplier_settings"]
