"""Renewal as a wizard flow: a new key and certificate before the current one ends (DESIGN §1 S2).

The renewal request is signed with the current certificate (training portal), or the person renews on DEA's portal
and installs the certificate file it gives.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization

from app.models.orderbook import CertificateRecord, CertificateStatus
from app.services.certificates.book import CertificateBook
from app.services.enrollment.authority import signed_request
from app.services.enrollment.certificate_overview import certificate_id, renewal_window
from app.services.enrollment.flow_common import (
    SOFTWARE,
    TOKEN,
    Flow,
    key_label,
    key_place,
    personal_words_of,
    read_certificate_file,
    record_status,
    summarize,
)
from app.services.enrollment.wizard import Data, Step, WizardInputError
from app.services.keys import KeyStoreError


#: why a certificate may be renewed before its renewal window opens, and what the page says about each
EARLY_REASONS = {
    "schedules": ("The registration's schedules changed",
                  "Renew now: the new certificate carries the schedules DEA now lists for the registration."),
    "name": ("My name or e-mail address changed",
             "A renewal keeps the old details, so this needs a new enrollment with the new ones."),
    "key": ("My key may be lost, or someone else may know its password",
            "A key that may be in other hands cannot be trusted to sign a renewal: revoke the certificate first."),
}

KEY_LOST_TEXT = (
    "A renewal request is signed with the current key, so a key that may be lost or known to someone else cannot "
    "renew. What to do:\n"
    "1. Close this window and, in Certificates, choose this certificate and Revoke… (reason: the key was lost or "
    "stolen). Do it today: DEA must be told within 24 hours of noticing.\n"
    "2. Then enroll again for a new certificate with a new key.")


def _after_current(data: Data) -> str:
    if data.get("details_changed") or data.get("early_reason") == "name":
        return "details_changed"
    if data.get("early_reason") == "key":
        return "key_lost"
    return "key_location"


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
                            next=_after_current),
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
            "key_lost": Step("Revoke first, then enroll again", last=True),
        }

    def current_record(self) -> CertificateRecord:
        return self.certificates.get(self.data["current_fingerprint"])

    def _enter_current(self, data: Data) -> None:
        record = self.current_record()
        data["current"] = summarize(record)
        data["current"]["certificate_id"] = certificate_id(record.fingerprint)
        if record.not_after is not None:
            window = renewal_window(record.not_after, today=self.clock().date())
            data["renewal_window"] = {"open": window.open, "opens_on": window.opens_on.isoformat(),
                                      "ends_on": window.ends_on.isoformat(), "text": window.text()}
        ref = (record.key_ref or {})
        data.setdefault("key_store", TOKEN if ref.get("store") == "pkcs11" else SOFTWARE)
        if ref.get("token"):
            data.setdefault("token_serial", ref["token"].get("serial"))

    def _current_accept(self, data: Data) -> None:
        if data.get("details_changed") or data.get("early_reason") in ("name", "key"):
            return
        record = self.current_record()
        now = self.clock()
        if record.status is not CertificateStatus.ACTIVE:
            raise WizardInputError(f"This certificate is {record.status.value}: only an active certificate can be "
                                   "renewed. Enroll for a new certificate instead.", code="flow.not_renewable")
        if record.not_after is not None and record.not_after <= now:
            raise WizardInputError("This certificate has expired: it can no longer sign a renewal request. Enroll "
                                   "for a new certificate instead.", code="flow.expired")
        window = renewal_window(record.not_after, today=now.date()) if record.not_after is not None else None
        if window is not None and not window.open and data.get("early_reason") not in EARLY_REASONS:
            raise WizardInputError(
                f"Renewal opens on {window.opens_on:%Y-%m-%d}. Until then a renewal gains nothing (the new certificate "
                "would end on the same day as this one), so there is nothing to do now: close this window and CSOS "
                "Desk reminds you when renewal opens. Renew early only if something below changed.",
                field="early_reason", code="flow.renewal_not_open")

    def _key_location_accept(self, data: Data) -> None:
        if data.get("key_id") and data.get("key_made_in") == key_place(data):
            data["key_secret_ready"] = True
            return
        current = data.get("current") or summarize(self.current_record())
        self._check_key_choice(data, personal_words=personal_words_of({"full_name": current.get("subscriber", ""),
                                                                     "email": current.get("email", "")}))
        view = self._current_view()
        self._make_key_and_request(data, full_name=view.subscriber_name or "Subscriber", email=view.email or "",
                                   registrant_name=view.organization or view.registrant_name or "Registrant",
                                   subject_serial=view.subject_serial or "0",
                                   label=key_label(view.subscriber_name or "Renewal", self.clock()))

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


__all__ = ["EARLY_REASONS", "KEY_LOST_TEXT", "RenewalFlow"]
