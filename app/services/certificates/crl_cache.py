"""CRLs fetched from distribution points, kept on disk and in memory until their nextUpdate.

The network is under our control here (pyhanko-certvalidator never fetches): ``requests`` with connect/read timeouts
and TLS always verified for https URLs (CRLs are normally plain http: they are signed objects). A CRL is *current*
from thisUpdate (minus the allowed clock skew) until nextUpdate; an expired CRL is never handed out as valid, online or
offline. With ``fetch=False`` only the cache answers (offline mode).

Signature checking: when the caller passes the candidate ``issuers`` (the certificates of the CA that should have
signed the CRL), a downloaded CRL whose issuer name or signature does not match is refused and not stored, so a bad
download cannot poison the cache. The validator checks every CRL again through pyhanko-certvalidator anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from asn1crypto import crl as asn1_crl
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.errors import CsosError

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 15.0
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
DEFAULT_CLOCK_SKEW = timedelta(minutes=5)  # K6: clocks are kept within 5 minutes
SIGNING_MAX_AGE = timedelta(hours=1)  # before signing, a CRL fetched longer ago than this is fetched again


class CrlUnavailable(CsosError):
    """No valid CRL for a distribution point. Codes: ``crl.unreachable``, ``crl.http_status``, ``crl.too_large``,
    ``crl.malformed``, ``crl.expired``, ``crl.not_yet_valid``, ``crl.bad_signature``, ``crl.not_cached``,
    ``crl.unsupported_url``."""

    code = "crl.unavailable"

    def __init__(self, message: str, *, code: str | None = None, url: str | None = None) -> None:
        super().__init__(message, code=code)
        self.url = url


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def signing_max_age(settings: Mapping[str, Any]) -> timedelta:
    """How old a stored CRL may be before signing (setting ``crl_max_age_seconds``, default one hour): a revocation
    published since must stop the order here, not at the supplier."""
    value = settings.get("crl_max_age_seconds")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return timedelta(seconds=value)
    return SIGNING_MAX_AGE


def signing_crl_cache(directory: str | os.PathLike | None, settings: Mapping[str, Any], **kwargs: Any) -> "CrlCache":
    """The CRL cache the signing path uses: the stored copy is refreshed when older than ``signing_max_age``; if
    the refresh fails the copy still counts until its nextUpdate, after which the pre-sign check refuses
    (``revocation_unknown``)."""
    return CrlCache(directory, tls_ca_bundle=settings.get("tls_bundle"), max_age=signing_max_age(settings), **kwargs)


@dataclass(frozen=True, eq=False)
class CachedCrl:
    """One parsed CRL with what the validator needs, computed once."""

    der: bytes = field(repr=False)
    crl: x509.CertificateRevocationList = field(repr=False)
    fingerprint: str  # SHA-256 of the DER, hex
    issuer: x509.Name
    this_update: datetime
    next_update: datetime | None
    url: str | None = None
    fetched_at: datetime | None = None
    _asn1: list = field(default_factory=list, repr=False)  # lazily parsed asn1crypto object (memo)

    @classmethod
    def from_bytes(cls, data: bytes, *, url: str | None = None, fetched_at: datetime | None = None) -> "CachedCrl":
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                parsed = x509.load_pem_x509_crl(data)
                data = parsed.public_bytes(serialization.Encoding.DER)
            else:
                parsed = x509.load_der_x509_crl(data)
        except ValueError as exc:
            raise CrlUnavailable(f"The file from {url or 'the CRL source'} is not a CRL ({exc}).",
                                 code="crl.malformed", url=url) from None
        return cls.from_crl(parsed, der=data, url=url, fetched_at=fetched_at)

    @classmethod
    def from_crl(cls, parsed: x509.CertificateRevocationList, *, der: bytes | None = None, url: str | None = None,
                 fetched_at: datetime | None = None) -> "CachedCrl":
        der = der if der is not None else parsed.public_bytes(serialization.Encoding.DER)
        return cls(der=der, crl=parsed, fingerprint=hashlib.sha256(der).hexdigest(), issuer=parsed.issuer,
                   this_update=parsed.last_update_utc, next_update=parsed.next_update_utc, url=url,
                   fetched_at=fetched_at)

    @property
    def asn1(self) -> asn1_crl.CertificateList:
        if not self._asn1:
            self._asn1.append(asn1_crl.CertificateList.load(self.der))
        return self._asn1[0]

    def problem_at(self, now: datetime, skew: timedelta = DEFAULT_CLOCK_SKEW) -> CrlUnavailable | None:
        """Why this CRL cannot be used at ``now``, or None when it is current."""
        where = self.url or self.issuer.rfc4514_string()
        if self.next_update is None:
            return CrlUnavailable(f"The CRL from {where} has no nextUpdate, so its freshness cannot be judged.",
                                  code="crl.malformed", url=self.url)
        if now >= self.next_update:
            return CrlUnavailable(
                f"The CRL from {where} expired at {self.next_update:%Y-%m-%d %H:%M} UTC (its nextUpdate) and no "
                "newer one is available.",
                code="crl.expired", url=self.url,
            )
        if self.this_update > now + skew:
            return CrlUnavailable(
                f"The CRL from {where} is dated {self.this_update:%Y-%m-%d %H:%M} UTC, in the future: check this "
                "computer's clock.",
                code="crl.not_yet_valid", url=self.url,
            )
        return None

    def is_current(self, now: datetime, skew: timedelta = DEFAULT_CLOCK_SKEW) -> bool:
        return self.problem_at(now, skew) is None

    def signed_by(self, issuer: x509.Certificate) -> bool:
        if self.crl.issuer != issuer.subject:
            return False
        key = issuer.public_key()
        if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            return False
        try:
            return self.crl.is_signature_valid(key)
        except Exception:  # noqa: BLE001 - any failure to verify is a bad signature
            return False


class CrlCache:
    """CRLs per distribution-point URL: memory, then ``directory`` (None = memory only), then the network."""

    def __init__(
        self,
        directory: str | os.PathLike | None,
        *,
        session: requests.Session | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], datetime] = utcnow,
        clock_skew: timedelta = DEFAULT_CLOCK_SKEW,
        max_age: timedelta | None = None,
        tls_ca_bundle: str | os.PathLike | None = None,
    ) -> None:
        """``tls_ca_bundle``: CA certificates (PEM file) to verify https distribution points with, instead of
        requests' default bundle. TLS verification itself cannot be switched off."""
        self.directory = Path(directory) if directory is not None else None
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._session = session or requests.Session()
        self.timeout = (connect_timeout, read_timeout)
        self.max_bytes = max_bytes
        self.clock = clock
        self.clock_skew = clock_skew
        self.max_age = max_age  # when set, a cached CRL older than this is re-fetched (kept if the fetch fails)
        self._verify: bool | str = str(tls_ca_bundle) if tls_ca_bundle is not None else True
        self._memory: dict[str, CachedCrl] = {}
        self._lock = threading.Lock()
        self._url_locks: dict[str, threading.Lock] = {}
        self.downloads = 0  # number of network fetches made (diagnostics and tests)

    # -- public ---------------------------------------------------------------------------------------------------

    def get(
        self,
        url: str,
        *,
        fetch: bool = True,
        now: datetime | None = None,
        issuers: Sequence[x509.Certificate] = (),
    ) -> CachedCrl:
        """The current CRL for ``url``; raises ``CrlUnavailable`` saying why there is none."""
        now = now if now is not None else self.clock()
        cached = self._cached(url)
        if cached is not None and cached.is_current(now, self.clock_skew) and not self._too_old(cached, now):
            return cached
        if cached is not None and self._before_issued(cached, now):
            raise cached.problem_at(now, self.clock_skew)  # type: ignore[misc]
        if not fetch:
            if cached is None:
                raise CrlUnavailable(f"No CRL from {url} is stored and fetching is off (offline).",
                                     code="crl.not_cached", url=url)
            problem = cached.problem_at(now, self.clock_skew)
            if problem is None:  # current but older than max_age: offline, it still counts
                return cached
            raise problem
        with self._url_lock(url):
            cached = self._cached(url)  # another thread may have fetched it meanwhile
            if cached is not None and cached.is_current(now, self.clock_skew) and not self._too_old(cached, now):
                return cached
            try:
                fresh = self._download(url, now=now, issuers=issuers)
            except CrlUnavailable:
                if cached is not None and cached.is_current(now, self.clock_skew):
                    return cached  # refresh (max_age) failed; the stored CRL is still valid
                raise
            self._store(url, fresh)
        problem = fresh.problem_at(now, self.clock_skew)
        if problem is not None:
            raise problem
        return fresh

    def put(self, url: str, data: bytes | x509.CertificateRevocationList, *, now: datetime | None = None,
            issuers: Sequence[x509.Certificate] = ()) -> CachedCrl:
        """Store a CRL obtained some other way (e.g. imported, or published by the sandbox)."""
        entry = (CachedCrl.from_crl(data, url=url) if isinstance(data, x509.CertificateRevocationList)
                 else CachedCrl.from_bytes(data, url=url))
        entry = _with_fetched_at(entry, now if now is not None else self.clock())
        if issuers and not any(entry.signed_by(issuer) for issuer in issuers):
            raise CrlUnavailable(f"The CRL for {url} is not signed by its CA.", code="crl.bad_signature", url=url)
        self._store(url, entry)
        return entry

    def cached(self, url: str) -> CachedCrl | None:
        """Whatever is stored for ``url`` (current or not), without touching the network."""
        return self._cached(url)

    # -- internals --------------------------------------------------------------------------------------------------

    def _before_issued(self, entry: CachedCrl, now: datetime) -> bool:
        """A question about a past moment (``now`` before this cache's clock) that the stored CRL, issued after
        that moment, cannot answer: a download brings the CA's current CRL, never an older one, so it cannot
        either. The records check judges every order as of its signing time; without this it downloaded the CRL
        once per order. Questions about the present are untouched."""
        return now + self.clock_skew < entry.this_update and now + self.clock_skew < self.clock()

    def _too_old(self, entry: CachedCrl, now: datetime) -> bool:
        return (self.max_age is not None and entry.fetched_at is not None
                and now - entry.fetched_at > self.max_age)

    def _url_lock(self, url: str) -> threading.Lock:
        with self._lock:
            return self._url_locks.setdefault(url, threading.Lock())

    def _paths(self, url: str) -> tuple[Path, Path]:
        assert self.directory is not None
        stem = hashlib.sha256(url.encode("utf-8")).hexdigest()[:40]
        return self.directory / f"{stem}.crl", self.directory / f"{stem}.json"

    def _cached(self, url: str) -> CachedCrl | None:
        entry = self._memory.get(url)
        if entry is not None or self.directory is None:
            return entry
        crl_path, meta_path = self._paths(url)
        try:
            der = crl_path.read_bytes()
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, ValueError):
            return None
        if meta.get("url") != url:
            return None
        try:
            fetched_at = datetime.fromisoformat(meta["fetched_at"]) if meta.get("fetched_at") else None
            entry = CachedCrl.from_bytes(der, url=url, fetched_at=fetched_at)
        except (CrlUnavailable, ValueError):
            return None  # a damaged cache file is as good as none; the next fetch replaces it
        with self._lock:
            self._memory.setdefault(url, entry)
        return entry

    def _store(self, url: str, entry: CachedCrl) -> None:
        with self._lock:
            current = self._memory.get(url)
            # Never replace a CRL with an older one (e.g. a stale mirror answering a refresh).
            if current is not None and current.this_update > entry.this_update:
                return
            self._memory[url] = entry
        if self.directory is None:
            return
        crl_path, meta_path = self._paths(url)
        meta = {"url": url, "fetched_at": entry.fetched_at.isoformat() if entry.fetched_at else None,
                "this_update": entry.this_update.isoformat(),
                "next_update": entry.next_update.isoformat() if entry.next_update else None}
        _atomic_write(crl_path, entry.der)
        _atomic_write(meta_path, json.dumps(meta, indent=1).encode("utf-8"))

    def _download(self, url: str, *, now: datetime, issuers: Sequence[x509.Certificate]) -> CachedCrl:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in ("http", "https"):
            raise CrlUnavailable(f"CRL location {url} uses {scheme or 'no'} scheme; only http and https are "
                                 "supported.", code="crl.unsupported_url", url=url)
        self.downloads += 1
        try:
            # TLS is always verified for https distribution points (True or a CA bundle path, never False).
            with self._session.get(url, timeout=self.timeout, stream=True, verify=self._verify,
                                   headers={"Accept": "application/pkix-crl, */*"}) as response:
                if response.status_code != 200:
                    raise CrlUnavailable(f"The CRL server at {url} answered HTTP {response.status_code}.",
                                         code="crl.http_status", url=url)
                chunks, size = [], 0
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise CrlUnavailable(f"The CRL at {url} is larger than {self.max_bytes} bytes.",
                                             code="crl.too_large", url=url)
                    chunks.append(chunk)
        except requests.RequestException as exc:
            raise CrlUnavailable(f"The CRL at {url} could not be downloaded ({type(exc).__name__}).",
                                 code="crl.unreachable", url=url) from None
        entry = CachedCrl.from_bytes(b"".join(chunks), url=url, fetched_at=now)
        if issuers and not any(entry.signed_by(issuer) for issuer in issuers):
            raise CrlUnavailable(
                f"The CRL downloaded from {url} is not signed by the CA that issued the certificate (bad signature "
                "or wrong issuer); it was ignored.",
                code="crl.bad_signature", url=url,
            )
        return entry


def _with_fetched_at(entry: CachedCrl, fetched_at: datetime) -> CachedCrl:
    return CachedCrl(der=entry.der, crl=entry.crl, fingerprint=entry.fingerprint, issuer=entry.issuer,
                     this_update=entry.this_update, next_update=entry.next_update, url=entry.url,
                     fetched_at=fetched_at)


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
