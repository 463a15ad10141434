"""Enrollment, import, renewal and revocation as wizard flows (DESIGN §1 S2, S3, K1–K3, K5; §7).

Each flow is a navigation map over ``app.services.enrollment.wizard`` plus the services it drives: the certification authority
(``EnrollmentAuthority``: the training portal's API, or DEA's web portal guided step by step) and the certificate
records (``CertificateBook``: keys, requests, installation). No Qt here: the pages only render ``data`` and
``context`` and hand back what the person entered.

What is never saved with the progress (``wizard.is_secret_key`` and each flow's ``TRANSIENT``): passwords, PINs,
sign-in codes, the portal session, the reference number and the access code, identity document numbers and dates of
birth. After a restart the flow goes back to the page that asks for them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import select

from app.errors import CsosError
from app.models.orderbook import CertificateRecord, CertificateStatus, Registration
from app.services.certificates.book import ADMINISTRATIVE, CertificateBook, record_key_ref
from app.services.enrollment.authority import (
    REVOCATION_REASONS,
    ApplicationRequest,
    EnrollmentAuthority,
    EnrollmentError,
    PortalRegistration,
    PortalSession,
    signed_request,
)
from app.services.keys import KeyStoreError, WeakPassword, password_problems
from app.services.orders.reminders import IncidentReason, Reminder, incident_reminder, revocation_deadline
from app.services.enrollment.wizard import RESUMED_FROM, Data, Step, Wizard, WizardInputError, WizardStateStore

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]

MAX_POA_BYTES = 5 * 1024 * 1024
MAX_REGISTRATIONS = 10
RENEW_FROM_DAYS = 45
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")

SOFTWARE = "software"
TOKEN = "token"

# -- texts the pages show (one place, so the wording is the same in every flow) -----------------------------------

ROLE_TEXT = {
    "registrant": ("Registrant",
                   "You signed the DEA registration (the pharmacy owner, or the practitioner for a clinic). You may "
                   "sign orders yourself and grant power of attorney to others."),
    "power_of_attorney": ("Power of Attorney",
                          "The registrant gave you a signed power of attorney to order Schedule I and II substances "
                          "for the registration. You will attach that document (PDF)."),
    "coordinator": ("CSOS Coordinator",
                    "You approve other people's applications and renewals for the registration. A coordinator "
                    "certificate cannot sign orders; apply as Registrant or Power of Attorney for that too."),
}

REVOCATION_TEXT = {
    "key_compromise": "My private key (key file or token) was lost, stolen, or someone else may have used it",
    "lost_password": "I lost or forgot the password or PIN, or someone else may know it",
    "employment_ended": "The holder left the pharmacy, or their power of attorney was revoked",
    "name_or_email_change": "The holder's name or e-mail address changed",
    "registration_change": "The DEA registration changed (address, schedules, ownership)",
    "other": "Another reason",
}

# K3 (1311.30(e), 1311.45): loss or compromise within 24 hours; a power-of-attorney holder leaving within 6 hours.
INCIDENT_OF_REASON = {
    "key_compromise": IncidentReason.KEY_COMPROMISED,
    "lost_password": IncidentReason.PASSWORD_LOST,
    "employment_ended": IncidentReason.POWER_OF_ATTORNEY_ENDED,
}

FIPS_NOTICE = (
    "A key file on this computer is encrypted (AES-256, password-protected) by CSOS Desk's built-in cryptography, "
    "which is NOT a FIPS 140-2 validated module. 21 CFR 1311.55(b)(1) asks for a FIPS 140-2 Level 1 validated "
    "module: a validated USB token or smart card meets that rule. Ask your CSOS coordinator which one your "
    "pharmacy uses; see docs/compliance.md.")

K2_WARNING = (
    "A .p12/.pfx file is a full copy of your private key. Only you may hold it. CSOS Desk keeps the key it imports "
    "encrypted and makes no other copies; after the import, delete the file or lock it away where only you can reach "
    "it (21 CFR 1311.30(d)).")

AGREEMENT_TEXT = (
    "As a CSOS subscriber I agree that:\n"
    "• I alone use my private key and keep its password or PIN secret; I never let anyone sign orders with it.\n"
    "• I report the loss or compromise of my key or its password within 24 hours by revoking my certificate.\n"
    "• I tell DEA and my coordinator when my name, e-mail or the registration changes.\n"
    "• Orders I sign are legally binding, as a paper DEA Form 222 signed by me would be.\n"
    "• Records of signed orders are kept for two years and shown to DEA on request.")

LOST_KEY_TEXT = (
    "A lost key or a forgotten password cannot be recovered: nobody — not DEA, not your coordinator, not CSOS Desk — "
    "can unlock the key without it. What to do:\n"
    "1. Revoke the certificate now (you have {hours} hours from when you noticed). Without the key you revoke it "
    "by signing in to your portal account.\n"
    "2. Then enroll again: a new application, your coordinator's approval, new codes, and a new key.\n"
    "Until then you cannot sign orders; a colleague with their own certificate can.")


def deadline_text(reason: str | None, noticed_at: dt.datetime) -> str:
    """The K3 reporting deadline for a revocation reason, in words."""
    incident = INCIDENT_OF_REASON.get(reason or "")
    if incident is None:
        return "There is no legal deadline for this reason; revoke as soon as the certificate should stop working."
    deadline = revocation_deadline(incident, noticed_at)
    hours = int((deadline - noticed_at).total_seconds() // 3600)
    local = deadline.astimezone()
    return (f"DEA must be told within {hours} hours: revoke by {local:%Y-%m-%d %H:%M} "
            f"(your computer's time).")


# ---------------------------------------------------------------------------------------------------------------------
# Common plumbing


class Flow:
    """A flow = a navigation map + the services behind it. The host calls ``next``/``back``/``poll``."""

    name = "flow"
    title = "Wizard"
    start_view = ""
    TRANSIENT: frozenset[str] = frozenset({"password", "password_confirm", "sign_in_code", "challenge_id",
                                           "signed_in", "key_password", "key_password_confirm", "key_pin",
                                           "key_secret_ready", "reference_number", "access_code",
                                           "current_secret", "current_secret_ready", "p12_password",
                                           "identity_document_number", "date_of_birth"})
    #: seconds between polls on views that wait for someone else (the host runs ``poll`` on a timer)
    POLL_SECONDS: Mapping[str, float] = {}

    def __init__(self, *, authority: EnrollmentAuthority, certificates: CertificateBook,
                 store: WizardStateStore | None = None, clock: Clock | None = None,
                 data: Mapping[str, Any] | None = None, resume: bool = True) -> None:
        self.authority = authority
        self.certificates = certificates
        self.store = store
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))
        self.session: PortalSession | None = None
        self.context: dict[str, Any] = {}
        self.navmap = self.build_navmap()
        initial = {"automatic": bool(authority.automatic), **self.initial_data(), **dict(data or {})}
        saved = store.load(self.name) if (store is not None and resume) else None
        if saved is not None and not self.resumable(saved.get("data") or {}, initial):
            store.discard(self.name)  # progress for another certificate: this run starts over
            saved = None
        self.wizard: Wizard | None = None
        if saved is not None:
            try:
                self.wizard = Wizard.restore(saved, self.navmap, transient=self.TRANSIENT, on_change=self._save)
                self.resumed = True
            except CsosError as exc:
                log.warning("saved %s progress not resumed: %s", self.name, exc.code)
        if self.wizard is None:
            self.wizard = Wizard(name=self.name, navmap=self.navmap, view=self.start_view, data=initial,
                                 transient=self.TRANSIENT, on_change=self._save)
            self.resumed = False

    # -- to be filled by each flow --------------------------------------------------------------------------------

    def build_navmap(self) -> dict[str, Step]:
        raise NotImplementedError

    def initial_data(self) -> Data:
        return {}

    def resumable(self, saved: Mapping[str, Any], initial: Mapping[str, Any]) -> bool:
        """Whether saved progress belongs to this run (a renewal of another certificate does not)."""
        return True

    # -- what the host uses ---------------------------------------------------------------------------------------

    @property
    def view(self) -> str:
        return self.wizard.view

    @property
    def data(self) -> Data:
        return self.wizard.data

    @property
    def step(self) -> Step:
        return self.wizard.step

    @property
    def can_go_back(self) -> bool:
        return self.wizard.can_go_back

    @property
    def is_last(self) -> bool:
        return self.wizard.is_last

    def start(self) -> None:
        """Prepare the current view (first show, or after a resume)."""
        self.wizard.enter()

    def next(self, updates: Mapping[str, Any] | None = None) -> str:
        return self.wizard.next(updates)

    def back(self) -> str:
        return self.wizard.back()

    def poll_seconds(self) -> float | None:
        return self.POLL_SECONDS.get(self.view) if self.data.get("automatic") else None

    def poll(self) -> bool:
        """Ask the authority whether what this view waits for has happened; True when the view changed."""
        return False

    def finish(self) -> None:
        """Done (or abandoned for good): the saved progress goes."""
        if self.store is not None:
            self.store.discard(self.name)

    def _save(self, wizard: Wizard) -> None:
        if self.store is None:
            return
        if wizard.is_last:
            self.store.discard(self.name)
        else:
            self.store.save(wizard)

    # -- shared steps ---------------------------------------------------------------------------------------------

    def _account_accept(self, data: Data) -> None:
        """Create the portal account (new) and ask for the one-time sign-in code."""
        email = _required(data, "email", "Enter your e-mail address.").lower()
        if not _EMAIL.match(email):
            raise WizardInputError(f"'{email}' is not an e-mail address.", field="email", code="flow.email")
        data["email"] = email
        password = data.get("password") or ""
        if not password:
            raise WizardInputError("Enter your portal password.", field="password", code="flow.password_missing")
        if data.get("account_choice", "new") == "new" and data.get("account_created_for") != email:
            if password != data.get("password_confirm"):
                raise WizardInputError("The two passwords are not the same.", field="password_confirm",
                                       code="flow.password_mismatch")
            full_name = _required(data, "full_name", "Enter your full name first (Back to the Person page).")
            _field_errors(lambda: self.authority.create_account(email=email, full_name=full_name,
                                                                password=password))
            data["account_created_for"] = email
        challenge = _field_errors(lambda: self.authority.start_sign_in(email=email, password=password))
        data["challenge_id"] = challenge.challenge_id
        data["sign_in_message"] = challenge.message

    def _sign_in_code_accept(self, data: Data) -> None:
        code = re.sub(r"\s", "", str(data.get("sign_in_code") or ""))
        if not code:
            raise WizardInputError("Enter the 6-digit code from the e-mail.", field="sign_in_code",
                                   code="flow.code_missing")
        if not data.get("challenge_id"):
            raise WizardInputError("Sign in again: press Back.", field="sign_in_code", code="flow.no_challenge")
        self.session = _field_errors(lambda: self.authority.finish_sign_in(challenge_id=data["challenge_id"],
                                                                            code=code))
        data.pop("challenge_id", None)
        data["signed_in"] = True
        account = self.authority.account(self.session)
        data["subscriber_serial"] = account.subscriber_serial
        data["coordinator_of"] = list(account.coordinator_of)
        data["portal_certificates"] = [{"serial": c.serial, "fingerprint": c.fingerprint, "status": c.status}
                                       for c in account.certificates]
        if not data.get("full_name"):
            data["full_name"] = account.full_name

    def _after_sign_in(self, default: str) -> Callable[[Data], str]:
        def target(data: Data) -> str:
            return data.pop(RESUMED_FROM, None) or default
        return target

    def _enter_key_location(self, data: Data) -> None:
        try:
            tokens = self.certificates.list_tokens()
            problem = ""
        except KeyStoreError as exc:
            tokens, problem = [], exc.message
        self.context["tokens"] = [{"serial": t.serial, "label": t.label, "manufacturer": t.manufacturer,
                                   "model": t.model, "pin_pad": t.pin_pad, "pin_locked": t.pin_locked,
                                   "module": t.module} for t in tokens]
        self.context["token_problem"] = problem
        self.context["fips_notice"] = FIPS_NOTICE
        data.setdefault("key_store", SOFTWARE)

    def _check_key_choice(self, data: Data, *, personal_words: list[str]) -> None:
        """Validate where the new key goes and its password/PIN (K1, K5); sets ``key_secret_ready``."""
        store = data.get("key_store") or SOFTWARE
        if store == SOFTWARE:
            password = data.get("key_password") or ""
            problems = password_problems(password, personal_words=personal_words)
            if problems:
                raise WizardInputError(problems[0].message, field="key_password", code="flow.weak_password")
            if password != data.get("key_password_confirm"):
                raise WizardInputError("The two passwords are not the same.", field="key_password_confirm",
                                       code="flow.password_mismatch")
        elif store == TOKEN:
            token = self._chosen_token(data)
            if token.get("pin_locked"):
                raise WizardInputError("This token's PIN is locked. Ask whoever manages the token to unlock it, or "
                                       "choose another token.", field="token_serial", code="flow.pin_locked")
            data["token_pin_pad"] = bool(token.get("pin_pad"))
            data["token_label"] = token.get("label")
            if not token.get("pin_pad") and not data.get("key_pin"):
                raise WizardInputError("Enter the token's PIN.", field="key_pin", code="flow.pin_missing")
        else:
            raise WizardInputError("Choose where the key will live.", field="key_store", code="flow.key_store")
        data["key_secret_ready"] = True

    def _chosen_token(self, data: Data) -> dict[str, Any]:
        tokens = self.context.get("tokens")
        if tokens is None:
            self._enter_key_location(data)
            tokens = self.context["tokens"]
        if not tokens:
            raise WizardInputError(self.context.get("token_problem") or "No token was found. Insert your token "
                                   "and press Next again, or choose a key file.", field="token_serial",
                                   code="flow.no_token")
        serial = data.get("token_serial") or (tokens[0]["serial"] if len(tokens) == 1 else None)
        token = next((t for t in tokens if t["serial"] == serial), None)
        if token is None:
            raise WizardInputError("Choose your token from the list.", field="token_serial", code="flow.token_choice")
        data["token_serial"] = token["serial"]
        return token

    @staticmethod
    def key_secret(data: Data) -> str | None:
        if (data.get("key_store") or SOFTWARE) == SOFTWARE:
            return data.get("key_password") or None
        return None if data.get("token_pin_pad") else (data.get("key_pin") or None)

    def _make_key_and_request(self, data: Data, *, full_name: str, email: str, registrant_name: str,
                              subject_serial: str, label: str) -> None:
        """Generate the key where chosen and the certificate request it signs (proof of possession, S3)."""
        store = data.get("key_store") or SOFTWARE
        if data.get("key_id") and data.get("csr_pem") and data.get("key_made_in") == _where(data):
            return  # made before the person went back: never a second key for the same request
        secret = self.key_secret(data)
        try:
            ref = self.certificates.keygen(store=store, label=label, secret=secret,
                                           token_serial=data.get("token_serial") if store == TOKEN else None)
            csr_der = self.certificates.make_csr(ref, secret=secret, full_name=full_name, email=email,
                                                 registrant_name=registrant_name,
                                                 subject_serial=subject_serial or "0")
        except WeakPassword as exc:
            raise WizardInputError(exc.message, field="key_password", code=exc.code) from None
        except KeyStoreError as exc:
            field = "key_pin" if exc.code in ("key.wrong_pin", "key.pin_locked", "key.pin_required") else None
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        csr = x509.load_der_x509_csr(csr_der)
        data["key_id"] = ref.key_id
        data["key_made_in"] = _where(data)
        data["key_description"] = ref.describe()
        data["csr_pem"] = csr.public_bytes(serialization.Encoding.PEM).decode("ascii")
        data["csr_sha256"] = hashes_hex(csr_der)

    def _install(self, data: Data, bundles: list[bytes]) -> list[CertificateRecord]:
        """Install what the authority issued (one certificate per registration, all for our key), bind it to the
        key, and check each like a supplier would (S1)."""
        secret = None if (data.get("key_store") or SOFTWARE) == SOFTWARE else self.key_secret(data)
        records = [self.certificates.install(bundle, secret=secret) for bundle in bundles]
        data["installed"] = [summarize(r) for r in records]
        data["check_problems"] = [problem for r in records for problem in self.check_certificate(r)]
        signing = [r for r in records if r.kind != ADMINISTRATIVE and r.registration is not None]
        data["test_order_registration"] = signing[0].registration.dea_number if signing else None
        return records

    def check_certificate(self, record: CertificateRecord) -> list[str]:
        """Problems a supplier would find with this certificate now (chain, CRL, validity); empty = fine."""
        try:
            from app.services.certificates.crl_cache import CrlCache
            from app.services.certificates.validation import CertificateValidationService

            roots_pem = self.authority.trust_roots_pem()
            if not roots_pem:
                return []
            roots = x509.load_pem_x509_certificates(roots_pem)
            tls = getattr(self.authority, "tls_bundle", None)
            cache = CrlCache(self.certificates.config.cache_dir / "crl", tls_ca_bundle=tls)
            service = CertificateValidationService(trust_roots=roots, crl_cache=cache, clock=self.clock)
            cert, intermediates = CertificateBook.chain(record)
            result = service.validate(cert, at=self.clock(), intermediates=intermediates)
            return [p.message for p in result.problems]
        except CsosError as exc:
            return [exc.message]
        except (ValueError, x509.InvalidVersion):  # the CA sent trust roots that cannot be read
            return ["The trust roots sent by the certificate authority cannot be read, so the certificate could not "
                    "be checked now. It is installed, and it is checked again before it signs any order."]


# ---------------------------------------------------------------------------------------------------------------------
# Enrollment (issue item 1)


class EnrollmentFlow(Flow):
    """From "no certificate" to an installed, checked certificate (S3)."""

    name = "enrollment"
    title = "Enroll for a CSOS certificate"
    start_view = "welcome"
    POLL_SECONDS = {"waiting": 5.0}

    def __init__(self, *, local_registrations: Callable[[], list[PortalRegistration]] | None = None,
                 **kwargs: Any) -> None:
        self._local_registrations = local_registrations
        super().__init__(**kwargs)

    def build_navmap(self) -> dict[str, Step]:
        auto: Callable[[Data], bool] = lambda d: bool(d.get("automatic"))  # noqa: E731
        return {
            "welcome": Step("What enrollment is", next="role"),
            "role": Step("Your role", accept=self._role_accept, next="person"),
            "person": Step("About you", accept=self._person_accept, next="registrations"),
            "registrations": Step("Registrations you will sign for", enter=self._enter_registrations,
                                  accept=self._registrations_accept, slow=True,
                                  next=lambda d: "poa" if d.get("role") == "power_of_attorney" else "agreement"),
            "poa": Step("Power of attorney", accept=self._poa_accept, next="agreement"),
            "agreement": Step("Subscriber agreement", accept=self._agreement_accept, next="identity"),
            "identity": Step("Identity proofing", accept=self._identity_accept,
                             next=lambda d: "account" if auto(d) else "submit"),
            "account": Step("Your portal account", accept=self._account_accept, slow=True, next="sign_in_code"),
            "sign_in_code": Step("Sign-in code", accept=self._sign_in_code_accept, slow=True,
                                 needs=("challenge_id",), resume_to="account",
                                 next=self._after_sign_in("submit")),
            "submit": Step("Check and send", accept=self._submit_accept, slow=True, enter=self._enter_submit,
                           needs=("identity_document_number", "date_of_birth"), resume_to="identity",
                           next=self._after_submit),
            "waiting": Step("Waiting for approval", back=False, accept=self._waiting_accept, slow=True,
                            needs=("signed_in",), resume_to="account", next=self._after_waiting),
            "codes": Step("Reference number and access code", accept=self._codes_accept, next="key_location"),
            "key_location": Step("Where your key will live", enter=self._enter_key_location,
                                 accept=self._key_location_accept, slow=True, next="request"),
            "request": Step("Request your certificate", accept=self._request_accept, slow=True,
                            enter=self._enter_request,
                            needs=("reference_number", "access_code"), resume_to="codes", next="installed"),
            "installed": Step("Certificate installed", last=True, back=False),
            "rejected": Step("Application not approved", last=True, back=False),
        }

    # -- steps ----------------------------------------------------------------------------------------------------

    def _role_accept(self, data: Data) -> None:
        if data.get("role") not in ROLE_TEXT:
            raise WizardInputError("Choose the role you apply for.", field="role", code="flow.role")

    def _person_accept(self, data: Data) -> None:
        name = _required(data, "full_name", "Enter your full name as on your identity document.")
        if len(name) > 64:
            raise WizardInputError("The name may have at most 64 characters (certificate rule).", field="full_name",
                                   code="flow.name_too_long")
        email = _required(data, "email", "Enter your e-mail address: the reference number is sent there.").lower()
        if not _EMAIL.match(email):
            raise WizardInputError(f"'{email}' is not an e-mail address.", field="email", code="flow.email")
        data["full_name"], data["email"] = name, email

    def _enter_registrations(self, data: Data) -> None:
        found: dict[str, dict[str, Any]] = {}
        if self._local_registrations is not None:
            for reg in self._local_registrations():
                found[reg.dea_number] = {**reg.to_json(), "source": "order book"}
        else:
            for reg in local_registrations(self.certificates):
                found[reg.dea_number] = {**reg.to_json(), "source": "order book"}
        problem = ""
        try:
            for reg in self.authority.registrations():
                found[reg.dea_number] = {**reg.to_json(), "source": self.authority.display_name}
        except EnrollmentError as exc:
            problem = exc.message
        self.context["registrations"] = sorted(found.values(), key=lambda r: r["dea_number"])
        self.context["registrations_problem"] = problem

    def _registrations_accept(self, data: Data) -> None:
        chosen = [str(d).strip().upper() for d in data.get("registrations") or [] if str(d).strip()]
        chosen = list(dict.fromkeys(chosen))
        if not chosen:
            raise WizardInputError("Tick at least one DEA registration you will sign orders for.",
                                   field="registrations", code="flow.no_registration")
        if len(chosen) > MAX_REGISTRATIONS:
            raise WizardInputError(f"Choose at most {MAX_REGISTRATIONS} registrations in one application.",
                                   field="registrations", code="flow.too_many_registrations")
        known = {r["dea_number"]: r for r in self.context.get("registrations") or []}
        data["registrations"] = chosen
        data["registration_names"] = {d: known.get(d, {}).get("name", d) for d in chosen}
        data["registration_details"] = [known[d] for d in chosen if d in known and known[d]["source"] != "order book"]

    def _poa_accept(self, data: Data) -> None:
        path = Path(str(data.get("poa_file") or "")).expanduser()
        if not str(data.get("poa_file") or "").strip():
            raise WizardInputError("Choose the signed power-of-attorney document (PDF).", field="poa_file",
                                   code="flow.poa_missing")
        read_poa(path)
        data["poa_file"] = str(path)

    def _agreement_accept(self, data: Data) -> None:
        if data.get("agreement_accepted") is not True:
            raise WizardInputError("Tick the box to accept the subscriber agreement; you cannot enroll without it.",
                                   field="agreement_accepted", code="flow.agreement")

    def _identity_accept(self, data: Data) -> None:
        if not data.get("automatic"):
            if data.get("identity_done_on_portal") is not True:
                raise WizardInputError("Tick the box once DEA's portal has confirmed your identity.",
                                       field="identity_done_on_portal", code="flow.identity_portal")
            return
        if not str(data.get("identity_document_type") or "").strip():
            raise WizardInputError("Choose the kind of identity document.", field="identity_document_type",
                                   code="flow.identity_type")
        number = str(data.get("identity_document_number") or "").strip()
        if not number:
            raise WizardInputError("Enter the document number.", field="identity_document_number",
                                   code="flow.identity_number")
        birth = str(data.get("date_of_birth") or "").strip()
        try:
            born = dt.date.fromisoformat(birth)
        except ValueError:
            raise WizardInputError("Enter the date of birth as YYYY-MM-DD, for example 1980-04-02.",
                                   field="date_of_birth", code="flow.date_of_birth") from None
        if born >= self.clock().date():
            raise WizardInputError("The date of birth must be in the past.", field="date_of_birth",
                                   code="flow.date_of_birth")
        data["identity_document_number"], data["date_of_birth"] = number, birth

    def _enter_submit(self, data: Data) -> None:
        self.context["summary"] = application_summary(data)

    def _submit_accept(self, data: Data) -> None:
        if not data.get("automatic"):
            if data.get("submitted_on_portal") is not True:
                raise WizardInputError("Tick the box once you have sent the application on DEA's portal.",
                                       field="submitted_on_portal", code="flow.submit_portal")
            data["application_status"] = "pending"
            return
        if data.get("application_id"):
            return  # already sent
        if self.session is None:
            raise WizardInputError("Your portal sign-in has ended; press Back and sign in again.",
                                   code="flow.not_signed_in")
        poa = read_poa(Path(data["poa_file"])) if data.get("role") == "power_of_attorney" else None
        request = ApplicationRequest(
            role=data["role"], full_name=data["full_name"], registrations=tuple(data["registrations"]),
            agreement_accepted=bool(data.get("agreement_accepted")), title=data.get("title") or "",
            phone=data.get("phone") or "", poa_document=poa,
            identity={"document_type": data["identity_document_type"],
                      "document_number": data["identity_document_number"], "date_of_birth": data["date_of_birth"]})
        application = _field_errors(lambda: self.authority.submit_application(self.session, request))
        data["application_id"] = application.id
        data["application_status"] = application.status
        data["submitted_at"] = self.clock().isoformat()
        # Identity details were sent once; they are not kept.
        data.pop("identity_document_number", None)
        data.pop("date_of_birth", None)

    def _after_submit(self, data: Data) -> str:
        return "codes" if data.get("application_status") in ("approved", "issued") else "waiting"

    def _waiting_accept(self, data: Data) -> None:
        if not data.get("automatic"):
            if data.get("codes_received") is not True:
                raise WizardInputError("Tick the box when you have both the reference number (e-mail) and the access "
                                       "code (letter).", field="codes_received", code="flow.codes_not_received")
            data["application_status"] = "approved"
            return
        self._refresh_application(data)
        if data.get("application_status") == "pending":
            raise WizardInputError("Your application is still waiting for approval. CSOS Desk checks by itself; you "
                                   "may also close the program and come back later.", code="flow.still_pending")

    def _after_waiting(self, data: Data) -> str:
        if data.get("application_status") == "rejected":
            return "rejected"
        return "codes" if data.get("automatic") else "key_location"

    def _refresh_application(self, data: Data) -> None:
        if self.session is None:
            raise WizardInputError("Sign in again to check your application.", code="flow.not_signed_in")
        application = self.authority.application(self.session, data["application_id"])
        data["application_status"] = application.status
        data["application_reason"] = application.reason or ""

    def poll(self) -> bool:
        if self.view != "waiting" or not self.data.get("automatic") or self.session is None:
            return False
        self._refresh_application(self.data)
        status = self.data.get("application_status")
        if status in ("approved", "issued"):
            self.wizard.jump("codes")
            return True
        if status == "rejected":
            self.wizard.jump("rejected")
            return True
        return False

    def _codes_accept(self, data: Data) -> None:
        reference = re.sub(r"[\s-]", "", str(data.get("reference_number") or ""))
        access = re.sub(r"[\s-]", "", str(data.get("access_code") or "")).upper()
        if not reference:
            raise WizardInputError("Enter the reference number from the e-mail.", field="reference_number",
                                   code="flow.reference_missing")
        if not access:
            raise WizardInputError("Enter the access code from the letter.", field="access_code",
                                   code="flow.access_missing")
        data["reference_number"], data["access_code"] = reference, access

    def _key_location_accept(self, data: Data) -> None:
        if data.get("key_id") and data.get("key_made_in") == _where(data):
            # The key exists; only a token PIN may be needed again to store the certificate on the token.
            if data.get("key_store") == TOKEN:
                self._check_key_choice(data, personal_words=[])
            data["key_secret_ready"] = True
            return
        self._check_key_choice(data, personal_words=_personal_words(data))
        first = data["registrations"][0]
        self._make_key_and_request(
            data, full_name=data["full_name"], email=data["email"],
            registrant_name=(data.get("registration_names") or {}).get(first, first),
            subject_serial=data.get("subscriber_serial") or "0",
            label=_key_label(data["full_name"], self.clock()))

    def _enter_request(self, data: Data) -> None:
        self.context["portal_url"] = self.authority.portal_url

    def _request_accept(self, data: Data) -> None:
        if data.get("installed"):
            return
        if data.get("automatic"):
            try:
                issued = self.authority.request_certificate(reference_number=data.get("reference_number", ""),
                                                            access_code=data.get("access_code", ""),
                                                            csr_pem=data["csr_pem"])
            except EnrollmentError as exc:
                if exc.field in ("reference_number", "access_code"):
                    raise WizardInputError(exc.message + " Press Back twice to correct the codes.",
                                           field=exc.field, code=exc.code) from None
                raise
            bundles = issued.bundles()
        else:
            bundles = [read_certificate_file(data.get("certificate_file"))]
        add_missing_registrations(self.certificates, data.get("registration_details") or [])
        self._install(data, bundles)
        data.pop("reference_number", None)
        data.pop("access_code", None)


# ---------------------------------------------------------------------------------------------------------------------
# Import of an existing .p12/.pfx (issue item 2)


class ImportFlow(Flow):
    name = "import_p12"
    title = "Import a certificate file (.p12 / .pfx)"
    start_view = "file"

    def build_navmap(self) -> dict[str, Step]:
        return {
            "file": Step("Choose the file", accept=self._file_accept, slow=True, next="destination"),
            "destination": Step("Where the key will live", enter=self._enter_destination,
                                accept=self._destination_accept, slow=True, needs=("p12_password",),
                                resume_to="file", next="done"),
            "done": Step("Certificate imported", last=True, back=False),
        }

    def _file_accept(self, data: Data) -> None:
        from app.services.keys import p12 as p12_files

        raw = str(data.get("p12_file") or "").strip()
        if not raw:
            raise WizardInputError("Choose the .p12 or .pfx file.", field="p12_file", code="flow.p12_missing")
        path = Path(raw).expanduser()
        try:
            content = path.read_bytes()
        except OSError as exc:
            raise WizardInputError(f"The file {path} cannot be read ({exc.strerror or exc}).", field="p12_file",
                                   code="flow.p12_unreadable") from None
        try:
            contents = p12_files.read_p12(content, password=data.get("p12_password") or "")
        except KeyStoreError as exc:
            field = "p12_password" if exc.code == "key.wrong_password" else "p12_file"
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        cert = contents.certificate
        del contents
        data["p12_file"] = str(path)
        data["p12_summary"] = {} if cert is None else {
            "subject": cert.subject.rfc4514_string(), "not_after": cert.not_valid_after_utc.isoformat(),
            "issuer": cert.issuer.rfc4514_string()}

    def _enter_destination(self, data: Data) -> None:
        self._enter_key_location(data)
        self.context["k2_warning"] = K2_WARNING

    def _destination_accept(self, data: Data) -> None:
        if data.get("installed"):
            return
        if data.get("k2_acknowledged") is not True:
            raise WizardInputError("Tick the box to confirm you read how to keep the file.", field="k2_acknowledged",
                                   code="flow.k2")
        self._check_key_choice(data, personal_words=[])
        content = Path(data["p12_file"]).read_bytes()
        store = data.get("key_store") or SOFTWARE
        try:
            record = self.certificates.import_p12(content, password=data.get("p12_password") or "",
                                                  new_secret=self.key_secret(data), label=_key_label("Imported",
                                                                                                     self.clock()),
                                                  to_token=store == TOKEN,
                                                  token_serial=data.get("token_serial") if store == TOKEN else None)
        except KeyStoreError as exc:
            field = {"key.weak_password": "key_password", "key.wrong_pin": "key_pin",
                     "key.wrong_password": "p12_password"}.get(exc.code)
            raise WizardInputError(exc.message, field=field, code=exc.code) from None
        data["installed"] = [summarize(record)]
        data["check_problems"] = self.check_certificate(record) if record.certificate_der else []
        if record.registration_id is not None and record.registration is not None:
            data["test_order_registration"] = record.registration.dea_number


# ---------------------------------------------------------------------------------------------------------------------
# Renewal (issue item 3)


class RenewalFlow(Flow):
    """A new key and certificate before the current one ends, the request signed with the current certificate."""

    name = "renewal"
    title = "Renew a CSOS certificate"
    start_view = "current"
    POLL_SECONDS = {"waiting": 5.0}

    def __init__(self, *, fingerprint: str | None = None, **kwargs: Any) -> None:
        self._fingerprint = fingerprint
        super().__init__(**kwargs)

    def initial_data(self) -> Data:
        return {"current_fingerprint": self._fingerprint} if self._fingerprint else {}

    def resumable(self, saved: Mapping[str, Any], initial: Mapping[str, Any]) -> bool:
        return not self._fingerprint or saved.get("current_fingerprint") == self._fingerprint

    def build_navmap(self) -> dict[str, Step]:
        return {
            "current": Step("Your current certificate", enter=self._enter_current, accept=self._current_accept,
                            next=lambda d: "details_changed" if d.get("details_changed") else "key_location"),
            "details_changed": Step("A new enrollment is needed", last=True),
            "key_location": Step("Where the new key will live", enter=self._enter_key_location,
                                 accept=self._key_location_accept, slow=True,
                                 next=lambda d: "unlock" if d.get("automatic") else "request"),
            "unlock": Step("Unlock the current key", enter=self._enter_unlock, accept=self._unlock_accept, slow=True,
                           next=lambda d: "installed" if d.get("installed") else (
                               "rejected" if d.get("renewal_status") == "rejected" else "waiting")),
            "waiting": Step("Waiting for your coordinator", back=False, accept=self._waiting_accept, slow=True,
                            next=lambda d: "rejected" if d.get("renewal_status") == "rejected" else "installed"),
            "request": Step("Renew on DEA's portal", enter=self._enter_request, accept=self._request_accept,
                            slow=True, next="installed"),
            "installed": Step("Renewed certificate installed", last=True, back=False),
            "rejected": Step("Renewal not approved", last=True, back=False),
        }

    def current_record(self) -> CertificateRecord:
        return self.certificates.get(self.data["current_fingerprint"])

    def _enter_current(self, data: Data) -> None:
        record = self.current_record()
        data["current"] = summarize(record)
        ref = (record.key_ref or {})
        data.setdefault("key_store", TOKEN if ref.get("store") == "pkcs11" else SOFTWARE)
        if ref.get("token"):
            data.setdefault("token_serial", ref["token"].get("serial"))

    def _current_accept(self, data: Data) -> None:
        if data.get("details_changed"):
            return
        record = self.current_record()
        now = self.clock()
        if record.status is not CertificateStatus.ACTIVE:
            raise WizardInputError(f"This certificate is {record.status.value}: only an active certificate can be "
                                   "renewed. Enroll for a new certificate instead.", code="flow.not_renewable")
        if record.not_after is not None and record.not_after <= now:
            raise WizardInputError("This certificate has expired: it can no longer sign a renewal request. Enroll "
                                   "for a new certificate instead.", code="flow.expired")

    def _key_location_accept(self, data: Data) -> None:
        if data.get("key_id") and data.get("key_made_in") == _where(data):
            data["key_secret_ready"] = True
            return
        current = data.get("current") or summarize(self.current_record())
        self._check_key_choice(data, personal_words=_personal_words({"full_name": current.get("subscriber", ""),
                                                                     "email": current.get("email", "")}))
        view = self._current_view()
        self._make_key_and_request(data, full_name=view.subscriber_name or "Subscriber", email=view.email or "",
                                   registrant_name=view.organization or view.registrant_name or "Registrant",
                                   subject_serial=view.subject_serial or "0",
                                   label=_key_label(view.subscriber_name or "Renewal", self.clock()))

    def _current_view(self) -> Any:
        from app.services.certificates.profile import CsosCertificate

        return CsosCertificate.from_der(self.current_record().certificate_der)

    def _enter_unlock(self, data: Data) -> None:
        ref = (self.current_record().key_ref or {})
        self.context["current_on_token"] = ref.get("store") == "pkcs11"
        self.context["current_pin_pad"] = False
        if ref.get("token"):
            for token in self.certificates.list_tokens():
                if token.serial == ref["token"].get("serial"):
                    self.context["current_pin_pad"] = token.pin_pad

    def _unlock_accept(self, data: Data) -> None:
        if data.get("renewal_id") or data.get("installed"):
            return
        record = self.current_record()
        secret = data.get("current_secret") or None
        if not secret and not self.context.get("current_pin_pad"):
            raise WizardInputError("Enter the password (or PIN) of your current key.", field="current_secret",
                                   code="flow.secret_missing")
        cert, intermediates = CertificateBook.chain(record)
        try:
            with self.certificates.open_signer(record, secret=secret) as signer:
                body = signed_request({"type": "renewal_request", "csr_pem": data["csr_pem"]}, signer=signer,
                                      certificate_der=record.certificate_der,
                                      intermediates_der=[c.public_bytes(serialization.Encoding.DER)
                                                         for c in intermediates], now=self.clock())
        except KeyStoreError as exc:
            raise WizardInputError(exc.message, field="current_secret", code=exc.code) from None
        del cert
        status = self.authority.renew(body)
        data["renewal_id"] = status.renewal_id
        data["renewal_status"] = status.status
        data["renewal_reason"] = status.reason or ""
        data["renewal_message"] = status.message
        if status.issued is not None:
            self._finish_install(data, status.issued.bundles())

    def _finish_install(self, data: Data, bundles: list[bytes]) -> None:
        self._install(data, bundles)
        data["old_status"] = record_status(self.certificates.get(data["current_fingerprint"]))

    def _refresh(self, data: Data) -> None:
        status = self.authority.renewal(data["renewal_id"])
        data["renewal_status"] = status.status
        data["renewal_reason"] = status.reason or ""
        if status.issued is not None and not data.get("installed"):
            self._finish_install(data, status.issued.bundles())

    def _waiting_accept(self, data: Data) -> None:
        self._refresh(data)
        if data.get("renewal_status") == "pending":
            raise WizardInputError("Your coordinator has not decided yet. CSOS Desk checks by itself; you may close "
                                   "the program and come back later.", code="flow.still_pending")

    def poll(self) -> bool:
        if self.view != "waiting":
            return False
        self._refresh(self.data)
        if self.data.get("renewal_status") == "rejected":
            self.wizard.jump("rejected")
            return True
        if self.data.get("installed"):
            self.wizard.jump("installed")
            return True
        return False

    def _enter_request(self, data: Data) -> None:
        self.context["portal_url"] = self.authority.portal_url

    def _request_accept(self, data: Data) -> None:
        if not data.get("installed"):
            self._finish_install(data, [read_certificate_file(data.get("certificate_file"))])


# ---------------------------------------------------------------------------------------------------------------------
# Revocation (issue item 4)


class RevocationFlow(Flow):
    """Revoke a certificate; the local key is destroyed once the CA has confirmed. Includes the lost-key path."""

    name = "revocation"
    title = "Revoke a CSOS certificate"
    start_view = "situation"

    def __init__(self, *, fingerprint: str | None = None, **kwargs: Any) -> None:
        self._fingerprint = fingerprint
        super().__init__(**kwargs)

    def initial_data(self) -> Data:
        return {"fingerprint": self._fingerprint, "account_choice": "existing"} if self._fingerprint else {
            "account_choice": "existing"}

    def resumable(self, saved: Mapping[str, Any], initial: Mapping[str, Any]) -> bool:
        return not self._fingerprint or saved.get("fingerprint") == self._fingerprint

    def build_navmap(self) -> dict[str, Step]:
        auto: Callable[[Data], bool] = lambda d: bool(d.get("automatic"))  # noqa: E731
        return {
            "situation": Step("What happened", enter=self._enter_situation, accept=self._situation_accept,
                              next="reason"),
            "reason": Step("Reason for revocation", enter=self._enter_reason, accept=self._reason_accept,
                           next=lambda d: "lost" if d.get("key_available") is False else "unlock"),
            "lost": Step("I lost my key or password", enter=self._enter_lost,
                         next=lambda d: "account" if auto(d) else "confirm"),
            "account": Step("Your portal account", accept=self._account_accept, slow=True, next="sign_in_code"),
            "sign_in_code": Step("Sign-in code", accept=self._sign_in_code_accept, slow=True,
                                 needs=("challenge_id",), resume_to="account", next=self._after_sign_in("confirm")),
            "unlock": Step("Unlock the key", enter=self._enter_unlock, accept=self._unlock_accept, slow=True,
                           next="confirm"),
            "confirm": Step("Confirm the revocation", enter=self._enter_confirm, accept=self._confirm_accept,
                            slow=True, needs=("revocation_ready",), resume_to="reason", next="done"),
            "done": Step("Certificate revoked", last=True, back=False),
        }

    TRANSIENT = Flow.TRANSIENT | {"revocation_ready"}

    def record(self) -> CertificateRecord:
        return self.certificates.get(self.data["fingerprint"])

    def _enter_situation(self, data: Data) -> None:
        record = self.record()
        data["certificate"] = summarize(record)

    def _situation_accept(self, data: Data) -> None:
        if data.get("key_available") not in (True, False):
            raise WizardInputError("Say whether you still have the key and its password or PIN.",
                                   field="key_available", code="flow.situation")
        if record_status(self.record()) == CertificateStatus.REVOKED.value:
            raise WizardInputError("This certificate is already revoked.", code="flow.already_revoked")
        data.setdefault("noticed_at", self.clock().isoformat())

    def _enter_reason(self, data: Data) -> None:
        reasons = REVOCATION_REASONS if data.get("key_available") else ("key_compromise", "lost_password")
        self.context["reasons"] = [(r, REVOCATION_TEXT[r]) for r in reasons]

    def _reason_accept(self, data: Data) -> None:
        allowed = [r for r, _ in self.context.get("reasons") or []] or list(REVOCATION_REASONS)
        if data.get("reason") not in allowed:
            raise WizardInputError("Choose the reason.", field="reason", code="flow.reason")
        noticed = _parse_moment(data.get("noticed_at"))
        if noticed is None or noticed > self.clock() + dt.timedelta(minutes=5):
            raise WizardInputError("Enter when you noticed it (not in the future), e.g. 2026-03-01 09:30.",
                                   field="noticed_at", code="flow.noticed_at")
        data["noticed_at"] = noticed.isoformat()
        data["deadline_text"] = deadline_text(data["reason"], noticed)
        data["revocation_ready"] = True

    def _enter_lost(self, data: Data) -> None:
        hours = 6 if data.get("reason") == "employment_ended" else 24
        self.context["lost_text"] = LOST_KEY_TEXT.format(hours=hours)

    def _enter_unlock(self, data: Data) -> None:
        ref = (self.record().key_ref or {})
        self.context["on_token"] = ref.get("store") == "pkcs11"
        self.context["pin_pad"] = False
        if ref.get("token"):
            for token in self.certificates.list_tokens():
                if token.serial == ref["token"].get("serial"):
                    self.context["pin_pad"] = token.pin_pad

    def _unlock_accept(self, data: Data) -> None:
        secret = data.get("current_secret") or None
        if not secret and not self.context.get("pin_pad"):
            raise WizardInputError("Enter the password (or PIN) of the key.", field="current_secret",
                                   code="flow.secret_missing")
        try:
            with self.certificates.open_signer(self.record(), secret=secret):
                pass
        except KeyStoreError as exc:
            raise WizardInputError(exc.message, field="current_secret", code=exc.code) from None
        data["current_secret_ready"] = True

    def _enter_confirm(self, data: Data) -> None:
        self.context["portal_url"] = self.authority.portal_url

    def _confirm_accept(self, data: Data) -> None:
        if data.get("revoked_at"):
            return
        if data.get("confirmed") is not True:
            raise WizardInputError("Tick the box to confirm: a revoked certificate can never sign again.",
                                   field="confirmed", code="flow.not_confirmed")
        record = self.record()
        cert = x509.load_der_x509_certificate(record.certificate_der)
        serial = f"{cert.serial_number:x}"
        reason = data["reason"]
        key_path = data.get("key_available") is not False
        if not data.get("automatic"):
            if data.get("revoked_on_portal") is not True:
                raise WizardInputError("Tick the box once DEA's portal has confirmed the revocation.",
                                       field="revoked_on_portal", code="flow.portal_revocation")
        elif key_path:
            if not data.get("current_secret_ready"):
                raise WizardInputError("Unlock the key first: press Back.", code="flow.not_unlocked")
            _, intermediates = CertificateBook.chain(record)
            try:
                with self.certificates.open_signer(record, secret=data.get("current_secret") or None) as signer:
                    body = signed_request({"type": "revocation_request", "certificate_serial": serial,
                                           "reason": reason}, signer=signer, certificate_der=record.certificate_der,
                                          intermediates_der=[c.public_bytes(serialization.Encoding.DER)
                                                             for c in intermediates], now=self.clock())
            except KeyStoreError as exc:
                raise WizardInputError(exc.message, code=exc.code) from None
            self.authority.revoke(body)
        else:
            if self.session is None:
                raise WizardInputError("Your portal sign-in has ended; press Back and sign in again.",
                                       code="flow.not_signed_in")
            self.authority.revoke_signed_in(self.session, serial, reason)
        # The CA confirmed: record it, then destroy the key (only its holder can, with the password or PIN).
        self.certificates.mark_revoked(record.fingerprint, reason=reason)
        data["revoked_at"] = self.clock().isoformat()
        data["key_destroyed"] = False
        if key_path:
            try:
                ref = record_key_ref(record)
                store = self.certificates.store_for(ref, module=(record.key_ref or {}).get("module"))
                store.delete_key(ref, secret=data.get("current_secret") or None)
                data["key_destroyed"] = True
            except (KeyStoreError, CsosError) as exc:
                data["key_destroy_problem"] = exc.message
        data["certificate"] = summarize(self.record())

    def incident(self, now: dt.datetime | None = None) -> Reminder | None:
        """The K3 reminder while this revocation is unfinished (None when no legal deadline applies)."""
        reason = self.data.get("reason")
        noticed = _parse_moment(self.data.get("noticed_at"))
        if reason not in INCIDENT_OF_REASON or noticed is None or self.data.get("revoked_at"):
            return None
        subject = (self.data.get("certificate") or {}).get("subscriber") or "A CSOS certificate"
        return incident_reminder(INCIDENT_OF_REASON[reason], noticed, now=now or self.clock(),
                                 subject=f"{subject}: revocation", reference=self.data.get("fingerprint", ""))


def unfinished_revocation_reminders(store: WizardStateStore, *, now: dt.datetime) -> list[Reminder]:
    """K3: a revocation started and not finished keeps reminding with its deadline (from the saved progress)."""
    state = store.load(RevocationFlow.name)
    if not state:
        return []
    data = state.get("data") or {}
    reason, noticed = data.get("reason"), _parse_moment(data.get("noticed_at"))
    if reason not in INCIDENT_OF_REASON or noticed is None or data.get("revoked_at"):
        return []
    subject = (data.get("certificate") or {}).get("subscriber") or "A CSOS certificate"
    return [incident_reminder(INCIDENT_OF_REASON[reason], noticed, now=now, subject=f"{subject}: revocation",
                              reference=str(data.get("fingerprint", "")))]


# ---------------------------------------------------------------------------------------------------------------------
# The certificates page (issue item 6): one row per certificate with its next action


@dataclass(frozen=True)
class CertificateRow:
    fingerprint: str
    subscriber: str
    kind: str  # "Signing" | "Coordinator"
    status: str
    registration: str
    registration_name: str
    registration_expires: dt.date | None
    schedules: str
    key_location: str
    not_after: dt.date | None
    days_left: int | None
    next_action: str
    action: str  # enroll | renew | revoke | install | approvals | none


def certificate_rows(certificates: CertificateBook, *, today: dt.date) -> list[CertificateRow]:
    rows = []
    with certificates.db.session() as session:
        registrations = {r.id: r for r in session.scalars(select(Registration))}
    for record in certificates.list():
        registration = registrations.get(record.registration_id) if record.registration_id else None
        days = (record.not_after.date() - today).days if record.not_after else None
        status = record_status(record)
        admin = record.kind == ADMINISTRATIVE
        if status == CertificateStatus.PENDING.value:
            action, text = "install", ("Waiting for its certificate: finish the enrollment, or install the "
                                       "certificate file you received.")
        elif status == CertificateStatus.ACTIVE.value and days is not None and days <= RENEW_FROM_DAYS:
            action, text = "renew", f"Renew now: {days} day{'s' if days != 1 else ''} left."
        elif status == CertificateStatus.ACTIVE.value:
            renew_from = record.not_after.date() - dt.timedelta(days=RENEW_FROM_DAYS)
            action = "approvals" if admin else "none"
            text = ("Review applications in Approvals. " if admin else "") + f"Renew from {renew_from:%Y-%m-%d}."
        elif status == CertificateStatus.EXPIRED.value:
            action, text = "enroll", "Expired: enroll again (an expired certificate cannot be renewed)."
        elif status == CertificateStatus.REVOKED.value:
            action, text = "none", "Revoked: kept for the records. Enroll again if this person still orders."
        else:
            action, text = "none", "Replaced by its renewal: kept for the records."
        rows.append(CertificateRow(
            fingerprint=record.fingerprint or (record.key_ref or {}).get("key_id", ""),
            subscriber=record.subscriber_name or "(waiting for certificate)",
            kind="Coordinator" if admin else "Signing", status=status,
            registration=registration.dea_number if registration else "",
            registration_name=registration.name if registration else "",
            registration_expires=registration.expires_on if registration else None,
            schedules=record.schedules.replace(",", ", ") if record.schedules else ("none (cannot sign)" if admin
                                                                                    else ""),
            key_location=key_location_text(record.key_ref or {}),
            not_after=record.not_after.date() if record.not_after else None, days_left=days,
            next_action=text, action=action))
    return rows


def key_location_text(key_ref: Mapping[str, Any]) -> str:
    token = key_ref.get("token")
    if token:
        return f"Token '{token.get('label', '')}' serial {token.get('serial', '')}"
    if key_ref.get("store") == "software":
        return f"Key file {str(key_ref.get('key_id', ''))[:8]}… on this computer"
    return "No key here"


# ---------------------------------------------------------------------------------------------------------------------
# Small helpers


def record_status(record: CertificateRecord) -> str:
    status = record.status
    return status.value if isinstance(status, CertificateStatus) else str(status)


def summarize(record: CertificateRecord) -> dict[str, Any]:
    """What the pages show about a certificate record (JSON-ready, no secrets)."""
    registration = record.registration
    return {"fingerprint": record.fingerprint or "", "subscriber": record.subscriber_name, "email": record.email,
            "kind": record.kind, "status": record_status(record),
            "registration": registration.dea_number if registration is not None else "",
            "registration_name": registration.name if registration is not None else "",
            "schedules": record.schedules,
            "not_after": record.not_after.isoformat() if record.not_after else None,
            "key_location": key_location_text(record.key_ref or {})}


def application_summary(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    role = ROLE_TEXT.get(str(data.get("role")), (str(data.get("role")), ""))[0]
    names = data.get("registration_names") or {}
    rows = [("Role", role), ("Name", str(data.get("full_name", ""))), ("E-mail", str(data.get("email", "")))]
    if data.get("title"):
        rows.append(("Title", str(data["title"])))
    if data.get("phone"):
        rows.append(("Phone", str(data["phone"])))
    rows.append(("Registrations", ", ".join(f"{d} ({names.get(d, d)})" for d in data.get("registrations") or [])))
    if data.get("role") == "power_of_attorney":
        rows.append(("Power of attorney", Path(str(data.get("poa_file", ""))).name))
    rows.append(("Subscriber agreement", "accepted" if data.get("agreement_accepted") else "not accepted"))
    if data.get("automatic"):
        rows.append(("Identity document", f"{data.get('identity_document_type', '')} ending "
                                          f"{str(data.get('identity_document_number', ''))[-4:]}"))
    return rows


def read_poa(path: Path) -> bytes:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise WizardInputError(f"The file {path} cannot be read ({exc.strerror or exc}).", field="poa_file",
                               code="flow.poa_unreadable") from None
    if len(content) > MAX_POA_BYTES:
        raise WizardInputError("The document is larger than 5 MB; scan it at a lower resolution.", field="poa_file",
                               code="flow.poa_too_large")
    if not content.startswith(b"%PDF-"):
        raise WizardInputError("The power-of-attorney document must be a PDF file.", field="poa_file",
                               code="flow.poa_not_pdf")
    return content


def read_certificate_file(raw: Any) -> bytes:
    text = str(raw or "").strip()
    if not text:
        raise WizardInputError("Choose the certificate file you downloaded from the portal.",
                               field="certificate_file", code="flow.certificate_missing")
    try:
        return Path(text).expanduser().read_bytes()
    except OSError as exc:
        raise WizardInputError(f"The file {text} cannot be read ({exc.strerror or exc}).", field="certificate_file",
                               code="flow.certificate_unreadable") from None


def local_registrations(certificates: CertificateBook) -> list[PortalRegistration]:
    with certificates.db.session() as session:
        rows = list(session.scalars(select(Registration).order_by(Registration.dea_number)))
    return [PortalRegistration(dea_number=r.dea_number, name=r.name, address_lines=tuple(r.address_lines or ()),
                               city=r.city, state=r.state, postal_code=r.postal_code,
                               schedules=tuple(s for s in (r.schedules or "").split(",") if s),
                               expires_at=dt.datetime.combine(r.expires_on, dt.time(23, 59, 59), dt.timezone.utc)
                               if r.expires_on else None) for r in rows]


def add_missing_registrations(certificates: CertificateBook, details: list[Mapping[str, Any]]) -> list[str]:
    """Registrations chosen from the authority's list join the order book, so the new certificate is bound to its
    registration and the first order can be made at once."""
    from app.services.orders.orderbook import OrderBook

    with certificates.db.session() as session:
        present = set(session.scalars(select(Registration.dea_number)))
    book = OrderBook(certificates.db, actor=certificates.actor or "enrollment")
    added = []
    for item in details:
        if item["dea_number"] in present:
            continue
        expires = _parse_moment(item.get("expires_at"))
        try:
            book.add_registration(dea_number=item["dea_number"], name=item["name"],
                                  address_lines=item.get("address_lines") or [], city=item.get("city") or "",
                                  state=item.get("state") or "", postal_code=item.get("postal_code") or "",
                                  schedules=item.get("schedules") or [], expires_on=expires.date() if expires else None)
            added.append(item["dea_number"])
        except CsosError as exc:
            log.warning("registration %s not added to the order book: %s", item.get("dea_number"), exc.code)
    return added


def hashes_hex(data: bytes) -> str:
    digest = hashes.Hash(hashes.SHA256())
    digest.update(data)
    return digest.finalize().hex()


def _where(data: Mapping[str, Any]) -> str:
    store = data.get("key_store") or SOFTWARE
    return f"token:{data.get('token_serial')}" if store == TOKEN else SOFTWARE


def _key_label(name: str, now: dt.datetime) -> str:
    return f"CSOS {name}"[:52] + f" {now:%Y-%m-%d}"


def _personal_words(data: Mapping[str, Any]) -> list[str]:
    words = str(data.get("full_name") or "").split()
    email = str(data.get("email") or "")
    if email:
        words.append(email.split("@")[0])
    words.extend(str(d) for d in data.get("registrations") or [])
    return [w for w in words if w]


def _required(data: Data, key: str, message: str) -> str:
    value = str(data.get(key) or "").strip()
    if not value:
        raise WizardInputError(message, field=key, code=f"flow.{key}_missing")
    return value


def _field_errors(call: Callable[[], Any]) -> Any:
    """An authority refusal about one entry becomes an input error on that entry (the page points at it)."""
    try:
        return call()
    except EnrollmentError as exc:
        if exc.field:
            raise WizardInputError(exc.message, field=exc.field, code=exc.code) from None
        raise


def _parse_moment(value: Any) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        text = str(value or "").strip().replace("T", " ")
        if not text:
            return None
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # a time typed by the person is their local time
    return moment.astimezone(dt.timezone.utc)


FLOWS: dict[str, type[Flow]] = {f.name: f for f in (EnrollmentFlow, ImportFlow, RenewalFlow, RevocationFlow)}


def saved_progress(store: WizardStateStore) -> dict[str, dict[str, Any]]:
    """Flows with saved progress, and where they stopped (for 'Continue where you left off')."""
    out = {}
    for name in store.saved():
        state = store.load(name)
        if state and name in FLOWS:
            out[name] = {"view": state.get("view"), "saved_at": state.get("saved_at"),
                         "title": FLOWS[name].title}
    return out


__all__ = ["AGREEMENT_TEXT", "FIPS_NOTICE", "FLOWS", "K2_WARNING", "REVOCATION_TEXT", "ROLE_TEXT", "CertificateRow",
           "EnrollmentFlow", "Flow", "ImportFlow", "RenewalFlow", "RevocationFlow", "certificate_rows",
           "deadline_text", "key_location_text", "saved_progress", "summarize",
           "unfinished_revocation_reminders"]
