"""Which CSOS trust roots this profile uses, and the per-profile store the pharmacy manages (DESIGN.md §4).

Nothing is trusted implicitly and never the operating system's store: a root counts only when someone added it
to this profile (``csos-desk trust add`` or Settings → CSOS trust roots) after comparing its SHA-256 fingerprint with
the one DEA publishes. The store is one PEM file, ``<profile data folder>/trust/roots.pem``. The older
``csos_trust_bundle`` setting (a path typed by hand; training points it at the sandbox's root) is still read.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from app.errors import ConfigError, CsosError
from app.services.certificates.validation import load_trust_bundle

RESOURCES = Path(__file__).resolve().parents[3] / "resources" / "trust"
STORE_FILE = Path("trust") / "roots.pem"
SHORT_ID_LENGTH = 16  # the short identifier of a certificate: first 16 hex digits of its SHA-256 fingerprint


class TrustStoreError(CsosError):
    """Codes: ``trust.unreadable`` (not a certificate file), ``trust.not_ca`` (an end-entity certificate offered as a
    root), ``trust.fingerprint_mismatch``, ``trust.not_found``, ``trust.ambiguous``, ``trust.store_damaged``."""

    code = "trust.error"


def normalize_fingerprint(text: str) -> str:
    """``AB:CD …``, ``ab cd …`` or ``abcd…`` → lowercase hex without separators."""
    return re.sub(r"[\s:]", "", text or "").lower()


def group_fingerprint(fingerprint: str) -> str:
    """The way fingerprints are usually published and read aloud: ``AB:CD:…``."""
    return ":".join(fingerprint[i:i + 2] for i in range(0, len(fingerprint), 2)).upper()


@dataclass(frozen=True)
class TrustCandidate:
    """One certificate as the pharmacist must see it before trusting it."""

    certificate: x509.Certificate
    fingerprint: str  # SHA-256 of the DER, lowercase hex

    @classmethod
    def of(cls, certificate: x509.Certificate) -> "TrustCandidate":
        der = certificate.public_bytes(serialization.Encoding.DER)
        return cls(certificate, hashlib.sha256(der).hexdigest())

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def name(self) -> str:
        names = self.certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else self.subject

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def short_id(self) -> str:
        return self.fingerprint[:SHORT_ID_LENGTH]

    @property
    def is_ca(self) -> bool:
        try:
            return bool(self.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
            return False

    @property
    def self_signed(self) -> bool:
        """Issuer = subject and the certificate's own key verifies its signature: a root."""
        if self.certificate.issuer != self.certificate.subject:
            return False
        try:
            self.certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            return False
        return True

    @property
    def kind(self) -> str:
        """``root``, ``intermediate`` (a CA certified by another CA) or ``not_ca``."""
        if not self.is_ca:
            return "not_ca"
        return "root" if self.self_signed else "intermediate"

    def plain_kind(self) -> str:
        return {"root": "a root certificate (self-signed CA)",
                "intermediate": "NOT a root: an intermediate CA certified by another CA. Prefer adding the root "
                                "it chains to; trusting an intermediate works but is not the usual way",
                "not_ca": "NOT a CA certificate (it belongs to a person or a server), so it cannot be a trust "
                          "root"}[self.kind]

    def valid_at(self, now: dt.datetime) -> bool:
        return self.not_before <= now <= self.not_after

    def to_json(self) -> dict[str, Any]:
        return {"subject": self.subject, "name": self.name, "fingerprint_sha256": self.fingerprint,
                "short_id": self.short_id, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "kind": self.kind}


def read_certificates(data: bytes, *, source: str = "the file") -> list[x509.Certificate]:
    """Every certificate in ``data``: PEM (one or many CERTIFICATE or PKCS7 blocks), DER, or a .p7b (DER or PEM)."""
    stripped = data.lstrip()
    certs: list[x509.Certificate] = []
    try:
        if b"-----BEGIN " in data:
            if b"-----BEGIN CERTIFICATE-----" in data:
                certs += x509.load_pem_x509_certificates(data)
            for block in re.findall(rb"-----BEGIN PKCS7-----.*?-----END PKCS7-----", data, re.S):
                certs += pkcs7.load_pem_pkcs7_certificates(block)
        elif stripped:
            try:
                certs = [x509.load_der_x509_certificate(data)]
            except ValueError:
                certs = list(pkcs7.load_der_pkcs7_certificates(data))
    except ValueError:
        certs = []
    if not certs:
        raise TrustStoreError(f"{source} holds no certificate this program can read (PEM, DER or .p7b).",
                              code="trust.unreadable")
    return certs


def inspect(data: bytes, *, source: str = "the file") -> list[TrustCandidate]:
    """The certificates of a file, each once, in file order."""
    seen: dict[str, TrustCandidate] = {}
    for cert in read_certificates(data, source=source):
        candidate = TrustCandidate.of(cert)
        seen.setdefault(candidate.fingerprint, candidate)
    return list(seen.values())


class TrustStore:
    """This profile's CSOS trust roots: ``<data_dir>/trust/roots.pem``."""

    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.path = Path(data_dir) / STORE_FILE

    def roots(self) -> list[TrustCandidate]:
        if not self.path.exists():
            return []
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise TrustStoreError(f"The CSOS trust roots file {self.path} cannot be read ({exc.strerror}).",
                                  code="trust.store_damaged") from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            return []
        try:
            return inspect(data, source=str(self.path))
        except TrustStoreError:
            raise TrustStoreError(f"The CSOS trust roots file {self.path} is damaged. Remove it and add the roots "
                                  "again.", code="trust.store_damaged") from None

    def add(self, candidates: Sequence[TrustCandidate], *, fingerprints: Iterable[str] | None = None
            ) -> tuple[list[TrustCandidate], list[TrustCandidate]]:
        """Add ``candidates`` (after the person confirmed what they saw). With ``fingerprints`` (scripts), only the
        certificates having one of them are added, and every given fingerprint must match one: otherwise nothing
        is added. Returns (added, already there). A certificate that is not a CA is refused."""
        chosen = list(candidates)
        if fingerprints is not None:
            wanted = {normalize_fingerprint(f) for f in fingerprints}
            by_print = {c.fingerprint: c for c in chosen}
            missing = sorted(wanted - set(by_print))
            if missing:
                raise TrustStoreError(
                    f"The fingerprint {group_fingerprint(missing[0])} does not match any certificate in the file "
                    f"(it holds {', '.join(group_fingerprint(c.fingerprint) for c in chosen)}). Nothing was added: "
                    "the file is not the certificate you expected.", code="trust.fingerprint_mismatch")
            chosen = [c for c in chosen if c.fingerprint in wanted]
        refused = [c for c in chosen if not c.is_ca]
        if refused:
            raise TrustStoreError(f"'{refused[0].name}' is not a CA certificate, so it cannot be a CSOS trust root. "
                                  "Add the root certificate of the CA instead (DEA publishes it). Nothing was added.",
                                  code="trust.not_ca")
        current = self.roots()
        known = {c.fingerprint for c in current}
        added = [c for c in chosen if c.fingerprint not in known]
        already = [c for c in chosen if c.fingerprint in known]
        if added:
            self._write([*current, *added])
        return added, already

    def find(self, fingerprint: str) -> TrustCandidate:
        """The root whose fingerprint is ``fingerprint`` or starts with it (at least 16 hex digits)."""
        text = normalize_fingerprint(fingerprint)
        if len(text) < SHORT_ID_LENGTH or not re.fullmatch(r"[0-9a-f]+", text):
            raise TrustStoreError("Give the fingerprint of the root (at least its first 16 hex digits, as `csos-desk "
                                  "trust list` shows).", code="trust.not_found")
        matches = [c for c in self.roots() if c.fingerprint.startswith(text)]
        if not matches:
            raise TrustStoreError(f"No CSOS trust root of this profile has the fingerprint {text}. See `csos-desk "
                                  "trust list`.", code="trust.not_found")
        if len(matches) > 1:
            raise TrustStoreError("Several roots start with that fingerprint; give more of it.",
                                  code="trust.ambiguous")
        return matches[0]

    def remove(self, fingerprint: str) -> TrustCandidate:
        target = self.find(fingerprint)
        self._write([c for c in self.roots() if c.fingerprint != target.fingerprint])
        return target

    def _write(self, roots: Sequence[TrustCandidate]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = ["# CSOS trust roots of this profile, managed by `csos-desk trust` / Settings. One PEM block each.\n"]
        for root in roots:
            text.append(f"# {root.subject}\n# SHA-256 {group_fingerprint(root.fingerprint)}\n")
            text.append(root.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix="roots.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write("".join(text))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def root_offer(chain: Sequence[x509.Certificate], store: TrustStore) -> TrustCandidate | None:
    """The root (self-signed CA) found in a downloaded certificate chain that this profile does not trust yet, to
    offer adding it — with its fingerprint, to compare with the one DEA publishes. None when there is no root in the
    chain or it is trusted already."""
    trusted = {c.fingerprint for c in store.roots()}
    for cert in chain:
        candidate = TrustCandidate.of(cert)
        if candidate.kind == "root" and candidate.fingerprint not in trusted:
            return candidate
    return None


def configured_trust_roots(config: Any, *, explicit: str | Path | None = None) -> list[x509.Certificate]:
    """Explicit file, else CSOS_TRUST_BUNDLE, else this profile's roots (the managed store plus the older
    ``csos_trust_bundle`` setting), else the bundles shipped in resources/trust/<profile>/."""
    source = explicit or os.environ.get("CSOS_TRUST_BUNDLE")
    if source:
        return load_trust_bundle(source)
    roots = {c.fingerprint: c.certificate for c in TrustStore(config.data_dir).roots()}
    legacy = config.settings.get("csos_trust_bundle")
    if legacy:
        for cert in load_trust_bundle(legacy):
            roots.setdefault(TrustCandidate.of(cert).fingerprint, cert)
    if not roots:
        shipped = RESOURCES / config.profile.value
        for bundle in sorted(shipped.glob("*.pem")) if shipped.is_dir() else []:
            for cert in load_trust_bundle(bundle):
                roots.setdefault(TrustCandidate.of(cert).fingerprint, cert)
    if not roots:
        raise ConfigError(f"No CSOS trust roots are set up for the {config.profile.value} profile, so no "
                          "certificate can be called trusted. Add DEA's CSOS root certificate: Settings → CSOS trust "
                          "roots → Add…, or `csos-desk trust add FILE`" + (" (in training, start the sandbox: ./run "
                          "does)." if config.profile.value == "training" else "."),
                          code="config.no_trust_roots")
    return list(roots.values())
