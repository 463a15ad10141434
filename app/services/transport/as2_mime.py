"""AS2 message format (RFC 4130) on S/MIME (RFC 5751): build and open messages and MDNs, both directions.

Why our own S/MIME layer instead of pyas2lib (measured 2026-12, see README "AS2"): pyas2lib 1.4.4 pins oscrypto
1.3.0, which cannot read OpenSSL >= 3.0.10; the fix on PyPI is a fork (`elements-oscrypto` 1.4.0b1) that overwrites
the files of the `oscrypto` distribution pyhanko-certvalidator also depends on, so what is installed depends on pip's
install order. pyas2lib also rewrites line endings of any payload not typed application/octet-stream (a DER `.csos`
arrives corrupted with a matching MIC) and signs with PSS or mixed digests that other AS2 products refuse.
cryptography (already pinned, maintained) gives CMS sign / encrypt / decrypt; asn1crypto (already pinned) reads the
detached signatures; the standard ``email`` package parses headers. Every byte that is signed, hashed for the MIC or
encrypted is built here explicitly, so nothing is canonicalised behind our back:

- the payload travels base64-encoded inside its MIME entity, so no transfer can change its bytes;
- the signature is RSASSA-PKCS1-v1_5 with SHA-256, and SHA-256 is also the MIC digest (one digest everywhere);
- the MIC is the SHA-256 of the signed MIME entity (its header fields and body, exactly as sent), RFC 4130 §7.3.1;
- encryption is CMS EnvelopedData, AES-256-CBC (or AES-128-CBC), RSA PKCS#1 v1.5 key transport.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Mapping

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

from app.errors import CsosError

AS2_VERSION = "1.2"
MIC_ALGORITHM = "sha-256"  # RFC 5751 name; "sha256" is accepted on reading
ENCRYPTIONS = {"aes256_cbc": algorithms.AES256, "aes128_cbc": algorithms.AES128}
DEFAULT_ENCRYPTION = "aes256_cbc"
SIGNATURES = ("sha256",)
DEFAULT_SIGNATURE = "sha256"
DISPOSITION_OPTIONS = ("signed-receipt-protocol=optional, pkcs7-signature; "
                       f"signed-receipt-micalg=optional, {MIC_ALGORITHM}")
_AS2_ID = re.compile(r"^[!#-\[\]-~]{1,128}$")  # printable ASCII without space, '"' and '\' (RFC 4130 §6.2)
_CRLF = b"\r\n"


class As2FormatError(CsosError):
    """An AS2 message or MDN cannot be built or read. ``disposition`` is the RFC 4130 error word a receiver answers
    with (``decryption-failed``, ``authentication-failed``, ``integrity-check-failed``,
    ``unexpected-processing-error``)."""

    code = "as2.format"

    def __init__(self, message: str, *, code: str | None = None,
                 disposition: str = "unexpected-processing-error") -> None:
        super().__init__(message, code=code)
        self.disposition = disposition


def check_as2_id(value: str) -> str:
    """An AS2 name as RFC 4130 §6.2 allows it (1-128 printable ASCII characters); we refuse spaces and quotes so the
    header never needs quoting."""
    value = (value or "").strip()
    if not _AS2_ID.match(value):
        raise As2FormatError(f"'{value}' cannot be used as an AS2 ID: use 1 to 128 letters, digits or signs such as "
                             "- _ . @ (no spaces or quotes).", code="as2.bad_id")
    return value


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 fingerprint as people compare it on the phone (AA:BB:...)."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def mic_of(entity: bytes) -> str:
    """The MIC value of a signed MIME entity: base64 SHA-256 of its header fields and body (RFC 4130 §7.3.1)."""
    return base64.b64encode(hashlib.sha256(entity).digest()).decode("ascii")


def _normal_mic_algorithm(name: str) -> str:
    return name.strip().lower().replace("-", "")


# ---------------------------------------------------------------------------------------------------------------------
# MIME plumbing: every entity is bytes we wrote; parsing never re-serialises


def _base64_lines(data: bytes) -> bytes:
    text = base64.b64encode(data)
    return _CRLF.join(text[i:i + 76] for i in range(0, len(text), 76)) + _CRLF


def entity(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A MIME entity: header fields, an empty line, the body (all CRLF)."""
    return b"".join(f"{name}: {value}".encode("ascii") + _CRLF for name, value in headers) + _CRLF + body


def split_entity(raw: bytes) -> tuple[Message, bytes]:
    """Header fields (parsed) and body (untouched bytes) of an entity."""
    found = [(at, len(separator)) for separator in (b"\r\n\r\n", b"\n\n") if (at := raw.find(separator)) >= 0]
    if not found:
        raise As2FormatError("A MIME part has no header/body separator.")
    end, cut = min(found)  # the first empty line, however the sender ends its lines
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:end + cut])
    return headers, raw[end + cut:]


def headers_message(headers: Mapping[str, str]) -> Message:
    """HTTP header fields as an email Message, so content types and parameters are read one way."""
    message = Message()
    for name, value in headers.items():
        message[name] = value
    return message


def content_type(headers: Message) -> str:
    return (headers.get_content_type() or "").lower()


def decoded_body(headers: Message, body: bytes) -> bytes:
    encoding = (headers.get("Content-Transfer-Encoding") or "binary").strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(re.sub(rb"\s+", b"", body), validate=True)
        except (binascii.Error, ValueError):
            raise As2FormatError("A base64 part is not valid base64.", disposition="integrity-check-failed") \
                from None
    if encoding in ("binary", "8bit", "7bit"):
        return body
    if encoding == "quoted-printable":
        import quopri

        return quopri.decodestring(body)
    raise As2FormatError(f"Unknown transfer encoding '{encoding}'.")


def split_multipart(body: bytes, boundary: str) -> list[bytes]:
    """The raw parts of a multipart body. The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1),
    so a part's bytes are exactly what its sender signed."""
    if not boundary:
        raise As2FormatError("A multipart entity has no boundary.")
    delimiter = b"--" + boundary.encode("ascii")
    # MIME is CRLF; some senders (OpenSSL's S/MIME writer on Unix) end lines with LF alone: read those too.
    eol = b"\r\n" if (b"\r\n" + delimiter) in b"\r\n" + body else b"\n"
    data = eol + body
    parts: list[bytes] = []
    position = data.find(eol + delimiter)
    if position < 0:
        raise As2FormatError("A multipart entity has none of its parts.")
    while True:
        start = position + len(eol) + len(delimiter)
        if data[start:start + 2] == b"--":
            return parts
        line_end = data.find(eol, start)
        if line_end < 0:
            break
        following = data.find(eol + delimiter, line_end)
        if following < 0:
            break
        parts.append(data[line_end + len(eol):following])
        position = following
    raise As2FormatError("A multipart entity is cut short (no closing boundary).")


def _boundary(seed: str) -> str:
    return "----=_CSOS_" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


# ---------------------------------------------------------------------------------------------------------------------
# CMS


def sign_detached(data: bytes, *, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> bytes:
    """Detached CMS SignedData over exactly ``data`` (Binary: no line-ending translation), PKCS#1 v1.5, SHA-256."""
    return (pkcs7.PKCS7SignatureBuilder().set_data(data)
            .add_signer(certificate, key, hashes.SHA256(), rsa_padding=padding.PKCS1v15())
            .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary,
                                               pkcs7.PKCS7Options.NoCapabilities]))


def verify_detached(data: bytes, signature: bytes, *, certificate: x509.Certificate, what: str) -> None:
    """Check a detached signature over ``data`` with the key of ``certificate`` (the partner's on file), whatever
    certificates the signature itself carries."""
    try:
        info = cms.ContentInfo.load(signature)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = info["content"]
        signer_infos = list(signed["signer_infos"])
        if len(signer_infos) != 1:
            raise ValueError("not exactly one signer")
        signer = signer_infos[0]
        digest_algorithm = signer["digest_algorithm"]["algorithm"].native
        signature_algorithm = signer["signature_algorithm"]["algorithm"].native
        attributes = signer["signed_attrs"]
        value = signer["signature"].native
        digest = None
        if attributes.native is not None:
            for attribute in attributes:
                if attribute["type"].native == "message_digest":
                    digest = attribute["values"][0].native
            signed_bytes = b"\x31" + attributes.dump()[1:]  # RFC 5652 §5.4: signed as an explicit SET OF
        else:
            signed_bytes = data
    except (ValueError, TypeError, KeyError, IndexError):
        raise As2FormatError(f"The signature on {what} cannot be read.", code="as2.signature_unreadable",
                             disposition="integrity-check-failed") from None
    if digest_algorithm != "sha256" or signature_algorithm not in ("rsassa_pkcs1v15", "sha256_rsa"):
        raise As2FormatError(f"{what} is signed with {signature_algorithm}/{digest_algorithm}; only RSA PKCS#1 v1.5 "
                             "with SHA-256 is accepted.", code="as2.signature_algorithm",
                             disposition="insufficient-message-security")
    if attributes.native is not None and digest != hashlib.sha256(data).digest():
        raise As2FormatError(f"The content of {what} does not match its signature (changed on the way).",
                             code="as2.content_altered", disposition="integrity-check-failed")
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise As2FormatError("The partner certificate on file has no RSA key.", code="as2.signature_algorithm",
                             disposition="insufficient-message-security")
    try:
        public_key.verify(value, signed_bytes, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise As2FormatError(f"{what} is not signed by the certificate on file (fingerprint "
                             f"{fingerprint(certificate)}).", code="as2.wrong_signer",
                             disposition="authentication-failed") from None


def encrypt(data: bytes, *, certificate: x509.Certificate, algorithm: str = DEFAULT_ENCRYPTION) -> bytes:
    if algorithm not in ENCRYPTIONS:
        raise As2FormatError(f"Encryption '{algorithm}' is not offered (use {', '.join(ENCRYPTIONS)}).",
                             code="as2.settings")
    return (pkcs7.PKCS7EnvelopeBuilder().set_data(data).add_recipient(certificate)
            .set_content_encryption_algorithm(ENCRYPTIONS[algorithm])
            .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))


def decrypt(data: bytes, *, key: rsa.RSAPrivateKey, certificate: x509.Certificate) -> tuple[bytes, str]:
    """The plaintext and the content-encryption algorithm's name."""
    try:
        algorithm = cms.ContentInfo.load(data)["content"]["encrypted_content_info"][
            "content_encryption_algorithm"]["algorithm"].native
        return pkcs7.pkcs7_decrypt_der(data, certificate, key, []), str(algorithm)
    except (ValueError, TypeError, KeyError):
        raise As2FormatError("The message cannot be decrypted with this receiver's key (it was encrypted for "
                             "another certificate, or is damaged).", code="as2.decryption_failed",
                             disposition="decryption-failed") from None


# ---------------------------------------------------------------------------------------------------------------------
# the message (sender side)


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str  # with angle brackets
    headers: dict[str, str]  # HTTP header fields
    body: bytes  # HTTP body
    mic: str  # base64 SHA-256 of the signed entity, what the MDN must return
    signed_entity_sha256: str


def build_message(payload: bytes, *, message_id: str, as2_from: str, as2_to: str, media_type: str, filename: str,
                  key: rsa.RSAPrivateKey, certificate: x509.Certificate, partner_certificate: x509.Certificate,
                  encryption: str = DEFAULT_ENCRYPTION, subject: str = "CSOS order",
                  receipt_to: str = "", date: dt.datetime | None = None) -> OutgoingMessage:
    """A signed, then encrypted AS2 message asking for a synchronous signed MDN (RFC 4130 §§5-7)."""
    inner = entity([("Content-Type", media_type), ("Content-Transfer-Encoding", "base64"),
                    ("Content-Disposition", f'attachment; filename="{filename}"')], _base64_lines(payload))
    signature = sign_detached(inner, key=key, certificate=certificate)
    boundary = _boundary(message_id)
    signed_type = (f'multipart/signed; protocol="application/pkcs7-signature"; micalg={MIC_ALGORITHM}; '
                   f'boundary="{boundary}"')
    signed_body = b"".join([
        f"--{boundary}".encode(), _CRLF, inner, _CRLF,
        f"--{boundary}".encode(), _CRLF,
        entity([("Content-Type", 'application/pkcs7-signature; name="smime.p7s"'),
                ("Content-Transfer-Encoding", "base64"),
                ("Content-Disposition", 'attachment; filename="smime.p7s"')], _base64_lines(signature)),
        f"--{boundary}--".encode(), _CRLF])
    signed = entity([("Content-Type", signed_type)], signed_body)
    envelope = encrypt(signed, certificate=partner_certificate, algorithm=encryption)
    headers = {
        "AS2-Version": AS2_VERSION,
        "AS2-From": check_as2_id(as2_from),
        "AS2-To": check_as2_id(as2_to),
        "Message-ID": message_id,
        "Subject": subject,
        "Date": email.utils.format_datetime(date or dt.datetime.now(dt.timezone.utc)),
        "MIME-Version": "1.0",
        "Content-Type": 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"',
        "Content-Transfer-Encoding": "binary",
        "Content-Disposition": 'attachment; filename="smime.p7m"',
        "Disposition-Notification-To": receipt_to or as2_from,
        "Disposition-Notification-Options": DISPOSITION_OPTIONS,
    }
    return OutgoingMessage(message_id=message_id, headers=headers, body=envelope, mic=mic_of(inner),
                           signed_entity_sha256=hashlib.sha256(inner).hexdigest())


# ---------------------------------------------------------------------------------------------------------------------
# the message (receiver side)


@dataclass
class IncomingMessage:
    """What a receiver learnt from a message, as far as it got: enough to answer with an MDN even on failure."""

    message_id: str = ""
    as2_from: str = ""
    as2_to: str = ""
    wants_receipt: bool = False
    wants_signed_receipt: bool = False
    mic_algorithm: str = MIC_ALGORITHM
    encrypted: bool = False
    encryption: str = ""
    signed: bool = False
    mic: str = ""  # of the signed entity as received
    payload: bytes = b""
    payload_type: str = ""
    filename: str = ""


def read_request_headers(headers: Mapping[str, str]) -> IncomingMessage:
    message = headers_message(headers)
    incoming = IncomingMessage(message_id=(message.get("Message-ID") or "").strip(),
                               as2_from=(message.get("AS2-From") or "").strip().strip('"'),
                               as2_to=(message.get("AS2-To") or "").strip().strip('"'))
    incoming.wants_receipt = bool(message.get("Disposition-Notification-To"))
    options = (message.get("Disposition-Notification-Options") or "").lower()
    incoming.wants_signed_receipt = "pkcs7-signature" in options
    found = re.search(r"signed-receipt-micalg\s*=\s*(?:required|optional)\s*,\s*([a-z0-9\-, ]+)", options)
    if found:
        offered = [_normal_mic_algorithm(a) for a in found.group(1).split(",")]
        if "sha256" not in offered:
            incoming.mic_algorithm = ""  # none we compute: the MDN says so
    return incoming


def open_message(headers: Mapping[str, str], body: bytes, *, key: rsa.RSAPrivateKey,
                 certificate: x509.Certificate, partner_certificate: x509.Certificate | None,
                 incoming: IncomingMessage | None = None) -> IncomingMessage:
    """Decrypt and check a message addressed to us. Raises ``As2FormatError`` with the disposition to answer;
    ``incoming`` (filled as far as it got) lets the caller still name the message in its MDN."""
    incoming = incoming or read_request_headers(headers)
    outer = headers_message(headers)
    kind = content_type(outer)
    raw = entity([("Content-Type", outer.get("Content-Type", ""))], body)
    if kind in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        incoming.encrypted = True
        plain, incoming.encryption = decrypt(decoded_body(outer, body), key=key, certificate=certificate)
        raw = plain
    entity_headers, entity_body = split_entity(raw)
    if content_type(entity_headers) != "multipart/signed":
        raise As2FormatError("The message is not signed; a signed order is required.", code="as2.unsigned",
                             disposition="insufficient-message-security")
    incoming.signed = True
    parts = split_multipart(entity_body, entity_headers.get_param("boundary") or "")
    if len(parts) != 2:
        raise As2FormatError("A signed message must have two parts (content and signature).")
    signed_part, signature_part = parts
    incoming.mic = mic_of(signed_part)
    if partner_certificate is None:
        raise As2FormatError(f"No trading partner '{incoming.as2_from}' is set up here.",
                             code="as2.unknown_partner", disposition="authentication-failed")
    signature_headers, signature_body = split_entity(signature_part)
    verify_detached(signed_part, decoded_body(signature_headers, signature_body), certificate=partner_certificate,
                    what=f"message {incoming.message_id}")
    payload_headers, payload_body = split_entity(signed_part)
    incoming.payload_type = content_type(payload_headers)
    incoming.filename = payload_headers.get_filename() or ""
    incoming.payload = decoded_body(payload_headers, payload_body)
    return incoming


# ---------------------------------------------------------------------------------------------------------------------
# the MDN (RFC 4130 §7.4, RFC 3798)


@dataclass(frozen=True)
class OutgoingMdn:
    headers: dict[str, str]
    body: bytes


def build_mdn(incoming: IncomingMessage, *, as2_id: str, key: rsa.RSAPrivateKey, certificate: x509.Certificate,
              error: str = "", text: str = "", reporting_ua: str = "CSOS Desk",
              date: dt.datetime | None = None) -> OutgoingMdn:
    """A signed synchronous MDN: multipart/report with a human part and message/disposition-notification, signed
    as multipart/signed. ``error`` (an RFC 4130 word) makes it negative: ``processed/error: <word>``."""
    disposition = "automatic-action/MDN-sent-automatically; processed" + (f"/error: {error}" if error else "")
    fields = [("Reporting-UA", reporting_ua),
              ("Original-Recipient", f"rfc822; {incoming.as2_to or as2_id}"),
              ("Final-Recipient", f"rfc822; {as2_id}"),
              ("Original-Message-ID", incoming.message_id)]
    if incoming.mic and incoming.mic_algorithm and not error:
        fields.append(("Received-Content-MIC", f"{incoming.mic}, {MIC_ALGORITHM}"))
    fields.append(("Disposition", disposition))
    notification = b"".join(f"{n}: {v}".encode("ascii", "replace") + _CRLF for n, v in fields)
    human = (text or ("The message was received and its signature verified; this receipt does not say whether the "
                      "order is accepted." if not error else f"The message could not be processed ({error}).")) \
        .encode("ascii", "replace") + _CRLF
    seed = f"mdn:{incoming.message_id}:{error}"
    report_boundary = _boundary(seed + ":report")
    report = entity(
        [("Content-Type", f'multipart/report; report-type=disposition-notification; boundary="{report_boundary}"')],
        b"".join([f"--{report_boundary}".encode(), _CRLF,
                  entity([("Content-Type", "text/plain; charset=us-ascii"), ("Content-Transfer-Encoding", "7bit")],
                         human), _CRLF,
                  f"--{report_boundary}".encode(), _CRLF,
                  entity([("Content-Type", "message/disposition-notification"),
                          ("Content-Transfer-Encoding", "7bit")], notification), _CRLF,
                  f"--{report_boundary}--".encode(), _CRLF]))
    headers = {"AS2-Version": AS2_VERSION, "AS2-From": as2_id, "AS2-To": incoming.as2_from or "unknown",
               "Message-ID": email.utils.make_msgid(domain=re.sub(r"[^A-Za-z0-9.-]", "-", as2_id) + ".as2"),
               "Date": email.utils.format_datetime(date or dt.datetime.now(dt.timezone.utc)), "MIME-Version": "1.0"}
    if not incoming.wants_signed_receipt:
        report_headers, report_body = split_entity(report)
        headers["Content-Type"] = report_headers["Content-Type"]
        return OutgoingMdn(headers, report_body)
    signature = sign_detached(report, key=key, certificate=certificate)
    boundary = _boundary(seed + ":signed")
    headers["Content-Type"] = (f'multipart/signed; protocol="application/pkcs7-signature"; micalg={MIC_ALGORITHM}; '
                               f'boundary="{boundary}"')
    body = b"".join([f"--{boundary}".encode(), _CRLF, report, _CRLF, f"--{boundary}".encode(), _CRLF,
                     entity([("Content-Type", 'application/pkcs7-signature; name="smime.p7s"'),
                             ("Content-Transfer-Encoding", "base64"),
                             ("Content-Disposition", 'attachment; filename="smime.p7s"')],
                            _base64_lines(signature)),
                     f"--{boundary}--".encode(), _CRLF])
    return OutgoingMdn(headers, body)


@dataclass(frozen=True)
class ReceivedMdn:
    """A verified MDN. ``raw`` is the MIME entity kept as the delivery proof (Content-Type line + body)."""

    original_message_id: str
    disposition: str
    processed: bool  # processed, possibly with a warning; False for error/failure
    error: str  # the error/failure word of a negative MDN
    mic: str
    mic_algorithm: str
    reporting_ua: str
    human_text: str
    raw: bytes
    fields: dict[str, str] = field(default_factory=dict)


def read_mdn(headers: Mapping[str, str], body: bytes, *, partner_certificate: x509.Certificate,
             partner: str) -> ReceivedMdn:
    """Verify the signature of a synchronous MDN and read its disposition fields."""
    outer = headers_message(headers)
    kind = content_type(outer)
    raw = entity([("Content-Type", outer.get("Content-Type", ""))], body)
    if kind == "multipart/report":
        raise As2FormatError(f"{partner}'s receipt is not signed; a signed receipt was asked for and is needed as "
                             "proof of delivery.", code="as2.mdn_unsigned")
    if kind != "multipart/signed":
        raise As2FormatError(f"{partner} answered without a receipt (MDN) — the answer is '{kind or 'empty'}'.",
                             code="as2.no_mdn")
    parts = split_multipart(body, outer.get_param("boundary") or "")
    if len(parts) != 2:
        raise As2FormatError(f"{partner}'s signed receipt does not have two parts.", code="as2.no_mdn")
    report, signature_part = parts
    signature_headers, signature_body = split_entity(signature_part)
    verify_detached(report, decoded_body(signature_headers, signature_body), certificate=partner_certificate,
                    what=f"{partner}'s receipt")
    report_headers, report_body = split_entity(report)
    if content_type(report_headers) != "multipart/report":
        raise As2FormatError(f"{partner}'s receipt is not a disposition report.", code="as2.no_mdn")
    fields: dict[str, str] = {}
    human = ""
    for part in split_multipart(report_body, report_headers.get_param("boundary") or ""):
        part_headers, part_body = split_entity(part)
        part_type = content_type(part_headers)
        if part_type == "message/disposition-notification":
            parsed = BytesHeaderParser(policy=compat32).parsebytes(decoded_body(part_headers, part_body) + _CRLF)
            fields = {name.lower(): " ".join(str(value).split()) for name, value in parsed.items()}
        elif part_type == "text/plain" and not human:
            human = decoded_body(part_headers, part_body).decode("ascii", "replace").strip()
    if "disposition" not in fields:
        raise As2FormatError(f"{partner}'s receipt has no disposition.", code="as2.no_mdn")
    disposition = fields["disposition"]
    verdict = disposition.split(";", 1)[1].strip().lower() if ";" in disposition else ""
    processed = verdict.startswith("processed") and "/error" not in verdict and "/failure" not in verdict
    error = verdict.split(":", 1)[1].strip() if ":" in verdict and not processed else ""
    mic, algorithm = "", ""
    if fields.get("received-content-mic"):
        mic, _, algorithm = fields["received-content-mic"].partition(",")
        mic, algorithm = mic.strip(), algorithm.strip()
    return ReceivedMdn(original_message_id=fields.get("original-message-id", ""), disposition=disposition,
                       processed=processed, error=error or ("" if processed else verdict or "not processed"),
                       mic=mic, mic_algorithm=algorithm, reporting_ua=fields.get("reporting-ua", ""),
                       human_text=human, raw=raw, fields=fields)


def mic_matches(mdn: ReceivedMdn, mic: str) -> bool:
    return mdn.mic == mic and _normal_mic_algorithm(mdn.mic_algorithm) == "sha256"
