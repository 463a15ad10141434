"""The certificates page's rows: one per certificate, with its next action (enroll, renew, revoke, install).

Qt-free, so the page only renders what this returns.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from app.models.orderbook import CertificateStatus, Registration
from app.services.certificates.book import ADMINISTRATIVE, CertificateBook
from app.services.enrollment.flow_common import key_location_text, record_status

#: an active certificate can be renewed from this many days before it ends
RENEW_FROM_DAYS = 45


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


__all__ = ["RENEW_FROM_DAYS", "CertificateRow", "certificate_rows"]
