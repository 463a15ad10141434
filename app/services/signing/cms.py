"""CMS SignedData (RFC 5652) for signed orders and statements: build and take apart (DESIGN.md §5).

Built with asn1crypto because cryptography's PKCS7 builder cannot add signingCertificateV2 (RFC 5035). The
signature itself comes from the key-store ``Signer`` interface, so software keys and tokens share this one path.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import threading
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from asn1crypto import algos, cms, core
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


def _time(value: dt.datetime) -> bytes:
    """DER Time (RFC 5652 §11.3): UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, Zulu."""
    value = value.astimezone(dt.timezone.utc)
    if 1950 <= value.year < 2050:
        return _tlv(0x17, value.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return _tlv(0x18, f"{value.year:04d}{value.strftime('%m%d%H%M%S')}Z".encode("ascii"))


def _signing_certificate_v2(certificate_der: bytes, issuer_der: bytes, serial_number: int) -> bytes:
    """RFC 5035 attribute (DER) naming the signer's certificate by SHA-256 hash and issuer + serial."""
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
    return _attribute(_OID_SIGNING_CERTIFICATE_V2, value)


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER tag-length-value (definite length; used at import time, so it does not rely on later helpers)."""
    length = len(content)
    if length < 0x80:
        return bytes((tag, length)) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(encoded))) + encoded + content


def _attribute(oid_der: bytes, value_der: bytes) -> bytes:
    """Attribute ::= SEQUENCE { attrType OBJECT IDENTIFIER, attrValues SET OF AttributeValue } with one value."""
    return _tlv(0x30, oid_der + _tlv(0x31, value_der))


def _oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


_OID_DATA = _oid("1.2.840.113549.1.7.1")
_OID_SIGNED_DATA = _oid("1.2.840.113549.1.7.2")
_OID_MESSAGE_DIGEST = _oid("1.2.840.113549.1.9.4")
_OID_SIGNING_TIME = _oid("1.2.840.113549.1.9.5")
_OID_SIGNING_CERTIFICATE_V2 = _oid("1.2.840.113549.1.9.16.2.47")
_VERSION_1 = b"\x02\x01\x01"
_NULL = b"\x05\x00"
# AlgorithmIdentifiers exactly as asn1crypto (and OpenSSL) write them: NULL parameters except for ECDSA (RFC 5758).
_SHA256_ALGORITHM = _tlv(0x30, _oid("2.16.840.1.101.3.4.2.1") + _NULL)
_SIGNATURE_ALGORITHMS = {
    "sha256_rsa": _tlv(0x30, _oid("1.2.840.113549.1.1.11") + _NULL),
    "sha256_ecdsa": _tlv(0x30, _oid("1.2.840.10045.4.3.2")),
}
_CONTENT_TYPE_ATTRIBUTE = _attribute(_oid("1.2.840.113549.1.9.3"), _OID_DATA)


@dataclass(frozen=True)
class _SignerPieces:
    """What a signature needs of the signer's certificate, encoded once per certificate."""

    signer_identifier: bytes  # IssuerAndSerialNumber, the certificate's own issuer and serial bytes
    signing_certificate_v2: bytes  # the whole signed attribute


@functools.lru_cache(maxsize=32)
def _signer_pieces(certificate_der: bytes) -> _SignerPieces:
    try:
        tbs = asn1_x509.Certificate.load(certificate_der, strict=True)["tbs_certificate"]
        issuer, serial = tbs["issuer"], tbs["serial_number"]
        signer_identifier = _tlv(0x30, issuer.dump() + serial.dump())  # untouched parses dump the input bytes
        issuer_der = x509.load_der_x509_certificate(certificate_der).issuer.public_bytes()
        return _SignerPieces(signer_identifier, _signing_certificate_v2(certificate_der, issuer_der, serial.native))
    except (ValueError, TypeError, KeyError, x509.InvalidVersion) as exc:
        raise CmsError(f"The signer's certificate cannot be read ({type(exc).__name__}).", code="malformed") from None


@functools.lru_cache(maxsize=32)
def _certificate_set(certificates_der: tuple[bytes, ...]) -> bytes:
    """certificates [0] IMPLICIT CertificateSet: signer + intermediates as given (DER SET OF, so sorted)."""
    for der in certificates_der:
        try:
            asn1_x509.Certificate.load(der, strict=True)
        except ValueError:
            raise CmsError("A certificate to embed cannot be read.", code="malformed") from None
    return _tlv(0xA0, b"".join(sorted(certificates_der)))


@dataclass(frozen=True)
class UnsignedDocument:
    """A CMS SignedData short of its signature. ``to_sign`` is what the key signs (the signed attributes as an
    explicit SET OF, RFC 5652 §5.4); ``with_signature`` gives the finished DER ContentInfo."""

    to_sign: bytes
    algorithm: str
    attributes: bytes
    signer_identifier: bytes
    content: bytes
    certificates: bytes

    def with_signature(self, signature: bytes) -> bytes:
        signer_info = _tlv(0x30, _VERSION_1 + self.signer_identifier + _SHA256_ALGORITHM
                           + _tlv(0xA0, self.attributes) + _SIGNATURE_ALGORITHMS[self.algorithm]
                           + _tlv(0x04, signature))
        signed_data = _tlv(0x30, _VERSION_1 + _tlv(0x31, _SHA256_ALGORITHM)
                           + _tlv(0x30, _OID_DATA + _tlv(0xA0, _tlv(0x04, self.content)))
                           + self.certificates + _tlv(0x31, signer_info))
        return _tlv(0x30, _OID_SIGNED_DATA + _tlv(0xA0, signed_data))


def prepare_signed_document(content: bytes, *, algorithm: str, certificate_der: bytes,
                            intermediates_der: Sequence[bytes] = (), signing_time: dt.datetime) -> UnsignedDocument:
    """Everything of ``sign_content``'s document but the signature, for a caller that has the key sign ``to_sign``
    itself (a token signing on its own thread while the caller works on)."""
    if not content:
        raise CmsError("There is nothing to sign.", code="malformed")
    if algorithm not in _SIGNATURE_ALGORITHMS:
        raise CmsError(f"This kind of signature ({algorithm}) is not allowed for CSOS orders: only RSA or ECDSA with "
                       "SHA-256.", code="malformed")
    pieces = _signer_pieces(bytes(certificate_der))
    certificates = _certificate_set((bytes(certificate_der), *map(bytes, intermediates_der)))
    # SignedAttributes: a DER SET OF, elements sorted by their encoding (X.690 §11.6).
    attributes = b"".join(sorted((
        _CONTENT_TYPE_ATTRIBUTE,
        _attribute(_OID_MESSAGE_DIGEST, _tlv(0x04, hashlib.sha256(content).digest())),
        _attribute(_OID_SIGNING_TIME, _time(signing_time)),
        pieces.signing_certificate_v2,
    )))
    return UnsignedDocument(to_sign=_tlv(0x31, attributes), algorithm=algorithm, attributes=attributes,
                            signer_identifier=pieces.signer_identifier, content=content, certificates=certificates)


def sign_content(content: bytes, *, signer: SignsData, certificate_der: bytes,
                 intermediates_der: Sequence[bytes] = (), signing_time: dt.datetime) -> bytes:
    """Return DER ContentInfo(SignedData) with ``content`` attached, signed by ``signer``.

    Written straight as DER: everything but the digest, the time and the signature is fixed per certificate and
    encoded once (``_signer_pieces``, ``_certificate_set``). The output is byte for byte what asn1crypto builds for
    the same structure (tests/integration/test_signing.py compares them), at a few percent of its cost.
    """
    unsigned = prepare_signed_document(content, algorithm=signer.signature_algorithm,
                                       certificate_der=certificate_der, intermediates_der=intermediates_der,
                                       signing_time=signing_time)
    return unsigned.with_signature(signer.sign(unsigned.to_sign))


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
    # (certificate, SHA-256 of its DER, public key) worked out once per certificate by the reader; check_signature
    # uses it only while ``signer_certificate`` is still that very certificate.
    signer_facts: tuple[x509.Certificate, bytes, object] | None = field(default=None, repr=False, compare=False)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        signer = self.signer_certificate
        # ``is not`` first: comparing a certificate with an equal one is slow (a few µs), with another one fast.
        return [c for c in self.certificates if c is not signer and c != signer]


def parse_signed_document(data: bytes) -> SignedDocument:
    """Take a ``.csos`` apart. Structural faults raise ``CmsError``; rule failures are left to ``check_signature``.

    Two readers, one result. ``_read_der`` walks the plain DER shape every CSOS signer writes (ours, OpenSSL's) with
    a few slices and byte comparisons; it accepts a document only where every element has exactly the expected
    tag and a minimal definite length, and hands anything else to ``_parse_general`` (asn1crypto), which decides —
    and words the error — as before. So the fast reader can only ever agree with the general one
    (tests/unit/signing/test_cms.py compares the two on many mutated documents).
    """
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise CmsError("The file is empty.")
    data = bytes(data)
    try:
        document = _read_der(data)
    except (_NotPlainDer, CmsError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError):
        document = None
    return document if document is not None else _parse_general(data)


def _parse_general(data: bytes) -> SignedDocument:
    """The general reader (asn1crypto): any BER/DER shape, and the wording of every structural error."""
    try:
        info = cms.ContentInfo.load(data, strict=True)
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


# -- the plain-DER reader (parse_signed_document's fast path) ------------------------------------------------------


class _NotPlainDer(Exception):
    """The plain-DER reader met a shape it does not handle: the general reader decides."""


def _rd_oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).contents


_RD_SIGNED_DATA = _rd_oid("1.2.840.113549.1.7.2")
_RD_DATA = _rd_oid("1.2.840.113549.1.7.1")
_RD_SHA256 = _rd_oid("2.16.840.1.101.3.4.2.1")
# The signed attributes the reader understands, with the tag of their one value; any other → general reader.
_RD_ATTRIBUTES = {
    _rd_oid("1.2.840.113549.1.9.3"): ("content_type", 0x06),
    _rd_oid("1.2.840.113549.1.9.4"): ("message_digest", 0x04),
    _rd_oid("1.2.840.113549.1.9.5"): ("signing_time", 0x17),  # UTCTime; GeneralizedTime → general reader
    _rd_oid("1.2.840.113549.1.9.16.2.47"): ("signing_certificate_v2", 0x30),
}
# The signature algorithms check_signature can accept, named exactly as asn1crypto names them.
_RD_SIGNATURE_ALGORITHMS = {_rd_oid(dotted): name for dotted, name in algos.SignedDigestAlgorithmId._map.items()
                            if name in ("sha256_rsa", "rsassa_pkcs1v15", "sha256_ecdsa", "ecdsa")}
_RD_UTC_TIME = re.compile(rb"[0-9]{12}Z")
# An attribute SEQUENCE { type, SET { value } } whose value is a SHA-256 digest (messageDigest) or a UTCTime
# (signingTime), up to the value's contents: what the loop over the attributes reads from these bytes.
_RD_ATTRIBUTE_OIDS = {name: oid for oid, (name, _) in _RD_ATTRIBUTES.items()}


def _rd_value_prefix(name: str, size: int) -> tuple[bytes, str]:
    tag = next(tag for known, tag in _RD_ATTRIBUTES.values() if known == name)
    whole = _tlv(0x30, _tlv(0x06, _RD_ATTRIBUTE_OIDS[name]) + _tlv(0x31, _tlv(tag, bytes(size))))
    return whole[:-size], name


_RD_VALUE_PREFIXES = (_rd_value_prefix("message_digest", 32), _rd_value_prefix("signing_time", 13))
assert len(_RD_VALUE_PREFIXES) == 2 and all(prefix[-1] in (32, 13) for prefix, _ in _RD_VALUE_PREFIXES)
_RD_CERTIFICATE_SETS_MAX = 256
# Raw certificates [0] SET contents → ((certificate, serial, issuer DER, (certificate, SHA-256, public key)), ...).
# Signers send the same certificates with every order; keyed by the certificates' own bytes, never the document's.
_rd_certificate_sets: dict[bytes, tuple[tuple[x509.Certificate, int, bytes, tuple], ...]] = {}
_rd_lock = threading.Lock()
# An attribute's whole DER → (name, value) for contentType and signingCertificateV2 (a function of those bytes alone):
# a signer sends the same two with every order.
# The last SignerInfo head (version, sid, digestAlgorithm: bytes, issuer DER, serial) and certificate set (bytes,
# entry) read: orders come signer after signer, so the next is most often the same (checked byte for byte).
_rd_signer_head: tuple[bytes, bytes, int] | None = None
_rd_last_certificates: tuple[bytes, tuple] | None = None
_RD_FIXED_ATTRIBUTES_MAX = 256
_rd_fixed_attributes: dict[bytes, tuple[str, object]] = {}


def _rd_header(data: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """The element at ``pos`` must have identifier octet ``tag`` and a minimal definite length that ends by ``end``.

    Returns (contents start, contents end)."""
    if pos + 2 > end or data[pos] != tag:
        raise _NotPlainDer
    length = data[pos + 1]
    pos += 2
    if length >= 0x80:
        count = length - 0x80
        if not 1 <= count <= 3 or pos + count > end:
            raise _NotPlainDer
        length = int.from_bytes(data[pos:pos + count], "big")
        if length < 0x80 or length >> (8 * (count - 1)) == 0:
            raise _NotPlainDer  # not the minimal encoding of the length
        pos += count
    stop = pos + length
    if stop > end:
        raise _NotPlainDer
    return pos, stop


def _rd_algorithm(data: bytes, start: int, end: int) -> bytes:
    """AlgorithmIdentifier contents → the OID's contents; parameters must be absent or NULL."""
    oid_start, oid_end = _rd_header(data, start, end, 0x06)
    if oid_end != end and data[oid_end:end] != b"\x05\x00":
        raise _NotPlainDer
    return data[oid_start:oid_end]


def _rd_certificates_in(data: bytes, start: int, end: int) -> tuple[tuple[x509.Certificate, int, bytes, tuple], ...]:
    """``_rd_certificates(data[start:end])``; the same certificates as last time are recognised without the copy."""
    global _rd_last_certificates
    last = _rd_last_certificates
    if last is not None and len(last[0]) == end - start and data.startswith(last[0], start):
        return last[1]
    raw = data[start:end]
    entry = _rd_certificates(raw)
    _rd_last_certificates = (raw, entry)
    return entry


def _rd_certificates(raw: bytes) -> tuple[tuple[x509.Certificate, int, bytes, tuple], ...]:
    entry = _rd_certificate_sets.get(raw)
    if entry is not None:
        return entry
    items = []
    pos, end = 0, len(raw)
    while pos < end:
        start = pos
        _, pos = _rd_header(raw, pos, end, 0x30)  # CertificateChoices: only plain certificates here
        der = raw[start:pos]
        certificate = _load_certificate(der)
        items.append((certificate, certificate.serial_number, certificate.issuer.public_bytes(),
                      (certificate, hashlib.sha256(der).digest(), certificate.public_key())))
    entry = tuple(items)
    with _rd_lock:
        if len(_rd_certificate_sets) >= _RD_CERTIFICATE_SETS_MAX:
            del _rd_certificate_sets[next(iter(_rd_certificate_sets))]
        _rd_certificate_sets[raw] = entry
    return entry


def _rd_signer_identifier(data: bytes, start: int, end: int) -> tuple[bytes, int, int]:
    """SignerInfo's version, sid (issuerAndSerialNumber) and digestAlgorithm (SHA-256) from ``start`` → (issuer DER,
    serial, where the signed attributes start). Remembers those bytes (``_rd_signer_head``): a signer's are the same
    in every order."""
    global _rd_signer_head
    h = _rd_header
    _, pos = h(data, start, end, 0x02)
    sid_start, sid_end = h(data, pos, end, 0x30)
    _, issuer_end = h(data, sid_start, sid_end, 0x30)
    serial_start, serial_end = h(data, issuer_end, sid_end, 0x02)
    if serial_end != sid_end or serial_start == serial_end:
        raise _NotPlainDer
    issuer_der = data[sid_start:issuer_end]
    serial = int.from_bytes(data[serial_start:serial_end], "big", signed=True)
    algorithm_start, pos = h(data, sid_end, end, 0x30)
    if _rd_algorithm(data, algorithm_start, pos) != _RD_SHA256:
        raise _NotPlainDer
    _rd_signer_head = (data[start:pos], issuer_der, serial)
    return issuer_der, serial, pos


def _rd_v2_hash(data: bytes, start: int, end: int) -> bytes:
    """SigningCertificateV2 contents → the first ESSCertIDv2's SHA-256 certificate hash."""
    certs_start, certs_end = _rd_header(data, start, end, 0x30)
    if certs_end != end:
        raise _NotPlainDer  # policies
    first_start, first_end = _rd_header(data, certs_start, certs_end, 0x30)
    pos = first_end
    while pos < certs_end:  # further ESSCertIDv2: only their tags matter (as for the general reader)
        _, pos = _rd_header(data, pos, certs_end, 0x30)
    pos = first_start
    if pos < first_end and data[pos] == 0x30:  # hashAlgorithm, DEFAULT sha256 (so normally absent)
        algorithm_start, pos = _rd_header(data, pos, first_end, 0x30)
        if _rd_algorithm(data, algorithm_start, pos) != _RD_SHA256:
            raise _NotPlainDer
    hash_start, hash_end = _rd_header(data, pos, first_end, 0x04)
    if hash_end != first_end:
        _, pos = _rd_header(data, hash_end, first_end, 0x30)  # issuerSerial
        if pos != first_end:
            raise _NotPlainDer
    return data[hash_start:hash_end]


def _read_der(data: bytes) -> SignedDocument:
    """The fast reader: plain DER of the expected shape only; raises ``_NotPlainDer`` for anything else."""
    h = _rd_header
    end = len(data)
    # ContentInfo { contentType signedData, [0] EXPLICIT SignedData }, nothing after it
    start, stop = h(data, 0, end, 0x30)
    oid_start, pos = h(data, start, stop, 0x06)
    if stop != end or data[oid_start:pos] != _RD_SIGNED_DATA:
        raise _NotPlainDer
    pos, wrapper_end = h(data, pos, stop, 0xA0)
    start, stop = h(data, pos, wrapper_end, 0x30)
    if wrapper_end != end or stop != end:
        raise _NotPlainDer
    # SignedData { version, digestAlgorithms, encapContentInfo, [0] certificates, signerInfos }
    version_start, pos = h(data, start, stop, 0x02)
    if data[version_start:pos] not in (b"\x01", b"\x03"):
        raise _NotPlainDer
    _, pos = h(data, pos, stop, 0x31)  # digestAlgorithms: read by neither reader (the signer's own one counts)
    start, encap_end = h(data, pos, stop, 0x30)
    oid_start, pos = h(data, start, encap_end, 0x06)
    if data[oid_start:pos] != _RD_DATA:
        raise _NotPlainDer
    pos, wrapper_end = h(data, pos, encap_end, 0xA0)
    content_start, content_end = h(data, pos, wrapper_end, 0x04)
    if wrapper_end != encap_end or content_end != encap_end or content_start == content_end:
        raise _NotPlainDer
    certificates_start, certificates_end = h(data, encap_end, stop, 0xA0)
    pos, infos_end = h(data, certificates_end, stop, 0x31)  # crls [1] → general reader
    start, info_end = h(data, pos, infos_end, 0x30)
    if infos_end != stop or info_end != stop:
        raise _NotPlainDer  # exactly one SignerInfo
    # SignerInfo { version, sid issuerAndSerialNumber, digestAlgorithm, [0] signedAttrs, signatureAlgorithm,
    #              signature }  (subjectKeyIdentifier, unsignedAttrs → general reader)
    known_head = _rd_signer_head
    if (known_head is not None and start + len(known_head[0]) <= info_end
            and data.startswith(known_head[0], start)):  # the same version, sid and digestAlgorithm as last time
        _, issuer_der, serial = known_head
        pos = start + len(known_head[0])
    else:
        issuer_der, serial, pos = _rd_signer_identifier(data, start, info_end)
    attributes_start, attributes_end = h(data, pos, info_end, 0xA0)
    start, pos = h(data, attributes_end, info_end, 0x30)
    algorithm = _RD_SIGNATURE_ALGORITHMS.get(_rd_algorithm(data, start, pos))
    signature_start, signature_end = h(data, pos, info_end, 0x04)
    if algorithm is None or signature_end != info_end:
        raise _NotPlainDer
    # Signed attributes: each known, once, with exactly one value of the expected type
    values: dict[str, tuple[int, int]] = {}
    fixed: dict[str, object] = {}  # contentType and signingCertificateV2, the same in every order of a signer
    pos = attributes_start
    while pos < attributes_end:
        start, attribute_end = h(data, pos, attributes_end, 0x30)
        raw = data[pos:attribute_end]
        known = _rd_fixed_attributes.get(raw)
        if known is not None:  # read before, from these very bytes
            if known[0] in values or known[0] in fixed:
                raise _NotPlainDer
            fixed[known[0]] = known[1]
            pos = attribute_end
            continue
        for prefix, name in _RD_VALUE_PREFIXES:  # messageDigest, signingTime: the usual bytes around the value
            if attribute_end - pos == len(prefix) + prefix[-1] and data.startswith(prefix, pos):
                if name in values or name in fixed:
                    raise _NotPlainDer
                values[name] = (pos + len(prefix), attribute_end)
                break
        else:
            name = None
        if name is not None:
            pos = attribute_end
            continue
        oid_start, oid_end = h(data, start, attribute_end, 0x06)
        known = _RD_ATTRIBUTES.get(data[oid_start:oid_end])
        if known is None or known[0] in values or known[0] in fixed:
            raise _NotPlainDer
        start, set_end = h(data, oid_end, attribute_end, 0x31)
        value_start, value_end = h(data, start, set_end, known[1])
        if set_end != attribute_end or value_end != set_end:
            raise _NotPlainDer
        if known[0] == "content_type":
            if data[value_start:value_end] != _RD_DATA:
                raise _NotPlainDer
            fixed["content_type"] = "data"
        elif known[0] == "signing_certificate_v2":
            fixed["signing_certificate_v2"] = _rd_v2_hash(data, value_start, value_end)
        else:
            values[known[0]] = (value_start, value_end)
            pos = attribute_end
            continue
        if len(_rd_fixed_attributes) >= _RD_FIXED_ATTRIBUTES_MAX:
            _rd_fixed_attributes.clear()
        _rd_fixed_attributes[raw] = (known[0], fixed[known[0]])
        pos = attribute_end
    if not values and not fixed:
        raise _NotPlainDer
    content_type = fixed.get("content_type")
    v2_hash = fixed.get("signing_certificate_v2")
    message_digest = signing_time = None
    if "message_digest" in values:
        start, stop = values["message_digest"]
        message_digest = data[start:stop]
    if "signing_time" in values:
        start, stop = values["signing_time"]
        text = data[start:stop]
        if not _RD_UTC_TIME.fullmatch(text):
            raise _NotPlainDer
        year = int(text[0:2])
        signing_time = dt.datetime(year + (2000 if year < 50 else 1900), int(text[2:4]), int(text[4:6]),
                                   int(text[6:8]), int(text[8:10]), int(text[10:12]), tzinfo=dt.timezone.utc)
    # The signer among the certificates, matched on serial and issuer as received (else: general reader)
    certificates = _rd_certificates_in(data, certificates_start, certificates_end)
    for certificate, certificate_serial, certificate_issuer, facts in certificates:
        if certificate_serial == serial:
            if certificate_issuer != issuer_der:
                raise _NotPlainDer  # perhaps the same name spelled differently
            break
    else:
        raise _NotPlainDer
    raw_attributes = data[attributes_start:attributes_end]
    return SignedDocument(
        content=data[content_start:content_end],
        signer_certificate=certificate,
        certificates=[item[0] for item in certificates],
        signing_time=signing_time,
        signed_attributes_der=b"\x31" + _der_length(len(raw_attributes)) + raw_attributes,
        signature=data[signature_start:signature_end],
        signature_algorithm=algorithm,
        message_digest=message_digest,
        content_type_attribute=content_type,
        signing_certificate_v2_hash=v2_hash,
        signer_facts=facts,
    )


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
    except (ValueError, x509.DuplicateExtension, x509.InvalidVersion, UnsupportedAlgorithm) as exc:
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


_PKCS1V15, _SHA256, _ECDSA_SHA256 = padding.PKCS1v15(), hashes.SHA256(), ec.ECDSA(hashes.SHA256())  # stateless


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
    facts = document.signer_facts
    if facts is not None and facts[0] is document.signer_certificate:
        certificate_hash, public_key = facts[1], facts[2]
    else:
        certificate_hash = hashlib.sha256(document.signer_certificate.public_bytes(Encoding.DER)).digest()
        public_key = document.signer_certificate.public_key()
    if document.signing_certificate_v2_hash is None:
        problems.append(("signature_invalid", "The signingCertificateV2 attribute is missing."))
    elif document.signing_certificate_v2_hash != certificate_hash:
        problems.append(("signature_invalid", "signingCertificateV2 names a different certificate than the signer's."))
    try:
        if isinstance(public_key, rsa.RSAPublicKey) and document.signature_algorithm in (
                "sha256_rsa", "rsassa_pkcs1v15"):
            public_key.verify(document.signature, document.signed_attributes_der, _PKCS1V15, _SHA256)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and document.signature_algorithm in (
                "sha256_ecdsa", "ecdsa"):
            public_key.verify(document.signature, document.signed_attributes_der, _ECDSA_SHA256)
        else:
            problems.append(("signature_invalid", f"Signature algorithm {document.signature_algorithm} does not "
                                                  "fit the signer's key or is not allowed."))
    except InvalidSignature:
        problems.append(("signature_invalid", "The signature does not verify with the signer's certificate."))
    return problems

