"""New enrollment as a wizard flow: from "no certificate" to an installed, checked certificate (DESIGN §1 S3, K1, K5).

Role, person, registrations, power of attorney, subscriber agreement, identity proofing, the portal account, the
application and its approval, the two codes, the key and the certificate request (see ``flow_common`` for the base).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.errors import CsosError
from app.models.orderbook import Registration
from app.services.certificates.book import CertificateBook
from app.services.enrollment.authority import ApplicationRequest, EnrollmentError, PortalRegistration
from app.services.enrollment.flow_common import (
    EMAIL,
    TOKEN,
    Flow,
    field_errors,
    key_label,
    key_place,
    parse_moment,
    personal_words_of,
    read_certificate_file,
    required_text,
)
from app.services.enrollment.wizard import Data, Step, WizardInputError

log = logging.getLogger(__name__)

MAX_POA_BYTES = 5 * 1024 * 1024
MAX_REGISTRATIONS = 10

# -- texts the pages show ------------------------------------------------------------------------------------------

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

IDENTITY_DOCUMENTS = {"drivers_license": "Driver's license", "passport": "Passport", "state_id": "State ID card"}

AGREEMENT_TEXT = (
    "As a CSOS subscriber I agree that:\n"
    "• I alone use my private key and keep its password or PIN secret; I never let anyone sign orders with it.\n"
    "• I report the loss or compromise of my key or its password within 24 hours by revoking my certificate.\n"
    "• I tell DEA and my coordinator when my name, e-mail or the registration changes.\n"
    "• Orders I sign are legally binding, as a paper DEA Form 222 signed by me would be.\n"
    "• Records of signed orders are kept for two years and shown to DEA on request.")


def _submit_needs(data: Data) -> tuple[str, ...]:
    """Sending the application needs the identity details (never kept) and a live portal sign-in."""
    if not data.get("automatic") or data.get("application_id"):
        return ()
    return "identity_document_number", "date_of_birth", "signed_in"


def _submit_resume(data: Data) -> str:
    return "identity" if "identity_document_number" not in data or "date_of_birth" not in data else "account"


def _request_needs(data: Data) -> tuple[str, ...]:
    """The request needs the two codes (never kept) and, for a token without a PIN pad, its PIN again."""
    if data.get("installed"):
        return ()
    codes = ("reference_number", "access_code") if data.get("automatic") else ()
    return codes + (("key_secret_ready",) if data.get("key_store") == TOKEN else ())


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
                             next=lambda d: "account" if auto(d) and not d.get("signed_in") else "submit"),
            "account": Step("Your portal account", accept=self._account_accept, slow=True, next="sign_in_code"),
            "sign_in_code": Step("Sign-in code", accept=self._sign_in_code_accept, slow=True,
                                 needs=("challenge_id",), resume_to="account", next="submit"),
            "submit": Step("Check and send", accept=self._submit_accept, slow=True, enter=self._enter_submit,
                           needs=_submit_needs, resume_to=_submit_resume, next=self._after_submit),
            "waiting": Step("Waiting for approval", back=False, accept=self._waiting_accept, slow=True,
                            needs=lambda d: ("signed_in",) if auto(d) else (), resume_to="account",
                            next=self._after_waiting),
            "codes": Step("Reference number and access code", accept=self._codes_accept, next="key_location"),
            "key_location": Step("Where your key will live", enter=self._enter_key_location,
                                 accept=self._key_location_accept, slow=True, next="request"),
            "request": Step("Request your certificate", accept=self._request_accept, slow=True,
                            enter=self._enter_request, needs=_request_needs,
                            resume_to=lambda d: "codes" if auto(d) else "key_location", next="installed"),
            "installed": Step("Certificate installed", last=True, back=False),
            "rejected": Step("Application not approved", last=True, back=False),
        }

    # -- steps ----------------------------------------------------------------------------------------------------

    def _role_accept(self, data: Data) -> None:
        if data.get("role") not in ROLE_TEXT:
            raise WizardInputError("Choose the role you apply for.", field="role", code="flow.role")

    def _person_accept(self, data: Data) -> None:
        name = required_text(data, "full_name", "Enter your full name as on your identity document.")
        if len(name) > 64:
            raise WizardInputError("The name may have at most 64 characters (certificate rule).", field="full_name",
                                   code="flow.name_too_long")
        email = required_text(data, "email", "Enter your e-mail address: the reference number is sent there.").lower()
        if not EMAIL.match(email):
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
        born = parse_birth_date(data.get("date_of_birth"))
        if born is None:
            raise WizardInputError("Enter the date of birth as month/day/year (04/02/1980) or year-month-day "
                                   "(1980-04-02).", field="date_of_birth", code="flow.date_of_birth")
        if born >= self.clock().date():
            raise WizardInputError("The date of birth must be in the past.", field="date_of_birth",
                                   code="flow.date_of_birth")
        birth = born.isoformat()
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
        application = field_errors(lambda: self.authority.submit_application(self.session, request))
        data["application_id"] = application.id
        data["application_status"] = application.status
        data["approvals_missing"] = [r for r in data["registrations"] if r not in application.approved_for]
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
        data["approvals_missing"] = [r for r in data.get("registrations") or [] if r not in application.approved_for]

    def poll(self) -> bool:
        if self.view != "waiting" or not self.data.get("automatic") or self.session is None:
            return False
        missing_before = self.data.get("approvals_missing")
        self._refresh_application(self.data)
        status = self.data.get("application_status")
        if status in ("approved", "issued"):
            self.wizard.jump("codes")
            return True
        if status == "rejected":
            self.wizard.jump("rejected")
            return True
        return self.data.get("approvals_missing") != missing_before  # one approval came: the page says who is left

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
        if data.get("key_id") and data.get("key_made_in") == key_place(data):
            # The key exists; only a token PIN may be needed again to store the certificate on the token.
            if data.get("key_store") == TOKEN:
                self._check_key_choice(data, personal_words=[])
            data["key_secret_ready"] = True
            return
        self._check_key_choice(data, personal_words=personal_words_of(data))
        first = data["registrations"][0]
        self._make_key_and_request(
            data, full_name=data["full_name"], email=data["email"],
            registrant_name=(data.get("registration_names") or {}).get(first, first),
            subject_serial=data.get("subscriber_serial") or "0",
            label=key_label(data["full_name"], self.clock()))

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
# Helpers of the enrollment


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
        kind = IDENTITY_DOCUMENTS.get(str(data.get("identity_document_type")), "Identity document")
        number = str(data.get("identity_document_number") or "")
        rows.append(("Identity document", f"{kind} ending {number[-4:]}" if number else
                     f"{kind} (the number is asked again: CSOS Desk does not keep it)"))
    return rows


def parse_birth_date(value: Any) -> dt.date | None:
    """A date as people type it here: 04/02/1980 (month/day/year, as on US documents) or 1980-04-02."""
    text = str(value or "").strip()
    for pattern in ("%Y-%m-%d", "%m/%d/%Y", "%m-%d-%Y", "%m.%d.%Y"):
        try:
            return dt.datetime.strptime(text, pattern).date()
        except ValueError:
            continue
    return None


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
        expires = parse_moment(item.get("expires_at"))
        try:
            book.add_registration(dea_number=item["dea_number"], name=item["name"],
                                  address_lines=item.get("address_lines") or [], city=item.get("city") or "",
                                  state=item.get("state") or "", postal_code=item.get("postal_code") or "",
                                  schedules=item.get("schedules") or [], expires_on=expires.date() if expires else None)
            added.append(item["dea_number"])
        except CsosError as exc:
            log.warning("registration %s not added to the order book: %s", item.get("dea_number"), exc.code)
    return added


__all__ = ["AGREEMENT_TEXT", "IDENTITY_DOCUMENTS", "parse_birth_date", "MAX_POA_BYTES", "MAX_REGISTRATIONS", "ROLE_TEXT", "EnrollmentFlow",
           "add_missing_registrations", "application_summary", "local_registrations", "read_poa"]
