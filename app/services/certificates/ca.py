"""A small certification-authority engine: the training sandbox's CA and the tests' PKI are built on it.

It issues what the CSOS profile (``services.certificates.profile``) describes: a root CA, a subordinate CA, subscriber signing
certificates from a PKCS#10 request (proof of possession verified, K5 key rules enforced), administrative
(coordinator) certificates, revocations and v2 CRLs. Every operation takes an optional ``now`` so tests can make
expired or not-yet-valid material; otherwise the CA's ``clock`` is used.

State is kept in plain objects; ``to_dict``/``from_dict`` turn it into JSON-friendly data (PEM key and certificate,
revocation list). The training CA's key is written unencrypted unless a password is given — training material only.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.errors import CsosError
from app.services.certificates import profile

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]
KeyType = Literal["rsa", "ec"]

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
ALLOWED_CURVES = (ec.SECP256R1,)
ROOT_VALIDITY = timedelta(days=20 * 365)
SUB_CA_VALIDITY = timedelta(days=10 * 365)
# notBefore is set this far before "now" so a fresh certificate is usable on a client whose clock is a little behind
# (K6 allows 5 minutes).
DEFAULT_BACKDATE = timedelta(minutes=5)


class CsrRejected(CsosError):
    """The certificate request cannot be accepted. Codes: ``csr.malformed``, ``csr.bad_signature``,
    ``csr.weak_key``, ``csr.unsupported_key``, ``csr.unsupported_hash``."""

    code = "csr.rejected"


class CaError(CsosError):
    """The CA cannot do what was asked. Codes: ``ca.unknown_serial``, ``ca.validity``, ``ca.state``."""

    code = "ca.error"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _second(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass an aware (UTC) datetime")
    return moment.astimezone(timezone.utc).replace(microsecond=0)


def generate_key(key_type: KeyType = "rsa") -> PrivateKey:
    """A fresh RSA-2048 or P-256 key (for CAs and tests; subscribers' keys come from the key stores)."""
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"unknown key type {key_type!r} (use 'rsa' or 'ec')")


def new_subscriber_serial() -> str:
    """A random 12-digit subject serialNumber for a new subscriber."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def check_public_key(key) -> None:
    """K5: RSA >= 2048 bits or ECDSA P-256. Raises ``CsrRejected``."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise CsrRejected(
                f"The key is RSA-{key.key_size}; CSOS requires RSA keys of at least {MIN_RSA_BITS} bits.",
                code="csr.weak_key",
            )
        if key.key_size > MAX_RSA_BITS:
            raise CsrRejected(f"The key is RSA-{key.key_size}, larger than this CA accepts.",
                              code="csr.unsupported_key")
        if key.public_numbers().e < 65537:
            raise CsrRejected("The RSA public exponent is below 65537.", code="csr.weak_key")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ALLOWED_CURVES):
            raise CsrRejected(
                f"The key is on curve {key.curve.name}; CSOS accepts only P-256 for ECDSA.",
                code="csr.unsupported_key",
            )
        return
    raise CsrRejected(
        f"The key type {type(key).__name__} is not allowed; CSOS accepts RSA (2048 bits or more) or ECDSA P-256.",
        code="csr.unsupported_key",
    )


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a PKCS#10 request, PEM or DER."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
        raise CsrRejected(f"This is not a certificate request ({exc}).", code="csr.malformed") from None


def check_csr(csr: x509.CertificateSigningRequest) -> None:
    """SHA-256 (K5), proof of possession (the request's signature verifies with its own key), K5 key rules.

    The hash is looked at first only to give a precise reason: cryptography reports a SHA-1 signature as simply
    invalid. Nothing is issued unless the signature verifies.
    """
    try:
        algorithm = csr.signature_hash_algorithm
    except UnsupportedAlgorithm:
        algorithm = None
    if not isinstance(algorithm, hashes.SHA256):
        name = algorithm.name if algorithm is not None else "an unsupported algorithm"
        raise CsrRejected(f"The request is signed with {name}; CSOS requires SHA-256.",
                          code="csr.unsupported_hash")
    try:
        signature_ok = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrRejected(f"The request's signature cannot be checked ({exc}).", code="csr.bad_signature") from None
    if not signature_ok:
        raise CsrRejected(
            "The request's signature does not verify with the public key it carries: it was not signed by the "
            "holder of that key (or was altered).",
            code="csr.bad_signature",
        )
    try:
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrRejected(f"The request's public key cannot be read ({exc}).", code="csr.unsupported_key") from None
    check_public_key(public_key)


def _hash_for(key: PrivateKey) -> hashes.HashAlgorithm:
    return hashes.SHA256()


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, profile.CA_ORGANIZATION),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )


def _crl_distribution_points(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([
        x509.DistributionPoint(full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None,
                               crl_issuer=None)
    ])


@dataclass(frozen=True, slots=True)
class Revocation:
    serial: int
    revoked_at: datetime
    reason: x509.ReasonFlags = x509.ReasonFlags.unspecified


@dataclass(eq=False)
class CertificationAuthority:
    """One CA: its key and certificate, where its CRL is published, and what it has revoked."""

    key: PrivateKey = field(repr=False)
    certificate: x509.Certificate
    crl_url: str | None = None  # put in the CRL distribution point of every certificate this CA issues
    crl_validity: timedelta = profile.CRL_NEXT_UPDATE
    backdate: timedelta = DEFAULT_BACKDATE
    crl_number: int = 0
    revocations: dict[int, Revocation] = field(default_factory=dict)
    issued_serials: set[int] = field(default_factory=set, repr=False)
    clock: Callable[[], datetime] = field(default=utcnow, repr=False)

    # -- identity -------------------------------------------------------------------------------------------------

    @property
    def name(self) -> x509.Name:
        return self.certificate.subject

    @property
    def common_name(self) -> str:
        return self.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value

    @property
    def subject_key_identifier(self) -> x509.SubjectKeyIdentifier:
        return self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value

    def _now(self, now: datetime | None) -> datetime:
        return _second(now if now is not None else self.clock())

    def _authority_key_identifier(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(self.subject_key_identifier)

    def _builder(self, subject: x509.Name, public_key, not_before: datetime, not_after: datetime
                 ) -> x509.CertificateBuilder:
        if not_after <= not_before:
            raise CaError("The certificate would expire before it becomes valid.", code="ca.validity")
        if not_after > self.certificate.not_valid_after_utc:
            raise CaError(
                f"The certificate would outlive the issuing CA ({self.common_name} expires "
                f"{self.certificate.not_valid_after_utc:%Y-%m-%d}).",
                code="ca.validity",
            )
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        if self.crl_url:
            builder = builder.add_extension(_crl_distribution_points(self.crl_url), critical=False)
        return builder

    def _sign(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        cert = builder.sign(self.key, _hash_for(self.key))
        self.issued_serials.add(cert.serial_number)
        return cert

    # -- issuing ----------------------------------------------------------------------------------------------------

    def create_subordinate_ca(
        self,
        common_name: str = profile.TRAINING_SUB_CA_NAME,
        *,
        key: PrivateKey | None = None,
        key_type: KeyType | None = None,
        now: datetime | None = None,
        validity: timedelta = SUB_CA_VALIDITY,
        crl_url: str | None = None,
        path_length: int | None = 0,
    ) -> "CertificationAuthority":
        """A CA certified by this one. ``crl_url`` is where the NEW CA will publish its CRL."""
        moment = self._now(now)
        if key is None:
            key = generate_key(key_type or ("ec" if isinstance(self.key, ec.EllipticCurvePrivateKey) else "rsa"))
        not_after = min(moment + validity, self.certificate.not_valid_after_utc)
        builder = (
            self._builder(_ca_name(common_name), key.public_key(), moment - self.backdate, not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(_ca_key_usage(), critical=True)
        )
        return CertificationAuthority(key=key, certificate=self._sign(builder), crl_url=crl_url,
                                      crl_validity=self.crl_validity, backdate=self.backdate, clock=self.clock)

    def issue_signing_certificate(
        self,
        csr: x509.CertificateSigningRequest | bytes,
        *,
        subscriber: profile.SubscriberIdentity,
        registration: profile.RegistrationFacts,
        now: datetime | None = None,
        not_before: datetime | None = None,
    ) -> x509.Certificate:
        """A CSOS signing certificate (§4): subject from the approved application, notAfter = registration expiry."""
        csr = load_csr(csr) if isinstance(csr, bytes) else csr
        check_csr(csr)
        moment = self._now(now)
        start = _second(not_before) if not_before is not None else moment - self.backdate
        expires = _second(registration.expires)
        if expires <= moment:
            raise CaError(
                f"The DEA registration {registration.dea_number} expired on {expires:%Y-%m-%d}; no certificate can "
                "be issued under it.",
                code="ca.validity",
            )
        subject = profile.build_subject(registrant_name=registration.registrant_name,
                                        full_name=subscriber.full_name, serial=subscriber.serial)
        builder = (
            self._builder(subject, csr.public_key(), start, expires)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(profile.subscriber_key_usage(), critical=profile.SUBSCRIBER_KEY_USAGE_CRITICAL)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(subscriber.email)]), critical=False)
        )
        for extension in profile.build_csos_extensions(registration, subscriber.serial):
            builder = builder.add_extension(extension, critical=profile.CSOS_EXTENSIONS_CRITICAL)
        return self._sign(builder)

    def issue_administrative_certificate(
        self,
        csr: x509.CertificateSigningRequest | bytes,
        *,
        subscriber: profile.SubscriberIdentity,
        organization: str,
        now: datetime | None = None,
        validity: timedelta = profile.ADMINISTRATIVE_VALIDITY,
    ) -> x509.Certificate:
        """A coordinator (administrative) certificate: no CSOS extensions, so it cannot sign orders (S4)."""
        csr = load_csr(csr) if isinstance(csr, bytes) else csr
        check_csr(csr)
        moment = self._now(now)
        subject = profile.build_subject(registrant_name=organization, full_name=subscriber.full_name,
                                        serial=subscriber.serial)
        builder = (
            self._builder(subject, csr.public_key(), moment - self.backdate, moment + validity)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(profile.subscriber_key_usage(), critical=profile.SUBSCRIBER_KEY_USAGE_CRITICAL)
            .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(subscriber.email)]), critical=False)
        )
        return self._sign(builder)

    # -- revocation -------------------------------------------------------------------------------------------------

    def revoke(
        self,
        certificate_or_serial: x509.Certificate | int,
        reason: x509.ReasonFlags = x509.ReasonFlags.unspecified,
        *,
        at: datetime | None = None,
    ) -> Revocation:
        """Record a revocation (idempotent: revoking again keeps the first date). The next CRL lists it."""
        if isinstance(certificate_or_serial, x509.Certificate):
            if certificate_or_serial.issuer != self.certificate.subject:
                raise CaError("That certificate was not issued by this CA.", code="ca.unknown_serial")
            serial = certificate_or_serial.serial_number
        else:
            serial = int(certificate_or_serial)
        if serial not in self.issued_serials:
            raise CaError(f"This CA issued no certificate with serial {serial:x}.", code="ca.unknown_serial")
        if reason in (x509.ReasonFlags.remove_from_crl,):
            raise CaError("removeFromCRL is only for delta CRLs.", code="ca.state")
        existing = self.revocations.get(serial)
        if existing is not None:
            return existing
        entry = Revocation(serial=serial, revoked_at=self._now(at), reason=reason)
        self.revocations[serial] = entry
        return entry

    def is_revoked(self, serial: int) -> bool:
        return serial in self.revocations

    def build_crl(self, *, now: datetime | None = None, next_update: datetime | timedelta | None = None
                  ) -> x509.CertificateRevocationList:
        """A v2 CRL: CRL number (incremented each call), AKI, thisUpdate = now, nextUpdate = now + crl_validity."""
        moment = self._now(now)
        if next_update is None:
            until = moment + self.crl_validity
        elif isinstance(next_update, timedelta):
            until = moment + next_update
        else:
            until = _second(next_update)
        self.crl_number += 1
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(moment)
            .next_update(until)
            .add_extension(x509.CRLNumber(self.crl_number), critical=False)
            .add_extension(self._authority_key_identifier(), critical=False)
        )
        for entry in sorted(self.revocations.values(), key=lambda e: e.serial):
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(entry.serial)
                .revocation_date(entry.revoked_at)
            )
            if entry.reason is not x509.ReasonFlags.unspecified:
                revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
        return builder.sign(self.key, _hash_for(self.key))

    # -- persistence ------------------------------------------------------------------------------------------------

    def to_dict(self, *, password: bytes | None = None) -> dict:
        encryption = (serialization.BestAvailableEncryption(password) if password
                      else serialization.NoEncryption())
        return {
            "format": 1,
            "key_pem": self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              encryption).decode("ascii"),
            "certificate_pem": self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            "crl_url": self.crl_url,
            "crl_validity_seconds": int(self.crl_validity.total_seconds()),
            "backdate_seconds": int(self.backdate.total_seconds()),
            "crl_number": self.crl_number,
            "revocations": [
                {"serial": f"{r.serial:x}", "revoked_at": r.revoked_at.isoformat(), "reason": r.reason.value}
                for r in sorted(self.revocations.values(), key=lambda e: e.serial)
            ],
            "issued_serials": [f"{s:x}" for s in sorted(self.issued_serials)],
        }

    @classmethod
    def from_dict(cls, data: dict, *, password: bytes | None = None,
                  clock: Callable[[], datetime] = utcnow) -> "CertificationAuthority":
        if data.get("format") != 1:
            raise CaError("The CA state has an unknown format.", code="ca.state")
        try:
            key = serialization.load_pem_private_key(data["key_pem"].encode("ascii"), password)
            cert = x509.load_pem_x509_certificate(data["certificate_pem"].encode("ascii"))
            revocations = {}
            for item in data.get("revocations", []):
                serial = int(item["serial"], 16)
                revocations[serial] = Revocation(serial=serial,
                                                 revoked_at=datetime.fromisoformat(item["revoked_at"]),
                                                 reason=x509.ReasonFlags(item["reason"]))
            ca = cls(
                key=key, certificate=cert, crl_url=data.get("crl_url"),
                crl_validity=timedelta(seconds=int(data.get("crl_validity_seconds",
                                                            profile.CRL_NEXT_UPDATE.total_seconds()))),
                backdate=timedelta(seconds=int(data.get("backdate_seconds", DEFAULT_BACKDATE.total_seconds()))),
                crl_number=int(data.get("crl_number", 0)),
                revocations=revocations,
                issued_serials={int(s, 16) for s in data.get("issued_serials", [])},
                clock=clock,
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise CaError(f"The CA state cannot be read ({exc}).", code="ca.state") from None
        if ca.key.public_key().public_numbers() != cert.public_key().public_numbers():
            raise CaError("The CA key does not match the CA certificate.", code="ca.state")
        return ca


def create_root_ca(
    common_name: str = profile.TRAINING_ROOT_CA_NAME,
    *,
    key: PrivateKey | None = None,
    key_type: KeyType = "rsa",
    now: datetime | None = None,
    validity: timedelta = ROOT_VALIDITY,
    crl_url: str | None = None,
    crl_validity: timedelta = profile.CRL_NEXT_UPDATE,
    backdate: timedelta = DEFAULT_BACKDATE,
    clock: Callable[[], datetime] = utcnow,
) -> CertificationAuthority:
    """A self-signed root. ``crl_url``: where the root publishes its CRL (goes into the sub CA certificates)."""
    moment = _second(now if now is not None else clock())
    key = key or generate_key(key_type)
    name = _ca_name(common_name)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - backdate)
        .not_valid_after(moment + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, _hash_for(key))
    )
    return CertificationAuthority(key=key, certificate=cert, crl_url=crl_url, crl_validity=crl_validity,
                                  backdate=backdate, clock=clock)


def create_training_hierarchy(
    *,
    key_type: KeyType = "rsa",
    now: datetime | None = None,
    root_crl_url: str | None = None,
    sub_crl_url: str | None = None,
    root_key: PrivateKey | None = None,
    sub_key: PrivateKey | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[CertificationAuthority, CertificationAuthority]:
    """``CSOS Training Root CA`` → ``CSOS Training Sub CA`` (the sandbox's issuing CA)."""
    root = create_root_ca(key=root_key, key_type=key_type, now=now, crl_url=root_crl_url, clock=clock)
    sub = root.create_subordinate_ca(key=sub_key, key_type=key_type, now=now, crl_url=sub_crl_url)
    return root, sub


def pem_bundle(certificates: Iterable[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)
