"""The sandbox's CSOS training hierarchy (``CSOS Training Root CA`` → ``CSOS Training Sub CA``), kept on disk.

Built on ``services.certificates.ca``: this module only persists the two CAs (``ca/root.json``, ``ca/sub.json``), publishes their
CRLs (``crl/root.crl``, ``crl/sub.crl``; served at ``{crl base}/crl/root.crl`` and ``/crl/sub.crl`` — plain http, as a
supplier fetches CRLs: a CRL is a signed object, and a verifier has no TLS root for the sandbox) and keeps them fresh:
a CRL is rebuilt at once after a revocation and whenever half of its lifetime has passed, so a served CRL is never
near its nextUpdate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.services.certificates import ca as ca_engine
from app.services.certificates.ca import CertificationAuthority
from app.services.certificates.profile import RegistrationFacts, SubscriberIdentity

log = logging.getLogger(__name__)

CA_NAMES = ("root", "sub")


def _atomic_write(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


class SandboxAuthority:
    """Root + issuing CA of the training sandbox, with their published CRLs. Thread-safe."""

    def __init__(self, directory: Path, base_url: str, *, clock: Callable[[], dt.datetime],
                 crl_base_url: str | None = None) -> None:
        """``crl_base_url``: where the CRLs are published (the http listener); it goes into the CRL distribution
        point of every certificate the CAs issue. Default ``base_url``."""
        self.directory = Path(directory)
        self.ca_dir = self.directory / "ca"
        self.crl_dir = self.directory / "crl"
        self.trust_bundle = self.directory / "csos-trust.pem"
        self.clock = clock
        self._lock = threading.RLock()
        self.ca_dir.mkdir(parents=True, exist_ok=True)
        self.crl_dir.mkdir(parents=True, exist_ok=True)
        self.crl_urls = {name: f"{crl_base_url or base_url}/crl/{name}.crl" for name in CA_NAMES}
        self._crls: dict[str, bytes] = {}
        self.root, self.sub = self._load_or_create()
        _atomic_write(self.trust_bundle, self.root.certificate.public_bytes(serialization.Encoding.PEM))
        for name in CA_NAMES:
            self._publish(name)

    # -- setup --------------------------------------------------------------------------------------------------------

    def _load_or_create(self) -> tuple[CertificationAuthority, CertificationAuthority]:
        paths = {name: self.ca_dir / f"{name}.json" for name in CA_NAMES}
        if all(path.exists() for path in paths.values()):
            root = CertificationAuthority.from_dict(json.loads(paths["root"].read_text("utf-8")), clock=self.clock)
            sub = CertificationAuthority.from_dict(json.loads(paths["sub"].read_text("utf-8")), clock=self.clock)
            if root.crl_url != self.crl_urls["root"]:
                # The sandbox came up on another address: the sub CA's certificate names the root's CRL location,
                # so it is certified again (same key: certificates issued before still chain to it).
                log.warning("sandbox address changed; re-certifying the training sub CA")
                root.crl_url = self.crl_urls["root"]
                renewed = root.create_subordinate_ca(sub.common_name, key=sub.key, crl_url=self.crl_urls["sub"])
                sub.certificate = renewed.certificate
            sub.crl_url = self.crl_urls["sub"]
        else:
            root, sub = ca_engine.create_training_hierarchy(root_crl_url=self.crl_urls["root"],
                                                            sub_crl_url=self.crl_urls["sub"], clock=self.clock)
        self._save(root, sub)
        return root, sub

    def _save(self, root: CertificationAuthority | None = None, sub: CertificationAuthority | None = None) -> None:
        for name, authority in (("root", root or self.root), ("sub", sub or self.sub)):
            _atomic_write(self.ca_dir / f"{name}.json", json.dumps(authority.to_dict(), indent=1).encode("utf-8"),
                          private=True)

    def _authority(self, name: str) -> CertificationAuthority:
        return self.root if name == "root" else self.sub

    def _publish(self, name: str) -> None:
        crl = self._authority(name).build_crl()
        der = crl.public_bytes(serialization.Encoding.DER)
        _atomic_write(self.crl_dir / f"{name}.crl", der)
        self._crls[name] = der
        self._save()

    # -- CRLs ---------------------------------------------------------------------------------------------------------

    def crl(self, name: str) -> bytes:
        """The current CRL of ``root`` or ``sub`` (DER), rebuilt first when half its lifetime has passed."""
        with self._lock:
            parsed = x509.load_der_x509_crl(self._crls[name])
            lifetime = parsed.next_update_utc - parsed.last_update_utc
            if self.clock() >= parsed.last_update_utc + lifetime / 2:
                self._publish(name)
            return self._crls[name]

    def current_crls(self) -> list[bytes]:
        return [self.crl(name) for name in CA_NAMES]

    # -- issuing and revoking -----------------------------------------------------------------------------------------

    @property
    def chain(self) -> list[x509.Certificate]:
        """What a subscriber needs besides their own certificate: issuing CA, then root."""
        return [self.sub.certificate, self.root.certificate]

    def issue_signing(self, csr: x509.CertificateSigningRequest, *, subscriber: SubscriberIdentity,
                      registration: RegistrationFacts) -> x509.Certificate:
        with self._lock:
            cert = self.sub.issue_signing_certificate(csr, subscriber=subscriber, registration=registration)
            self._save()
            return cert

    def issue_administrative(self, csr: x509.CertificateSigningRequest, *, subscriber: SubscriberIdentity,
                             organization: str) -> x509.Certificate:
        with self._lock:
            cert = self.sub.issue_administrative_certificate(csr, subscriber=subscriber, organization=organization)
            self._save()
            return cert

    def revoke(self, serial: int, reason: x509.ReasonFlags) -> None:
        """Revoke and publish a new sub CA CRL at once."""
        with self._lock:
            self.sub.revoke(serial, reason)
            self._publish("sub")
