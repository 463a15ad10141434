"""CMS SignedData (RFC 5652) for signed orders and statements: build and take apart (DESIGN.md §5).

Built with asn1crypto because cryptography's PKCS7 builder cannot add signingCertificateV2 (RFC 5035). The
signature itself comes from the key-store ``Signer`` interface, so software keys and tokens share this one path.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from asn1crypto import cms, core
from asn1crypto import tsp  # noqa: F401  - registers the signingCertificateV2 attribute with cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from app.errors import CsosError

MEDIA_TYPE = "application/x-csos-signed-order"
FILE_EXTENSION = ".csos"


class CmsError(CsosError):
    """The bytes are not a CSOS signed document we can read (DESIGN.md §6 code ``malformed``)."""

    code = "malformed"


class SignsData(Protocol):
    """What CMS needs of a key: a signature over SHA-256(data), and which algorithm made it."""

    @property
    def signature_algorithm(self) -> str: ...  # "sha256_rsa" | "sha256_ecdsa"

    def sign(self, data: bytes) -> bytes: ...


def _time(value: dt.datetime) -> cms.Time:
    value = value.astimezone(dt.timezone.utc).replace(microsecond=0)
    # RFC 5652 §11.3: UTCTime for 1950–2049, GeneralizedTime otherwise.
    if 1950 <= value.year < 2050:
        return cms.Time({"utc_time": value})
    return cms.Time({"general_time": value})


def _signing_certificate_v2(certificate_der: bytes, issuer_der: bytes, serial_number: int) -> cms.CMSAttribute:
    """RFC 5035 attribute naming the signer's certificate by SHA-256 hash and issuer + serial.

    Encoded bottom-up and re-loaded: asn1crypto builds this nested attribute from dicts about a hundred times more
    slowly than it parses the same bytes, and signing speed matters at the counter.
    """
    value = tsp.SigningCertificateV2({
        "certs": [{
            "hash_algorithm": {"algorithm": "sha256"},
            "cert_hash": hashlib.sha256(certificate_der).digest(),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": asn1_x509.Name.load(issuer_der)})],
                "serial_number": serial_number,
            },
        }],
    }).dump()
    oid = core.ObjectIdentifier("1.2.840.113549.1.9.16.2.47").dump()
    attribute = _tlv(0x30, oid + _tlv(0x31, value))
    return cms.CMSAttribute.load(attribute)


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_length(len(content)) + content


def sign_content(content: bytes, *, signer: SignsData, certificate_der: bytes,
                 intermediates_der: Sequence[bytes] = (), signing_time: dt.datetime) -> bytes:
    """Return DER ContentInfo(SignedData) with ``content`` attached, signed by ``signer``."""
    if not content:
        raise CmsError("There is nothing to sign.", code="malformed")
    certificate = asn1_x509.Certificate.load(certificate_der)
    certificate_issuer_der = x509.load_der_x509_certificate(certificate_der).issuer.public_bytes()
    signed_attributes = cms.CMSAttributes([
        cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
        cms.CMSAttribute({"type": "message_digest", "values": [hashlib.sha256(content).digest()]}),
        cms.CMSAttribute({"type": "signing_time", "values": [_time(signing_time)]}),
        _signing_certificate_v2(certificate_der, certificate_issuer_der, certificate.serial_number),
    ])
    algorithm = signer.signature_algorithm
    if algorithm not in ("sha256_rsa", "sha256_ecdsa"):
        raise CmsError(f"Signature algorithm {algorithm} is not allowed for CSOS (K5).", code="malformed")
    signature = signer.sign(signed_attributes.dump())
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
            "issuer": certificate.issuer, "serial_number": certificate.serial_number}}),
        "digest_algorithm": {"algorithm": "sha256"},
        "signed_attrs": signed_attributes,
        "signature_algorithm": {"algorithm": algorithm},
        "signature": signature,
    })
    # Embed untouched parses: asn1crypto re-encodes a certificate whose fields were read, which is slow.
    certificates = [asn1_x509.Certificate.load(der) for der in (certificate_der, *intermediates_der)]
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "data", "content": content},
        "certificates": certificates,
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


@dataclass
class SignedDocument:
    """A parsed CMS SignedData with the facts the verifier needs."""

    content: bytes
    signer_certificate: x509.Certificate
    certificates: list[x509.Certificate]
    signing_time: dt.datetime | None
    signed_attributes_der: bytes
    signature: bytes
    signature_algorithm: str
    message_digest: bytes | None
    content_type_attribute: str | None
    signing_certificate_v2_hash: bytes | None
    problems: list[tuple[str, str]] = field(default_factory=list)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [c for c in self.certificates if c != self.signer_certificate]


def parse_signed_document(data: bytes) -> SignedDocument:
    """Take a ``.csos`` apart. Structural faults raise ``CmsError``; rule failures are left to ``check_signature``."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise CmsError("The file is empty.")
    try:
        info = cms.ContentInfo.load(bytes(data), strict=True)
        if info["content_type"].native != "signed_data":
            raise CmsError("The file is CMS but not a signed document (SignedData).")
        signed = info["content"]
        encap = signed["encap_content_info"]
        if encap["content_type"].native != "data":
            raise CmsError("The signed content is not plain data (eContentType must be id-data).")
        content = encap["content"].native
        if not content:
            raise CmsError("The signed document carries no content (detached signatures are not CSOS orders).")
        signer_infos = signed["signer_infos"]
        if len(signer_infos) != 1:
            raise CmsError(f"A CSOS order has exactly one signer; this file has {len(signer_infos)}.")
        signer_info = signer_infos[0]
        attributes = signer_info["signed_attrs"]
        # Captured before any child is touched: asn1crypto re-encodes (and re-sorts) a SET OF once its children
        # have been parsed, which is slow and not what was signed.
        raw_attributes = attributes.contents if isinstance(attributes, cms.CMSAttributes) else None
        certificates = []
        for choice in signed["certificates"] or []:
            if choice.name != "certificate":
                continue
            certificates.append(_load_certificate(choice.chosen.dump()))
        signer_certificate = _find_signer(signer_info, certificates)
        if signer_info["digest_algorithm"]["algorithm"].native != "sha256":
            raise CmsError("The order was not hashed with SHA-256.")
        if raw_attributes is None or len(attributes) == 0:
            raise CmsError("The signature has no signed attributes.")
        values: dict[str, object] = {}
        for attribute in attributes:
            name = attribute["type"].native
            if name in values:
                raise CmsError(f"The signed attribute {name} appears twice.")
            if len(attribute["values"]) != 1:
                raise CmsError(f"The signed attribute {name} must have exactly one value.")
            values[name] = attribute["values"][0]
        signing_time = values["signing_time"].native if "signing_time" in values else None  # type: ignore[union-attr]
        v2_hash = None
        if "signing_certificate_v2" in values:
            certs = values["signing_certificate_v2"]["certs"]  # type: ignore[index]
            if len(certs):
                first = certs[0]
                if first["hash_algorithm"]["algorithm"].native != "sha256":
                    raise CmsError("signingCertificateV2 must use SHA-256.")
                v2_hash = first["cert_hash"].native
        algorithm = signer_info["signature_algorithm"]["algorithm"].native
        # The signature covers the attributes as DER SET OF: the received bytes with the [0] IMPLICIT tag swapped back.
        # Using the bytes as received (not a re-encoding) is both faithful and fast.
        signed_attributes_der = b"\x31" + _der_length(len(raw_attributes)) + raw_attributes
        return SignedDocument(
            content=bytes(content),
            signer_certificate=signer_certificate,
            certificates=certificates,
            signing_time=signing_time,
            signed_attributes_der=signed_attributes_der,
            signature=signer_info["signature"].native,
            signature_algorithm=algorithm,
            message_digest=values["message_digest"].native if "message_digest" in values else None,  # type: ignore
            content_type_attribute=values["content_type"].native if "content_type" in values else None,  # type: ignore
            signing_certificate_v2_hash=v2_hash,
        )
    except CmsError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as exc:
        raise CmsError(f"The file is not a readable CSOS signed document ({type(exc).__name__}).") from None


@functools.lru_cache(maxsize=256)
def _load_certificate(der: bytes) -> x509.Certificate:
    """Signers send the same few certificates with every order: parse each once.

    cryptography decodes names, extensions and the key lazily; touching them here means a damaged certificate is
    reported as a malformed document now, not as a surprise deep inside a later check.
    """
    try:
        certificate = x509.load_der_x509_certificate(der)
        certificate.subject, certificate.issuer, certificate.extensions  # noqa: B018 - decode now
        certificate.public_key()
        certificate.not_valid_before_utc, certificate.not_valid_after_utc  # noqa: B018
    except (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm) as exc:
        raise CmsError(f"A certificate in the signed document cannot be read ({type(exc).__name__}).") from None
    return certificate


def _der_length(length: int) -> bytes:
    if length < 0x80:
        return bytes([length])
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _find_signer(signer_info: cms.SignerInfo, certificates: list[x509.Certificate]) -> x509.Certificate:
    sid = signer_info["sid"]
    if not certificates:
        raise CmsError("The signed document does not include the signer's certificate.")
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
        for certificate in certificates:
            if certificate.serial_number == serial and certificate.issuer.public_bytes() == issuer_der:
                return certificate
            # Compare semantically too (encodings of the same name may differ in string types).
            if certificate.serial_number == serial and \
                    asn1_x509.Name.load(certificate.issuer.public_bytes()) == sid.chosen["issuer"]:
                return certificate
    else:
        key_id = sid.chosen.native
        for certificate in certificates:
            try:
                ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if ski == key_id:
                return certificate
    raise CmsError("The signer's certificate is not included in the signed document.")


def check_signature(document: SignedDocument) -> list[tuple[str, str]]:
    """The cryptographic rules: content digest, signature, signingCertificateV2. Returns (code, message) pairs."""
    problems: list[tuple[str, str]] = []
    if document.content_type_attribute != "data":
        problems.append(("signature_invalid", "The signed contentType attribute is missing or is not id-data."))
    if document.message_digest is None:
        problems.append(("signature_invalid", "The signed messageDigest attribute is missing."))
    elif document.message_digest != hashlib.sha256(document.content).digest():
        problems.append(("content_altered", "The order's content does not match what was signed: it was changed "
                                            "after signing."))
    if document.signing_time is None:
        problems.append(("signature_invalid", "The signingTime attribute is missing."))
    certificate_der = document.signer_certificate.public_bytes(Encoding.DER)
    if document.signing_certificate_v2_hash is None:
        problems.append(("signature_invalid", "The signingCertificateV2 attribute is missing."))
    elif document.signing_certificate_v2_hash != hashlib.sha256(certificate_der).digest():
        problems.append(("signature_invalid", "signingCertificateV2 names a different certificate than the signer's."))
    public_key = document.signer_certificate.public_key()
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and document.signature_algorithm in (
                "sha256_rsa", "rsassa_pkcs1v15"):
            public_key.verify(document.signature, document.signed_attributes_der, padding.PKCS1v15(),
                              hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and document.signature_algorithm in (
                "sha256_ecdsa", "ecdsa"):
            public_key.verify(document.signature, document.signed_attributes_der, ec.ECDSA(hashes.SHA256()))
        else:
            problems.append(("signature_invalid", f"Signature algorithm {document.signature_algorithm} does not "
                                                  "fit the signer's key or is not allowed."))
    except InvalidSignature:
        problems.append(("signature_invalid", "The signature does not verify with the signer's certificate."))
    return problems

