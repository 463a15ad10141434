"""Expiry reminders at 45/30/14/7/1 days (S2) for certificates and registrations, and K3 revocation deadlines."""

from __future__ import annotations

import datetime as dt

import pytest

from app.errors import InvalidValue
from app.models.orderbook import CertificateRecord, CertificateStatus, Registration
from app.services.orders.reminders import (
    IncidentReason,
    Severity,
    due_reminders,
    incident_reminder,
    revocation_deadline,
    threshold_for,
)

TODAY = dt.date(2026, 3, 2)

# days before expiry → (threshold in force, severity); None = no reminder yet
TABLE = [
    (90, None, None),
    (46, None, None),
    (45, 45, Severity.NOTICE),
    (44, 45, Severity.NOTICE),
    (31, 45, Severity.NOTICE),
    (30, 30, Severity.NOTICE),
    (29, 30, Severity.NOTICE),  # opened on day 29: the 30-day reminder is still shown
    (15, 30, Severity.NOTICE),
    (14, 14, Severity.WARNING),
    (8, 14, Severity.WARNING),
    (7, 7, Severity.WARNING),
    (2, 7, Severity.WARNING),
    (1, 1, Severity.URGENT),
    (0, 1, Severity.URGENT),
    (-1, None, Severity.EXPIRED),
    (-400, None, Severity.EXPIRED),
]


def add_registration(db, dea: str, expires_on: dt.date | None, name: str = "Main Street Pharmacy") -> int:
    with db.session() as session, session.begin():
        registration = Registration(dea_number=dea, name=name, address_lines=["1 Main St"], city="Springfield",
                                    state="IL", postal_code="62701", expires_on=expires_on)
        session.add(registration)
        session.flush()
        return registration.id


def add_certificate(db, *, not_after: dt.datetime, status=CertificateStatus.ACTIVE, registration_id=None,
                    fingerprint: str = "ab" * 32, kind: str = "signing") -> None:
    with db.session() as session, session.begin():
        session.add(CertificateRecord(fingerprint=fingerprint, subscriber_name="Pat Purchaser", kind=kind,
                                      registration_id=registration_id, not_before=not_after - dt.timedelta(days=365),
                                      not_after=not_after, status=status, key_ref={}))


@pytest.mark.parametrize("days, threshold, severity", TABLE)
def test_registration_reminders_follow_the_thresholds(db, days, threshold, severity):
    add_registration(db, "BJ6125341", TODAY + dt.timedelta(days=days))
    reminders = due_reminders(db, today=TODAY)
    if severity is None:
        assert reminders == []
        return
    (reminder,) = reminders
    assert (reminder.kind, reminder.reference, reminder.days_left) == ("registration", "BJ6125341", days)
    assert (reminder.threshold, reminder.severity) == (threshold, severity)
    assert reminder.expires_on == TODAY + dt.timedelta(days=days)
    assert "DEA registration BJ6125341 (Main Street Pharmacy)" in reminder.headline
    assert "DEA's Diversion Control website" in reminder.action


@pytest.mark.parametrize("days, threshold, severity", TABLE)
def test_certificate_reminders_follow_the_thresholds(db, days, threshold, severity):
    registration_id = add_registration(db, "BJ6125341", None)  # no expiry recorded: only the certificate reminds
    not_after = dt.datetime.combine(TODAY + dt.timedelta(days=days), dt.time(23, 0), dt.timezone.utc)
    status = CertificateStatus.EXPIRED if days < 0 else CertificateStatus.ACTIVE
    add_certificate(db, not_after=not_after, registration_id=registration_id, status=status)
    reminders = due_reminders(db, today=TODAY)
    if severity is None:
        assert reminders == []
        return
    (reminder,) = reminders
    assert (reminder.kind, reminder.days_left, reminder.threshold, reminder.severity) == (
        "certificate", days, threshold, severity)
    assert reminder.reference == "ab" * 32
    assert reminder.subject == "The CSOS certificate of Pat Purchaser for BJ6125341 (Main Street Pharmacy)"
    if days >= 0:
        assert "Renew the CSOS certificate" in reminder.action
    else:
        assert "can no longer sign orders" in reminder.action and "expired on" in reminder.headline


def test_threshold_function_matches_the_table():
    assert [threshold_for(days) for days, *_ in TABLE] == [threshold for _, threshold, _ in TABLE]


@pytest.mark.parametrize("status", [CertificateStatus.SUPERSEDED, CertificateStatus.REVOKED,
                                    CertificateStatus.PENDING])
def test_replaced_revoked_and_pending_certificates_do_not_remind(db, status):
    add_certificate(db, not_after=dt.datetime.combine(TODAY, dt.time(), dt.timezone.utc), status=status)
    assert due_reminders(db, today=TODAY) == []


def test_most_urgent_first_and_to_json(db):
    add_registration(db, "BJ6125341", TODAY + dt.timedelta(days=40))
    add_registration(db, "AB1234563", TODAY - dt.timedelta(days=3), name="Second Street Pharmacy")
    add_certificate(db, not_after=dt.datetime.combine(TODAY + dt.timedelta(days=6), dt.time(), dt.timezone.utc))
    reminders = due_reminders(db, today=TODAY)
    assert [(r.kind, r.severity) for r in reminders] == [
        ("registration", Severity.EXPIRED), ("certificate", Severity.WARNING), ("registration", Severity.NOTICE)]
    data = reminders[1].to_json()
    assert data["severity"] == "warning" and data["threshold"] == 7 and data["days_left"] == 6
    assert data["headline"].endswith("expires in 6 days (March 8, 2026).")
    assert reminders[1].subject.startswith("The CSOS certificate of Pat Purchaser")


# ---------------------------------------------------------------------------------------------------------------------
# K3


NOTICED = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("reason, hours", [
    (IncidentReason.KEY_LOST, 24), (IncidentReason.KEY_COMPROMISED, 24), ("password_lost", 24),
    ("PASSWORD_COMPROMISED", 24), (IncidentReason.POWER_OF_ATTORNEY_ENDED, 6), ("power_of_attorney_ended", 6),
])
def test_revocation_deadlines(reason, hours):
    assert revocation_deadline(reason, NOTICED) == NOTICED + dt.timedelta(hours=hours)


def test_revocation_deadline_rejects_unknown_reasons_and_naive_times():
    with pytest.raises(InvalidValue) as err:
        revocation_deadline("lost_my_glasses", NOTICED)
    assert err.value.code == "incident.reason" and "key_lost" in err.value.message
    with pytest.raises(ValueError):
        revocation_deadline(IncidentReason.KEY_LOST, NOTICED.replace(tzinfo=None))


def test_incident_reminder_is_urgent_until_the_deadline_then_overdue():
    open_ = incident_reminder("power_of_attorney_ended", NOTICED, now=NOTICED + dt.timedelta(hours=2),
                              subject="Certificate of Sam Signer", reference="cd" * 32)
    assert open_.severity is Severity.URGENT and open_.kind == "incident"
    assert "2026-03-02 15:30 UTC (4 h left)" in open_.action
    late = incident_reminder(IncidentReason.KEY_LOST, NOTICED, now=NOTICED + dt.timedelta(hours=25),
                             subject="Certificate of Sam Signer")
    assert late.severity is Severity.EXPIRED and "has passed" in late.action


def test_a_stored_certificate_outside_the_csos_profile_never_reminds(db, tmp_path):
    """Issue 22: a self-made CN=Test certificate filed by an older version as a coordinator certificate nagged
    "The coordinator certificate of Test expires in 30 days… Renew". Only CSOS certificates remind."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    from tests.fixtures.hostile_certificates import self_made_p12
    from tests.pki import build_training_pki

    self_made = pkcs12.load_pkcs12(self_made_p12("Pw-12345678!x"), b"Pw-12345678!x").cert.certificate
    genuine = build_training_pki(tmp_path).issue_admin().cert
    for fingerprint, cert in (("cd" * 32, self_made), ("ef" * 32, genuine)):
        with db.session() as session, session.begin():
            session.add(CertificateRecord(
                fingerprint=fingerprint, subscriber_name="Test", kind="administrative", key_ref={},
                certificate_der=cert.public_bytes(serialization.Encoding.DER), status=CertificateStatus.ACTIVE,
                not_before=cert.not_valid_before_utc, not_after=cert.not_valid_after_utc))
    today = (self_made.not_valid_after_utc - dt.timedelta(days=30)).date()
    # The genuine coordinator certificate (3 years) is not due; the self-made one (30 days) would be, and is not.
    assert [r.reference for r in due_reminders(db, today=today)] == []
    assert [r.reference for r in due_reminders(db, today=(genuine.not_valid_after_utc - dt.timedelta(days=7)).date())
            ] == ["ef" * 32]
