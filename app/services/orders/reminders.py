"""Reminders with a deadline: certificate and registration expiry (S2) and revocation after a loss (K3).

S2: DEA mails a renewal notice 45 days before a registration expires, and a CSOS certificate ends with the registration
it was issued under. The program reminds at 45, 30, 14, 7 and 1 day(s) before expiry. A reminder is due from its
threshold day until the next one takes over, so someone who opens the program on day 29 still sees the 30-day
reminder; expired items stay listed until they are renewed or superseded.

K3: loss or compromise of a key or its password must be reported (by revoking the certificate) within 24 hours; a
power-of-attorney holder leaving within 6 hours. Incidents are not stored by this module: the revocation flow calls
``incident_reminder`` with what it knows.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from sqlalchemy import select

from app.errors import InvalidValue
from app.models.database import Database
from app.models.orderbook import CertificateRecord, CertificateStatus, Registration

THRESHOLDS_DAYS = (45, 30, 14, 7, 1)


class Severity(enum.Enum):
    NOTICE = "notice"      # 45 and 30 days
    WARNING = "warning"    # 14 and 7 days
    URGENT = "urgent"      # 1 day (or a K3 deadline)
    EXPIRED = "expired"    # past the date: nothing can be signed under it

    @property
    def rank(self) -> int:
        return {"expired": 0, "urgent": 1, "warning": 2, "notice": 3}[self.value]


@dataclass(frozen=True)
class Reminder:
    kind: str              # "certificate" | "registration" | "incident"
    subject: str           # what it is about, in plain words
    reference: str         # certificate fingerprint or DEA number (for the UI to open it)
    expires_on: dt.date
    days_left: int         # negative once expired
    threshold: int | None  # the 45/30/14/7/1 step this reminder belongs to; None once expired
    severity: Severity
    action: str            # what to do, in plain words

    @property
    def headline(self) -> str:
        # Spelled out by hand: "%-d" does not exist on Windows.
        when = f"{self.expires_on:%B} {self.expires_on.day}, {self.expires_on.year}"
        if self.days_left < 0:
            return f"{self.subject} expired on {when}."
        if self.days_left == 0:
            return f"{self.subject} expires today."
        day_word = "day" if self.days_left == 1 else "days"
        return f"{self.subject} expires in {self.days_left} {day_word} ({when})."

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "subject": self.subject, "reference": self.reference,
                "expires_on": self.expires_on.isoformat(), "days_left": self.days_left, "threshold": self.threshold,
                "severity": self.severity.value, "headline": self.headline, "action": self.action}


def threshold_for(days_left: int) -> int | None:
    """The reminder step in force ``days_left`` days before expiry (None: too early, or already expired)."""
    if days_left < 0:
        return None
    due = [t for t in THRESHOLDS_DAYS if days_left <= t]
    return min(due) if due else None


def _severity(threshold: int | None) -> Severity:
    if threshold is None:
        return Severity.EXPIRED
    if threshold <= 1:
        return Severity.URGENT
    if threshold <= 14:
        return Severity.WARNING
    return Severity.NOTICE


def _reminder(kind: str, subject: str, reference: str, expires_on: dt.date, today: dt.date,
              action: str, expired_action: str) -> Reminder | None:
    days_left = (expires_on - today).days
    threshold = threshold_for(days_left)
    if threshold is None and days_left >= 0:
        return None
    return Reminder(kind=kind, subject=subject, reference=reference, expires_on=expires_on, days_left=days_left,
                    threshold=threshold, severity=_severity(threshold),
                    action=action if days_left >= 0 else expired_action)


CERTIFICATE_ACTION = ("Renew the CSOS certificate now (Certificates → Renew); renewal needs the current certificate "
                      "while it is still valid.")
CERTIFICATE_EXPIRED_ACTION = ("This certificate can no longer sign orders. Enroll for a new CSOS certificate (or "
                              "install the renewed one).")
REGISTRATION_ACTION = ("Renew the DEA registration on DEA's Diversion Control website. The CSOS certificates issued "
                       "under it end on the same day; renew them after the registration is renewed.")
REGISTRATION_EXPIRED_ACTION = ("The DEA registration has expired: no controlled-substance order can be placed under it. "
                               "Renew it on DEA's Diversion Control website, then renew the CSOS certificates.")


def _is_csos(der: bytes | None) -> bool:
    """False for a stored certificate outside the CSOS profile (a self-made one, say); no certificate: no verdict."""
    if der is None:
        return True
    from cryptography import x509

    from app.services.certificates.admission import CertificateRefused, csos_view

    try:
        csos_view(x509.load_der_x509_certificate(der))
    except (CertificateRefused, ValueError):
        return False
    return True


def due_reminders(db: Database, *, today: dt.date) -> list[Reminder]:
    """Every reminder due on ``today``, most urgent first."""
    reminders: list[Reminder] = []
    with db.session() as session:
        registrations = {r.id: r for r in session.scalars(select(Registration))}
        certificates = session.scalars(select(CertificateRecord).where(
            CertificateRecord.status.in_((CertificateStatus.ACTIVE, CertificateStatus.EXPIRED)),
            CertificateRecord.not_after.is_not(None)))
        for record in certificates:
            if not _is_csos(record.certificate_der):
                continue  # a certificate outside the CSOS profile (recorded by an older version) is not renewed
            registration = registrations.get(record.registration_id) if record.registration_id else None
            role = "coordinator certificate" if record.kind == "administrative" else "CSOS certificate"
            subject = f"The {role} of {record.subscriber_name or 'an unnamed subscriber'}"
            if registration is not None:
                subject += f" for {registration.dea_number} ({registration.name})"
            reminder = _reminder("certificate", subject, record.fingerprint or "", record.not_after.date(), today,
                                 CERTIFICATE_ACTION, CERTIFICATE_EXPIRED_ACTION)
            if reminder is not None:
                reminders.append(reminder)
        for registration in registrations.values():
            if registration.expires_on is None:
                continue
            reminder = _reminder("registration",
                                 f"DEA registration {registration.dea_number} ({registration.name})",
                                 registration.dea_number, registration.expires_on, today,
                                 REGISTRATION_ACTION, REGISTRATION_EXPIRED_ACTION)
            if reminder is not None:
                reminders.append(reminder)
    reminders.sort(key=lambda r: (r.severity.rank, r.days_left, r.kind, r.reference))
    return reminders


# ---------------------------------------------------------------------------------------------------------------------
# K3: revocation deadlines


class IncidentReason(enum.Enum):
    KEY_LOST = "key_lost"
    KEY_COMPROMISED = "key_compromised"
    PASSWORD_LOST = "password_lost"
    PASSWORD_COMPROMISED = "password_compromised"
    POWER_OF_ATTORNEY_ENDED = "power_of_attorney_ended"

    @property
    def description(self) -> str:
        return {
            "key_lost": "the private key (key file or token) was lost",
            "key_compromised": "the private key may be known to someone else",
            "password_lost": "the key's password or PIN was lost",
            "password_compromised": "the key's password or PIN may be known to someone else",
            "power_of_attorney_ended": "a power-of-attorney holder left or their power of attorney was revoked",
        }[self.value]


REVOCATION_WINDOWS = {reason: dt.timedelta(hours=24) for reason in IncidentReason}
REVOCATION_WINDOWS[IncidentReason.POWER_OF_ATTORNEY_ENDED] = dt.timedelta(hours=6)


def _reason(reason: IncidentReason | str) -> IncidentReason:
    if isinstance(reason, IncidentReason):
        return reason
    try:
        return IncidentReason(str(reason).strip().lower())
    except ValueError:
        choices = ", ".join(r.value for r in IncidentReason)
        raise InvalidValue(f"'{reason}' is not an incident reason; use one of {choices}.",
                           code="incident.reason") from None


def revocation_deadline(reason: IncidentReason | str, noticed_at: dt.datetime) -> dt.datetime:
    """When the revocation request must be in: 24 h after a key/password loss or compromise is noticed, 6 h after a
    power-of-attorney holder leaves (21 CFR 1311.30(e), 1311.45)."""
    if noticed_at.tzinfo is None:
        raise ValueError("noticed_at must be timezone-aware")
    return noticed_at + REVOCATION_WINDOWS[_reason(reason)]


def incident_reminder(reason: IncidentReason | str, noticed_at: dt.datetime, *, now: dt.datetime,
                      subject: str, reference: str = "") -> Reminder:
    """An URGENT reminder (EXPIRED once the deadline has passed) to revoke the certificate concerned."""
    reason = _reason(reason)
    deadline = revocation_deadline(reason, noticed_at)
    left = deadline - now
    hours = int(left.total_seconds() // 3600)
    if left.total_seconds() >= 0:
        action = (f"Revoke the certificate now: {reason.description}. DEA requires the revocation request by "
                  f"{deadline:%Y-%m-%d %H:%M} UTC ({hours} h left).")
        severity = Severity.URGENT
    else:
        action = (f"The deadline to report ({deadline:%Y-%m-%d %H:%M} UTC) has passed: revoke the certificate "
                  f"immediately and note why it was late.")
        severity = Severity.EXPIRED
    return Reminder(kind="incident", subject=subject, reference=reference, expires_on=deadline.date(),
                    days_left=(deadline.date() - now.date()).days, threshold=None, severity=severity, action=action)
