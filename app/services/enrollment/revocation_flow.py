"""Revocation as a wizard flow, with the lost-key path and the reporting deadline (DESIGN §1 K3).

The local key is destroyed only once the CA has confirmed the revocation; an unfinished revocation keeps reminding
with its deadline.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.errors import CsosError
from app.models.orderbook import CertificateRecord, CertificateStatus
from app.services.certificates.book import CertificateBook, record_key_ref
from app.services.enrollment.authority import REVOCATION_REASONS, signed_request
from app.models.integrity import append_audit_event
from app.services.enrollment.certificate_overview import certificate_id
from app.services.enrollment.flow_common import Flow, parse_moment, record_status, summarize
from app.services.enrollment.held_orders import hold_unsent_orders, unsent_orders
from app.services.enrollment.wizard import Data, Step, WizardInputError, WizardStateStore
from app.services.keys import KeyStoreError
from app.services.orders.reminders import IncidentReason, Reminder, incident_reminder, revocation_deadline

# -- texts the pages show ------------------------------------------------------------------------------------------

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

LOST_KEY_TEXT = (
    "A lost key or a forgotten password cannot be recovered: nobody — not DEA, not your coordinator, not CSOS Desk — "
    "can unlock the key without it. What to do:\n"
    "1. Revoke the certificate now ({deadline}). Without the key you revoke it by signing in to your portal "
    "account.\n"
    "2. Then enroll again: a new application, your coordinator's approval, new codes, and a new key.\n"
    "Until then you cannot sign orders; a colleague with their own certificate can.")


def deadline_passed(reason: str | None, noticed_at: dt.datetime | None, now: dt.datetime) -> bool:
    """True when the reason has a K3 deadline and it is already behind us."""
    incident = INCIDENT_OF_REASON.get(reason or "")
    return bool(incident and noticed_at and revocation_deadline(incident, noticed_at) < now)


def deadline_text(reason: str | None, noticed_at: dt.datetime, now: dt.datetime | None = None) -> str:
    """The K3 reporting deadline for a revocation reason, in words; empty until a reason is chosen. Flagged when the
    deadline has already passed (``now`` given), so no page says "you have 24 hours" after they are over."""
    if not reason:
        return ""
    incident = INCIDENT_OF_REASON.get(reason)
    if incident is None:
        return "There is no legal deadline for this reason; revoke as soon as the certificate should stop working."
    deadline = revocation_deadline(incident, noticed_at)
    hours = int((deadline - noticed_at).total_seconds() // 3600)
    local = deadline.astimezone()
    if now is not None and deadline < now:
        return (f"Report now: the deadline passed at {local:%Y-%m-%d %H:%M} (your computer's time). DEA must be told "
                f"within {hours} hours of noticing; revoke at once and note why it was late.")
    return (f"DEA must be told within {hours} hours: revoke by {local:%Y-%m-%d %H:%M} "
            f"(your computer's time).")


def short_deadline(reason: str | None, noticed_at: dt.datetime | None, now: dt.datetime) -> str:
    """The deadline inside a sentence (the lost-key steps)."""
    incident = INCIDENT_OF_REASON.get(reason or "")
    if incident is None or noticed_at is None:
        return "as soon as you can"
    deadline = revocation_deadline(incident, noticed_at)
    if deadline < now:
        return f"report now: the deadline passed at {deadline.astimezone():%Y-%m-%d %H:%M}"
    return f"by {deadline.astimezone():%Y-%m-%d %H:%M}, your computer's time"


def _confirm_needs(data: Data) -> tuple[str, ...]:
    """Revoking needs the reason checked, and the unlocked key (key path) or a live portal sign-in (lost key)."""
    if data.get("revoked_at"):
        return ()
    if data.get("key_available") is not False:
        return "revocation_ready", "current_secret_ready"
    return ("revocation_ready", "signed_in") if data.get("automatic") else ("revocation_ready",)


def _confirm_resume(data: Data) -> str:
    if "revocation_ready" not in data:
        return "reason"
    return "unlock" if data.get("key_available") is not False else "account"


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
                            slow=True, needs=_confirm_needs, resume_to=_confirm_resume, next="done"),
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
        self.context["other_keys_here"] = self.keys_on_this_computer()
        # A lost or stolen computer: offered on the path without the key (revoked through the portal sign-in,
        # which can revoke the other certificates too).
        self.context["key_file_here"] = ((self.record().key_ref or {}).get("store") == "software"
                                         and data.get("key_available") is False)

    def _reason_accept(self, data: Data) -> None:
        allowed = [r for r, _ in self.context.get("reasons") or []] or list(REVOCATION_REASONS)
        if data.get("reason") not in allowed:
            raise WizardInputError("Choose the reason.", field="reason", code="flow.reason")
        noticed = parse_moment(data.get("noticed_at"))
        if noticed is None or noticed > self.clock() + dt.timedelta(minutes=5):
            raise WizardInputError("Enter when you noticed it (not in the future), e.g. 2026-03-01 09:30.",
                                   field="noticed_at", code="flow.noticed_at")
        data["noticed_at"] = noticed.isoformat()
        data["deadline_text"] = deadline_text(data["reason"], noticed, self.clock())
        data["revocation_ready"] = True
        data["also_revoke"] = ([c["fingerprint"] for c in self.keys_on_this_computer()]
                               if data.get("computer_lost") and data.get("key_available") is False else [])

    def keys_on_this_computer(self) -> list[dict[str, Any]]:
        """The other certificates whose key file is on this computer (superseded and expired ones included): a lost
        or stolen computer took all of them."""
        chosen = self.record()
        if (chosen.key_ref or {}).get("store") != "software":
            return []
        return [{**summarize(r), "certificate_id": certificate_id(r.fingerprint)} for r in self.certificates.list()
                if r.fingerprint and r.fingerprint != chosen.fingerprint
                and (r.key_ref or {}).get("store") == "software"
                and record_status(r) != CertificateStatus.REVOKED.value]

    def banner(self) -> tuple[str, bool] | None:
        """The reporting deadline on every page once a reason is chosen (the reason page shows its own, live)."""
        if self.view in ("situation", "reason", "done") or self.data.get("revoked_at"):
            return None
        text = self.deadline_now(self.data)
        if not text:
            return None
        return text, deadline_passed(self.data.get("reason"), parse_moment(self.data.get("noticed_at")), self.clock())

    def deadline_now(self, data: Data) -> str:
        """The deadline as every page shows it, worked out again now (it may have passed since the reason page)."""
        noticed = parse_moment(data.get("noticed_at"))
        return deadline_text(data.get("reason"), noticed, self.clock()) if noticed else ""

    def _enter_lost(self, data: Data) -> None:
        noticed = parse_moment(data.get("noticed_at"))
        self.context["lost_text"] = LOST_KEY_TEXT.format(deadline=short_deadline(data.get("reason"), noticed,
                                                                                  self.clock()))
        self.context["deadline_text"] = self.deadline_now(data)

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
        self.context["deadline_text"] = self.deadline_now(data)
        self.context["also_revoke"] = [c for c in self.keys_on_this_computer()
                                       if c["fingerprint"] in (data.get("also_revoke") or [])]
        data["unsent_orders"] = unsent_orders(self.certificates.db,
                                              [data["fingerprint"], *(data.get("also_revoke") or [])])
        data.setdefault("hold_orders", True)

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
        self._revoke_the_others(data, reason=reason, key_path=key_path)
        if data.get("computer_lost") and data.get("delete_key_files"):
            self._delete_key_files(data)
        if data.get("hold_orders", True):
            data["held_orders"], data["hold_problems"] = hold_unsent_orders(
                self.certificates.db, [data["fingerprint"], *(data.get("revoked_too") or [])], clock=self.clock)

    def _revoke_the_others(self, data: Data, *, reason: str, key_path: bool) -> None:
        """A lost computer: the other certificates whose key file was on it, revoked with the same sign-in."""
        data["revoked_too"], data["revoke_too_problems"] = [], []
        for fingerprint in data.get("also_revoke") or []:
            try:
                other = self.certificates.get(fingerprint)
                if record_status(other) == CertificateStatus.REVOKED.value:
                    continue
                if data.get("automatic"):
                    if self.session is None:
                        raise WizardInputError("Your portal sign-in has ended.", code="flow.not_signed_in")
                    serial = f"{x509.load_der_x509_certificate(other.certificate_der).serial_number:x}"
                    self.authority.revoke_signed_in(self.session, serial, reason)
                self.certificates.mark_revoked(other.fingerprint, reason=reason)
                data["revoked_too"].append(other.fingerprint)
            except CsosError as exc:
                data["revoke_too_problems"].append(f"{certificate_id(fingerprint)}: {exc.message}")

    def _delete_key_files(self, data: Data) -> None:
        """The key files of the revoked certificates: useless now, and a copy of what the thief has."""
        deleted = []
        for fingerprint in [data["fingerprint"], *(data.get("revoked_too") or [])]:
            record = self.certificates.get(fingerprint)
            ref = record.key_ref or {}
            if ref.get("store") != "software" or record_status(record) != CertificateStatus.REVOKED.value:
                continue
            path = self.certificates.software_store.path_of(record_key_ref(record))
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                data.setdefault("key_destroy_problem", f"A key file could not be deleted ({exc.strerror or exc}).")
                continue
            deleted.append(certificate_id(fingerprint))
        data["key_files_deleted"] = deleted
        if deleted:
            data["key_destroyed"] = True
            with self.certificates.db.session() as session, session.begin():
                append_audit_event(session, action="certificate.key_files_deleted", actor=self.certificates.actor,
                                   details={"certificates": deleted, "why": "computer lost or stolen"})

    def incident(self, now: dt.datetime | None = None) -> Reminder | None:
        """The K3 reminder while this revocation is unfinished (None when no legal deadline applies)."""
        reason = self.data.get("reason")
        noticed = parse_moment(self.data.get("noticed_at"))
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
    reason, noticed = data.get("reason"), parse_moment(data.get("noticed_at"))
    if reason not in INCIDENT_OF_REASON or noticed is None or data.get("revoked_at"):
        return []
    subject = (data.get("certificate") or {}).get("subscriber") or "A CSOS certificate"
    return [incident_reminder(INCIDENT_OF_REASON[reason], noticed, now=now, subject=f"{subject}: revocation",
                              reference=str(data.get("fingerprint", "")))]


__all__ = ["INCIDENT_OF_REASON", "LOST_KEY_TEXT", "REVOCATION_TEXT", "RevocationFlow", "deadline_passed",
           "deadline_text", "short_deadline", "unfinished_revocation_reminders"]
