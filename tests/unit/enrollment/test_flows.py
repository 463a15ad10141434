"""The enrollment, import, renewal and revocation flows without Qt: every branch, back and resume.

The authority is an in-memory stand-in of the ``EnrollmentAuthority`` interface that issues real certificates from a
real training CA (tests/pki.py); keys, requests and records are real (software key store, SQLite).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from app.config import load_config
from app.models.orderbook import CertificateStatus
from app.services.certificates.book import CertificateBook
from app.services.certificates.profile import SubscriberIdentity
from app.services.enrollment.authority import (
    AccountInfo,
    Application,
    EnrollmentAuthority,
    EnrollmentError,
    Issued,
    IssuedCertificate,
    PortalAuthority,
    PortalRegistration,
    PortalSession,
    RenewalStatus,
    SignInChallenge,
)
from app.services.enrollment.certificate_overview import certificate_rows
from app.services.enrollment.enroll_flow import EnrollmentFlow
from app.services.enrollment.flows import saved_progress
from app.services.enrollment.import_flow import ImportFlow
from app.services.enrollment.renewal_flow import RenewalFlow
from app.services.enrollment.revocation_flow import RevocationFlow, deadline_text, unfinished_revocation_reminders
from app.services.enrollment.wizard import WizardInputError, WizardStateStore
from tests.pki import build_training_pki, subscriber_key

DEA = "BJ6125341"
KEY_PASSWORD = "Granite-Willow-Beacon-63"
PORTAL_PASSWORD = "Portal-Practice-Pass-2026"
NOW = dt.datetime.now(dt.timezone.utc)


class MemoryAuthority(EnrollmentAuthority):
    """The authority's rules that the flows rely on, in memory, issuing from a real CA."""

    training = True

    def __init__(self, pki, *, approve_at_once=False, renewal_needs_approval=False):
        self.pki = pki
        self.approve_at_once = approve_at_once
        self.renewal_needs_approval = renewal_needs_approval
        self.accounts: dict[str, str] = {}
        self.applications: dict[str, Application] = {}
        self.codes: dict[str, str] = {}
        self.renewals: dict[str, RenewalStatus] = {}
        self.revoked: list[tuple[str, str]] = []
        self.sent: list[str] = []

    def create_account(self, *, email, full_name, password):
        if email in self.accounts:
            raise EnrollmentError("Account exists.", code="enrollment.email_taken", field="email")
        self.accounts[email] = password

    def start_sign_in(self, *, email, password):
        if self.accounts.get(email) != password:
            raise EnrollmentError("Wrong password.", code="enrollment.login_failed", field="password")
        return SignInChallenge(challenge_id=f"c-{email}", delivered_to="email", message="Code sent.")

    def finish_sign_in(self, *, challenge_id, code):
        if code != "123456":
            raise EnrollmentError("Wrong code.", code="enrollment.login_code_wrong", field="sign_in_code")
        return PortalSession(token="t", email=challenge_id[2:], full_name="Pat")

    def account(self, session):
        return AccountInfo(email=session.email, full_name="Pat", subscriber_serial="4242", coordinator_of=())

    def registrations(self):
        return [PortalRegistration(dea_number=DEA, name="Main Street Pharmacy", address_lines=("1 Main St",),
                                   city="Springfield", state="IL", postal_code="62701",
                                   schedules=("II", "III", "IV", "V"), expires_at=NOW + dt.timedelta(days=300))]

    def submit_application(self, session, request):
        self.sent.append(request.role)
        status = "approved" if self.approve_at_once else "pending"
        app = Application(id=f"app{len(self.applications)}", kind="enrollment", role=request.role, status=status,
                          applicant_email=session.email, full_name=request.full_name,
                          registrations=request.registrations)
        self.applications[app.id] = app
        return app

    def application(self, session, application_id):
        return self.applications[application_id]

    def decide_now(self, application_id, status, reason=None):
        app = self.applications[application_id]
        self.applications[application_id] = Application(**{**app.__dict__, "status": status, "reason": reason})

    def _issue(self, csr_pem: str) -> Issued:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        cert = self.pki.sub.issue_signing_certificate(
            csr, subscriber=SubscriberIdentity(full_name="Pat Purchaser", email="pat@example.test", serial="4242"),
            registration=self.pki.registration(dea=DEA))
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        chain = "".join(c.public_bytes(serialization.Encoding.PEM).decode()
                        for c in (self.pki.sub.certificate, self.pki.root.certificate))
        return Issued(certificates=(IssuedCertificate(serial=f"{cert.serial_number:x}", fingerprint="", kind="signing",
                                                      registration=DEA, status="active", certificate_pem=pem,
                                                      not_after=cert.not_valid_after_utc),), chain_pem=chain)

    def request_certificate(self, *, reference_number, access_code, csr_pem):
        if access_code != "ACCESS":
            raise EnrollmentError("The access code is not right.", code="enrollment.access_code_wrong",
                                  field="access_code")
        return self._issue(csr_pem)

    def renew(self, signed):
        from app.services.signing.cms import parse_signed_document

        content = json.loads(parse_signed_document(signed).content)
        assert content["type"] == "renewal_request"
        if self.renewal_needs_approval:
            status = RenewalStatus(status="pending", renewal_id="r1")
            self._pending_csr = content["csr_pem"]
        else:
            status = RenewalStatus(status="issued", renewal_id="r1", issued=self._issue(content["csr_pem"]))
        self.renewals["r1"] = status
        return status

    def renewal(self, renewal_id):
        return self.renewals[renewal_id]

    def revoke(self, signed):
        from app.services.signing.cms import parse_signed_document

        content = json.loads(parse_signed_document(signed).content)
        self.revoked.append((content["certificate_serial"], content["reason"]))
        return None

    def revoke_signed_in(self, session, serial, reason):
        self.revoked.append((serial, reason))

    def pending_reviews(self, session):
        return []

    def decide(self, session, application_id, *, approve, reason=""):
        raise NotImplementedError

    def poa_document(self, session, application_id):
        return b""


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return build_training_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def book(tmp_path, db, pki):
    config = load_config(data_dir=tmp_path / "data", database_url=db.url, profile="training")
    certificates = CertificateBook(db, config, environ={}, trust_roots=pki.trust_roots)  # the profile's CSOS root
    yield certificates
    certificates.close()


@pytest.fixture
def store(tmp_path):
    return WizardStateStore(tmp_path / "wizards")


def walk_to_submit(flow, *, role="registrant", poa=None):
    flow.start()
    flow.next()
    flow.next({"role": role})
    flow.next({"full_name": "Pat Purchaser", "email": "Pat@Example.test"})
    flow.next({"registrations": [DEA]})
    if role == "power_of_attorney":
        assert flow.view == "poa"
        flow.next({"poa_file": str(poa)})
    assert flow.view == "agreement"
    flow.next({"agreement_accepted": True})
    if flow.data["automatic"]:
        flow.next({"identity_document_type": "passport", "identity_document_number": "X123",
                   "date_of_birth": "1980-04-02"})
        flow.next({"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD})
        flow.next({"sign_in_code": "123456"})
    else:
        flow.next({"identity_done_on_portal": True})
    assert flow.view == "submit"


def test_enrollment_registrant_waits_then_gets_codes_and_a_certificate(pki, book, store):
    authority = MemoryAuthority(pki)
    flow = EnrollmentFlow(authority=authority, certificates=book, store=store)
    walk_to_submit(flow)
    assert flow.data["email"] == "pat@example.test" and flow.data["subscriber_serial"] == "4242"
    flow.next()
    assert flow.view == "waiting" and not flow.can_go_back and flow.poll_seconds() == 5.0
    with pytest.raises(WizardInputError) as caught:
        flow.next()  # "Check now" while still pending
    assert caught.value.code == "flow.still_pending"
    assert flow.poll() is False
    authority.decide_now(flow.data["application_id"], "approved")
    assert flow.poll() is True and flow.view == "codes"
    flow.next({"reference_number": "1234-5678", "access_code": "access"})
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    flow.next()
    assert flow.view == "installed" and flow.is_last
    assert flow.data["installed"][0]["registration"] == DEA  # the registration joined the order book
    assert book.signing_certificate_for(DEA).status is CertificateStatus.ACTIVE
    assert store.saved() == [] and authority.sent == ["registrant"]


def test_power_of_attorney_needs_a_pdf_and_coordinator_approved_at_once_skips_waiting(pki, book, tmp_path):
    not_pdf = tmp_path / "poa.txt"
    not_pdf.write_text("hello")
    flow = EnrollmentFlow(authority=MemoryAuthority(pki, approve_at_once=True), certificates=book)
    flow.start()
    for updates in ({}, {"role": "power_of_attorney"}, {"full_name": "Pat", "email": "p@example.test"},
                    {"registrations": [DEA]}):
        flow.next(updates)
    assert flow.view == "poa"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"poa_file": str(not_pdf)})
    assert caught.value.field == "poa_file" and "PDF" in caught.value.message
    pdf = tmp_path / "poa.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    flow.next({"poa_file": str(pdf)})
    flow.next({"agreement_accepted": True})
    flow.next({"identity_document_type": "passport", "identity_document_number": "X1", "date_of_birth": "1970-01-01"})
    flow.next({"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD})
    flow.next({"sign_in_code": "123456"})
    flow.next()
    assert flow.view == "codes"


@pytest.mark.parametrize("view, updates, field", [
    ("role", {"role": "boss"}, "role"),
    ("person", {"full_name": "", "email": "x@y.z"}, "full_name"),
    ("person", {"full_name": "P" * 65, "email": "x@y.z"}, "full_name"),
    ("person", {"full_name": "Pat", "email": "nope"}, "email"),
    ("registrations", {"registrations": []}, "registrations"),
    ("registrations", {"registrations": [f"R{i}" for i in range(11)]}, "registrations"),
    ("agreement", {"agreement_accepted": False}, "agreement_accepted"),
    ("identity", {"identity_document_type": "passport", "identity_document_number": "", "date_of_birth": "x"},
     "identity_document_number"),
    ("identity", {"identity_document_type": "passport", "identity_document_number": "1", "date_of_birth": "2/4/80x"},
     "date_of_birth"),
    ("identity", {"identity_document_type": "passport", "identity_document_number": "1", "date_of_birth": "2999-01-01"},
     "date_of_birth"),
    ("account", {"email": "p@example.test", "password": PORTAL_PASSWORD, "password_confirm": "other"},
     "password_confirm"),
    ("codes", {"reference_number": "", "access_code": "A"}, "reference_number"),
    ("codes", {"reference_number": "1", "access_code": ""}, "access_code"),
    ("key_location", {"key_store": "software", "key_password": "short", "key_password_confirm": "short"},
     "key_password"),
    ("key_location", {"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": "x"},
     "key_password_confirm"),
    ("key_location", {"key_store": "token"}, "token_serial"),
])
def test_each_entry_rule_points_at_its_entry(pki, book, view, updates, field):
    flow = EnrollmentFlow(authority=MemoryAuthority(pki), certificates=book,
                          data={"full_name": "Pat", "email": "p@example.test", "registrations": [DEA]})
    flow.wizard.jump(view)
    with pytest.raises(WizardInputError) as caught:
        flow.next(updates)
    assert caught.value.field == field and flow.view == view


def test_portal_refusals_land_on_their_entry_and_a_wrong_access_code_keeps_the_key(pki, book):
    authority = MemoryAuthority(pki)
    authority.accounts["p@example.test"] = PORTAL_PASSWORD
    flow = EnrollmentFlow(authority=authority, certificates=book,
                          data={"full_name": "Pat", "email": "p@example.test", "registrations": [DEA]})
    flow.wizard.jump("account")
    with pytest.raises(WizardInputError) as caught:
        flow.next({"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD})
    assert caught.value.field == "email"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"account_choice": "existing", "password": "wrong"})
    assert caught.value.field == "password"
    flow.next({"password": PORTAL_PASSWORD})
    with pytest.raises(WizardInputError) as caught:
        flow.next({"sign_in_code": "000000"})
    assert caught.value.field == "sign_in_code"
    flow.wizard.jump("codes")
    flow.next({"reference_number": "1", "access_code": "WRONG"})
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    key_id = flow.data["key_id"]
    with pytest.raises(WizardInputError) as caught:
        flow.next()
    assert caught.value.field == "access_code" and "Back" in caught.value.message
    flow.back()
    flow.back()
    flow.next({"access_code": "ACCESS"})
    flow.next({})
    assert flow.data["key_id"] == key_id
    flow.next()
    assert flow.view == "installed"


def test_resume_without_secrets_returns_to_the_pages_that_ask_for_them(pki, book, store):
    authority = MemoryAuthority(pki)
    flow = EnrollmentFlow(authority=authority, certificates=book, store=store)
    walk_to_submit(flow)
    text = store.path("enrollment").read_text()
    assert PORTAL_PASSWORD not in text and "X123" not in text and "1980-04-02" not in text
    at_submit = EnrollmentFlow(authority=authority, certificates=book, store=store)
    assert at_submit.resumed and at_submit.view == "identity"  # identity details are not kept
    flow.next()
    waiting = EnrollmentFlow(authority=authority, certificates=book, store=store)
    assert waiting.view == "account"
    waiting.next({"account_choice": "existing", "password": PORTAL_PASSWORD})
    waiting.next({"sign_in_code": "123456"})
    assert waiting.view == "waiting"
    authority.decide_now(waiting.data["application_id"], "approved")
    assert waiting.poll()
    waiting.next({"reference_number": "1", "access_code": "ACCESS"})
    waiting.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    at_request = EnrollmentFlow(authority=authority, certificates=book, store=store)
    assert at_request.view == "codes"  # the codes are not kept either
    assert not EnrollmentFlow(authority=authority, certificates=book, store=store, resume=False).resumed
    assert saved_progress(store)["enrollment"]["view"] == "request"


def test_rejection_ends_on_the_rejected_page(pki, book):
    authority = MemoryAuthority(pki)
    flow = EnrollmentFlow(authority=authority, certificates=book)
    walk_to_submit(flow)
    flow.next()
    authority.decide_now(flow.data["application_id"], "rejected", "Unknown applicant")
    assert flow.poll() and flow.view == "rejected" and flow.is_last
    assert flow.data["application_reason"] == "Unknown applicant"


def test_production_enrollment_is_guided_through_the_portal(pki, book, tmp_path):
    flow = EnrollmentFlow(authority=PortalAuthority(), certificates=book)
    walk_to_submit(flow)
    with pytest.raises(WizardInputError):
        flow.next({"submitted_on_portal": False})
    flow.next({"submitted_on_portal": True})
    assert flow.view == "waiting" and flow.poll_seconds() is None and flow.poll() is False
    with pytest.raises(WizardInputError):
        flow.next({"codes_received": False})
    flow.next({"codes_received": True})
    assert flow.view == "key_location"
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    assert flow.view == "request"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"certificate_file": ""})
    assert caught.value.field == "certificate_file"
    issued = MemoryAuthority(pki)._issue(flow.data["csr_pem"])
    downloaded = tmp_path / "certificate.pem"
    downloaded.write_bytes(issued.bundles()[0])
    flow.next({"certificate_file": str(downloaded)})
    assert flow.view == "installed" and flow.data["installed"][0]["status"] == "active"


def enrolled(pki, book) -> str:
    flow = EnrollmentFlow(authority=MemoryAuthority(pki, approve_at_once=True), certificates=book)
    walk_to_submit(flow)
    flow.next()
    flow.next({"reference_number": "1", "access_code": "ACCESS"})
    flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    flow.next()
    return flow.data["installed"][0]["fingerprint"]


def test_renewal_issued_at_once_supersedes_and_changed_details_need_a_new_enrollment(pki, book, store):
    fingerprint = enrolled(pki, book)
    changed = RenewalFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=fingerprint)
    changed.start()
    changed.next({"details_changed": True})
    assert changed.view == "details_changed" and changed.is_last

    flow = RenewalFlow(authority=MemoryAuthority(pki), certificates=book, store=store, fingerprint=fingerprint)
    flow.start()
    assert flow.data["current"]["registration"] == DEA and flow.data["key_store"] == "software"
    flow.next({"details_changed": False, "early_reason": "schedules"})
    new_password = "Harbor-Thistle-Copper-28"
    flow.next({"key_password": new_password, "key_password_confirm": new_password})
    assert flow.view == "unlock"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"current_secret": ""})
    assert caught.value.field == "current_secret"
    flow.next({"current_secret": KEY_PASSWORD})
    assert flow.view == "installed" and flow.data["old_status"] == "superseded"
    assert book.get(fingerprint).status is CertificateStatus.SUPERSEDED


def test_renewal_waiting_for_approval_and_progress_for_another_certificate_is_not_resumed(pki, book, store):
    fingerprint = enrolled(pki, book)
    authority = MemoryAuthority(pki, renewal_needs_approval=True)
    flow = RenewalFlow(authority=authority, certificates=book, store=store, fingerprint=fingerprint)
    flow.start()
    flow.next({"early_reason": "schedules"})
    flow.next({"key_password": KEY_PASSWORD + "x", "key_password_confirm": KEY_PASSWORD + "x"})
    flow.next({"current_secret": KEY_PASSWORD})
    assert flow.view == "waiting" and flow.poll() is False
    again = RenewalFlow(authority=authority, certificates=book, store=store, fingerprint=fingerprint)
    assert again.view == "waiting"  # nothing secret needed to keep waiting
    authority.renewals["r1"] = RenewalStatus(status="rejected", renewal_id="r1", reason="Left the pharmacy")
    assert again.poll() and again.view == "rejected"
    other = RenewalFlow(authority=authority, certificates=book, store=store, fingerprint="ffff" * 16)
    assert not other.resumed


def test_revocation_with_the_key_destroys_it_after_the_ca_confirms(pki, book, store):
    fingerprint = enrolled(pki, book)
    authority = MemoryAuthority(pki)
    flow = RevocationFlow(authority=authority, certificates=book, store=store, fingerprint=fingerprint,
                          clock=lambda: NOW)
    flow.start()
    with pytest.raises(WizardInputError):
        flow.next({})
    flow.next({"key_available": True})
    assert len(flow.context["reasons"]) == 6
    with pytest.raises(WizardInputError) as caught:
        flow.next({"reason": "key_compromise", "noticed_at": "tomorrow"})
    assert caught.value.field == "noticed_at"
    flow.next({"reason": "employment_ended", "noticed_at": NOW.isoformat()})
    assert "6 hours" in flow.data["deadline_text"]
    reminders = unfinished_revocation_reminders(store, now=NOW + dt.timedelta(hours=1))
    assert reminders and "5 h left" in reminders[0].action
    with pytest.raises(WizardInputError):
        flow.next({"current_secret": "not it"})
    flow.next({"current_secret": KEY_PASSWORD})
    flow.next({"confirmed": True})
    assert flow.view == "done" and flow.data["key_destroyed"] is True
    assert authority.revoked and authority.revoked[0][1] == "employment_ended"
    assert book.get(fingerprint).status is CertificateStatus.REVOKED
    assert unfinished_revocation_reminders(store, now=NOW) == []


def test_lost_key_in_production_is_revoked_on_the_portal_and_explains_re_enrollment(pki, book):
    fingerprint = enrolled(pki, book)
    flow = RevocationFlow(authority=PortalAuthority(), certificates=book, fingerprint=fingerprint)
    flow.start()
    flow.next({"key_available": False})
    assert [r for r, _ in flow.context["reasons"]] == ["key_compromise", "lost_password"]
    flow.next({"reason": "lost_password"})
    assert flow.view == "lost" and "Revoke the certificate now (by " in flow.context["lost_text"]
    flow.next()
    assert flow.view == "confirm"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"confirmed": True, "revoked_on_portal": False})
    assert caught.value.field == "revoked_on_portal"
    flow.next({"revoked_on_portal": True})
    assert flow.data["key_destroyed"] is False
    assert book.get(fingerprint).status is CertificateStatus.REVOKED


def test_import_p12_with_the_k2_acknowledgement(pki, book, tmp_path):
    issued = pki.issue(dea=DEA)
    data = pkcs12.serialize_key_and_certificates(b"csos", issued.key, issued.cert, [pki.sub.certificate],
                                                 serialization.BestAvailableEncryption(b"File-pass-2026"))
    path = tmp_path / "mine.p12"
    path.write_bytes(data)
    flow = ImportFlow(authority=PortalAuthority(), certificates=book)
    flow.start()
    with pytest.raises(WizardInputError) as caught:
        flow.next({"p12_file": str(tmp_path / "missing.p12"), "p12_password": "x"})
    assert caught.value.field == "p12_file"
    with pytest.raises(WizardInputError) as caught:
        flow.next({"p12_file": str(path), "p12_password": "wrong"})
    assert caught.value.field == "p12_password"
    flow.next({"p12_password": "File-pass-2026"})
    assert flow.view == "destination" and "Pat Purchaser" in flow.data["p12_summary"]["subject"]
    assert "1311.30(d)" in flow.context["k2_warning"]
    with pytest.raises(WizardInputError) as caught:
        flow.next({"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
    assert caught.value.field == "k2_acknowledged"
    flow.next({"k2_acknowledged": True})
    assert flow.view == "done" and flow.data["installed"][0]["status"] == "active"
    record = book.get(flow.data["installed"][0]["fingerprint"])
    with book.open_signer(record, secret=KEY_PASSWORD) as signer:  # re-encrypted under the new password
        assert signer.sign(b"x")


def test_certificate_rows_say_what_to_do_next(pki, book):
    assert certificate_rows(book, today=NOW.date()) == []
    fingerprint = enrolled(pki, book)
    row = certificate_rows(book, today=NOW.date())[0]
    assert row.fingerprint == fingerprint and row.status == "active" and row.registration == DEA
    assert row.key_location.startswith("Key file") and row.action in ("none", "renew")
    late = certificate_rows(book, today=row.not_after - dt.timedelta(days=10))[0]
    assert late.action == "renew" and "10 days left" in late.next_action
    assert "no legal deadline" in deadline_text("other", NOW)
