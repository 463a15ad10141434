"""Which certificates may enter the certificate book (issue 16 item 3, issue 22): only CSOS certificates that chain to
one of the profile's CSOS trust roots.

Why here and not at signing time: a certificate that is recorded ACTIVE is offered for signing, may supersede the
holder's genuine one and is called "trusted" on screen. So the import itself checks, before anything is written:

1. the CSOS profile (``profile.CsosCertificate`` plus the subject and key usage every CSOS certificate has) -- a
   self-made or web certificate is "not a CSOS certificate";
2. that trust roots are configured at all -- with none, nothing can be called trusted;
3. a certification path from the certificate to one of those roots, built from the file's certificates and the
   intermediates already known (pyhanko-certvalidator, explicit roots, no fetching). Revocation is not looked up here:
   the pre-sign check does that before every signature (S1).

The path found gives the intermediates to store with the certificate, so a file that holds only the certificate
keeps (or rebuilds) its chain.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import (
    PathBuildingError,
    PathValidationError,
    ValidationError,
)
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from app.errors import CsosError
from app.services.certificates.profile import CertificateProfileError, CsosCertificate

_NO_REVOCATION = CertRevTrustPolicy(RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.NO_CHECK,
    intermediate_ca_cert_rule=RevocationCheckingRule.NO_CHECK,
))

HOW_TO_ADD_ROOTS = ("Add DEA's CSOS root certificate first (Settings → CSOS trust roots → Add…, or "
                    "csos-desk trust add FILE), then import again.")


class CertificateRefused(CsosError):
    """A certificate was not taken into the certificate book; nothing was written. Codes:
    ``certificate.not_csos``, ``certificate.no_trust_roots``, ``certificate.untrusted``, ``certificate.key_only``."""

    code = "certificate.refused"


@dataclass(frozen=True)
class Admitted:
    view: CsosCertificate
    intermediates: list[x509.Certificate]  # the leaf's issuer first, up to (not including) the trust root


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return False


def _subject_value(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str:
    values = cert.subject.get_attributes_for_oid(oid)
    value = values[0].value if values else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def csos_view(cert: x509.Certificate) -> CsosCertificate:
    """The certificate read through the CSOS profile, or ``certificate.not_csos`` in plain words."""
    name = _subject_value(cert, NameOID.COMMON_NAME) or cert.subject.rfc4514_string() or "this certificate"
    if is_ca(cert):
        raise CertificateRefused(
            f"“{name}” is not a CSOS certificate: it is a certification authority's certificate, not a person's. "
            "Nothing was imported. Import the file with your own CSOS certificate and its key.",
            code="certificate.not_csos")
    try:
        view = CsosCertificate.from_certificate(cert)
    except CertificateProfileError as exc:
        raise CertificateRefused(
            f"“{name}” is not a CSOS certificate: its CSOS details are damaged or incomplete ({exc.message}) "
            "Nothing was imported. Ask your CSOS coordinator for a new certificate file.",
            code="certificate.not_csos") from None
    serial = view.subject_serial or ""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        signs = usage.digital_signature
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        signs = False
    if not (view.subscriber_name and view.organization and serial.isascii() and serial.isdigit() and signs):
        raise CertificateRefused(
            f"“{name}” is not a CSOS certificate: it was not issued by DEA's CSOS certification authority (it lacks "
            "the name, pharmacy and subscriber number every CSOS certificate carries). Nothing was imported. Import "
            "the CSOS certificate file you received after enrolling.",
            code="certificate.not_csos")
    return view


def admit(cert: x509.Certificate, *, roots: Sequence[x509.Certificate], candidates: Iterable[x509.Certificate] = (),
          now: dt.datetime) -> Admitted:
    """Check ``cert`` for the certificate book (rules: module doc). ``candidates`` = certificates that may be
    intermediates (from the file and already known). Raises :class:`CertificateRefused`."""
    view = csos_view(cert)
    if not roots:
        raise CertificateRefused(
            "No CSOS trust roots are set up on this computer, so CSOS Desk cannot tell whether this certificate "
            "comes from DEA's CSOS certification authority. Nothing was imported. " + HOW_TO_ADD_ROOTS,
            code="certificate.no_trust_roots")
    leaf_der = cert.public_bytes(serialization.Encoding.DER)
    others = {c.fingerprint(hashes.SHA256()): c for c in candidates if is_ca(c)}
    root_prints = {r.fingerprint(hashes.SHA256()) for r in roots}
    # Time validity of the certificate itself is its status (active / expired), not a question of trust.
    moment = min(max(now, view.not_before + dt.timedelta(seconds=1)), view.not_after - dt.timedelta(seconds=1))
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER)) for r in roots],
        other_certs=[asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
                     for p, c in others.items() if p not in root_prints],
        moment=moment, allow_fetching=False, revinfo_policy=_NO_REVOCATION)
    validator = CertificateValidator(asn1_x509.Certificate.load(leaf_der), validation_context=context)
    issuer = _issuer_name(cert)
    try:
        path = run_coroutine(validator.async_validate_path)
    except PathBuildingError:
        raise CertificateRefused(
            f"This certificate was issued by “{issuer}”, which is not a CSOS certification authority this computer "
            "trusts (or the file lacks the certificate of the authority between them). Nothing was imported, and "
            "your other certificates are unchanged. If it really comes from DEA's CSOS, ask your CSOS coordinator "
            "for the file with the full chain, or which trust roots to add.",
            code="certificate.untrusted") from None
    except (PathValidationError, ValidationError) as exc:
        raise CertificateRefused(
            f"This certificate does not check out against the CSOS trust roots ({exc.failure_msg}). Nothing was "
            "imported, and your other certificates are unchanged.",
            code="certificate.untrusted") from None
    except (ValueError, TypeError, KeyError):  # asn1crypto on odd encodings
        raise CertificateRefused("This certificate cannot be read completely, so it cannot be checked. Nothing was "
                                 "imported.", code="certificate.untrusted") from None
    chain = [x509.load_der_x509_certificate(c.dump()) for c in path.iter_certs(include_root=False)]
    intermediates = [c for c in reversed(chain) if c.fingerprint(hashes.SHA256()) != view.certificate.fingerprint(
        hashes.SHA256())]
    return Admitted(view=view, intermediates=intermediates)


def run_coroutine(factory):
    """Run the coroutine made by ``factory`` (pyhanko's validator is asyncio-only), also when called from inside a
    running event loop (a Qt worker may have one). Shared with ``validation``."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _issuer_name(cert: x509.Certificate) -> str:
    values = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else cert.issuer.rfc4514_string() or "an unknown issuer"


__all__ = ["HOW_TO_ADD_ROOTS", "Admitted", "CertificateRefused", "admit", "csos_view", "is_ca"]
