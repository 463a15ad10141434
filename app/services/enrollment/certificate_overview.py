"""The certificates page's rows: one per certificate, with its next action (enroll, renew, revoke, install).

Qt-free, so the page only renders what this returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from sqlalchemy import select

from app.errors import CsosError
from app.models.orderbook import CertificateRecord, CertificateStatus, Registration
from app.services.certificates.book import ADMINISTRATIVE, CertificateBook, record_key_ref
from app.services.enrollment.flow_common import key_location_text, record_status

#: an active certificate can be renewed from this many days before it ends
RENEW_FROM_DAYS = 45

#: how many hex digits of the SHA-256 fingerprint name a certificate on screen, in e-mails, the CLI and the demo
CERTIFICATE_ID_DIGITS = 16

ENDS_WITH_REGISTRATION = ("A certificate never outlasts its DEA registration: the new certificate ends when the "
                          "registration does.")


def certificate_id(fingerprint: str | None) -> str:
    """The one short name of a certificate everywhere (list, e-mails, CLI, demo): the first 16 hex digits of its
    SHA-256 fingerprint, so a person can compare what two places show."""
    return re.sub(r"[^0-9a-f]", "", str(fingerprint or "").lower())[:CERTIFICATE_ID_DIGITS]


def certificate_id_of(certificate_der: bytes) -> str:
    """``certificate_id`` of a DER certificate (the sandbox's e-mails name certificates this way too)."""
    return certificate_id(hashlib.sha256(certificate_der).hexdigest())


@dataclass(frozen=True)
class RenewalWindow:
    """When renewal opens for a certificate ending on ``ends_on`` (DESIGN §1 S2), said plainly."""

    ends_on: dt.date
    opens_on: dt.date
    today: dt.date

    @property
    def open(self) -> bool:
        return self.today >= self.opens_on

    @property
    def days_left(self) -> int:
        return (self.ends_on - self.today).days

    def text(self) -> str:
        if self.open:
            return (f"Renewal is open: it opened on {self.opens_on:%Y-%m-%d}, {RENEW_FROM_DAYS} days before this "
                    f"certificate ends on {self.ends_on:%Y-%m-%d}. " + ENDS_WITH_REGISTRATION)
        return (f"Renewal opens on {self.opens_on:%Y-%m-%d}, {RENEW_FROM_DAYS} days before this certificate ends on "
                f"{self.ends_on:%Y-%m-%d}. Renewing earlier gains nothing: " + ENDS_WITH_REGISTRATION[0].lower()
                + ENDS_WITH_REGISTRATION[1:])


def renewal_window(not_after: dt.date | dt.datetime, *, today: dt.date) -> RenewalWindow:
    ends = not_after.date() if isinstance(not_after, dt.datetime) else not_after
    return RenewalWindow(ends_on=ends, opens_on=ends - dt.timedelta(days=RENEW_FROM_DAYS), today=today)


@dataclass(frozen=True)
class CertificateRow:
    fingerprint: str
    certificate_id: str
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


def _key_location(certificates: CertificateBook, record: CertificateRecord) -> str:
    """Where the key is; a key file deleted (after a revocation) is said to be gone, not "on this computer"."""
    ref = record.key_ref or {}
    if ref.get("store") == "software":
        try:
            if not certificates.software_store.path_of(record_key_ref(record)).exists():
                return "Key file deleted"
        except CsosError:
            return "No key here"
    return key_location_text(ref)


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
            action, text = "renew", (f"Renew now: {days} day{'s' if days != 1 else ''} left. The new certificate "
                                     "ends with the registration.")
        elif status == CertificateStatus.ACTIVE.value:
            window = renewal_window(record.not_after, today=today)
            action = "approvals" if admin else "none"
            text = (("Review applications in Approvals. " if admin else "")
                    + f"Renewal opens {window.opens_on:%Y-%m-%d}, {RENEW_FROM_DAYS} days before the end. The new "
                    "certificate ends with the registration.")
        elif status == CertificateStatus.EXPIRED.value:
            action, text = "enroll", "Expired: enroll again (an expired certificate cannot be renewed)."
        elif status == CertificateStatus.REVOKED.value:
            action, text = "none", "Revoked: kept for the records. Enroll again if this person still orders."
        else:
            action, text = "none", "Replaced by its renewal: kept for the records."
        if status not in (CertificateStatus.ACTIVE.value, CertificateStatus.PENDING.value):
            days = None  # a revoked, expired or replaced certificate has no "days left"
        rows.append(CertificateRow(
            fingerprint=record.fingerprint or (record.key_ref or {}).get("key_id", ""),
            certificate_id=certificate_id(record.fingerprint),
            subscriber=record.subscriber_name or "(waiting for certificate)",
            kind="Coordinator" if admin else "Signing", status=status,
            registration=registration.dea_number if registration else "",
            registration_name=registration.name if registration else "",
            registration_expires=registration.expires_on if registration else None,
            schedules=record.schedules.replace(",", ", ") if record.schedules else ("none (cannot sign)" if admin
                                                                                    else ""),
            key_location=_key_location(certificates, record),
            not_after=record.not_after.date() if record.not_after else None, days_left=days,
            next_action=text, action=action))
    return rows


__all__ = ["CERTIFICATE_ID_DIGITS", "ENDS_WITH_REGISTRATION", "RENEW_FROM_DAYS", "CertificateRow", "RenewalWindow",
           "certificate_id", "certificate_id_of", "certificate_rows", "renewal_window"]
