"""The training enrollment portal / CA (DESIGN.md S3, S4, §4, §7): accounts with a mailbox second factor, enrollment
applications, coordinator review, one-time codes over two channels, issuance, renewal, revocation, mailbox.

Every endpoint is listed in ``docs/sandbox-api.md``. Plain JSON in, plain JSON out; errors are
``{"error": code, "message": text}`` with a fitting HTTP status.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import CsosError
from app.models.values import DeaNumber, Schedule
from app.sandbox.api import SandboxApiError, json_body, text_field
from app.sandbox.authority import SandboxAuthority
from app.sandbox.state import (
    Account,
    Application,
    Approval,
    Coordinator,
    IssuanceCodes,
    IssuedCertificate,
    LoginChallenge,
    MailboxMessage,
    PortalSession,
    SandboxRegistration,
    SandboxState,
    hash_secret,
    lookup_key,
    secret_matches,
)
from app.services.certificates import ca as ca_engine
from app.services.signing.cms import CmsError, check_signature, parse_signed_document
from app.services.certificates.profile import RegistrationFacts, SubscriberIdentity
from app.services.keys.base import WeakPassword
from app.services.keys.passwords import check_password
from app.services.certificates.validation import CertificateValidationService
from app.services.enrollment.certificate_overview import certificate_id

log = logging.getLogger(__name__)

ROLES = ("registrant", "coordinator", "power_of_attorney")
CHANNELS = ("email", "postal")
LOGIN_CODE_LIFETIME = dt.timedelta(minutes=10)
SESSION_LIFETIME = dt.timedelta(hours=8)
CODE_LIFETIME = dt.timedelta(days=30)  # reference number + access code
MAX_CODE_ATTEMPTS = 5
MAX_LOGIN_FAILURES = 5
LOGIN_LOCK = dt.timedelta(minutes=15)
SIGNED_REQUEST_WINDOW = dt.timedelta(hours=1)  # signingTime of a renewal/revocation request vs. the CA's clock
MAX_POA_BYTES = 5 * 1024 * 1024
SIGNED_REQUEST_MEDIA_TYPE = "application/pkcs7-mime"
# Training accounts hold training passwords: scrypt with a lighter work factor than werkzeug's default keeps sign-in
# (and the test suite) quick. A production portal would use the full default.
PASSWORD_HASH_METHOD = "scrypt:4096:8:1"
_ACCESS_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

# DEA's revocation reasons (issue 4/10) → CRL reason codes (RFC 5280).
REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    "key_compromise": x509.ReasonFlags.key_compromise,
    "lost_password": x509.ReasonFlags.key_compromise,
    "employment_ended": x509.ReasonFlags.cessation_of_operation,
    "name_or_email_change": x509.ReasonFlags.affiliation_changed,
    "registration_change": x509.ReasonFlags.affiliation_changed,
    "other": x509.ReasonFlags.unspecified,
}


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _normalise_code(text: str) -> str:
    return re.sub(r"[\s-]", "", text or "").upper()


def _grouped(text: str, size: int = 4) -> str:
    return "-".join(text[i:i + size] for i in range(0, len(text), size))


def _serial_hex(serial: int) -> str:
    return f"{serial:x}"


class Portal:
    """The portal's rules, independent of Flask (the blueprint below only maps HTTP to these methods)."""

    def __init__(self, state: SandboxState, authority: SandboxAuthority, *,
                 clock: Callable[[], dt.datetime]) -> None:
        self.state = state
        self.authority = authority
        self.clock = clock
        self.lock = threading.RLock()  # one writer at a time: SQLite, and codes must be single-use
        self.validation = CertificateValidationService(trust_roots=[authority.root.certificate], clock=clock)
        self._login_failures: dict[str, list[dt.datetime]] = {}

    # -- helpers --------------------------------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return self.clock().astimezone(dt.timezone.utc)

    def send(self, session: Session, to: str, channel: str, kind: str, subject: str, body: str,
             **data: Any) -> None:
        session.add(MailboxMessage(to_email=to, channel=channel, kind=kind, subject=f"[TRAINING] {subject}",
                                   body=f"TRAINING SANDBOX - not a real DEA message.\n\n{body}", data=data,
                                   created_at=self.now()))

    def account_by_token(self, session: Session, header: str | None) -> Account:
        if not header or not header.startswith("Bearer "):
            raise SandboxApiError(401, "not_signed_in", "Sign in first (Authorization: Bearer <token>).")
        row = session.get(PortalSession, lookup_key(header.removeprefix("Bearer ").strip()))
        if row is None or row.expires_at <= self.now():
            raise SandboxApiError(401, "not_signed_in", "Your session has ended; sign in again.")
        return session.get(Account, row.account_id)

    def coordinated(self, session: Session, account: Account) -> set[str]:
        return set(session.scalars(select(Coordinator.registration_dea)
                                   .where(Coordinator.account_id == account.id)).all())

    def registration(self, session: Session, dea: str) -> SandboxRegistration:
        try:
            number = DeaNumber.parse(dea).value
        except CsosError as exc:
            raise SandboxApiError(400, "invalid_dea_number", exc.message) from None
        row = session.get(SandboxRegistration, number)
        if row is None:
            raise SandboxApiError(404, "unknown_registration", f"The sandbox has no registration {number}.")
        return row

    def registration_json(self, session: Session, row: SandboxRegistration) -> dict[str, Any]:
        coordinators = session.execute(
            select(Coordinator.role, Account.full_name, Account.email)
            .join(Account, Account.id == Coordinator.account_id)
            .where(Coordinator.registration_dea == row.dea_number)).all()
        return {"dea_number": row.dea_number, "name": row.name, "address_lines": row.address_lines,
                "city": row.city, "state": row.state, "postal_code": row.postal_code,
                "business_activity": row.business_activity, "schedules": row.schedules,
                "expires_at": _iso(row.expires_at), "renewal_requires_approval": row.renewal_requires_approval,
                "coordinators": [{"role": role, "full_name": name, "email": email}
                                 for role, name, email in sorted(coordinators)]}

    def application_json(self, session: Session, app: Application) -> dict[str, Any]:
        applicant = session.get(Account, app.account_id)
        approvals = session.scalars(select(Approval).where(Approval.application_id == app.id)).all()
        renews = session.get(IssuedCertificate, app.renews_certificate_id) if app.renews_certificate_id else None
        return {
            "id": app.public_id, "kind": app.kind, "role": app.role, "status": app.status,
            "applicant_email": applicant.email, "person": app.person, "registrations": app.registrations,
            "poa_attached": app.poa_document is not None, "poa_sha256": app.poa_sha256,
            "subscriber_agreement_accepted_at": _iso(app.agreement_accepted_at),
            "identity_proofing": app.identity_proofing, "reason": app.reason,
            "created_at": _iso(app.created_at), "decided_at": _iso(app.decided_at),
            "renews_certificate": certificate_id(renews.fingerprint) if renews else None,
            "approvals": [{"registration": a.registration_dea, "decision": a.decision, "reason": a.reason,
                           "decided_at": _iso(a.decided_at)} for a in approvals],
        }

    def certificate_json(self, row: IssuedCertificate) -> dict[str, Any]:
        cert = x509.load_pem_x509_certificate(row.certificate_pem.encode("ascii"))
        return {"serial": row.serial_hex, "fingerprint": row.fingerprint, "kind": row.kind,
                "registration": row.registration_dea, "status": row.status,
                "subject": cert.subject.rfc4514_string(), "not_before": _iso(cert.not_valid_before_utc),
                "not_after": _iso(row.not_after), "revoked_at": _iso(row.revoked_at),
                "revocation_reason": row.revocation_reason, "certificate_pem": row.certificate_pem,
                "chain_pem": ca_engine.pem_bundle(self.authority.chain).decode("ascii")}

    # -- accounts and sign-in ---------------------------------------------------------------------------------------

    def create_account(self, data: dict[str, Any]) -> dict[str, Any]:
        email = (text_field(data, "email", max_length=254) or "").lower()
        if not _EMAIL.match(email):
            raise SandboxApiError(400, "invalid_email", f"'{email}' is not an e-mail address.")
        full_name = text_field(data, "full_name", max_length=64)
        password = data.get("password")
        if not isinstance(password, str):
            raise SandboxApiError(400, "missing_field", "The field 'password' is required.", field="password")
        try:
            check_password(password, personal_words=[*full_name.split(), email.split("@")[0]])
        except WeakPassword as exc:
            raise SandboxApiError(400, "weak_password", exc.message, reason=exc.reason) from None
        with self.lock, self.state.session() as session:
            if session.scalar(select(Account).where(Account.email == email)) is not None:
                raise SandboxApiError(409, "email_taken", f"An account for {email} already exists; sign in instead.")
            account = self.new_account(session, email=email, full_name=full_name, password=password)
            session.commit()
            return {"account": {"email": account.email, "full_name": account.full_name}}

    def new_account(self, session: Session, *, email: str, full_name: str, password: str) -> Account:
        serial = ca_engine.new_subscriber_serial()
        while session.scalar(select(Account).where(Account.subscriber_serial == serial)) is not None:
            serial = ca_engine.new_subscriber_serial()
        account = Account(email=email.lower(), full_name=full_name,
                          password_hash=generate_password_hash(password, method=PASSWORD_HASH_METHOD),
                          subscriber_serial=serial, created_at=self.now())
        session.add(account)
        session.flush()
        return account

    def login(self, data: dict[str, Any]) -> dict[str, Any]:
        email = (text_field(data, "email", max_length=254) or "").lower()
        password = data.get("password")
        now = self.now()
        with self.lock, self.state.session() as session:
            recent = [t for t in self._login_failures.get(email, []) if now - t < LOGIN_LOCK]
            self._login_failures[email] = recent
            if len(recent) >= MAX_LOGIN_FAILURES:
                raise SandboxApiError(429, "login_locked", "Too many wrong passwords; wait 15 minutes and try again.")
            account = session.scalar(select(Account).where(Account.email == email))
            if account is None or not isinstance(password, str) or not check_password_hash(account.password_hash,
                                                                                            password):
                recent.append(now)
                raise SandboxApiError(401, "login_failed", "The e-mail address or the password is not right.")
            self._login_failures.pop(email, None)
            code = f"{secrets.randbelow(10**6):06d}"
            challenge = LoginChallenge(id=secrets.token_urlsafe(24), account_id=account.id, code_hash=hash_secret(code),
                                       expires_at=now + LOGIN_CODE_LIFETIME)
            session.add(challenge)
            self.send(session, account.email, "email", "login_code", "Your sign-in code",
                      f"Your one-time sign-in code is {code}. It expires in 10 minutes.", code=code)
            session.commit()
            return {"challenge_id": challenge.id, "expires_at": _iso(challenge.expires_at), "delivered_to": "email",
                    "message": "A one-time code was sent to your practice mailbox (e-mail channel)."}

    def verify_login(self, data: dict[str, Any]) -> dict[str, Any]:
        challenge_id = text_field(data, "challenge_id", max_length=64)
        code = _normalise_code(text_field(data, "code", max_length=20))
        now = self.now()
        with self.lock, self.state.session() as session:
            challenge = session.get(LoginChallenge, challenge_id)
            if challenge is None:
                raise SandboxApiError(404, "login_challenge_unknown", "That sign-in attempt is unknown; sign in again.")
            if challenge.used:
                raise SandboxApiError(409, "login_code_used", "That code was already used; sign in again.")
            if challenge.attempts >= MAX_CODE_ATTEMPTS:
                raise SandboxApiError(429, "login_code_locked", "Too many wrong codes; sign in again.")
            if challenge.expires_at <= now:
                raise SandboxApiError(410, "login_code_expired", "The code has expired; sign in again.")
            if not secret_matches(challenge.code_hash, code):
                challenge.attempts += 1
                session.commit()
                left = MAX_CODE_ATTEMPTS - challenge.attempts
                raise SandboxApiError(401, "login_code_wrong", f"The code is not right ({left} tries left).",
                                      attempts_left=left)
            challenge.used = True
            token = secrets.token_urlsafe(32)
            row = PortalSession(token_hash=lookup_key(token), account_id=challenge.account_id,
                                expires_at=now + SESSION_LIFETIME)
            session.add(row)
            account = session.get(Account, challenge.account_id)
            session.commit()
            return {"token": token, "expires_at": _iso(row.expires_at),
                    "account": {"email": account.email, "full_name": account.full_name}}

    def logout(self, header: str | None) -> None:
        with self.lock, self.state.session() as session:
            if header and header.startswith("Bearer "):
                row = session.get(PortalSession, lookup_key(header.removeprefix("Bearer ").strip()))
                if row is not None:
                    session.delete(row)
                    session.commit()

    def me(self, header: str | None) -> dict[str, Any]:
        with self.state.session() as session:
            account = self.account_by_token(session, header)
            certs = session.scalars(select(IssuedCertificate).where(IssuedCertificate.account_id == account.id)
                                    .order_by(IssuedCertificate.id)).all()
            apps = session.scalars(select(Application).where(Application.account_id == account.id)
                                   .order_by(Application.id)).all()
            return {"account": {"email": account.email, "full_name": account.full_name,
                                "subscriber_serial": account.subscriber_serial},
                    "coordinator_of": sorted(self.coordinated(session, account)),
                    "certificates": [self.certificate_json(c) for c in certs],
                    "applications": [self.application_json(session, a) for a in apps]}

    # -- applications -----------------------------------------------------------------------------------------------

    def submit_application(self, header: str | None, data: dict[str, Any]) -> dict[str, Any]:
        role = text_field(data, "role", max_length=30)
        if role not in ROLES:
            raise SandboxApiError(400, "invalid_role", f"Role must be one of {', '.join(ROLES)}.")
        person = data.get("person")
        if not isinstance(person, dict):
            raise SandboxApiError(400, "missing_field", "The field 'person' (an object) is required.", field="person")
        full_name = text_field(person, "full_name", max_length=64)
        person_json = {"full_name": full_name,
                       **{k: text_field(person, k, required=False, max_length=100)
                          for k in ("title", "phone") if person.get(k)}}
        numbers = data.get("registrations")
        if not isinstance(numbers, list) or not numbers or len(numbers) > 10:
            raise SandboxApiError(400, "missing_field", "List 1 to 10 DEA registrations the person may sign for.",
                                  field="registrations")
        if data.get("subscriber_agreement_accepted") is not True:
            raise SandboxApiError(400, "agreement_not_accepted", "Read and accept the subscriber agreement first.")
        proofing = self._identity_proofing(data.get("identity_proofing"))
        poa = self._poa_document(data.get("poa_document_base64"))
        if role == "power_of_attorney" and poa is None:
            raise SandboxApiError(400, "poa_required",
                                  "A power-of-attorney application needs the signed power-of-attorney document (PDF).")
        now = self.now()
        with self.lock, self.state.session() as session:
            account = self.account_by_token(session, header)
            registrations = []
            for number in numbers:
                if not isinstance(number, str):
                    raise SandboxApiError(400, "invalid_dea_number", "Registrations are DEA numbers (text).")
                registrations.append(self.registration(session, number))
            deas = list(dict.fromkeys(r.dea_number for r in registrations))
            for registration in registrations:
                if registration.expires_at <= now:
                    raise SandboxApiError(409, "registration_expired",
                                          f"Registration {registration.dea_number} has expired.")
            coordinated = self.coordinated(session, account)
            if role == "coordinator" and not set(deas) <= coordinated:
                for dea in deas:
                    if dea not in coordinated and session.scalar(
                            select(Coordinator).where(Coordinator.registration_dea == dea,
                                                      Coordinator.role == "alternate")) is not None:
                        raise SandboxApiError(409, "coordinator_slots_full",
                                              f"Registration {dea} already has a principal and an alternate "
                                              "coordinator.")
            app = Application(
                public_id=secrets.token_urlsafe(18), kind="enrollment", account_id=account.id, role=role,
                person=person_json, registrations=deas, poa_document=poa,
                poa_sha256=hashlib.sha256(poa).hexdigest() if poa else None, agreement_accepted_at=now,
                identity_proofing=proofing, status="pending", created_at=now)
            session.add(app)
            session.flush()
            if role == "coordinator" and set(deas) <= coordinated:
                # An existing coordinator asking for their administrative certificate: the training sandbox stands
                # in for DEA's own approval.
                for dea in deas:
                    session.add(Approval(application_id=app.id, registration_dea=dea, coordinator_account_id=None,
                                         decision="approved", reason="TRAINING: approved by the sandbox (DEA)",
                                         decided_at=now))
                self._approve(session, app)
            else:
                for dea in deas:
                    for coordinator in session.scalars(select(Account).join(
                            Coordinator, Coordinator.account_id == Account.id)
                            .where(Coordinator.registration_dea == dea)).all():
                        self.send(session, coordinator.email, "email", "application_submitted",
                                  "An application waits for your review",
                                  f"{full_name} applied as {role.replace('_', ' ')} for registration {dea}.",
                                  application_id=app.public_id)
            session.commit()
            return {"application": self.application_json(session, app)}

    @staticmethod
    def _identity_proofing(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise SandboxApiError(400, "missing_field", "Identity proofing details are required "
                                  "(document_type, document_number, date_of_birth).", field="identity_proofing")
        document_type = text_field(value, "document_type", max_length=40)
        number = text_field(value, "document_number", max_length=40)
        birth = text_field(value, "date_of_birth", max_length=10)
        try:
            dt.date.fromisoformat(birth)
        except ValueError:
            raise SandboxApiError(400, "invalid_field", "date_of_birth must be YYYY-MM-DD.",
                                  field="date_of_birth") from None
        if number.endswith("0000"):  # the documented way to practise a failed check
            raise SandboxApiError(422, "identity_proofing_failed",
                                  "TRAINING: the simulated identity check could not confirm this document.")
        return {"status": "passed", "method": "TRAINING simulation (no real identity check)",
                "document_type": document_type, "document_last4": number[-4:]}

    @staticmethod
    def _poa_document(value: Any) -> bytes | None:
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise SandboxApiError(400, "invalid_field", "poa_document_base64 must be base64 text.")
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise SandboxApiError(400, "invalid_field", "poa_document_base64 is not valid base64.") from None
        if len(data) > MAX_POA_BYTES:
            raise SandboxApiError(413, "poa_too_large", "The power-of-attorney PDF is larger than 5 MB.")
        if not data.startswith(b"%PDF-"):
            raise SandboxApiError(400, "poa_not_pdf", "The power-of-attorney document must be a PDF file.")
        return data

    def _application(self, session: Session, public_id: str) -> Application:
        app = session.scalar(select(Application).where(Application.public_id == public_id))
        if app is None:
            raise SandboxApiError(404, "unknown_application", "No such application.")
        return app

    def _may_see(self, session: Session, account: Account, app: Application) -> bool:
        return app.account_id == account.id or bool(set(app.registrations) & self.coordinated(session, account))

    def get_application(self, header: str | None, public_id: str) -> dict[str, Any]:
        with self.state.session() as session:
            account = self.account_by_token(session, header)
            app = self._application(session, public_id)
            if not self._may_see(session, account, app):
                raise SandboxApiError(403, "forbidden", "Only the applicant and the registration's coordinator may "
                                                        "see this application.")
            return {"application": self.application_json(session, app)}

    def poa_document(self, header: str | None, public_id: str) -> bytes:
        with self.state.session() as session:
            account = self.account_by_token(session, header)
            app = self._application(session, public_id)
            if not self._may_see(session, account, app):
                raise SandboxApiError(403, "forbidden", "Only the applicant and the registration's coordinator may "
                                                        "see this document.")
            if app.poa_document is None:
                raise SandboxApiError(404, "no_poa_document", "This application has no power-of-attorney document.")
            return app.poa_document

    # -- coordinator review -----------------------------------------------------------------------------------------

    def reviews(self, header: str | None) -> dict[str, Any]:
        with self.state.session() as session:
            account = self.account_by_token(session, header)
            mine = self.coordinated(session, account)
            if not mine:
                raise SandboxApiError(403, "not_coordinator", "Only CSOS coordinators review applications.")
            pending = session.scalars(select(Application).where(Application.status == "pending")
                                      .order_by(Application.id)).all()
            items = []
            for app in pending:
                decided = set(session.scalars(select(Approval.registration_dea)
                                              .where(Approval.application_id == app.id)).all())
                waiting = (set(app.registrations) & mine) - decided
                if waiting and app.account_id != account.id:
                    items.append({**self.application_json(session, app), "awaiting_you_for": sorted(waiting)})
            return {"pending": items}

    def decide(self, header: str | None, public_id: str, data: dict[str, Any]) -> dict[str, Any]:
        decision = text_field(data, "decision", max_length=10)
        if decision not in ("approve", "reject"):
            raise SandboxApiError(400, "invalid_decision", "decision must be 'approve' or 'reject'.")
        reason = text_field(data, "reason", required=decision == "reject", max_length=500)
        now = self.now()
        with self.lock, self.state.session() as session:
            account = self.account_by_token(session, header)
            app = self._application(session, public_id)
            mine = set(app.registrations) & self.coordinated(session, account)
            if not mine:
                raise SandboxApiError(403, "not_coordinator", "Only the coordinator of the registration(s) in this "
                                                              "application may approve or reject it.")
            if app.account_id == account.id:
                raise SandboxApiError(403, "self_approval", "A coordinator cannot approve their own application.")
            if app.status != "pending":
                raise SandboxApiError(409, "already_decided", f"This application is already {app.status}.")
            decided = set(session.scalars(select(Approval.registration_dea)
                                          .where(Approval.application_id == app.id)).all())
            for dea in sorted(mine - decided):
                session.add(Approval(application_id=app.id, registration_dea=dea, coordinator_account_id=account.id,
                                     decision="approved" if decision == "approve" else "rejected", reason=reason,
                                     decided_at=now))
            session.flush()
            applicant = session.get(Account, app.account_id)
            if decision == "reject":
                app.status, app.reason, app.decided_at = "rejected", reason, now
                self.send(session, applicant.email, "email", f"{app.kind}_rejected",
                          f"Your {app.kind} was not approved", f"Reason given by the coordinator: {reason}",
                          application_id=app.public_id, reason=reason)
            else:
                approved = set(session.scalars(select(Approval.registration_dea).where(
                    Approval.application_id == app.id, Approval.decision == "approved")).all())
                if set(app.registrations) <= approved:
                    self._approve(session, app)
            session.commit()
            return {"application": self.application_json(session, app)}

    def _approve(self, session: Session, app: Application) -> None:
        """All registrations approved: send the two codes (enrollment) or issue at once (renewal: CSR is in hand)."""
        now = self.now()
        applicant = session.get(Account, app.account_id)
        app.decided_at = now
        if app.role == "coordinator":
            for dea in app.registrations:
                existing = session.scalars(select(Coordinator).where(Coordinator.registration_dea == dea)).all()
                if any(c.account_id == applicant.id for c in existing):
                    continue
                if any(c.role == "alternate" for c in existing):
                    raise SandboxApiError(409, "coordinator_slots_full",
                                          f"Registration {dea} already has two coordinators.")
                session.add(Coordinator(registration_dea=dea, account_id=applicant.id,
                                        role="alternate" if existing else "principal"))
        if app.kind == "renewal":
            csr = ca_engine.load_csr(app.csr_pem.encode("ascii"))
            old = session.get(IssuedCertificate, app.renews_certificate_id)
            self._issue(session, app, csr, renews=old)
            self.send(session, applicant.email, "email", "renewal_issued", "Your renewed certificate is ready",
                      f"Renewal {app.public_id} was approved; fetch the certificate from the portal.",
                      renewal_id=app.public_id)
            return
        app.status = "approved"
        reference = "".join(str(secrets.randbelow(10)) for _ in range(12))
        access = "".join(secrets.choice(_ACCESS_ALPHABET) for _ in range(16))
        session.add(IssuanceCodes(application_id=app.id, reference_lookup=lookup_key(reference),
                                  access_code_hash=hash_secret(access), expires_at=now + CODE_LIFETIME))
        self.send(session, applicant.email, "email", "reference_number", "Your CSOS reference number",
                  f"Your application was approved. Your one-time reference number is {_grouped(reference)}. "
                  "The access code comes separately by post. Both expire in 30 days and work once.",
                  reference_number=_grouped(reference), application_id=app.public_id)
        self.send(session, applicant.email, "postal", "access_code", "Your CSOS access code",
                  f"Your one-time access code is {_grouped(access)}. Use it with the reference number sent by "
                  "e-mail to request your certificate.", access_code=_grouped(access), application_id=app.public_id)

    # -- issuance ---------------------------------------------------------------------------------------------------

    def request_certificate(self, data: dict[str, Any]) -> dict[str, Any]:
        reference = _normalise_code(text_field(data, "reference_number", max_length=40))
        access = _normalise_code(text_field(data, "access_code", max_length=40))
        csr = self._csr(data)  # checked first: a bad request must not use up the codes
        now = self.now()
        with self.lock, self.state.session() as session:
            codes = session.scalar(select(IssuanceCodes).where(IssuanceCodes.reference_lookup == lookup_key(reference)))
            if codes is None:
                raise SandboxApiError(404, "reference_number_unknown",
                                      "That reference number is not known. Check the e-mail from the CA.")
            if codes.used_at is not None:
                raise SandboxApiError(409, "codes_used", "These codes were already used; each pair works once.")
            if codes.attempts >= MAX_CODE_ATTEMPTS:
                raise SandboxApiError(429, "codes_locked", "Too many wrong access codes: these codes are locked. "
                                                           "Ask your coordinator to approve a new application.")
            if codes.expires_at <= now:
                raise SandboxApiError(410, "codes_expired", "These codes have expired; apply again.")
            if not secret_matches(codes.access_code_hash, access):
                codes.attempts += 1
                session.commit()
                left = MAX_CODE_ATTEMPTS - codes.attempts
                if left <= 0:
                    raise SandboxApiError(429, "codes_locked", "Too many wrong access codes: these codes are now "
                                                               "locked.")
                raise SandboxApiError(403, "access_code_wrong", f"The access code is not right ({left} tries left). "
                                      "It came by post, separately from the reference number.", attempts_left=left)
            app = session.get(Application, codes.application_id)
            issued = self._issue(session, app, csr)
            codes.used_at = now
            session.commit()
            return {"application_id": app.public_id, "certificates": [self.certificate_json(c) for c in issued],
                    "chain_pem": ca_engine.pem_bundle(self.authority.chain).decode("ascii")}

    @staticmethod
    def _csr(data: dict[str, Any]) -> x509.CertificateSigningRequest:
        text = text_field(data, "csr_pem", max_length=20000)
        try:
            csr = ca_engine.load_csr(text.encode("ascii"))
            ca_engine.check_csr(csr)
        except UnicodeEncodeError:
            raise SandboxApiError(400, "csr.malformed", "The certificate request is not PEM text.") from None
        except ca_engine.CsrRejected as exc:
            raise SandboxApiError(400, exc.code, exc.message) from None
        return csr

    def _issue(self, session: Session, app: Application, csr: x509.CertificateSigningRequest, *,
               renews: IssuedCertificate | None = None) -> list[IssuedCertificate]:
        now = self.now()
        applicant = session.get(Account, app.account_id)
        subscriber = SubscriberIdentity(full_name=app.person["full_name"], email=applicant.email,
                                        serial=applicant.subscriber_serial)
        registrations = [session.get(SandboxRegistration, dea) for dea in app.registrations]
        made: list[tuple[x509.Certificate, str, str]] = []
        try:
            if app.role == "coordinator":
                made.append((self.authority.issue_administrative(csr, subscriber=subscriber,
                                                                 organization=registrations[0].name),
                             registrations[0].dea_number, "administrative"))
            else:
                for reg in registrations:
                    facts = RegistrationFacts(
                        dea_number=DeaNumber.parse(reg.dea_number), registrant_name=reg.name,
                        address_lines=(*reg.address_lines, f"{reg.city} {reg.state} {reg.postal_code}"),
                        business_activity=reg.business_activity,
                        schedules=frozenset(Schedule.parse(s) for s in reg.schedules), expires=reg.expires_at)
                    made.append((self.authority.issue_signing(csr, subscriber=subscriber, registration=facts),
                                 reg.dea_number, "signing"))
        except ca_engine.CaError as exc:
            raise SandboxApiError(409, "registration_expired" if exc.code == "ca.validity" else exc.code,
                                  exc.message) from None
        except ca_engine.CsrRejected as exc:
            raise SandboxApiError(400, exc.code, exc.message) from None
        except CsosError as exc:  # profile rules (name too long...)
            raise SandboxApiError(400, exc.code, exc.message) from None
        rows = []
        for cert, dea, kind in made:
            row = IssuedCertificate(
                serial_hex=_serial_hex(cert.serial_number), fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
                account_id=applicant.id, application_id=app.id, registration_dea=dea, kind=kind,
                certificate_pem=cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), status="active",
                issued_at=now, not_after=cert.not_valid_after_utc)
            session.add(row)
            rows.append(row)
        session.flush()
        if renews is not None:
            renews.status = "superseded"
            renews.superseded_by_id = rows[0].id
        app.status = "issued"
        app.decided_at = app.decided_at or now
        self.send(session, applicant.email, "email", "certificate_issued", "Your CSOS certificate was issued",
                  "Certificate ID(s): " + ", ".join(certificate_id(r.fingerprint) for r in rows),
                  serials=[r.serial_hex for r in rows])
        return rows

    def get_certificate(self, serial: str) -> dict[str, Any]:
        with self.state.session() as session:
            row = session.scalar(select(IssuedCertificate).where(IssuedCertificate.serial_hex == serial.lower()))
            if row is None:
                raise SandboxApiError(404, "unknown_certificate", "The sandbox CA issued no certificate with that "
                                                                  "serial number.")
            return {"certificate": self.certificate_json(row)}

    # -- signed requests: renewal and revocation ---------------------------------------------------------------------

    def _signed_request(self, session: Session, body: bytes, content_type: str | None, expected_type: str
                        ) -> tuple[dict[str, Any], IssuedCertificate]:
        """Check a CMS-signed JSON request: signature, signer certificate valid now (chain, CRL), issued by this
        sandbox and still active, fresh signingTime. Returns the JSON and the signer's certificate row."""
        if (content_type or "").split(";")[0].strip().lower() != SIGNED_REQUEST_MEDIA_TYPE:
            raise SandboxApiError(415, "unsupported_media_type",
                                  f"Send the signed request as {SIGNED_REQUEST_MEDIA_TYPE} (CMS SignedData, DER).")
        if not body:
            raise SandboxApiError(400, "empty_body", "The request body is empty.")
        try:
            document = parse_signed_document(body)
        except CmsError as exc:
            raise SandboxApiError(400, "malformed", exc.message) from None
        problems = check_signature(document)
        if problems:
            raise SandboxApiError(403, "signature_invalid", "; ".join(message for _, message in problems))
        now = self.now()
        if document.signing_time is None or abs(document.signing_time - now) > SIGNED_REQUEST_WINDOW:
            raise SandboxApiError(403, "request_stale", "The request was signed more than an hour away from now; "
                                                        "sign it again (and check this computer's clock).")
        result = self.validation.validate(document.signer_certificate, at=now, intermediates=document.intermediates,
                                          crls=self.authority.current_crls(), fetch=False, now=now)
        if not result.ok:
            first = result.problems[0]
            raise SandboxApiError(403, first.code, first.message)
        fingerprint = document.signer_certificate.fingerprint(hashes.SHA256()).hex()
        signer = session.scalar(select(IssuedCertificate).where(IssuedCertificate.fingerprint == fingerprint))
        if signer is None:
            raise SandboxApiError(403, "unknown_certificate", "The signing certificate was not issued by this CA.")
        if signer.status != "active":
            raise SandboxApiError(403, f"certificate_{signer.status}",
                                  f"The signing certificate is {signer.status}; sign with your current certificate.")
        try:
            content = json.loads(document.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise SandboxApiError(400, "malformed", "The signed content is not JSON.") from None
        if not isinstance(content, dict) or content.get("type") != expected_type:
            raise SandboxApiError(400, "malformed", f"The signed content must be a JSON object with "
                                                    f"\"type\": \"{expected_type}\".")
        return content, signer

    def renew(self, body: bytes, content_type: str | None) -> tuple[int, dict[str, Any]]:
        with self.lock, self.state.session() as session:
            content, signer = self._signed_request(session, body, content_type, "renewal_request")
            csr = self._csr(content)
            now = self.now()
            original = session.get(Application, signer.application_id) if signer.application_id else None
            registration = session.get(SandboxRegistration, signer.registration_dea)
            role = original.role if original else ("coordinator" if signer.kind == "administrative" else "registrant")
            owner = session.get(Account, signer.account_id)
            app = Application(
                public_id=secrets.token_urlsafe(18), kind="renewal", account_id=signer.account_id, role=role,
                person=original.person if original else {"full_name": owner.full_name},
                registrations=(original.registrations if original and role == "coordinator"
                               else [signer.registration_dea]),
                identity_proofing={"status": "not_required", "method": "renewal signed with the current certificate"},
                agreement_accepted_at=now, status="pending", created_at=now,
                csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode("ascii"), renews_certificate_id=signer.id)
            session.add(app)
            session.flush()
            needs_approval = signer.kind == "signing" and registration.renewal_requires_approval
            if needs_approval:
                for coordinator in session.scalars(select(Account).join(
                        Coordinator, Coordinator.account_id == Account.id)
                        .where(Coordinator.registration_dea == registration.dea_number)).all():
                    self.send(session, coordinator.email, "email", "renewal_submitted",
                              "A certificate renewal waits for your review",
                              f"{owner.full_name} asked to renew certificate {certificate_id(signer.fingerprint)}.",
                              application_id=app.public_id)
                session.commit()
                return 202, {"status": "pending", "renewal_id": app.public_id,
                             "message": "Your coordinator must approve this renewal; the new certificate will then "
                                        "be ready at the renewal's address."}
            self._approve_renewal_now(session, app)
            session.commit()
            return 201, self.renewal_json(session, app)

    def _approve_renewal_now(self, session: Session, app: Application) -> None:
        csr = ca_engine.load_csr(app.csr_pem.encode("ascii"))
        old = session.get(IssuedCertificate, app.renews_certificate_id)
        app.decided_at = self.now()
        self._issue(session, app, csr, renews=old)

    def renewal_json(self, session: Session, app: Application) -> dict[str, Any]:
        certs = session.scalars(select(IssuedCertificate).where(IssuedCertificate.application_id == app.id)).all()
        status = {"issued": "issued", "pending": "pending", "rejected": "rejected"}.get(app.status, app.status)
        return {"status": status, "renewal_id": app.public_id, "reason": app.reason,
                "certificates": [self.certificate_json(c) for c in certs],
                "chain_pem": ca_engine.pem_bundle(self.authority.chain).decode("ascii")}

    def get_renewal(self, public_id: str) -> dict[str, Any]:
        with self.state.session() as session:
            app = self._application(session, public_id)
            if app.kind != "renewal":
                raise SandboxApiError(404, "unknown_renewal", "No such renewal.")
            return self.renewal_json(session, app)

    def revoke_signed(self, body: bytes, content_type: str | None) -> dict[str, Any]:
        with self.lock, self.state.session() as session:
            content, signer = self._signed_request(session, body, content_type, "revocation_request")
            target = self._certificate(session, content.get("certificate_serial"))
            if target.account_id != signer.account_id:
                raise SandboxApiError(403, "forbidden", "A subscriber may revoke only their own certificates.")
            return self._revoke(session, target, content.get("reason"))

    def revoke_by_session(self, header: str | None, serial: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock, self.state.session() as session:
            account = self.account_by_token(session, header)
            target = self._certificate(session, serial)
            if target.account_id != account.id and target.registration_dea not in self.coordinated(session, account):
                raise SandboxApiError(403, "not_coordinator", "Only the certificate's holder or the coordinator of "
                                                              "its registration may revoke it.")
            return self._revoke(session, target, data.get("reason"))

    def _certificate(self, session: Session, serial: Any) -> IssuedCertificate:
        if not isinstance(serial, str) or not serial:
            raise SandboxApiError(400, "missing_field", "certificate_serial (hex) is required.")
        row = session.scalar(select(IssuedCertificate).where(IssuedCertificate.serial_hex == serial.lower()))
        if row is None:
            raise SandboxApiError(404, "unknown_certificate", "The sandbox CA issued no certificate with that serial.")
        return row

    def _revoke(self, session: Session, target: IssuedCertificate, reason: Any) -> dict[str, Any]:
        if reason not in REVOCATION_REASONS:
            raise SandboxApiError(400, "invalid_reason", "reason must be one of " + ", ".join(REVOCATION_REASONS))
        if target.status == "revoked":
            return {"certificate": self.certificate_json(target), "already_revoked": True}
        self.authority.revoke(int(target.serial_hex, 16), REVOCATION_REASONS[reason])
        target.status, target.revoked_at, target.revocation_reason = "revoked", self.now(), reason
        owner = session.get(Account, target.account_id)
        self.send(session, owner.email, "email", "certificate_revoked", "Your CSOS certificate was revoked",
                  f"Certificate {certificate_id(target.fingerprint)} was revoked ({reason.replace('_', ' ')}).",
                  serial=target.serial_hex, reason=reason)
        session.commit()
        return {"certificate": self.certificate_json(target), "already_revoked": False}

    # -- mailbox and training controls -------------------------------------------------------------------------------

    def mailbox(self, email: str | None, channel: str | None) -> dict[str, Any]:
        if not email:
            raise SandboxApiError(400, "missing_field", "Give ?email=<address>.", field="email")
        if channel is not None and channel not in CHANNELS:
            raise SandboxApiError(400, "invalid_channel", "channel is 'email' or 'postal'.")
        with self.state.session() as session:
            query = select(MailboxMessage).where(MailboxMessage.to_email == email.strip().lower())
            if channel:
                query = query.where(MailboxMessage.channel == channel)
            rows = session.scalars(query.order_by(MailboxMessage.id)).all()
            return {"messages": [{"id": m.id, "to": m.to_email, "channel": m.channel, "kind": m.kind,
                                  "subject": m.subject, "body": m.body, "data": m.data,
                                  "created_at": _iso(m.created_at)} for m in rows]}

    def expire_codes(self, data: dict[str, Any]) -> dict[str, Any]:
        reference = _normalise_code(text_field(data, "reference_number", max_length=40))
        with self.lock, self.state.session() as session:
            codes = session.scalar(select(IssuanceCodes).where(IssuanceCodes.reference_lookup == lookup_key(reference)))
            if codes is None:
                raise SandboxApiError(404, "reference_number_unknown", "That reference number is not known.")
            codes.expires_at = self.now() - dt.timedelta(seconds=1)
            session.commit()
            return {"expired": True}

    def registrations(self) -> dict[str, Any]:
        with self.state.session() as session:
            rows = session.scalars(select(SandboxRegistration).order_by(SandboxRegistration.dea_number)).all()
            return {"registrations": [self.registration_json(session, r) for r in rows]}


def portal_blueprint(portal: Portal, authority: SandboxAuthority) -> Blueprint:
    bp = Blueprint("portal", __name__)

    def auth() -> str | None:
        return request.headers.get("Authorization")

    @bp.get("/portal")
    def index():
        return jsonify({"name": "CSOS Desk training portal", "training": True,
                        "crl_urls": authority.crl_urls, "documentation": "docs/sandbox-api.md"})

    @bp.get("/portal/ca")
    def ca_info():
        return jsonify({"root_pem": ca_engine.pem_bundle([authority.root.certificate]).decode("ascii"),
                        "chain_pem": ca_engine.pem_bundle(authority.chain).decode("ascii"),
                        "crl_urls": authority.crl_urls})

    @bp.get("/crl/<name>.crl")
    def crl(name: str):
        if name not in ("root", "sub"):
            raise SandboxApiError(404, "not_found", "There is no such CRL.")
        return Response(authority.crl(name), mimetype="application/pkix-crl")

    @bp.get("/portal/registrations")
    def registrations():
        return jsonify(portal.registrations())

    @bp.post("/portal/accounts")
    def create_account():
        return jsonify(portal.create_account(json_body(request))), 201

    @bp.post("/portal/login")
    def login():
        return jsonify(portal.login(json_body(request)))

    @bp.post("/portal/login/verify")
    def verify_login():
        return jsonify(portal.verify_login(json_body(request)))

    @bp.post("/portal/logout")
    def logout():
        portal.logout(auth())
        return "", 204

    @bp.get("/portal/me")
    def me():
        return jsonify(portal.me(auth()))

    @bp.post("/portal/applications")
    def submit_application():
        return jsonify(portal.submit_application(auth(), json_body(request))), 201

    @bp.get("/portal/applications/<public_id>")
    def get_application(public_id: str):
        return jsonify(portal.get_application(auth(), public_id))

    @bp.get("/portal/applications/<public_id>/poa")
    def get_poa(public_id: str):
        return Response(portal.poa_document(auth(), public_id), mimetype="application/pdf")

    @bp.get("/portal/reviews")
    def reviews():
        return jsonify(portal.reviews(auth()))

    @bp.post("/portal/reviews/<public_id>")
    def decide(public_id: str):
        return jsonify(portal.decide(auth(), public_id, json_body(request)))

    @bp.post("/portal/certificates")
    def request_certificate():
        return jsonify(portal.request_certificate(json_body(request))), 201

    @bp.get("/portal/certificates/<serial>")
    def get_certificate(serial: str):
        return jsonify(portal.get_certificate(serial))

    @bp.post("/portal/certificates/<serial>/revoke")
    def revoke_by_session(serial: str):
        return jsonify(portal.revoke_by_session(auth(), serial, json_body(request)))

    @bp.post("/portal/renewals")
    def renew():
        status, body = portal.renew(request.get_data(), request.content_type)
        return jsonify(body), status

    @bp.get("/portal/renewals/<public_id>")
    def get_renewal(public_id: str):
        return jsonify(portal.get_renewal(public_id))

    @bp.post("/portal/revocations")
    def revoke_signed():
        return jsonify(portal.revoke_signed(request.get_data(), request.content_type))

    @bp.get("/portal/mailbox")
    def mailbox():
        return jsonify(portal.mailbox(request.args.get("email"), request.args.get("channel")))

    @bp.post("/portal/_training/expire-codes")
    def expire_codes():
        return jsonify(portal.expire_codes(json_body(request)))

    return bp
