"""The CSOS certificate profile: every DEA-specific fact about CSOS certificates lives in this one module.

DEA's *Certificate & CRL Profile* is not public. What is here follows DESIGN.md §4 (public DEA/VA code and
documents); ``docs/certificate-profile.md`` lists which facts are unconfirmed. To swap in production values, change the
constants and the encode/parse functions here: the CA engine (``services.certificates.ca``), the validator and the order verifier
only talk to this module.

Contents:

* OIDs and ASN.1 encodings of the six CSOS extensions under ``2.16.840.1.101.3.5``;
* ``dea_number_hash`` (the deaNumberHash input rule);
* builders returning ``x509.UnrecognizedExtension`` values, and strict parsers for them;
* the subject / keyUsage / validity rules a CSOS CA applies;
* ``CsosCertificate``: a frozen, parsed view of a certificate that the rest of the program reads.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID

from app.errors import CsosError
from app.models.values import CERTIFICATE_SCHEDULE_BITS, DeaNumber, Schedule

# --------------------------------------------------------------------------------------------------------------------
# Profile constants
# --------------------------------------------------------------------------------------------------------------------

CSOS_ARC = "2.16.840.1.101.3.5"
OID_CSOS_VERSION = x509.ObjectIdentifier(CSOS_ARC + ".1")
OID_REGISTRANT_NAME = x509.ObjectIdentifier(CSOS_ARC + ".2")
OID_DEA_NUMBER_HASH = x509.ObjectIdentifier(CSOS_ARC + ".3")
OID_AUTHORIZED_SCHEDULES = x509.ObjectIdentifier(CSOS_ARC + ".4")
OID_BUSINESS_ACTIVITY = x509.ObjectIdentifier(CSOS_ARC + ".5")
OID_REGISTRANT_ADDRESS = x509.ObjectIdentifier(CSOS_ARC + ".6")

CSOS_EXTENSION_OIDS: frozenset[x509.ObjectIdentifier] = frozenset({
    OID_CSOS_VERSION, OID_REGISTRANT_NAME, OID_DEA_NUMBER_HASH,
    OID_AUTHORIZED_SCHEDULES, OID_BUSINESS_ACTIVITY, OID_REGISTRANT_ADDRESS,
})
# Extensions a signing certificate cannot do without (S1 needs the hash and the schedules).
REQUIRED_SIGNING_EXTENSION_OIDS: frozenset[x509.ObjectIdentifier] = frozenset({
    OID_CSOS_VERSION, OID_DEA_NUMBER_HASH, OID_AUTHORIZED_SCHEDULES,
})
CSOS_EXTENSIONS_CRITICAL = False

CSOS_VERSION = 1
DEA_HASH_LENGTH = 20  # SHA-1
ADDRESS_SEPARATOR = "$"

ADMINISTRATIVE_VALIDITY = timedelta(days=3 * 365)
CRL_NEXT_UPDATE = timedelta(hours=24)
# Training hierarchy names (DESIGN.md §4). Production names come from DEA's real certificates.
TRAINING_ROOT_CA_NAME = "CSOS Training Root CA"
TRAINING_SUB_CA_NAME = "CSOS Training Sub CA"
CA_ORGANIZATION = "CSOS Training"

# X.520 upper bounds that matter for the subject we build.
_UB_COMMON_NAME = 64
_UB_ORGANIZATION = 64
_UB_SERIAL_NUMBER = 64

CertificateKind = Literal["signing", "administrative"]


# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------


class CertificateProfileError(CsosError):
    """A certificate (or the data to build one) does not follow the CSOS certificate profile.

    Codes: ``certificate.malformed`` (not parseable), ``certificate.extension`` (a CSOS extension is malformed or
    missing), ``certificate.subject`` (subject fields), ``profile.value`` (data to build a certificate is invalid).
    """

    code = "certificate.malformed"


# --------------------------------------------------------------------------------------------------------------------
# ASN.1 types of the CSOS extensions
# --------------------------------------------------------------------------------------------------------------------


class AuthorizedSchedules(core.BitString):
    """authorizedSchedules: a named BIT STRING; bit 0 (MSB of the first octet) = Schedule I.

    asn1crypto applies the DER named-bit rule for types with ``_map`` (trailing zero bits removed).
    """

    _map = {index: schedule.value for index, schedule in enumerate(CERTIFICATE_SCHEDULE_BITS)}


def dea_number_hash(dea: str | DeaNumber, subject_serial: str) -> bytes:
    """deaNumberHash = SHA-1( ASCII(upper(DEA number)) ‖ ASCII(subject serialNumber) )."""
    number = dea.value if isinstance(dea, DeaNumber) else str(dea).strip().upper()
    try:
        data = number.encode("ascii") + subject_serial.encode("ascii")
    except UnicodeEncodeError:
        raise CertificateProfileError(
            "The DEA number and the subscriber serial number must be plain ASCII.", code="profile.value"
        ) from None
    return hashlib.sha1(data).digest()  # noqa: S324 - SHA-1 is what the profile specifies (a lookup, not a signature)


def encode_schedules(schedules) -> bytes:
    """DER of authorizedSchedules for the given schedules (NON_CONTROLLED is not a bit and is ignored)."""
    names = set()
    for schedule in schedules:
        schedule = Schedule.parse(schedule) if isinstance(schedule, str) else schedule
        if schedule is Schedule.NON_CONTROLLED:
            continue
        names.add(schedule.value)
    return AuthorizedSchedules(names).dump(force=True)


def decode_schedules(der: bytes) -> frozenset[Schedule]:
    try:
        value = AuthorizedSchedules.load(der, strict=True)
        native = value.native
    except (ValueError, TypeError) as exc:
        raise CertificateProfileError(
            f"The certificate's authorizedSchedules extension is not a valid BIT STRING ({exc}).",
            code="certificate.extension",
        ) from None
    unknown = sorted(bit for bit in native if isinstance(bit, int))
    if unknown:
        raise CertificateProfileError(
            f"The certificate's authorizedSchedules extension sets bit(s) {unknown}, which name no schedule this "
            "program knows.",
            code="certificate.extension",
        )
    return frozenset(Schedule(name) for name in native)


def _der_utf8(text: str) -> bytes:
    return core.UTF8String(text).dump()


def _parse(spec, der: bytes, what: str):
    try:
        value = spec.load(der, strict=True)
        return value.native
    except (ValueError, TypeError) as exc:
        raise CertificateProfileError(
            f"The certificate's {what} extension is malformed ({exc}).", code="certificate.extension"
        ) from None


def _parse_utf8(der: bytes, what: str) -> str:
    return _parse(core.UTF8String, der, what)


# --------------------------------------------------------------------------------------------------------------------
# What goes into a certificate
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriberIdentity:
    """The person the certificate is for (from the approved application, never from the CSR's subject)."""

    full_name: str
    email: str
    serial: str  # subject serialNumber: digits, assigned by the CA, unique per subscriber


@dataclass(frozen=True, slots=True)
class RegistrationFacts:
    """The DEA registration a signing certificate is issued under."""

    dea_number: DeaNumber
    registrant_name: str
    address_lines: tuple[str, ...]
    business_activity: str
    schedules: frozenset[Schedule]
    expires: datetime  # registration expiry = the certificate's notAfter


def _check_text(value: str, what: str, limit: int | None = None) -> str:
    if not isinstance(value, str) or not value.strip():
        raise CertificateProfileError(f"The {what} is empty.", code="profile.value")
    value = value.strip()
    if limit is not None and len(value) > limit:
        raise CertificateProfileError(
            f"The {what} is {len(value)} characters long; a certificate allows at most {limit}.",
            code="profile.value",
        )
    return value


def build_subject(*, registrant_name: str, full_name: str, serial: str) -> x509.Name:
    """``C=US, O=<registrant name>, CN=<full name>, serialNumber=<digits>``."""
    serial = _check_text(serial, "subscriber serial number", _UB_SERIAL_NUMBER)
    if not (serial.isascii() and serial.isdigit()):
        raise CertificateProfileError("The subscriber serial number must be digits only.", code="profile.value")
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, _check_text(registrant_name, "registrant name",
                                                                  _UB_ORGANIZATION)),
        x509.NameAttribute(NameOID.COMMON_NAME, _check_text(full_name, "subscriber's full name", _UB_COMMON_NAME)),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
    ])


def subscriber_key_usage() -> x509.KeyUsage:
    """keyUsage of subscriber certificates (critical): digitalSignature + nonRepudiation."""
    return x509.KeyUsage(
        digital_signature=True, content_commitment=True, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )


SUBSCRIBER_KEY_USAGE_CRITICAL = True


def build_csos_extensions(registration: RegistrationFacts,
                          subscriber_serial: str) -> list[x509.UnrecognizedExtension]:
    """The six CSOS extensions of a signing certificate (all non-critical), in OID order."""
    lines = tuple(_check_text(line, "address line") for line in registration.address_lines)
    if not lines:
        raise CertificateProfileError("The registrant address has no lines.", code="profile.value")
    for line in lines:
        if ADDRESS_SEPARATOR in line:
            raise CertificateProfileError(
                f"An address line may not contain '{ADDRESS_SEPARATOR}' (it separates the lines).",
                code="profile.value",
            )
    schedules = frozenset(registration.schedules) - {Schedule.NON_CONTROLLED}
    return [
        x509.UnrecognizedExtension(OID_CSOS_VERSION, core.Integer(CSOS_VERSION).dump()),
        x509.UnrecognizedExtension(OID_REGISTRANT_NAME,
                                   _der_utf8(_check_text(registration.registrant_name, "registrant name"))),
        x509.UnrecognizedExtension(OID_DEA_NUMBER_HASH,
                                   core.OctetString(dea_number_hash(registration.dea_number,
                                                                    subscriber_serial)).dump()),
        x509.UnrecognizedExtension(OID_AUTHORIZED_SCHEDULES, encode_schedules(schedules)),
        x509.UnrecognizedExtension(OID_BUSINESS_ACTIVITY,
                                   _der_utf8(_check_text(registration.business_activity, "business activity"))),
        x509.UnrecognizedExtension(OID_REGISTRANT_ADDRESS, _der_utf8(ADDRESS_SEPARATOR.join(lines))),
    ]


# --------------------------------------------------------------------------------------------------------------------
# Parsed view
# --------------------------------------------------------------------------------------------------------------------


def _name_value(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware (UTC) datetime")
    return moment.astimezone(timezone.utc)


@dataclass(frozen=True)
class CsosCertificate:
    """A read-only view of a certificate through the CSOS profile.

    Build with ``from_certificate`` / ``from_der`` / ``from_pem``. A certificate with none of the CSOS extensions is
    ``administrative`` (a coordinator certificate, S4: cannot sign orders); one with any of them is ``signing`` and must
    then carry a well-formed version, DEA-number hash and schedules, or ``CertificateProfileError`` is raised.
    """

    certificate: x509.Certificate = field(repr=False, compare=False)
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    kind: CertificateKind
    subscriber_name: str | None
    email: str | None
    subject_serial: str | None
    organization: str | None
    issuer: str
    serial_number: int
    not_before: datetime
    not_after: datetime
    crl_urls: tuple[str, ...]
    csos_version: int | None = None
    registrant_name: str | None = None
    registrant_address: tuple[str, ...] = ()
    business_activity: str | None = None
    dea_number_hash: bytes | None = field(default=None, repr=False)
    schedules: frozenset[Schedule] = frozenset()

    @classmethod
    def from_der(cls, der: bytes) -> "CsosCertificate":
        try:
            cert = x509.load_der_x509_certificate(der)
        except (ValueError, x509.InvalidVersion) as exc:
            raise CertificateProfileError(f"This is not an X.509 certificate ({exc}).") from None
        return cls.from_certificate(cert)

    @classmethod
    def from_pem(cls, pem: bytes) -> "CsosCertificate":
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except (ValueError, x509.InvalidVersion) as exc:
            raise CertificateProfileError(f"This is not a PEM X.509 certificate ({exc}).") from None
        return cls.from_certificate(cert)

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> "CsosCertificate":
        try:
            extensions = cert.extensions
        except (ValueError, x509.DuplicateExtension) as exc:  # duplicate / badly encoded known extensions
            raise CertificateProfileError(
                f"The certificate's extensions cannot be read ({exc}).", code="certificate.extension"
            ) from None
        try:
            cert.subject, cert.issuer  # noqa: B018 - cryptography decodes names lazily
        except ValueError:
            raise CertificateProfileError("The certificate's subject or issuer name cannot be read.",
                                          code="certificate.malformed") from None
        csos: dict[x509.ObjectIdentifier, bytes] = {}
        email = None
        crl_urls: list[str] = []
        for ext in extensions:
            if ext.oid in CSOS_EXTENSION_OIDS:
                if not isinstance(ext.value, x509.UnrecognizedExtension):  # pragma: no cover - cryptography
                    raise CertificateProfileError("Unexpected CSOS extension type.", code="certificate.extension")
                csos[ext.oid] = ext.value.value
            elif ext.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
                emails = ext.value.get_values_for_type(x509.RFC822Name)
                email = emails[0] if emails else None
            elif ext.oid == ExtensionOID.CRL_DISTRIBUTION_POINTS:
                for point in ext.value:
                    for general_name in point.full_name or ():
                        if isinstance(general_name, x509.UniformResourceIdentifier):
                            crl_urls.append(general_name.value)

        common = dict(
            certificate=cert,
            fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
            subscriber_name=_name_value(cert.subject, NameOID.COMMON_NAME),
            email=email,
            subject_serial=_name_value(cert.subject, NameOID.SERIAL_NUMBER),
            organization=_name_value(cert.subject, NameOID.ORGANIZATION_NAME),
            issuer=cert.issuer.rfc4514_string(),
            serial_number=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            crl_urls=tuple(crl_urls),
        )
        if not csos:
            return cls(kind="administrative", **common)

        missing = REQUIRED_SIGNING_EXTENSION_OIDS - csos.keys()
        if missing:
            raise CertificateProfileError(
                "The certificate carries CSOS extensions but lacks "
                + ", ".join(sorted(oid.dotted_string for oid in missing)) + ".",
                code="certificate.extension",
            )
        version = _parse(core.Integer, csos[OID_CSOS_VERSION], "csosVersion")
        dea_hash = _parse(core.OctetString, csos[OID_DEA_NUMBER_HASH], "deaNumberHash")
        if len(dea_hash) != DEA_HASH_LENGTH:
            raise CertificateProfileError(
                f"The certificate's deaNumberHash is {len(dea_hash)} bytes; it must be {DEA_HASH_LENGTH}.",
                code="certificate.extension",
            )
        if not common["subject_serial"]:
            raise CertificateProfileError(
                "The signing certificate has no subject serialNumber, so its DEA-number hash cannot be checked.",
                code="certificate.subject",
            )
        schedules = decode_schedules(csos[OID_AUTHORIZED_SCHEDULES])
        registrant = (_parse_utf8(csos[OID_REGISTRANT_NAME], "registrantName")
                      if OID_REGISTRANT_NAME in csos else None)
        activity = (_parse_utf8(csos[OID_BUSINESS_ACTIVITY], "businessActivity")
                    if OID_BUSINESS_ACTIVITY in csos else None)
        address = (tuple(_parse_utf8(csos[OID_REGISTRANT_ADDRESS], "registrantAddress").split(ADDRESS_SEPARATOR))
                   if OID_REGISTRANT_ADDRESS in csos else ())
        return cls(
            kind="signing", csos_version=version, registrant_name=registrant, registrant_address=address,
            business_activity=activity, dea_number_hash=dea_hash, schedules=schedules, **common,
        )

    # -- questions the rest of the program asks ------------------------------------------------------------------

    @property
    def can_sign_orders(self) -> bool:
        return self.kind == "signing"

    def matches_dea(self, number: str | DeaNumber) -> bool:
        """True when this signing certificate was issued for DEA registration ``number`` (case-insensitive)."""
        if self.kind != "signing" or self.dea_number_hash is None or not self.subject_serial:
            return False
        try:
            expected = dea_number_hash(number, self.subject_serial)
        except CertificateProfileError:
            return False
        return hmac.compare_digest(expected, self.dea_number_hash)

    def authorizes(self, schedule: Schedule | str) -> bool:
        """True when the certificate may sign for ``schedule``; non-controlled lines need only a signing cert."""
        if isinstance(schedule, str):
            schedule = Schedule.parse(schedule)
        if self.kind != "signing":
            return False
        return schedule is Schedule.NON_CONTROLLED or schedule in self.schedules

    def is_valid_at(self, moment: datetime) -> bool:
        """Within notBefore..notAfter (inclusive) — time only; chain and revocation are ``services.certificates.validation``."""
        moment = _utc(moment)
        return self.not_before <= moment <= self.not_after
