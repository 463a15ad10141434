"""Test helper: a CSOS training PKI (root → sub CA → subscribers), CRL files, and a loopback HTTP server for them.

Fast: RSA keys are generated once per process and reused (CA keys per CA name, subscriber keys from a small pool), so
a whole hierarchy costs a few milliseconds after the first one. Pass ``fresh_keys=True`` when a test needs CA keys of
its own (e.g. an impostor root with the same name as the real one).

    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        alice = pki.issue(dea="BJ6125341", schedules={Schedule.II, Schedule.IV})
        pki.revoke(alice.cert)
        pki.write_crls()
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from app.models.values import CERTIFICATE_SCHEDULE_BITS, DeaNumber, Schedule
from app.services.certificates import ca as ca_module
from app.services.certificates.ca import CertificationAuthority, create_root_ca
from app.services.certificates.profile import (
    TRAINING_ROOT_CA_NAME,
    TRAINING_SUB_CA_NAME,
    CsosCertificate,
    RegistrationFacts,
    SubscriberIdentity,
)

DEFAULT_DEA = "BJ6125341"
OTHER_DEA = "AB1234563"
ALL_SCHEDULES = frozenset(CERTIFICATE_SCHEDULE_BITS)
# Port 1 on loopback: connection refused at once — an unreachable CRL server that costs no time.
UNREACHABLE_BASE_URL = "http://127.0.0.1:1/crl"

_key_lock = threading.Lock()
_ca_keys: dict[tuple[str, str], object] = {}
_subscriber_keys: dict[str, list] = {"rsa": [], "ec": []}
_SUBSCRIBER_POOL = 3
_subscriber_counter = itertools.count()


def new_key(key_type: str = "rsa"):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(key_type)


def ca_key(name: str, key_type: str = "rsa"):
    """The process-wide key of the CA called ``name`` (generated on first use)."""
    with _key_lock:
        key = _ca_keys.get((name, key_type))
        if key is None:
            key = _ca_keys[(name, key_type)] = new_key(key_type)
        return key


def subscriber_key(key_type: str = "rsa"):
    """A subscriber key from a small per-process pool (keys repeat across subscribers: fine for leaves)."""
    with _key_lock:
        pool = _subscriber_keys[key_type]
        if len(pool) < _SUBSCRIBER_POOL:
            pool.append(new_key(key_type))
            return pool[-1]
        return pool[next(_subscriber_counter) % _SUBSCRIBER_POOL]


def make_csr(key, *, common_name: str = "CSOS applicant", algorithm: hashes.HashAlgorithm | None = None
             ) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, algorithm or hashes.SHA256())
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class IssuedCert:
    cert: x509.Certificate
    key: object
    subscriber: SubscriberIdentity
    registration: RegistrationFacts | None = None

    @property
    def csos(self) -> CsosCertificate:
        return CsosCertificate.from_certificate(self.cert)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


@dataclass
class TrainingPki:
    root: CertificationAuthority
    sub: CertificationAuthority
    directory: Path  # where CRL files are written (serve it with serve_directory)
    crl_base_url: str
    now: datetime
    trust_bundle: Path
    key_type: str = "rsa"
    issued: list[IssuedCert] = field(default_factory=list)

    @property
    def trust_roots(self) -> list[x509.Certificate]:
        return [self.root.certificate]

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [self.sub.certificate]

    def registration(self, *, dea: str = DEFAULT_DEA, schedules=ALL_SCHEDULES, expires: datetime | None = None,
                     registrant_name: str = "Main Street Pharmacy",
                     address_lines: tuple[str, ...] = ("100 Main Street", "Springfield IL 62701"),
                     business_activity: str = "RETAIL PHARMACY") -> RegistrationFacts:
        return RegistrationFacts(
            dea_number=DeaNumber.parse(dea), registrant_name=registrant_name, address_lines=address_lines,
            business_activity=business_activity, schedules=frozenset(schedules),
            expires=expires or (self.now + timedelta(days=365)),
        )

    def issue(
        self,
        *,
        dea: str = DEFAULT_DEA,
        schedules=ALL_SCHEDULES,
        now: datetime | None = None,
        not_after: datetime | None = None,
        key=None,
        key_type: str | None = None,
        full_name: str = "Pat Purchaser",
        email: str = "pat@mainstreet.example",
        serial: str | None = None,
        registrant_name: str = "Main Street Pharmacy",
        ca: CertificationAuthority | None = None,
    ) -> IssuedCert:
        """A signing certificate from the sub CA. ``now`` moves issuance (notBefore = now - 5 min);
        ``not_after`` is the registration expiry (default now + 1 year)."""
        moment = now or self.now
        key = key or subscriber_key(key_type or self.key_type)
        subscriber = SubscriberIdentity(full_name=full_name, email=email,
                                        serial=serial or ca_module.new_subscriber_serial())
        registration = self.registration(dea=dea, schedules=schedules,
                                         expires=not_after or moment + timedelta(days=365),
                                         registrant_name=registrant_name)
        cert = (ca or self.sub).issue_signing_certificate(make_csr(key), subscriber=subscriber,
                                                          registration=registration, now=moment)
        issued = IssuedCert(cert=cert, key=key, subscriber=subscriber, registration=registration)
        self.issued.append(issued)
        return issued

    def issue_admin(self, *, now: datetime | None = None, full_name: str = "Casey Coordinator",
                    email: str = "casey@mainstreet.example", organization: str = "Main Street Pharmacy",
                    key=None) -> IssuedCert:
        key = key or subscriber_key(self.key_type)
        subscriber = SubscriberIdentity(full_name=full_name, email=email, serial=ca_module.new_subscriber_serial())
        cert = self.sub.issue_administrative_certificate(make_csr(key), subscriber=subscriber,
                                                         organization=organization, now=now or self.now)
        issued = IssuedCert(cert=cert, key=key, subscriber=subscriber)
        self.issued.append(issued)
        return issued

    def revoke(self, cert: x509.Certificate, reason: x509.ReasonFlags = x509.ReasonFlags.key_compromise,
               *, at: datetime | None = None) -> None:
        ca = self.root if cert.issuer == self.root.certificate.subject else self.sub
        ca.revoke(cert, reason, at=at or self.now)

    def write_crl(self, ca: CertificationAuthority | None = None, *, now: datetime | None = None,
                  next_update: datetime | timedelta | None = None, data: bytes | None = None) -> Path:
        """Publish ``ca``'s CRL (default: the sub CA) where its distribution point URL points. ``data`` replaces
        the CRL bytes (to publish something broken)."""
        ca = ca or self.sub
        name = "root.crl" if ca is self.root else "sub.crl"
        path = self.directory / name
        if data is None:
            crl = ca.build_crl(now=now or self.now, next_update=next_update)
            data = crl.public_bytes(serialization.Encoding.DER)
        path.write_bytes(data)
        return path

    def write_crls(self, *, now: datetime | None = None, next_update: datetime | timedelta | None = None
                   ) -> list[Path]:
        return [self.write_crl(self.root, now=now, next_update=next_update),
                self.write_crl(self.sub, now=now, next_update=next_update)]

    def crl(self, ca: CertificationAuthority | None = None, *, now: datetime | None = None,
            next_update: datetime | timedelta | None = None) -> x509.CertificateRevocationList:
        """A CRL object without publishing it."""
        return (ca or self.sub).build_crl(now=now or self.now, next_update=next_update)


def build_training_pki(
    tmp_path: Path,
    *,
    now: datetime | None = None,
    key_type: str = "rsa",
    crl_base_url: str = UNREACHABLE_BASE_URL,
    root_name: str = TRAINING_ROOT_CA_NAME,
    sub_name: str = TRAINING_SUB_CA_NAME,
    fresh_keys: bool = False,
) -> TrainingPki:
    """Root and sub CA created at ``now`` (default: the current second), publishing CRLs at
    ``<crl_base_url>/root.crl`` and ``/sub.crl``; CRL files go to ``tmp_path/"crl"``; the root PEM to
    ``tmp_path/"trust.pem"``. Nothing is published until ``write_crl(s)`` is called."""
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    base = crl_base_url.rstrip("/")
    root_key = new_key(key_type) if fresh_keys else ca_key(root_name, key_type)
    sub_key = new_key(key_type) if fresh_keys else ca_key(sub_name, key_type)
    root = create_root_ca(root_name, key=root_key, now=moment, crl_url=f"{base}/root.crl")
    sub = root.create_subordinate_ca(sub_name, key=sub_key, now=moment, crl_url=f"{base}/sub.crl")
    directory = Path(tmp_path) / "crl"
    directory.mkdir(parents=True, exist_ok=True)
    bundle = Path(tmp_path) / "trust.pem"
    bundle.write_bytes(pem(root.certificate))
    return TrainingPki(root=root, sub=sub, directory=directory, crl_base_url=base, now=moment,
                       trust_bundle=bundle, key_type=key_type)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass

    def guess_type(self, path):
        return "application/pkix-crl" if str(path).endswith(".crl") else super().guess_type(path)


class DirectoryServer:
    """``http.server`` serving a directory on 127.0.0.1 with an OS-chosen port, in a daemon thread."""

    def __init__(self, directory: Path) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.requests = 0
        outer = self

        class _Counting(handler.func):  # count requests (tests assert the cache avoids the network)
            def do_GET(self):  # noqa: N802 - stdlib name
                outer.requests += 1
                return super().do_GET()

        self.httpd.RequestHandlerClass = functools.partial(_Counting, directory=str(directory))
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="crl-server", daemon=True)

    def start(self) -> "DirectoryServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def serve_directory(directory: Path):
    """Yield the running ``DirectoryServer`` (its ``base_url`` serves ``directory``)."""
    server = DirectoryServer(directory).start()
    try:
        yield server
    finally:
        server.stop()
