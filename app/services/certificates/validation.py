"""Certificate validation: chain to an explicit trust root, validity at a moment, revocation from CRLs.

Path building and RFC 5280 validation are done by pyhanko-certvalidator (asyncio API, run privately here), always with
EXPLICIT trust roots (never the OS store) and ``allow_fetching=False``: CRLs are fetched by ``services.certificates.crl_cache``
(timeouts, verified TLS, disk cache until nextUpdate) and handed in, so the network is under our control.

Outcome codes (DESIGN.md §6): ``untrusted_chain``, ``certificate_expired``, ``certificate_not_yet_valid``,
``certificate_revoked``, ``revocation_unknown``, ``malformed``, and ``not_signing_certificate`` when a CA certificate
is presented as a subscriber's (PKIX alone would call a trust root "valid"). Whether an end-entity certificate may
sign orders (CSOS extensions, S4) is ``CsosCertificate.kind``'s business, not this module's.

Times:

* ``at`` — the moment the certificate must be valid (signing time for an order; now for the pre-sign check).
* ``now`` — the moment CRLs must be current (thisUpdate ≤ now < nextUpdate); defaults to the service clock. An expired
  CRL is never used, from the network or from the cache.
* Revocation: by default (``reject_revoked_after=True``) a certificate listed on a current CRL is revoked whatever the
  revocation date, because ``at`` usually comes from the signer's own (self-asserted) signingTime. Pass
  ``reject_revoked_after=False`` to accept revocations dated after ``at`` (re-checking archived orders).

Repeated checks are cheap: results are kept in memory per (certificate, intermediates, trust roots, CRL set, options)
together with the time window in which they cannot change (between the nearest validity / nextUpdate / revocation
boundaries around ``at``), so bulk verification is a few dictionary look-ups per order.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtensionOID, NameOID
from pyhanko_certvalidator import CertificateValidator as _PyhankoValidator
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    InvalidCertificateError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
    ValidationError,
)
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from app.errors import ConfigError
from app.services.certificates.admission import run_coroutine
from app.services.certificates.crl_cache import CachedCrl, CrlCache, CrlUnavailable

UNTRUSTED_CHAIN = "untrusted_chain"
CERTIFICATE_EXPIRED = "certificate_expired"
CERTIFICATE_NOT_YET_VALID = "certificate_not_yet_valid"
CERTIFICATE_REVOKED = "certificate_revoked"
REVOCATION_UNKNOWN = "revocation_unknown"
MALFORMED = "malformed"
NOT_SIGNING_CERTIFICATE = "not_signing_certificate"  # only for a CA certificate presented as the subscriber's

# End-entity: a CRL is required (CSOS checks every signer against the CRL). CAs: checked when they declare a CRL.
REVOCATION_POLICY = RevocationCheckingPolicy(
    ee_certificate_rule=RevocationCheckingRule.CRL_REQUIRED,
    intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED,
)
_MAX_CHAIN = 8
_WINDOW_MARGIN = timedelta(seconds=2)  # pyhanko's 1 s tolerance, doubled
_MEMO_SIZE = 50_000


class TrustBundleError(ConfigError):
    """The trust bundle cannot be used. Codes: ``trust_bundle.unreadable``, ``trust_bundle.empty``,
    ``trust_bundle.not_ca``."""

    code = "trust_bundle.invalid"


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """``ok`` is True exactly when ``problems`` is empty. ``path`` = subjects from trust root to the certificate
    (empty when no path to a trust root was found). Instances are shared by the memo: treat them as read-only."""

    ok: bool
    problems: tuple[Problem, ...]
    path: tuple[str, ...] = ()
    crl_fingerprints: tuple[str, ...] = ()

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(p.code for p in self.problems)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def load_trust_bundle(path: str | Path) -> list[x509.Certificate]:
    """Trust roots from a PEM bundle file (one or more CERTIFICATE blocks); every one must be a CA certificate."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrustBundleError(f"The trust bundle {path} cannot be read ({exc.strerror}).",
                               code="trust_bundle.unreadable") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise TrustBundleError(f"The trust bundle {path} contains no PEM certificate.", code="trust_bundle.empty")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise TrustBundleError(f"The trust bundle {path} is damaged ({exc}).",
                               code="trust_bundle.unreadable") from None
    for cert in certs:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise TrustBundleError(
                f"The trust bundle {path} contains '{cert.subject.rfc4514_string()}', which is not a CA certificate.",
                code="trust_bundle.not_ca",
            )
    return certs


# ------------------------------------------------------------------------------------------------------------------
# Small per-process memos of conversions (keyed by fingerprint)
# ------------------------------------------------------------------------------------------------------------------


def _name_key(name: x509.Name) -> tuple[frozenset, ...]:
    """Equal exactly when the names are equal (``x509.Name.__eq__``: RDNs in order, each a set of (OID, value)), and
    compared as plain tuples and sets, several times faster than ``Name`` objects."""
    return tuple(frozenset((attribute.oid, attribute.value) for attribute in rdn) for rdn in name.rdns)


class _CertInfo:
    __slots__ = ("cert", "fingerprint", "asn1", "crl_urls", "label", "serial", "issuer_key", "subject_key",
                 "self_issued")

    def __init__(self, cert: x509.Certificate, fingerprint: bytes) -> None:
        self.cert = cert
        self.fingerprint = fingerprint
        self.asn1: asn1_x509.Certificate | None = None
        urls: list[str] = []
        try:
            dps = cert.extensions.get_extension_for_oid(ExtensionOID.CRL_DISTRIBUTION_POINTS).value
            for point in dps:
                for name in point.full_name or ():
                    if isinstance(name, x509.UniformResourceIdentifier):
                        urls.append(name.value)
        except x509.ExtensionNotFound:
            pass
        except (ValueError, x509.DuplicateExtension):
            pass  # unreadable extension: pyhanko reports the certificate
        self.crl_urls = tuple(urls)
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        self.label = str(cns[0].value) if cns else cert.subject.rfc4514_string()
        self.serial = cert.serial_number
        self.issuer_key = _name_key(cert.issuer)
        self.subject_key = _name_key(cert.subject)
        self.self_issued = cert.issuer == cert.subject

    def as_asn1(self) -> asn1_x509.Certificate:
        if self.asn1 is None:
            self.asn1 = asn1_x509.Certificate.load(self.cert.public_bytes(serialization.Encoding.DER))
        return self.asn1


_info_lock = threading.Lock()
_infos: OrderedDict[bytes, _CertInfo] = OrderedDict()
_crl_lock = threading.Lock()
_crl_entries: OrderedDict[str, CachedCrl] = OrderedDict()


def _as_certificate(value) -> x509.Certificate:
    if isinstance(value, x509.Certificate):
        return value
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    certificate = getattr(value, "certificate", None)  # CsosCertificate
    if isinstance(certificate, x509.Certificate):
        return certificate
    if isinstance(value, asn1_x509.Certificate):
        return x509.load_der_x509_certificate(value.dump())
    raise TypeError(f"not a certificate: {type(value).__name__}")


# Callers hand in the same certificate objects again and again (the CMS reader keeps one object per certificate),
# and a fingerprint costs about as much as the rest of a memoised validation: find those by identity first. Each
# entry holds its certificate, so the id() cannot be reused by another object while the entry exists.
_by_object: OrderedDict[int, tuple[x509.Certificate, _CertInfo]] = OrderedDict()
_BY_OBJECT_SIZE = 4096


def _info(value) -> _CertInfo:
    entry = _by_object.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    cert = _as_certificate(value)
    fingerprint = cert.fingerprint(hashes.SHA256())
    info = _infos.get(fingerprint)
    if info is None:
        info = _CertInfo(cert, fingerprint)
        with _info_lock:
            _infos[fingerprint] = info
            if len(_infos) > _MEMO_SIZE:
                _infos.popitem(last=False)
    if cert is value:  # only objects the caller keeps: a certificate made here from bytes would just pile up
        with _info_lock:
            _by_object[id(cert)] = (cert, info)
            if len(_by_object) > _BY_OBJECT_SIZE:
                _by_object.popitem(last=False)
    return info


def _crl_entry(value) -> CachedCrl:
    if isinstance(value, CachedCrl):
        return value
    if isinstance(value, x509.CertificateRevocationList):
        der = value.public_bytes(serialization.Encoding.DER)
    elif isinstance(value, (bytes, bytearray)):
        der = bytes(value)
    elif hasattr(value, "dump"):  # asn1crypto CertificateList
        der = value.dump()
    else:
        raise TypeError(f"not a CRL: {type(value).__name__}")
    key = hashlib.sha256(der).hexdigest()
    entry = _crl_entries.get(key)
    if entry is None:
        entry = CachedCrl.from_bytes(der)
        with _crl_lock:
            _crl_entries[entry.fingerprint] = entry
            if len(_crl_entries) > 1000:
                _crl_entries.popitem(last=False)
    return entry


def _aware(moment: datetime, name: str) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return moment.astimezone(timezone.utc)


# ------------------------------------------------------------------------------------------------------------------
# The service
# ------------------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemoEntry:
    lo: datetime | None
    hi: datetime | None
    result: ValidationResult


class CertificateValidationService:
    """Validates certificates against fixed trust roots, with a CRL cache and an in-memory result memo."""

    def __init__(
        self,
        *,
        trust_roots: Iterable,
        intermediates: Iterable = (),
        crl_cache: CrlCache | None = None,
        clock: Callable[[], datetime] = utcnow,
        reject_revoked_after: bool = True,
        memo_size: int = _MEMO_SIZE,
    ) -> None:
        self.trust_roots = [_info(root) for root in trust_roots]
        if not self.trust_roots:
            raise TrustBundleError("No trust roots were given: nothing can be trusted.", code="trust_bundle.empty")
        self.intermediates = [_info(cert) for cert in intermediates]
        self.crl_cache = crl_cache
        self.clock = clock
        self.reject_revoked_after = reject_revoked_after
        self._roots_key = tuple(sorted(info.fingerprint for info in self.trust_roots))
        self._memo: OrderedDict[tuple, list[_MemoEntry]] = OrderedDict()
        self._shapes: dict[tuple, tuple] = {}  # see _shape
        # Results for one exact moment, where ``at`` is too close to a boundary for a window (see _memo_put).
        self._moments: OrderedDict[tuple, ValidationResult] = OrderedDict()
        self._memo_lock = threading.Lock()
        self._memo_size = memo_size
        self.memo_hits = 0
        self.memo_misses = 0

    @classmethod
    def from_bundle(cls, path: str | Path, **kwargs) -> "CertificateValidationService":
        """A service trusting exactly the roots in the PEM bundle ``path`` (see ``load_trust_bundle``)."""
        return cls(trust_roots=load_trust_bundle(path), **kwargs)

    # -- public -----------------------------------------------------------------------------------------------------

    def validate(
        self,
        cert,
        *,
        at: datetime,
        intermediates: Iterable = (),
        crls: Sequence | None = None,
        fetch: bool = True,
        now: datetime | None = None,
        reject_revoked_after: bool | None = None,
    ) -> ValidationResult:
        at = _aware(at, "at")
        now = _aware(now, "now") if now is not None else _aware(self.clock(), "clock()")
        strict = self.reject_revoked_after if reject_revoked_after is None else reject_revoked_after
        try:
            leaf = _info(cert)
            extra = [_info(c) for c in intermediates]
            given_crls = [_crl_entry(c) for c in (crls or ())]
        except (ValueError, TypeError, x509.DuplicateExtension, x509.InvalidVersion) as exc:
            return ValidationResult(False, (Problem(MALFORMED, f"The certificate or CRL cannot be read ({exc})."),))
        inter, chain, issuers, inter_key = self._shape(leaf, extra)
        crl_set, failures = self._gather_crls(chain, inter, given_crls, fetch=fetch, now=now, issuers=issuers)

        key = (leaf.fingerprint, inter_key, tuple(sorted(c.fingerprint for c in crl_set)), failures, strict)
        hit = self._memo_get(key, at)
        if hit is not None:
            self.memo_hits += 1
            return hit
        self.memo_misses += 1
        try:
            result = self._validate(leaf, inter, crl_set, failures, at=at, strict=strict)
        except (ValueError, TypeError, KeyError, x509.DuplicateExtension) as exc:  # undecodable certificate fields
            return ValidationResult(False, (Problem(MALFORMED, f"A certificate cannot be read ({type(exc).__name__})."
                                                    ),))
        self._memo_put(key, at, result, self._boundaries(leaf, inter, crl_set))
        return result

    def clear_memo(self) -> None:
        with self._memo_lock:
            self._memo.clear()
            self._moments.clear()
            self._shapes.clear()

    def leaf_revocation(self, cert, *, intermediates: Iterable = (), now: datetime | None = None
                        ) -> tuple[datetime, str | None] | None:
        """When and why ``cert`` itself is on a CRL in the cache signed by its issuer (a revocation is final, so
        an expired CRL still counts here), or None. Lets the certificate book mark the certificate revoked."""
        if self.crl_cache is None:
            return None
        leaf = _info(cert)
        inter = list({i.fingerprint: i for i in (*self.intermediates, *(_info(c) for c in intermediates))}.values())
        issuers = self._issuers_of(leaf, inter)
        for url in leaf.crl_urls:
            entry = self.crl_cache.cached(url)
            if entry is None or entry.issuer != leaf.cert.issuer or not any(entry.signed_by(i) for i in issuers):
                continue
            revoked = entry.crl.get_revoked_certificate_by_serial_number(leaf.serial)
            if revoked is None or (now is not None and revoked.revocation_date_utc > now + timedelta(minutes=5)):
                continue
            reason = None
            try:
                reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
            except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
                pass
            return revoked.revocation_date_utc, reason
        return None

    # -- CRLs -------------------------------------------------------------------------------------------------------

    def _shape(self, leaf: _CertInfo, extra: list[_CertInfo]) -> tuple[list[_CertInfo], list[_CertInfo], tuple, tuple]:
        """(intermediates, name chain, issuers of each chain member, intermediates' key) for a leaf and the
        intermediates given with it: names only, no time, no CRL, so worked out once per certificate set (orders
        come with the same certificates). Treat as read-only."""
        key = (leaf, *extra)  # _CertInfo objects (compared by identity), held by the entry
        shape = self._shapes.get(key)
        if shape is None:
            inter = list({i.fingerprint: i for i in (*self.intermediates, *extra)}.values())
            chain = self._name_chain(leaf, inter)
            shape = (inter, chain, tuple(self._issuers_of(info, inter) for info in chain),
                     tuple(sorted({i.fingerprint for i in inter})))
            with self._memo_lock:
                if len(self._shapes) >= 1024:
                    self._shapes.clear()
                self._shapes[key] = shape
        return shape

    def _name_chain(self, leaf: _CertInfo, inter: list[_CertInfo]) -> list[_CertInfo]:
        """Leaf and the intermediates above it, found by issuer name (for choosing which CRLs to fetch)."""
        chain, current = [leaf], leaf
        for _ in range(_MAX_CHAIN):
            if current.self_issued:
                break
            parent = next((i for i in inter if i.subject_key == current.issuer_key and i not in chain), None)
            if parent is None:
                break
            chain.append(parent)
            current = parent
        return chain

    def _issuers_of(self, info: _CertInfo, inter: list[_CertInfo]) -> list[x509.Certificate]:
        return [c.cert for c in (*inter, *self.trust_roots) if c.subject_key == info.issuer_key]

    def _gather_crls(self, chain, inter, given: list[CachedCrl], *, fetch: bool, now: datetime, issuers=None
                     ) -> tuple[list[CachedCrl], tuple[tuple[str, str, str], ...]]:
        """``issuers``: ``_issuers_of`` each chain member, when already worked out (``_shape``)."""
        usable: dict[str, CachedCrl] = {}
        failures: list[tuple[str, str, str]] = []
        for entry in given:
            problem = entry.problem_at(now, self.crl_cache.clock_skew if self.crl_cache else
                                       timedelta(minutes=5))
            if problem is None:
                usable[entry.fingerprint] = entry
            else:
                failures.append((entry.url or entry.issuer.rfc4514_string(), problem.code, problem.message))
        if self.crl_cache is not None:
            for index, info in enumerate(chain):
                if info.self_issued:
                    continue
                for url in info.crl_urls:
                    try:
                        entry = self.crl_cache.get(url, fetch=fetch, now=now, issuers=(
                            issuers[index] if issuers is not None else self._issuers_of(info, inter)))
                    except CrlUnavailable as exc:
                        failures.append((url, exc.code, exc.message))
                        continue
                    usable[entry.fingerprint] = entry
        return list(usable.values()), tuple(failures)

    # -- the real work ----------------------------------------------------------------------------------------------

    def _validate(self, leaf: _CertInfo, inter: list[_CertInfo], crl_set: list[CachedCrl],
                  failures: tuple[tuple[str, str, str], ...], *, at: datetime, strict: bool) -> ValidationResult:
        context = ValidationContext(
            trust_roots=[r.as_asn1() for r in self.trust_roots],
            other_certs=[i.as_asn1() for i in inter],
            crls=[c.asn1 for c in crl_set],
            moment=at,
            allow_fetching=False,
            revinfo_policy=CertRevTrustPolicy(REVOCATION_POLICY, retroactive_revinfo=True),
        )
        validator = _PyhankoValidator(leaf.as_asn1(), validation_context=context)
        problems: list[Problem] = []
        path_labels: tuple[str, ...] = ()
        if _is_ca(leaf.cert):
            problems.append(Problem(NOT_SIGNING_CERTIFICATE,
                                    f"'{leaf.label}' is a certification authority's certificate, not a "
                                    "subscriber's: it cannot sign orders."))
        try:
            path = run_coroutine(validator.async_validate_path)
            path_labels = tuple(_label(c) for c in path)
        except RevokedError as exc:
            problems.append(Problem(CERTIFICATE_REVOKED, _revoked_message(
                leaf.label, None if exc.is_ee_cert else "a CA certificate in its chain", exc.revocation_dt,
                exc.reason.human_friendly)))
            path_labels = _path_labels(exc)
        except ExpiredError as exc:
            who = f"The certificate of {leaf.label}" if exc.is_ee_cert else \
                f"A CA certificate in the chain of {leaf.label}"
            problems.append(Problem(CERTIFICATE_EXPIRED,
                                    f"{who} expired on {exc.expired_dt:%Y-%m-%d %H:%M} UTC, before "
                                    f"{at:%Y-%m-%d %H:%M} UTC."))
            path_labels = _path_labels(exc)
        except NotYetValidError as exc:
            who = f"The certificate of {leaf.label}" if exc.is_ee_cert else \
                f"A CA certificate in the chain of {leaf.label}"
            problems.append(Problem(CERTIFICATE_NOT_YET_VALID,
                                    f"{who} is valid only from {exc.valid_from:%Y-%m-%d %H:%M} UTC, after "
                                    f"{at:%Y-%m-%d %H:%M} UTC."))
            path_labels = _path_labels(exc)
        except InsufficientRevinfoError as exc:
            reasons = " ".join(message for _, _, message in failures) or exc.failure_msg
            problems.append(Problem(REVOCATION_UNKNOWN,
                                    f"Whether the certificate of {leaf.label} is revoked cannot be checked: no valid "
                                    f"CRL. {reasons}"))
            path_labels = _path_labels(exc)
        except PathBuildingError:
            problems.append(Problem(UNTRUSTED_CHAIN,
                                    f"The certificate of {leaf.label} (issued by "
                                    f"{leaf.cert.issuer.rfc4514_string()}) does not lead to a trusted CSOS root."))
        except InvalidCertificateError as exc:
            problems.append(Problem(UNTRUSTED_CHAIN, f"The certificate of {leaf.label} is not trusted: "
                                                     f"{exc.failure_msg}"))
        except PathValidationError as exc:
            problems.append(Problem(UNTRUSTED_CHAIN, f"The chain of {leaf.label}'s certificate is not valid: "
                                                     f"{exc.failure_msg}"))
            path_labels = _path_labels(exc)
        except ValidationError as exc:
            problems.append(Problem(UNTRUSTED_CHAIN, f"The certificate of {leaf.label} is not trusted: "
                                                     f"{exc.failure_msg}"))
        except (ValueError, TypeError, KeyError) as exc:  # asn1crypto parse errors on odd encodings
            problems.append(Problem(MALFORMED, f"The certificate of {leaf.label} cannot be processed ({exc})."))

        if strict and path_labels and not any(p.code in (CERTIFICATE_REVOKED, UNTRUSTED_CHAIN) for p in problems):
            late = self._revoked_after(leaf, inter, crl_set, at)
            if late is not None:
                problems.append(late)
        return ValidationResult(ok=not problems, problems=tuple(problems), path=path_labels,
                                crl_fingerprints=tuple(sorted(c.fingerprint for c in crl_set)))

    def _revoked_after(self, leaf: _CertInfo, inter: list[_CertInfo], crl_set: list[CachedCrl],
                       at: datetime) -> Problem | None:
        """A revocation dated after ``at`` on a current CRL signed by the certificate's issuer."""
        for info in self._name_chain(leaf, inter):
            if info.cert.issuer == info.cert.subject:
                continue
            issuers = self._issuers_of(info, inter)
            for entry in crl_set:
                if entry.issuer != info.cert.issuer:
                    continue
                revoked = entry.crl.get_revoked_certificate_by_serial_number(info.serial)
                if revoked is None or not any(entry.signed_by(issuer) for issuer in issuers):
                    continue
                reason = None
                try:
                    reason = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason.value
                except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
                    pass
                return Problem(CERTIFICATE_REVOKED, _revoked_message(
                    leaf.label, None if info is leaf else f"its CA certificate '{info.label}'",
                    revoked.revocation_date_utc, reason))
        return None

    # -- memo -------------------------------------------------------------------------------------------------------

    def _boundaries(self, leaf: _CertInfo, inter: list[_CertInfo], crl_set: list[CachedCrl]) -> list[datetime]:
        points: list[datetime] = []
        for info in (leaf, *inter, *self.trust_roots):
            points.append(info.cert.not_valid_before_utc)
            points.append(info.cert.not_valid_after_utc)
        serials = {info.serial for info in (leaf, *inter)}
        for entry in crl_set:
            points.append(entry.this_update)
            if entry.next_update is not None:
                points.append(entry.next_update)
            for serial in serials:
                revoked = entry.crl.get_revoked_certificate_by_serial_number(serial)
                if revoked is not None:
                    points.append(revoked.revocation_date_utc)
        return points

    def _memo_get(self, key: tuple, at: datetime) -> ValidationResult | None:
        for entry in self._memo.get(key) or ():
            if (entry.lo is None or at > entry.lo) and (entry.hi is None or at < entry.hi):
                return entry.result
        return self._moments.get((key, at)) if self._moments else None

    def _memo_put(self, key: tuple, at: datetime, result: ValidationResult, boundaries: list[datetime]) -> None:
        lower = [b for b in boundaries if b <= at]
        upper = [b for b in boundaries if b > at]
        lo = max(lower) + _WINDOW_MARGIN if lower else None
        hi = min(upper) - _WINDOW_MARGIN if upper else None
        if (lo is not None and at <= lo) or (hi is not None and at >= hi):
            # Too close to a boundary for a window (the outcome there depends on tolerances): this moment only. An
            # order signed at a CRL's thisUpdate was validated in full at every re-verification.
            with self._memo_lock:
                self._moments[(key, at)] = result
                while len(self._moments) > self._memo_size:
                    self._moments.popitem(last=False)
            return
        with self._memo_lock:
            entries = self._memo.setdefault(key, [])
            entries.append(_MemoEntry(lo, hi, result))
            if len(entries) > 8:
                del entries[0]
            self._memo.move_to_end(key)
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
    except (ValueError, x509.DuplicateExtension):
        return False  # unreadable extensions: pyhanko reports the certificate


def _revoked_message(leaf: str, via: str | None, when: datetime, reason: str | None) -> str:
    because = f" ({reason})" if reason and reason != "unspecified" else ""
    if via is None:
        return f"The certificate of {leaf} was revoked on {when:%Y-%m-%d %H:%M} UTC{because}."
    return (f"The certificate of {leaf} cannot be used: {via} was revoked on {when:%Y-%m-%d %H:%M} UTC"
            f"{because}.")


def _label(cert: asn1_x509.Certificate) -> str:
    try:
        native = cert.subject.native
        return str(native.get("common_name") or cert.subject.human_friendly)
    except Exception:  # noqa: BLE001 - a label only
        return "?"


def _path_labels(exc: PathValidationError) -> tuple[str, ...]:
    try:
        return tuple(_label(c) for c in exc.original_path)
    except Exception:  # noqa: BLE001 - labels only
        return ()


# ------------------------------------------------------------------------------------------------------------------
# Function form
# ------------------------------------------------------------------------------------------------------------------

_services_lock = threading.Lock()
_services: OrderedDict[tuple, CertificateValidationService] = OrderedDict()


def validate_certificate(
    cert,
    *,
    intermediates: Iterable = (),
    trust_roots: Iterable,
    at: datetime,
    crls: Sequence | None = None,
    fetch: bool = True,
    crl_cache: CrlCache | None = None,
    now: datetime | None = None,
    reject_revoked_after: bool = True,
) -> ValidationResult:
    """Validate ``cert`` at ``at``. CRLs: ``crls`` given by the caller, plus — when ``crl_cache`` is given — those of
    the distribution points in the chain (fetched when ``fetch``; cache only otherwise).

    One memoising service is kept per (trust roots, CRL cache), so repeated calls are cheap.
    """
    roots = [_info(r) for r in trust_roots]
    key = (tuple(sorted(r.fingerprint for r in roots)), id(crl_cache))
    with _services_lock:
        service = _services.get(key)
        if service is None or service.crl_cache is not crl_cache:
            service = CertificateValidationService(trust_roots=[r.cert for r in roots], crl_cache=crl_cache)
            _services[key] = service
            while len(_services) > 32:
                _services.popitem(last=False)
        else:
            _services.move_to_end(key)
    return service.validate(cert, at=at, intermediates=intermediates, crls=crls, fetch=fetch, now=now,
                            reject_revoked_after=reject_revoked_after)
