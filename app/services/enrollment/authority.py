"""Who issues CSOS certificates, behind one interface (DESIGN §7): the training portal's API, or DEA's web portal.

``SandboxAuthority`` speaks the training portal's JSON API over HTTPS (docs/sandbox-api.md), TLS verified against
the sandbox's own TLS bundle, so a trainee goes through every step automatically. ``PortalAuthority`` is production:
DEA publishes no API, so the flows make the key and the certificate request here, open DEA's portal in the browser
with step-by-step text, and import what the person downloads. Flows ask ``authority.automatic`` which way to go.

Secrets (passwords, sign-in codes, reference numbers, access codes, the portal session token) pass through as call
arguments and are never logged, stored or put into an error message.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from app.errors import CsosError
from app.services.signing.cms import sign_content

log = logging.getLogger(__name__)

SIGNED_REQUEST_MEDIA_TYPE = "application/pkcs7-mime"
DEFAULT_TIMEOUT = (5.0, 30.0)
DEA_PORTAL_URL = "https://www.deaecom.gov/"
SANDBOX_STATE_FILE = "sandbox.json"

ROLES = ("registrant", "coordinator", "power_of_attorney")

# DEA's revocation reasons, as the portal names them.
REVOCATION_REASONS = ("key_compromise", "lost_password", "employment_ended", "name_or_email_change",
                      "registration_change", "other")

# The portal's error codes that are about one entry: the flows point the person at that entry.
_FIELD_OF_CODE = {
    "invalid_email": "email", "email_taken": "email", "weak_password": "password", "login_failed": "password",
    "login_locked": "password", "login_code_wrong": "sign_in_code", "login_code_expired": "sign_in_code",
    "login_code_used": "sign_in_code", "login_code_locked": "sign_in_code",
    "reference_number_unknown": "reference_number", "access_code_wrong": "access_code",
    "identity_proofing_failed": "identity_document_number", "poa_required": "poa_file", "poa_not_pdf": "poa_file",
    "poa_too_large": "poa_file", "agreement_not_accepted": "agreement_accepted", "invalid_role": "role",
}


class EnrollmentError(CsosError):
    """The certification authority refused or could not be reached. ``field`` names the entry concerned, if one."""

    code = "enrollment.error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 status: int | None = None) -> None:
        super().__init__(message, code=code)
        self.field = field
        self.status = status


class ManualStep(EnrollmentError):
    """The production portal has no API: the person does this step in the browser (the flow shows how)."""

    code = "enrollment.manual_step"


# ---------------------------------------------------------------------------------------------------------------------
# What the authority says, as plain values


@dataclass(frozen=True)
class SignInChallenge:
    challenge_id: str
    delivered_to: str
    message: str


@dataclass(frozen=True)
class PortalSession:
    """A signed-in portal session. The token lives in memory only (``repr`` hides it)."""

    token: str = field(repr=False)
    email: str
    full_name: str


@dataclass(frozen=True)
class PortalRegistration:
    dea_number: str
    name: str
    address_lines: tuple[str, ...]
    city: str
    state: str
    postal_code: str
    schedules: tuple[str, ...]
    expires_at: dt.datetime | None
    renewal_requires_approval: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"dea_number": self.dea_number, "name": self.name, "address_lines": list(self.address_lines),
                "city": self.city, "state": self.state, "postal_code": self.postal_code,
                "schedules": list(self.schedules),
                "expires_at": self.expires_at.isoformat() if self.expires_at else None,
                "renewal_requires_approval": self.renewal_requires_approval}


@dataclass(frozen=True)
class ApplicationRequest:
    role: str
    full_name: str
    registrations: tuple[str, ...]
    agreement_accepted: bool
    identity: Mapping[str, str]  # document_type, document_number, date_of_birth (sent once, never stored)
    title: str = ""
    phone: str = ""
    poa_document: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Application:
    """An enrollment or renewal application as the authority shows it (to its applicant or a coordinator)."""

    id: str
    kind: str  # enrollment | renewal
    role: str
    status: str  # pending | approved | rejected | issued
    applicant_email: str
    full_name: str
    registrations: tuple[str, ...]
    reason: str | None = None
    poa_attached: bool = False
    identity_proofing: Mapping[str, Any] = field(default_factory=dict)
    created_at: dt.datetime | None = None
    renews_certificate: str | None = None
    awaiting_you_for: tuple[str, ...] = ()
    person: Mapping[str, Any] = field(default_factory=dict)
    approved_for: tuple[str, ...] = ()  # registrations whose coordinator approved already

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Application":
        person = data.get("person") or {}
        return cls(id=str(data["id"]), kind=str(data.get("kind", "enrollment")), role=str(data.get("role", "")),
                   status=str(data.get("status", "")), applicant_email=str(data.get("applicant_email", "")),
                   full_name=str(person.get("full_name", "")), registrations=tuple(data.get("registrations") or ()),
                   reason=data.get("reason"), poa_attached=bool(data.get("poa_attached")),
                   identity_proofing=dict(data.get("identity_proofing") or {}),
                   created_at=_parse_time(data.get("created_at")), renews_certificate=data.get("renews_certificate"),
                   awaiting_you_for=tuple(data.get("awaiting_you_for") or ()), person=dict(person),
                   approved_for=tuple(a.get("registration", "") for a in data.get("approvals") or ()
                                      if isinstance(a, Mapping) and a.get("decision") == "approved"))


@dataclass(frozen=True)
class IssuedCertificate:
    serial: str
    fingerprint: str
    kind: str
    registration: str
    status: str
    certificate_pem: str
    not_after: dt.datetime | None
    revocation_reason: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "IssuedCertificate":
        return cls(serial=str(data["serial"]), fingerprint=str(data.get("fingerprint", "")),
                   kind=str(data.get("kind", "")), registration=str(data.get("registration", "")),
                   status=str(data.get("status", "")), certificate_pem=str(data.get("certificate_pem", "")),
                   not_after=_parse_time(data.get("not_after")), revocation_reason=data.get("revocation_reason"))


@dataclass(frozen=True)
class Issued:
    """Certificates the authority issued for one request, and its chain (intermediates and root, PEM)."""

    certificates: tuple[IssuedCertificate, ...]
    chain_pem: str

    def bundles(self) -> list[bytes]:
        """One PEM file per certificate (certificate + chain), each ready for ``CertificateBook.install``."""
        return [(c.certificate_pem + self.chain_pem).encode("ascii") for c in self.certificates]


@dataclass(frozen=True)
class RenewalStatus:
    status: str  # pending | issued | rejected
    renewal_id: str
    reason: str | None = None
    issued: Issued | None = None
    message: str = ""


@dataclass(frozen=True)
class AccountInfo:
    email: str
    full_name: str
    subscriber_serial: str
    coordinator_of: tuple[str, ...]
    certificates: tuple[IssuedCertificate, ...] = ()


@dataclass(frozen=True)
class MailMessage:
    """A training 'e-mail' or 'postal' letter from the sandbox mailbox."""

    id: int
    to: str
    channel: str  # email | postal
    kind: str
    subject: str
    body: str
    created_at: dt.datetime | None


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Signed requests (renewal, revocation): JSON signed with the current certificate, as CMS SignedData


def signed_request(content: Mapping[str, Any], *, signer: Any, certificate_der: bytes,
                   intermediates_der: Sequence[bytes] = (), now: dt.datetime) -> bytes:
    """The request the CA authenticates by the holder's current certificate (DER CMS, JSON content attached)."""
    return sign_content(json.dumps(dict(content), sort_keys=True).encode("utf-8"), signer=signer,
                        certificate_der=certificate_der, intermediates_der=list(intermediates_der),
                        signing_time=now)


# ---------------------------------------------------------------------------------------------------------------------
# The interface


class EnrollmentAuthority(ABC):
    """What the flows need from a CSOS certification authority."""

    #: True when every step goes through an API (training); False when the person works in DEA's web portal.
    automatic: bool = True
    #: Shown in titles and messages.
    display_name: str = "CSOS certification authority"
    training: bool = False
    portal_url: str = ""

    # accounts and sign-in
    @abstractmethod
    def create_account(self, *, email: str, full_name: str, password: str) -> None: ...

    @abstractmethod
    def start_sign_in(self, *, email: str, password: str) -> SignInChallenge: ...

    @abstractmethod
    def finish_sign_in(self, *, challenge_id: str, code: str) -> PortalSession: ...

    @abstractmethod
    def account(self, session: PortalSession) -> AccountInfo: ...

    # applications
    @abstractmethod
    def registrations(self) -> list[PortalRegistration]: ...

    @abstractmethod
    def submit_application(self, session: PortalSession, request: ApplicationRequest) -> Application: ...

    @abstractmethod
    def application(self, session: PortalSession, application_id: str) -> Application: ...

    # issuance, renewal, revocation
    @abstractmethod
    def request_certificate(self, *, reference_number: str, access_code: str, csr_pem: str) -> Issued: ...

    @abstractmethod
    def renew(self, signed: bytes) -> RenewalStatus: ...

    @abstractmethod
    def renewal(self, renewal_id: str) -> RenewalStatus: ...

    @abstractmethod
    def revoke(self, signed: bytes) -> IssuedCertificate: ...

    @abstractmethod
    def revoke_signed_in(self, session: PortalSession, serial: str, reason: str) -> IssuedCertificate: ...

    # coordinator review
    @abstractmethod
    def pending_reviews(self, session: PortalSession) -> list[Application]: ...

    @abstractmethod
    def decide(self, session: PortalSession, application_id: str, *, approve: bool,
               reason: str = "") -> Application: ...

    @abstractmethod
    def poa_document(self, session: PortalSession, application_id: str) -> bytes: ...

    # training mailbox
    def mailbox(self, email: str, channel: str | None = None) -> list[MailMessage]:
        raise ManualStep("Messages from DEA arrive in your real e-mail and post; there is no training mailbox.",
                         code="enrollment.no_mailbox")

    def trust_roots_pem(self) -> bytes | None:
        """The CSOS root(s) this authority's certificates chain to, when it can say so safely (else None)."""
        return None


# ---------------------------------------------------------------------------------------------------------------------
# Training: the sandbox portal's API


class SandboxAuthority(EnrollmentAuthority):
    """The training portal over HTTPS (TLS verified against ``tls_bundle``; verification cannot be switched off)."""

    automatic = True
    training = True
    display_name = "CSOS training portal"

    def __init__(self, portal_url: str, *, tls_bundle: str | Path, trust_bundle: str | Path | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, session: requests.Session | None = None) -> None:
        self.portal_url = portal_url.rstrip("/")
        self.tls_bundle = Path(tls_bundle)
        self.trust_bundle = Path(trust_bundle) if trust_bundle else None
        self.timeout = timeout
        self._http = session or requests.Session()

    @classmethod
    def from_sandbox_dir(cls, directory: str | Path) -> "SandboxAuthority":
        """The sandbox whose ``sandbox.json`` is in ``directory`` (written by every sandbox start)."""
        path = Path(directory) / SANDBOX_STATE_FILE
        try:
            state = json.loads(path.read_text("utf-8"))
            return cls(state["portal_url"], tls_bundle=state["tls_bundle"], trust_bundle=state.get("trust_bundle"))
        except (OSError, ValueError, KeyError, TypeError):
            raise EnrollmentError(
                f"The training sandbox has not been started (no readable {path}). Start training mode or run "
                "`csos-desk sandbox`, then try again.", code="enrollment.sandbox_not_started") from None

    # -- HTTP ---------------------------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, session: PortalSession | None = None, json_body: Any = None,
              data: bytes | None = None, headers: Mapping[str, str] | None = None, params: Any = None,
              raw: bool = False, url: str | None = None) -> Any:
        if not self.tls_bundle.is_file():
            raise EnrollmentError(f"The training portal's TLS certificate file {self.tls_bundle} is missing. Restart "
                                  "training mode.", code="enrollment.tls_bundle_missing")
        sent = dict(headers or {})
        if session is not None:
            sent["Authorization"] = f"Bearer {session.token}"
        target = url or f"{self.portal_url}{path}"
        try:
            response = self._http.request(method, target, json=json_body, data=data, headers=sent, params=params,
                                          timeout=self.timeout, verify=str(self.tls_bundle))
        except requests.exceptions.SSLError:
            raise EnrollmentError("The training portal's identity could not be verified (TLS). Restart training "
                                  "mode so the certificates match.", code="enrollment.tls") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout):
            raise EnrollmentError(f"The training portal at {self.portal_url} cannot be reached. Is training mode "
                                  "(the sandbox) running? Start it and try again.",
                                  code="enrollment.unreachable") from None
        except requests.exceptions.RequestException:
            raise EnrollmentError("The request to the training portal failed; try again.",
                                  code="enrollment.request_failed") from None
        if response.status_code >= 400:
            self._raise(response)
        if raw:
            return response.content
        if response.status_code == 204:
            return None
        try:
            return response.json()
        except ValueError:
            raise EnrollmentError("The training portal sent an answer that is not JSON; try again.",
                                  code="enrollment.bad_response") from None

    @staticmethod
    def _raise(response: requests.Response) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        server_code = str(body.get("error") or f"http_{response.status_code}")
        message = str(body.get("message") or f"The training portal answered {response.status_code}.")
        log.info("portal refused: %s (%s)", server_code, response.status_code)
        raise EnrollmentError(message, code=f"enrollment.{server_code}", field=_FIELD_OF_CODE.get(server_code),
                              status=response.status_code)

    # -- accounts and sign-in -----------------------------------------------------------------------------------------

    def create_account(self, *, email: str, full_name: str, password: str) -> None:
        self._call("POST", "/accounts", json_body={"email": email, "full_name": full_name, "password": password})

    def start_sign_in(self, *, email: str, password: str) -> SignInChallenge:
        body = self._call("POST", "/login", json_body={"email": email, "password": password})
        return SignInChallenge(challenge_id=body["challenge_id"], delivered_to=body.get("delivered_to", "email"),
                               message=body.get("message", ""))

    def finish_sign_in(self, *, challenge_id: str, code: str) -> PortalSession:
        body = self._call("POST", "/login/verify", json_body={"challenge_id": challenge_id, "code": code})
        account = body.get("account") or {}
        return PortalSession(token=body["token"], email=account.get("email", ""),
                             full_name=account.get("full_name", ""))

    def account(self, session: PortalSession) -> AccountInfo:
        body = self._call("GET", "/me", session=session)
        account = body["account"]
        return AccountInfo(email=account["email"], full_name=account["full_name"],
                           subscriber_serial=str(account["subscriber_serial"]),
                           coordinator_of=tuple(body.get("coordinator_of") or ()),
                           certificates=tuple(IssuedCertificate.from_json(c) for c in body.get("certificates") or ()))

    # -- applications -------------------------------------------------------------------------------------------------

    def registrations(self) -> list[PortalRegistration]:
        body = self._call("GET", "/registrations")
        return [PortalRegistration(dea_number=r["dea_number"], name=r["name"],
                                   address_lines=tuple(r.get("address_lines") or ()), city=r.get("city", ""),
                                   state=r.get("state", ""), postal_code=r.get("postal_code", ""),
                                   schedules=tuple(r.get("schedules") or ()),
                                   expires_at=_parse_time(r.get("expires_at")),
                                   renewal_requires_approval=bool(r.get("renewal_requires_approval")))
                for r in body.get("registrations") or ()]

    def submit_application(self, session: PortalSession, request: ApplicationRequest) -> Application:
        person = {"full_name": request.full_name}
        if request.title:
            person["title"] = request.title
        if request.phone:
            person["phone"] = request.phone
        body: dict[str, Any] = {"role": request.role, "person": person, "registrations": list(request.registrations),
                                "subscriber_agreement_accepted": bool(request.agreement_accepted),
                                "identity_proofing": dict(request.identity)}
        if request.poa_document is not None:
            body["poa_document_base64"] = base64.b64encode(request.poa_document).decode("ascii")
        return Application.from_json(self._call("POST", "/applications", session=session,
                                                json_body=body)["application"])

    def application(self, session: PortalSession, application_id: str) -> Application:
        return Application.from_json(self._call("GET", f"/applications/{application_id}",
                                                session=session)["application"])

    # -- issuance, renewal, revocation --------------------------------------------------------------------------------

    @staticmethod
    def _issued(body: Mapping[str, Any]) -> Issued:
        return Issued(certificates=tuple(IssuedCertificate.from_json(c) for c in body.get("certificates") or ()),
                      chain_pem=str(body.get("chain_pem") or ""))

    def request_certificate(self, *, reference_number: str, access_code: str, csr_pem: str) -> Issued:
        return self._issued(self._call("POST", "/certificates", json_body={
            "reference_number": reference_number, "access_code": access_code, "csr_pem": csr_pem}))

    def _renewal(self, body: Mapping[str, Any]) -> RenewalStatus:
        issued = self._issued(body) if body.get("certificates") else None
        return RenewalStatus(status=str(body.get("status", "")), renewal_id=str(body.get("renewal_id", "")),
                             reason=body.get("reason"), issued=issued, message=str(body.get("message") or ""))

    def renew(self, signed: bytes) -> RenewalStatus:
        return self._renewal(self._call("POST", "/renewals", data=signed,
                                        headers={"Content-Type": SIGNED_REQUEST_MEDIA_TYPE}))

    def renewal(self, renewal_id: str) -> RenewalStatus:
        return self._renewal(self._call("GET", f"/renewals/{renewal_id}"))

    def revoke(self, signed: bytes) -> IssuedCertificate:
        body = self._call("POST", "/revocations", data=signed, headers={"Content-Type": SIGNED_REQUEST_MEDIA_TYPE})
        return IssuedCertificate.from_json(body["certificate"])

    def revoke_signed_in(self, session: PortalSession, serial: str, reason: str) -> IssuedCertificate:
        body = self._call("POST", f"/certificates/{serial}/revoke", session=session, json_body={"reason": reason})
        return IssuedCertificate.from_json(body["certificate"])

    # -- coordinator review -------------------------------------------------------------------------------------------

    def pending_reviews(self, session: PortalSession) -> list[Application]:
        return [Application.from_json(a) for a in self._call("GET", "/reviews", session=session).get("pending") or ()]

    def decide(self, session: PortalSession, application_id: str, *, approve: bool, reason: str = "") -> Application:
        body: dict[str, Any] = {"decision": "approve" if approve else "reject"}
        if reason:
            body["reason"] = reason
        return Application.from_json(self._call("POST", f"/reviews/{application_id}", session=session,
                                                json_body=body)["application"])

    def poa_document(self, session: PortalSession, application_id: str) -> bytes:
        return self._call("GET", f"/applications/{application_id}/poa", session=session, raw=True)

    # -- training mailbox ---------------------------------------------------------------------------------------------

    def mailbox(self, email: str, channel: str | None = None) -> list[MailMessage]:
        params = {"email": email}
        if channel:
            params["channel"] = channel
        body = self._call("GET", "/mailbox", params=params)
        return [MailMessage(id=int(m["id"]), to=m.get("to", ""), channel=m.get("channel", ""), kind=m.get("kind", ""),
                            subject=m.get("subject", ""), body=m.get("body", ""),
                            created_at=_parse_time(m.get("created_at")))
                for m in body.get("messages") or ()]

    def trust_roots_pem(self) -> bytes | None:
        if self.trust_bundle is not None and self.trust_bundle.is_file():
            return self.trust_bundle.read_bytes()
        body = self._call("GET", "/ca")  # over TLS verified against the sandbox bundle
        return str(body.get("root_pem") or "").encode("ascii") or None


# ---------------------------------------------------------------------------------------------------------------------
# Production: DEA's web portal, driven by the person


class PortalAuthority(EnrollmentAuthority):
    """DEA's CSOS portal has no API: each network step is done by the person in the browser, guided by the flow."""

    automatic = False
    training = False
    display_name = "DEA CSOS portal"

    def __init__(self, portal_url: str = DEA_PORTAL_URL) -> None:
        self.portal_url = portal_url

    def _manual(self, what: str) -> ManualStep:
        return ManualStep(f"{what} happens on DEA's CSOS portal ({self.portal_url}); follow the steps shown.")

    def create_account(self, *, email: str, full_name: str, password: str) -> None:
        raise self._manual("Creating your account")

    def start_sign_in(self, *, email: str, password: str) -> SignInChallenge:
        raise self._manual("Signing in")

    def finish_sign_in(self, *, challenge_id: str, code: str) -> PortalSession:
        raise self._manual("Signing in")

    def account(self, session: PortalSession) -> AccountInfo:
        raise self._manual("Your account")

    def registrations(self) -> list[PortalRegistration]:
        return []  # the flows offer the registrations kept in the order book

    def submit_application(self, session: PortalSession, request: ApplicationRequest) -> Application:
        raise self._manual("Submitting the application")

    def application(self, session: PortalSession, application_id: str) -> Application:
        raise self._manual("Checking the application")

    def request_certificate(self, *, reference_number: str, access_code: str, csr_pem: str) -> Issued:
        raise self._manual("Retrieving the certificate")

    def renew(self, signed: bytes) -> RenewalStatus:
        raise self._manual("Renewal")

    def renewal(self, renewal_id: str) -> RenewalStatus:
        raise self._manual("Renewal")

    def revoke(self, signed: bytes) -> IssuedCertificate:
        raise self._manual("Revocation")

    def revoke_signed_in(self, session: PortalSession, serial: str, reason: str) -> IssuedCertificate:
        raise self._manual("Revocation")

    def pending_reviews(self, session: PortalSession) -> list[Application]:
        raise self._manual("Reviewing applications")

    def decide(self, session: PortalSession, application_id: str, *, approve: bool, reason: str = "") -> Application:
        raise self._manual("Approving or rejecting applications")

    def poa_document(self, session: PortalSession, application_id: str) -> bytes:
        raise self._manual("Reading power-of-attorney documents")


def authority_for(config: Any) -> EnrollmentAuthority:
    """The authority of the profile: the training sandbox (training), DEA's portal (production)."""
    settings = getattr(config, "settings", {}) or {}
    if not config.is_training:
        return PortalAuthority(str(settings.get("dea_portal_url") or DEA_PORTAL_URL))
    if settings.get("sandbox_portal_url") and settings.get("sandbox_tls_bundle"):
        return SandboxAuthority(str(settings["sandbox_portal_url"]), tls_bundle=settings["sandbox_tls_bundle"],
                                trust_bundle=settings.get("csos_trust_bundle"))
    directory = settings.get("sandbox_dir") or Path(config.data_dir) / "sandbox"
    return SandboxAuthority.from_sandbox_dir(directory)


__all__ = ["DEA_PORTAL_URL", "REVOCATION_REASONS", "ROLES", "AccountInfo", "Application", "ApplicationRequest",
           "EnrollmentAuthority", "EnrollmentError", "Issued", "IssuedCertificate", "MailMessage", "ManualStep",
           "PortalAuthority", "PortalRegistration", "PortalSession", "RenewalStatus", "SandboxAuthority",
           "SignInChallenge", "authority_for", "signed_request"]
