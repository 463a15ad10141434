"""Certificate records: which key lives where and which certificate signs for which registration (DESIGN §1 S1–S4, §7).

``CertificateBook`` is the one place that knows the key stores (the software store in the profile's ``keys/`` folder
and the PKCS#11 tokens of the configured modules) and the ``certificates`` table. Everything that signs asks it for
the certificate of a registration (``signing_certificate_for``), so a person with several registrations never signs
with the wrong certificate (S1) and a coordinator certificate never signs at all (S4).

Records hold the certificate, its chain (intermediates only: roots come from the trust bundle, never from a file), the
key reference (file id, or token identity + CKA_ID, plus the module path) and a status. Secrets pass through as call
arguments and are never stored, logged or put into audit details.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.config import AppConfig, configured_pkcs11_modules
from app.errors import ConfigError, CsosError, NotFound
from app.models.database import Database, explain_storage_failure
from app.models.integrity import append_audit_event
from app.models.orderbook import CertificateRecord, CertificateStatus, Order, Registration, utcnow
from app.models.values import CERTIFICATE_SCHEDULE_BITS, DeaNumber
from app.services.certificates.admission import Admitted, CertificateRefused, admit, is_ca
from app.services.certificates.profile import CsosCertificate, build_subject
from app.services.keys import (
    STORE_PKCS11,
    STORE_SOFTWARE,
    CertificateNoMatchingKey,
    KeyAlgorithm,
    KeyRef,
    KeyStore,
    KeyStoreError,
    Signer,
    SoftwareKeyStore,
    TokenNotFound,
    build_csr,
)
from app.services.keys import p12 as p12_files

log = logging.getLogger(__name__)

SIGNING = "signing"
ADMINISTRATIVE = "administrative"
MIN_PREFIX = 4


class CertificateBookError(CsosError):
    code = "certificate.error"


class NoSigningCertificate(CertificateBookError):
    """No certificate may sign for the registration now; the message says what to do (enroll, install, renew)."""

    code = "certificate.none_for_registration"


@dataclass(frozen=True)
class TokenEntry:
    """A token as listed by ``token list``: where its driver is and what it says about itself."""

    module: str
    manufacturer: str
    model: str
    serial: str
    label: str
    pin_pad: bool
    pin_locked: bool
    pin_notice: str = ""  # from the token's PIN flags: one try left, PIN locked, no user PIN... (issue 19)


def record_key_ref(record: CertificateRecord) -> KeyRef:
    data = {k: v for k, v in (record.key_ref or {}).items() if k != "module"}
    if not data:
        raise CertificateBookError("This certificate has no key on this computer or token.", code="certificate.no_key")
    return KeyRef.from_json(json.dumps(data))


def record_subject_serial(record: CertificateRecord) -> str | None:
    if not record.certificate_der:
        return None
    return CsosCertificate.from_der(record.certificate_der).subject_serial


class CertificateBook:
    def __init__(self, db: Database, config: AppConfig, *, clock: Callable[[], dt.datetime] = utcnow,
                 actor: str = "", environ: Mapping[str, str] | None = None,
                 software_store: SoftwareKeyStore | None = None,
                 trust_roots: Sequence[x509.Certificate] | None = None,
                 intermediates: Iterable[x509.Certificate] = ()) -> None:
        """``environ`` replaces the process environment (PKCS11_MODULE…); ``software_store`` shares an open store
        (and its wrong-password slow-down) instead of opening ``config.keys_dir``. ``trust_roots`` replaces the
        profile's configured CSOS roots; ``intermediates`` are CA certificates known besides the stored chains."""
        self.db = db
        self.config = config
        self.clock = clock
        self.actor = actor
        self._environ = os.environ if environ is None else environ
        self._software = software_store
        self._token_stores: dict[tuple[str, str | None], Any] = {}
        self._trust_roots = list(trust_roots) if trust_roots is not None else None
        self._intermediates = list(intermediates)

    # -- key stores ---------------------------------------------------------------------------------------------

    @property
    def software_store(self) -> SoftwareKeyStore:
        if self._software is None:
            self._software = SoftwareKeyStore(self.config.keys_dir)
        return self._software

    def token_modules(self) -> list[str]:
        """PKCS#11 driver paths: the ``pkcs11_modules`` setting, then ``PKCS11_MODULE``."""
        return configured_pkcs11_modules(self.config.settings, self._environ)

    @property
    def default_token_label(self) -> str | None:
        return (self.config.settings.get("pkcs11_token_label") or self._environ.get("PKCS11_TOKEN_LABEL")
                or None)

    def _token_store(self, module: str, *, serial: str | None = None, label: str | None = None) -> Any:
        from app.services.keys.pkcs11_store import Pkcs11KeyStore

        key = (module, f"serial:{serial}" if serial else f"label:{label}" if label else None)
        store = self._token_stores.get(key)
        if store is None:
            store = self._token_stores[key] = Pkcs11KeyStore(module, token_label=label, token_serial=serial)
        return store

    def list_tokens(self) -> list[TokenEntry]:
        entries = []
        for module in self.token_modules():
            for info in self._token_store(module).list_tokens():
                entries.append(TokenEntry(module=module, manufacturer=info.manufacturer, model=info.model,
                                          serial=info.serial, label=info.label,
                                          pin_pad=info.protected_authentication_path, pin_locked=info.pin_locked,
                                          pin_notice=info.pin_notice))
        return entries

    def _all_stores(self) -> Iterator[tuple[KeyStore, str | None]]:
        """The software store, then one store per token of every configured module (tokens by serial)."""
        yield self.software_store, None
        for module in self.token_modules():
            try:
                tokens = self._token_store(module).list_tokens()
            except KeyStoreError as exc:
                log.warning("token driver skipped while looking for keys: %s", exc.code)
                continue
            for info in tokens:
                yield self._token_store(module, serial=info.serial), module

    def store_for(self, ref: KeyRef, *, module: str | None = None) -> KeyStore:
        """The store holding ``ref``: the key file folder, or the module that has the token with that serial."""
        if ref.store == STORE_SOFTWARE:
            return self.software_store
        assert ref.token is not None
        modules = self.token_modules()
        if module and os.path.abspath(module) not in modules and os.path.exists(module):
            modules.insert(0, os.path.abspath(module))
        for path in modules:
            try:
                serials = {t.serial for t in self._token_store(path).list_tokens()}
            except KeyStoreError:
                continue
            if ref.token.serial in serials:
                return self._token_store(path, serial=ref.token.serial)
        raise TokenNotFound(f"Insert the {ref.token.describe()}: it was not found in any reader.")

    def close(self) -> None:
        for store in self._token_stores.values():
            store.close()
        self._token_stores.clear()

    def __enter__(self) -> "CertificateBook":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and requests ----------------------------------------------------------------------------------------

    def keygen(self, *, store: str = "software", algorithm: KeyAlgorithm = KeyAlgorithm.RSA_2048, label: str,
               secret: str | None, token_label: str | None = None, token_serial: str | None = None) -> KeyRef:
        """Generate a key pair and record it as a PENDING certificate record (a key waiting for its certificate)."""
        module = None
        if store == "software":
            ref = self.software_store.generate_key(algorithm=algorithm, label=label, secret=secret)
        elif store == "token":
            module, key_store = self._token_for_new_key(token_label, token_serial)
            ref = key_store.generate_key(algorithm=algorithm, label=label, secret=secret)
        else:
            raise CertificateBookError(f"'{store}' is not a key store; use 'software' or 'token'.",
                                       code="certificate.bad_store")
        with self._write() as session:
            session.add(CertificateRecord(key_ref=self._key_ref_json(ref, module), status=CertificateStatus.PENDING,
                                          subscriber_name="", kind=SIGNING))
            append_audit_event(session, action="certificate.key_generated", actor=self.actor,
                               details={"key_store": ref.store, "key_id": ref.key_id, "algorithm": ref.algorithm.value,
                                        "token_serial": ref.token.serial if ref.token else None})
        return ref

    def _token_for_new_key(self, label: str | None, serial: str | None) -> tuple[str, Any]:
        modules = self.token_modules()
        if not modules:
            raise CertificateBookError(
                "No token driver is configured. Set the PKCS#11 module path in Settings (pkcs11_modules).",
                code="certificate.no_token_driver")
        label = label or (None if serial else self.default_token_label)
        found: list[tuple[str, str]] = []
        for module in modules:
            for info in self._token_store(module).list_tokens():
                if (label is None or info.label == label) and (serial is None or info.serial == serial):
                    found.append((module, info.serial))
        if not found:
            wanted = " ".join(p for p in (f"'{label}'" if label else "", f"serial {serial}" if serial else "") if p)
            raise TokenNotFound(f"Insert the token {wanted}: it was not found in any reader." if wanted
                                else "Insert a token: none was found in any reader.")
        if len(found) > 1:
            raise TokenNotFound("Several tokens match. Choose the token by its label or serial number.",
                                code="key.token_ambiguous")
        module, found_serial = found[0]
        return module, self._token_store(module, serial=found_serial)

    def find_key(self, key_id_prefix: str) -> tuple[KeyRef, str | None]:
        """A key by (a prefix of) its id, from the records first, then from every store."""
        prefix = key_id_prefix.strip().lower()
        if len(prefix) < MIN_PREFIX:
            raise CertificateBookError(f"Give at least {MIN_PREFIX} characters of the key id.",
                                       code="certificate.prefix_too_short")
        matches: dict[str, tuple[KeyRef, str | None]] = {}
        with self.db.session() as session:
            for record in session.scalars(select(CertificateRecord)):
                if str((record.key_ref or {}).get("key_id", "")).startswith(prefix):
                    ref = record_key_ref(record)
                    matches[ref.key_id] = (ref, record.key_ref.get("module"))
        if not matches:
            for store, module in self._all_stores():
                for ref in store.list_keys():
                    if ref.key_id.startswith(prefix):
                        matches[ref.key_id] = (ref, module)
        if not matches:
            raise NotFound(f"No key with id {prefix}… on this computer or its tokens.", code="certificate.key_not_found")
        if len(matches) > 1:
            raise CertificateBookError(f"Several keys start with {prefix}; give more characters.",
                                       code="certificate.ambiguous")
        return next(iter(matches.values()))

    def make_csr(self, key_ref: KeyRef, *, secret: str | None, full_name: str, email: str, registrant_name: str,
                 subject_serial: str, module: str | None = None) -> bytes:
        """DER PKCS#10 signed by the key itself (proof of possession, S3); subject as DESIGN.md §4."""
        subject = build_subject(registrant_name=registrant_name, full_name=full_name, serial=subject_serial)
        with self.store_for(key_ref, module=module).open_signer(key_ref, secret=secret) as signer:
            der = build_csr(signer, subject=subject, email=email)
        log.info("certificate request made with key id=%s", key_ref.key_id)
        return der

    # -- install / import / export --------------------------------------------------------------------------------

    def install(self, data: bytes, *, secret: str | None = None,
                trust_roots: Sequence[x509.Certificate] | None = None) -> CertificateRecord:
        """Bind an issued certificate (PEM, DER or PKCS#7 chain) to its key and make it ACTIVE.

        Only a CSOS certificate that chains to a CSOS trust root is taken (``admission``); the chain stored is the
        path found, so a file holding only the certificate keeps the chain known from before. ``trust_roots``
        (e.g. the enrolling authority's, which are the configured ones) replaces the profile's roots."""
        # Unreadable files, certificates outside the CSOS profile and untrusted ones fail here, before any key
        # store is written.
        certs = p12_files.load_certificates(data)
        admitted = {cert.fingerprint(hashes.SHA256()): self.admit(cert, certs, trust_roots=trust_roots)
                    for cert in certs if not is_ca(cert)}
        for store, module in self._all_stores():
            try:
                bound = p12_files.import_certificate(store, data, secret=secret)
            except CertificateNoMatchingKey:
                continue
            checked = admitted[bound.certificate.fingerprint(hashes.SHA256())]
            return self._record_certificate(bound.key_ref, module, bound.certificate, checked.intermediates,
                                            action="certificate.installed")
        raise CertificateNoMatchingKey(
            "None of your keys matches this certificate. It was issued for a key that is not on this computer or "
            "on a connected token; install it where the certificate request was made.")

    def import_p12(self, data: bytes, *, password: str, new_secret: str | None, label: str, to_token: bool = False,
                   token_label: str | None = None, token_serial: str | None = None) -> CertificateRecord:
        """Import a .p12/.pfx: the key goes into a key file re-encrypted with ``new_secret`` (or onto a token, with
        ``new_secret`` as its PIN); its certificate becomes a record like ``install`` makes."""
        contents = p12_files.read_p12(data, password=password)
        try:
            checked = self.admit_p12(contents)  # refused before any key is stored
        except CertificateRefused:
            del contents.private_key
            raise
        key_spki = _spki(contents.private_key.public_key())
        cert = checked.view.certificate
        module = None
        if to_token:
            module, store = self._token_for_new_key(token_label, token_serial)
        else:
            store = self.software_store
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        ref, written = self._existing_key(store, key_spki), False
        if ref is None:
            ref = store.import_private_key(contents.private_key, label=label,  # type: ignore[attr-defined]
                                           secret=new_secret, certificate_der=cert_der)
            written = True
        else:
            log.info("the key of the .p12 file is already in the store (id=%s); no second copy made", ref.key_id)
        del contents.private_key
        try:
            return self._record_certificate(ref, module, cert, checked.intermediates, action="certificate.imported")
        except CsosError:
            if written and ref.store == STORE_SOFTWARE:
                self.software_store.path_of(ref).unlink(missing_ok=True)  # no orphan key file
            raise

    def admit_p12(self, contents: p12_files.P12Contents) -> Admitted:
        """The certificate of the key in a .p12, admitted like ``install`` admits one; ``certificate.key_only`` when
        the file holds no certificate for its key (it could never sign)."""
        key_spki = _spki(contents.private_key.public_key())
        everything = [c for c in [contents.certificate, *contents.additional_certificates] if c is not None]
        # The key's own certificate: the one marked as such, else one among the others with the same public key.
        cert = next((c for c in everything if _spki(c.public_key()) == key_spki), None)
        if cert is None:
            raise CertificateRefused(
                "This file holds a key but not its certificate, so it cannot sign orders. Nothing was imported. "
                "Ask for the file that holds both your CSOS certificate and its key (.p12 or .pfx).",
                code="certificate.key_only")
        return self.admit(cert, everything)

    def admit(self, cert: x509.Certificate, others: Iterable[x509.Certificate] = (), *,
              trust_roots: Sequence[x509.Certificate] | None = None) -> Admitted:
        """``admission.admit`` with the profile's trust roots and every intermediate known here (the file's, the
        stored chains, those given to the book)."""
        roots = list(trust_roots) if trust_roots is not None else self.trust_roots()
        return admit(cert, roots=roots, candidates=[*others, *self._intermediates, *self._stored_intermediates()],
                     now=self.clock())

    def trust_roots(self) -> list[x509.Certificate]:
        """The profile's CSOS trust roots; empty when none is configured (then nothing is trusted)."""
        if self._trust_roots is not None:
            return list(self._trust_roots)
        from app.services.certificates.trust import configured_trust_roots

        try:
            return configured_trust_roots(self.config)
        except ConfigError as exc:
            if exc.code != "config.no_trust_roots":
                raise
            return []

    def _stored_intermediates(self) -> list[x509.Certificate]:
        with self.db.session() as session:
            chains = list(session.scalars(select(CertificateRecord.chain_pem).where(
                CertificateRecord.chain_pem.is_not(None), CertificateRecord.chain_pem != "")))
        found: list[x509.Certificate] = []
        for pem in set(chains):
            try:
                found.extend(x509.load_pem_x509_certificates(pem.encode("ascii")))
            except (ValueError, UnicodeEncodeError):
                log.warning("a stored certificate chain cannot be read; skipped while building a chain")
        return found

    def _existing_key(self, store: KeyStore, spki: bytes) -> KeyRef | None:
        """The key already in ``store`` with this public key (re-importing a .p12 makes no second copy)."""
        try:
            refs = store.list_keys()
        except KeyStoreError:
            return None
        for ref in refs:
            try:
                if _spki(store.public_key(ref)) == spki:
                    return ref
            except KeyStoreError:
                continue
        return None

    def export_p12(self, fingerprint: str, *, secret: str, export_password: str, path: str | os.PathLike[str],
                   acknowledge_backup_risk: bool = False) -> Path:
        """K2: the one explicit, warned backup of a software key (owner-only file). Token keys never leave the token."""
        record = self.get(fingerprint)
        ref = record_key_ref(record)
        store = self.software_store if ref.store == STORE_SOFTWARE else self.store_for(
            ref, module=record.key_ref.get("module"))
        target = p12_files.export_p12(store, ref, secret=secret, export_password=export_password, path=path,
                                      acknowledge_backup_risk=acknowledge_backup_risk)
        with self._write() as session:
            append_audit_event(session, action="certificate.key_exported", actor=self.actor,
                               details={"fingerprint": record.fingerprint, "key_id": ref.key_id, "file": target.name})
        return target

    def _record_certificate(self, ref: KeyRef, module: str | None, cert: x509.Certificate,
                            chain: list[x509.Certificate], *, action: str) -> CertificateRecord:
        view = CsosCertificate.from_certificate(cert)
        now = self.clock()
        der = cert.public_bytes(serialization.Encoding.DER)
        chain_pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii")
                            for c in chain if c.subject != c.issuer)
        key_json = self._key_ref_json(ref, module)
        with self._write() as session:
            registration = self._registration_of(session, view)
            record = session.scalar(select(CertificateRecord).where(CertificateRecord.fingerprint == view.fingerprint))
            if record is None:
                record = next((r for r in session.scalars(select(CertificateRecord).where(
                    CertificateRecord.status == CertificateStatus.PENDING, CertificateRecord.fingerprint.is_(None)))
                    if (r.key_ref or {}).get("key_id") == ref.key_id), None)
            if record is None:
                record = CertificateRecord()
                session.add(record)
            elif record.status in (CertificateStatus.REVOKED, CertificateStatus.SUPERSEDED):
                raise CertificateBookError(
                    f"This certificate is already recorded as {record.status.value}; it cannot be made active again.",
                    code="certificate.not_reinstallable")
            record.fingerprint = view.fingerprint
            record.subscriber_name = view.subscriber_name or ""
            record.email = view.email or ""
            record.kind = view.kind
            record.registration_id = registration.id if registration is not None else None
            record.certificate_der = der
            record.chain_pem = chain_pem
            record.schedules = ",".join(s.value for s in CERTIFICATE_SCHEDULE_BITS if s in view.schedules)
            record.not_before = view.not_before
            record.not_after = view.not_after
            record.key_ref = key_json
            record.status = CertificateStatus.ACTIVE if view.not_after >= now else CertificateStatus.EXPIRED
            session.flush()
            append_audit_event(session, action=action, actor=self.actor, details={
                "fingerprint": view.fingerprint, "kind": view.kind, "key_store": ref.store, "key_id": ref.key_id,
                "registration": registration.dea_number if registration is not None else None,
                "not_after": view.not_after.isoformat(), "status": record.status.value})
            if record.status is CertificateStatus.ACTIVE:
                self._supersede(session, record, view)
        log.info("certificate recorded: fingerprint=%s kind=%s status=%s", view.fingerprint[:16], view.kind,
                 record.status.value)
        return self._reload(record.id)

    def _registration_of(self, session: Session, view: CsosCertificate) -> Registration | None:
        registrations = list(session.scalars(select(Registration)))
        if view.kind == SIGNING:
            return next((r for r in registrations if view.matches_dea(r.dea_number)), None)
        # An administrative certificate has no DEA hash; its organisation names the registrant.
        named = [r for r in registrations if view.organization and r.name.casefold() == view.organization.casefold()]
        return named[0] if len(named) == 1 else None

    def _supersede(self, session: Session, record: CertificateRecord, view: CsosCertificate) -> None:
        """The newest certificate of a subscriber for a registration is the active one (renewal)."""
        others = session.scalars(select(CertificateRecord).where(
            CertificateRecord.status == CertificateStatus.ACTIVE, CertificateRecord.id != record.id,
            CertificateRecord.kind == record.kind,
            CertificateRecord.registration_id.is_(None) if record.registration_id is None
            else CertificateRecord.registration_id == record.registration_id)).all()
        for other in others:
            if record_subject_serial(other) != view.subject_serial:
                continue
            older, newer = (other, record) if other.not_after <= record.not_after else (record, other)
            older.status = CertificateStatus.SUPERSEDED
            older.superseded_by_id = newer.id
            session.flush()
            append_audit_event(session, action="certificate.superseded", actor=self.actor,
                               details={"fingerprint": older.fingerprint, "superseded_by": newer.fingerprint})
            if older is record:
                return

    # -- reading and status -------------------------------------------------------------------------------------

    def list(self) -> list[CertificateRecord]:
        with self.db.session() as session:
            return list(session.scalars(select(CertificateRecord).order_by(CertificateRecord.id)))

    def get(self, fingerprint_prefix: str) -> CertificateRecord:
        """A record by (a prefix of) its SHA-256 fingerprint; a key still waiting for its certificate by key id."""
        prefix = fingerprint_prefix.strip().lower().replace(":", "")
        if len(prefix) < MIN_PREFIX:
            raise CertificateBookError(f"Give at least {MIN_PREFIX} characters of the fingerprint.",
                                       code="certificate.prefix_too_short")
        with self.db.session() as session:
            found = list(session.scalars(select(CertificateRecord).where(
                CertificateRecord.fingerprint.startswith(prefix, autoescape=True))))
            if not found:
                found = [r for r in session.scalars(select(CertificateRecord).where(
                    CertificateRecord.fingerprint.is_(None)))
                    if str((r.key_ref or {}).get("key_id", "")).startswith(prefix)]
        if not found:
            raise NotFound(f"No certificate with fingerprint {prefix}… is recorded. See `csos-desk cert list`.",
                           code="certificate.not_found")
        if len(found) > 1:
            raise CertificateBookError(f"Several certificates start with {prefix}; give more characters.",
                                       code="certificate.ambiguous")
        return found[0]

    def refresh_statuses(self, now: dt.datetime | None = None) -> list[CertificateRecord]:
        """ACTIVE certificates past notAfter become EXPIRED; returns the records that changed."""
        now = now or self.clock()
        with self._write() as session:
            changed = list(session.scalars(select(CertificateRecord).where(
                CertificateRecord.status == CertificateStatus.ACTIVE, CertificateRecord.not_after < now)))
            for record in changed:
                record.status = CertificateStatus.EXPIRED
                append_audit_event(session, action="certificate.expired", actor=self.actor,
                                   details={"fingerprint": record.fingerprint,
                                            "not_after": record.not_after.isoformat()})
        return changed

    def mark_revoked(self, fingerprint: str, *, reason: str = "unspecified") -> CertificateRecord:
        record = self.get(fingerprint)
        if record.fingerprint is None:
            raise CertificateBookError("A key without a certificate has nothing to revoke.",
                                       code="certificate.not_issued")
        with self._write() as session:
            stored = session.get(CertificateRecord, record.id)
            stored.status = CertificateStatus.REVOKED
            append_audit_event(session, action="certificate.revoked", actor=self.actor,
                               details={"fingerprint": stored.fingerprint, "reason": reason})
        return self._reload(record.id)

    def record_crl_revocation(self, fingerprint: str, revoked_at: dt.datetime, reason: str | None = None) -> bool:
        """The pre-sign check found this certificate on its CA's CRL: it is revoked from now on, for the certificate
        list, the certificates page, the status bar and the reminders alike. Idempotent; True when it changed."""
        with self._write() as session:
            stored = session.scalar(select(CertificateRecord).where(CertificateRecord.fingerprint == fingerprint))
            if stored is None or stored.status is CertificateStatus.REVOKED:
                return False
            stored.status = CertificateStatus.REVOKED
            append_audit_event(session, action="certificate.revoked", actor=self.actor,
                               details={"fingerprint": fingerprint, "reason": reason or "unspecified",
                                        "revoked_at": revoked_at.isoformat(), "source": "crl"})
        log.info("certificate found on a CRL: fingerprint=%s", fingerprint[:16])
        return True

    def remove(self, fingerprint_prefix: str) -> CertificateRecord:
        """Remove a certificate that never signed an order (one imported by mistake, say), and its key file when no
        other certificate uses that key. A certificate that signed stays: its orders are kept for two years (O9)."""
        record = self.get(fingerprint_prefix)
        key = dict(record.key_ref or {})
        with self._write() as session:
            stored = session.get(CertificateRecord, record.id)
            if stored.fingerprint is not None:
                signed = session.scalar(select(Order.order_number).where(
                    Order.signer_fingerprint == stored.fingerprint).limit(1))
                if signed is not None:
                    raise CertificateBookError(
                        f"This certificate signed order {signed}, so it stays with the records of that order (they are "
                        "kept for two years). Nothing was removed. If the key was lost or exposed, revoke the "
                        "certificate instead.", code="certificate.in_use")
            for older in session.scalars(select(CertificateRecord).where(
                    CertificateRecord.superseded_by_id == stored.id)):
                older.superseded_by_id = None
            shared = key.get("key_id") and any(
                (other.key_ref or {}).get("key_id") == key.get("key_id")
                for other in session.scalars(select(CertificateRecord).where(CertificateRecord.id != stored.id)))
            session.delete(stored)
            session.flush()
            append_audit_event(session, action="certificate.removed", actor=self.actor, details={
                "fingerprint": record.fingerprint, "key_id": key.get("key_id"), "status": record.status.value,
                "key_file_deleted": bool(key.get("store") == STORE_SOFTWARE and not shared)})
        if key.get("store") == STORE_SOFTWARE and not shared:
            self.software_store.path_of(record_key_ref(record)).unlink(missing_ok=True)
            log.info("key file of a removed certificate deleted: id=%s", key.get("key_id"))
        return record

    def signing_certificate_for(self, registration_dea: str, *, at: dt.datetime | None = None) -> CertificateRecord:
        """The certificate to sign for a registration at ``at``: ACTIVE, signing, DEA hash matching, valid then;
        the one with the latest notAfter when there are several (S1, S4)."""
        dea = DeaNumber.parse(registration_dea).value
        at = at or self.clock()
        with self.db.session() as session:
            active = list(session.scalars(select(CertificateRecord).where(
                CertificateRecord.status == CertificateStatus.ACTIVE)))
            registration_id = session.scalar(select(Registration.id).where(Registration.dea_number == dea))
        candidates = []
        for record in active:
            if record.kind != SIGNING or record.certificate_der is None:
                continue
            view = CsosCertificate.from_der(record.certificate_der)
            if view.matches_dea(dea) and view.is_valid_at(at):
                candidates.append(record)
        if candidates:
            return max(candidates, key=lambda r: (r.not_after, r.id))
        admin = [r for r in active if r.kind == ADMINISTRATIVE
                 and (r.registration_id is None or r.registration_id == registration_id)]
        if admin:
            raise NoSigningCertificate(
                f"Only a coordinator (administrative) certificate is installed for {dea}. Coordinator certificates "
                "cannot sign orders: enroll for a CSOS signing certificate or install one.",
                code="certificate.administrative_only")
        raise NoSigningCertificate(f"No active CSOS signing certificate for {dea}: enroll or install one.")

    def open_signer(self, record: CertificateRecord, *, secret: str | None) -> Signer:
        ref = record_key_ref(record)
        return self.store_for(ref, module=(record.key_ref or {}).get("module")).open_signer(ref, secret=secret)

    @staticmethod
    def chain(record: CertificateRecord) -> tuple[x509.Certificate, list[x509.Certificate]]:
        """The certificate and its intermediates, ready for ``OrderSigningService.sign``."""
        if record.certificate_der is None:
            raise CertificateBookError("This key has no certificate yet.", code="certificate.not_issued")
        cert = x509.load_der_x509_certificate(record.certificate_der)
        intermediates = list(x509.load_pem_x509_certificates(record.chain_pem.encode())) if record.chain_pem else []
        return cert, intermediates

    # -- plumbing -------------------------------------------------------------------------------------------------

    @staticmethod
    def _key_ref_json(ref: KeyRef, module: str | None) -> dict[str, Any]:
        data = json.loads(ref.to_json())
        if ref.store == STORE_PKCS11 and module:
            data["module"] = module
        return data

    def _reload(self, record_id: int) -> CertificateRecord:
        with self.db.session() as session:
            return session.get(CertificateRecord, record_id)

    @contextmanager
    def _write(self) -> Iterator[Session]:
        session = self.db.session()
        try:
            with session.begin():
                yield session
        except OperationalError as exc:
            raise explain_storage_failure(exc, self.db.url) from exc
        finally:
            session.close()


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


__all__ = ["ADMINISTRATIVE", "SIGNING", "CertificateBook", "CertificateBookError", "NoSigningCertificate",
           "TokenEntry", "record_key_ref", "record_subject_serial"]
