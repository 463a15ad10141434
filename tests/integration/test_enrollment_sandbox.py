"""The enrollment, renewal and revocation flows against the real training portal over HTTPS (no Qt).

Real parts only: the sandbox on loopback, a real SQLite order book, real software keys, real certificates and CRLs.
"""

from __future__ import annotations

import json

import pytest
import requests
from cryptography import x509

from app.config import load_config
from app.models.database import open_database, sqlite_url
from app.models.orderbook import CertificateStatus
from app.services.certificates.book import CertificateBook
from app.services.enrollment.authority import EnrollmentError, SandboxAuthority
from app.services.enrollment.enroll_flow import EnrollmentFlow
from app.services.enrollment.renewal_flow import RenewalFlow
from app.services.enrollment.revocation_flow import RevocationFlow
from app.services.enrollment.wizard import WizardInputError, WizardStateStore
from tests.integration.conftest import CLINIC, IDENTITY, PASSWORD, PHARMACY, SandboxClient, new_email

pytestmark = pytest.mark.integration

KEY_PASSWORD = "Quiet-Harbor-Lantern-42"


@pytest.fixture
def workspace(tmp_path, sandbox):
    db = open_database(sqlite_url(tmp_path / "orderbook.sqlite3"))
    config = load_config(data_dir=tmp_path / "data", database_url=db.url, profile="training")
    book = CertificateBook(db, config, environ={})
    authority = SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle, trust_bundle=sandbox.trust_bundle)
    yield authority, book, WizardStateStore(config.data_dir / "wizards")
    book.close()
    db.close()


def code_for(client: SandboxClient, email: str) -> str:
    return client.last_message(email, "login_code", "email")["data"]["code"]


def enroll(authority, book, store, client: SandboxClient, registration: dict, *, email: str | None = None
           ) -> EnrollmentFlow:
    email = email or new_email("flow")
    flow = EnrollmentFlow(authority=authority, certificates=book, store=store)
    flow.start()
    flow.next()
    flow.next({"role": "registrant"})
    flow.next({"full_name": "Jordan Flow", "email": email})
    assert registration["dea_number"] in {r["dea_number"] for r in flow.context["registrations"]}
    flow.next({"registrations": [registration["dea_number"]]})
    assert flow.view == "agreement"
    flow.next({"agreement_accepted": True})
    flow.next({"identity_document_type": IDENTITY["document_type"],
               "identity_document_number": IDENTITY["document_number"], "date_of_birth": IDENTITY["date_of_birth"]})
    assert flow.view == "account"
    flow.next({"account_choice": "new", "password": PASSWORD, "password_confirm": PASSWORD})
    flow.next({"sign_in_code": code_for(client, email)})
    assert flow.view == "submit"
    flow.next()
    assert flow.view == "waiting" and flow.data["application_status"] == "pending"
    assert flow.poll() is False
    coordinator = client.coordinator_token(registration)
    assert client.approve(coordinator, flow.data["application_id"]).status_code == 200
    assert flow.poll() is True and flow.view == "codes"
    reference, access = client.codes(email)
    flow.next({"reference_number": reference, "access_code": access})
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    assert flow.view == "request" and flow.data["csr_pem"].startswith("-----BEGIN CERTIFICATE REQUEST")
    flow.next()
    assert flow.view == "installed"
    return flow


def test_enrollment_ends_with_a_checked_active_certificate_and_saves_no_secret(workspace, sandbox_client):
    authority, book, store = workspace
    flow = enroll(authority, book, store, sandbox_client, PHARMACY)
    assert flow.data["check_problems"] == []
    installed = flow.data["installed"][0]
    assert installed["status"] == "active" and installed["kind"] == "signing"
    record = book.signing_certificate_for(PHARMACY["dea_number"])
    assert record.fingerprint == installed["fingerprint"]
    assert flow.data["test_order_registration"] == PHARMACY["dea_number"]
    assert store.saved() == []  # finished: progress discarded


def test_progress_saved_while_waiting_has_no_secret_and_resumes_after_a_new_sign_in(workspace, sandbox_client):
    authority, book, store = workspace
    email = new_email("resume")
    flow = EnrollmentFlow(authority=authority, certificates=book, store=store)
    flow.start()
    for updates in ({}, {"role": "registrant"}, {"full_name": "Riley Resume", "email": email},
                    {"registrations": [CLINIC["dea_number"]]}, {"agreement_accepted": True},
                    {"identity_document_type": "passport", "identity_document_number": "P7654321",
                     "date_of_birth": "1975-01-31"},
                    {"account_choice": "new", "password": PASSWORD, "password_confirm": PASSWORD}):
        flow.next(updates)
    flow.next({"sign_in_code": code_for(sandbox_client, email)})
    flow.next()
    assert flow.view == "waiting"
    saved_text = store.path("enrollment").read_text()
    for secret in (PASSWORD, "P7654321", "1975-01-31"):
        assert secret not in saved_text
    assert json.loads(saved_text)["view"] == "waiting"

    again = EnrollmentFlow(authority=authority, certificates=book, store=store)  # the program was restarted
    assert again.resumed and again.view == "account" and again.data["email"] == email
    again.next({"account_choice": "existing", "password": PASSWORD})
    again.next({"sign_in_code": code_for(sandbox_client, email)})
    assert again.view == "waiting"
    token = sandbox_client.coordinator_token(CLINIC)
    rejected = sandbox_client.post(f"/reviews/{again.data['application_id']}", token,
                                   json={"decision": "reject", "reason": "Not on our staff list"})
    assert rejected.status_code == 200
    assert again.poll() is True and again.view == "rejected"
    assert again.data["application_reason"] == "Not on our staff list"
    assert store.saved() == []


def test_wrong_access_code_points_at_the_code_and_loses_nothing(workspace, sandbox_client):
    authority, book, store = workspace
    email, _, _ = sandbox_client.approved_applicant(PHARMACY)
    flow = EnrollmentFlow(authority=authority, certificates=book, store=None,
                          data={"full_name": "Alex Applicant", "email": email, "registrations": ["BJ6125341"],
                                "registration_names": {"BJ6125341": "Main Street Pharmacy"}})
    flow.wizard.jump("codes")
    reference, access = sandbox_client.codes(email)
    flow.next({"reference_number": reference, "access_code": "WRONG0000000000"})
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    with pytest.raises(WizardInputError) as caught:
        flow.next()
    assert caught.value.field == "access_code" and "tries left" in caught.value.message
    assert flow.view == "request" and flow.data["key_id"]
    key_id = flow.data["key_id"]
    flow.back()
    flow.back()
    flow.next({"reference_number": reference, "access_code": access})
    flow.next({"key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    assert flow.data["key_id"] == key_id  # the key made before is used, not a second one
    flow.next()
    assert flow.view == "installed"


def test_renewal_waits_for_the_coordinator_then_supersedes_the_old_certificate(workspace, sandbox_client):
    authority, book, store = workspace
    first = enroll(authority, book, store, sandbox_client, PHARMACY)
    old = first.data["installed"][0]["fingerprint"]
    flow = RenewalFlow(authority=authority, certificates=book, store=store, fingerprint=old)
    flow.start()
    assert flow.data["current"]["registration"] == PHARMACY["dea_number"]
    with pytest.raises(WizardInputError) as early:  # a year before the end: renewal is not open yet
        flow.next({})
    assert early.value.code == "flow.renewal_not_open"
    flow.next({"early_reason": "schedules"})  # something changed: renewing early is worth it
    new_password = "Second-Window-Harvest-77"
    flow.next({"key_store": "software", "key_password": new_password, "key_password_confirm": new_password})
    with pytest.raises(WizardInputError) as caught:
        flow.next({"current_secret": "not the password"})
    assert caught.value.field == "current_secret" and flow.view == "unlock"
    flow.next({"current_secret": KEY_PASSWORD})
    assert flow.view == "waiting" and flow.data["renewal_status"] == "pending"
    token = sandbox_client.coordinator_token(PHARMACY)
    assert sandbox_client.approve(token, flow.data["renewal_id"]).status_code == 200
    assert flow.poll() is True and flow.view == "installed"
    assert flow.data["old_status"] == "superseded"
    assert book.get(old).status is CertificateStatus.SUPERSEDED
    new = book.signing_certificate_for(PHARMACY["dea_number"])
    assert new.fingerprint == flow.data["installed"][0]["fingerprint"] != old


def test_revocation_reaches_the_crl_and_destroys_the_key(workspace, sandbox, sandbox_client):
    authority, book, store = workspace
    first = enroll(authority, book, store, sandbox_client, CLINIC)
    fingerprint = first.data["installed"][0]["fingerprint"]
    record = book.get(fingerprint)
    key_path = book.software_store.path_of(__import__("app.services.certificates.book", fromlist=["x"])
                                           .record_key_ref(record))
    assert key_path.exists()
    flow = RevocationFlow(authority=authority, certificates=book, store=store, fingerprint=fingerprint)
    flow.start()
    flow.next({"key_available": True})
    flow.next({"reason": "key_compromise"})
    assert "24 hours" in flow.data["deadline_text"]
    flow.next({"current_secret": KEY_PASSWORD})
    with pytest.raises(WizardInputError):
        flow.next({"confirmed": False})
    flow.next({"confirmed": True})
    assert flow.view == "done" and flow.data["key_destroyed"] is True
    assert not key_path.exists()
    assert book.get(fingerprint).status is CertificateStatus.REVOKED
    crl = x509.load_der_x509_crl(requests.get(sandbox.crl_urls["sub"], verify=str(sandbox.tls_bundle),
                                              timeout=30).content)
    serial = x509.load_der_x509_certificate(record.certificate_der).serial_number
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_lost_key_path_revokes_through_the_portal_account(workspace, sandbox_client):
    authority, book, store = workspace
    email = new_email("lost")
    first = enroll(authority, book, store, sandbox_client, CLINIC, email=email)
    fingerprint = first.data["installed"][0]["fingerprint"]
    flow = RevocationFlow(authority=authority, certificates=book, store=store, fingerprint=fingerprint)
    flow.start()
    flow.next({"key_available": False})
    assert [r for r, _ in flow.context["reasons"]] == ["key_compromise", "lost_password"]
    flow.next({"reason": "lost_password"})
    assert flow.view == "lost" and "enroll again" in flow.context["lost_text"]
    flow.next()
    flow.next({"email": email, "password": PASSWORD})
    flow.next({"sign_in_code": code_for(sandbox_client, email)})
    assert flow.view == "confirm"
    flow.next({"confirmed": True})
    assert flow.view == "done" and flow.data["key_destroyed"] is False
    assert book.get(fingerprint).status is CertificateStatus.REVOKED


def test_unreachable_portal_is_a_plain_error(tmp_path, sandbox):
    authority = SandboxAuthority("https://127.0.0.1:9/portal", tls_bundle=sandbox.tls_bundle)
    with pytest.raises(EnrollmentError) as caught:
        authority.registrations()
    assert caught.value.code == "enrollment.unreachable" and "training" in caught.value.message
