"""The training portal / CA over real HTTPS: enrollment, codes, coordinator review, renewal, revocation, CRLs,
persistence. Certificates are checked with the program's own validator against CRLs fetched from the sandbox."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from app.sandbox import start_sandbox
from app.services.signing.cms import sign_content
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.profile import CsosCertificate
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.models.values import Schedule
from tests.integration.conftest import CLINIC, IDENTITY, PASSWORD, PDF, PHARMACY, SandboxClient, new_email
from tests.pki import make_csr, new_key, subscriber_key
from tests.signers import KeySigner

pytestmark = pytest.mark.integration

SIGNED_REQUEST = {"Content-Type": "application/pkcs7-mime"}


def csr_pem(key, algorithm=None) -> str:
    return make_csr(key, algorithm=algorithm).public_bytes(serialization.Encoding.PEM).decode("ascii")


def validator(sandbox, tmp_path) -> CertificateValidationService:
    """The client's validator: training root from the sandbox, CRLs fetched over HTTPS (sandbox TLS bundle)."""
    return CertificateValidationService(trust_roots=load_trust_bundle(sandbox.trust_bundle),
                                        crl_cache=CrlCache(tmp_path / "crl-cache", tls_ca_bundle=sandbox.tls_bundle))


def signed_request(subscriber, content: dict) -> bytes:
    return sign_content(json.dumps(content).encode("utf-8"), signer=KeySigner(subscriber.key),
                        certificate_der=subscriber.der, intermediates_der=subscriber.intermediates_der,
                        signing_time=dt.datetime.now(dt.timezone.utc))


def crl_serials(sandbox, name: str = "sub") -> dict[int, x509.RevokedCertificate]:
    response = requests.get(sandbox.crl_urls[name], verify=str(sandbox.tls_bundle), timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(response.content)
    return {entry.serial_number: entry for entry in crl}


# -- enrollment ------------------------------------------------------------------------------------------------------


def test_full_enrollment_gives_a_certificate_the_client_validator_accepts(sandbox, sandbox_client: SandboxClient,
                                                                          tmp_path):
    client = sandbox_client
    email = new_email()
    client.create_account(email, "Jordan Buyer")
    token = client.login(email)
    applied = client.apply(token, registrations=[PHARMACY["dea_number"]], full_name="Jordan Buyer")
    assert applied.status_code == 201, applied.text
    application = applied.json()["application"]
    assert application["status"] == "pending"
    assert application["identity_proofing"]["status"] == "passed"
    assert "TRAINING" in application["identity_proofing"]["method"]
    assert "D1234567" not in json.dumps(application)  # only the last four digits are kept

    coordinator = client.coordinator_token(PHARMACY)
    pending = client.get("/reviews", coordinator).json()["pending"]
    assert application["id"] in [item["id"] for item in pending]
    assert client.approve(coordinator, application["id"]).json()["application"]["status"] == "approved"

    # S3: the reference number arrives by e-mail, the access code by post, never both on one channel.
    email_box = json.dumps(client.mailbox(email, "email"))
    postal_box = json.dumps(client.mailbox(email, "postal"))
    reference, access = client.codes(email)
    assert reference in email_box and reference not in postal_box
    assert access in postal_box and access not in email_box

    key = new_key()
    issued = client.request_certificate(reference, access, csr_pem(key))
    assert issued.status_code == 201, issued.text
    item = issued.json()["certificates"][0]
    cert = x509.load_pem_x509_certificate(item["certificate_pem"].encode())
    chain = x509.load_pem_x509_certificates(issued.json()["chain_pem"].encode())
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()

    csos = CsosCertificate.from_certificate(cert)
    registration = client.get("/registrations").json()["registrations"][0]
    assert csos.kind == "signing" and csos.matches_dea(PHARMACY["dea_number"])
    assert not csos.matches_dea(CLINIC["dea_number"])
    assert csos.schedules == {Schedule.parse(s) for s in PHARMACY["schedules"]}
    assert csos.subscriber_name == "Jordan Buyer" and csos.email == email
    assert csos.not_after == dt.datetime.fromisoformat(registration["expires_at"])
    assert csos.crl_urls == (sandbox.crl_urls["sub"],)

    result = validator(sandbox, tmp_path).validate(cert, at=dt.datetime.now(dt.timezone.utc), intermediates=chain[:1])
    assert result.ok, result.problems
    me = client.get("/me", token).json()
    assert [c["serial"] for c in me["certificates"]] == [item["serial"]]
    assert me["applications"][0]["status"] == "issued"


def test_a_coordinator_gets_an_administrative_certificate_that_cannot_sign_orders(sandbox_client: SandboxClient):
    client = sandbox_client
    person = CLINIC["coordinator"]
    token = client.login(person["email"], person["password"])
    applied = client.apply(token, registrations=[CLINIC["dea_number"]], role="coordinator",
                           full_name=person["full_name"])
    assert applied.status_code == 201
    assert applied.json()["application"]["status"] == "approved"  # existing coordinator: the sandbox approves
    reference, access = client.codes(person["email"])
    issued = client.request_certificate(reference, access, csr_pem(subscriber_key()))
    assert issued.status_code == 201, issued.text
    csos = CsosCertificate.from_pem(issued.json()["certificates"][0]["certificate_pem"].encode())
    assert issued.json()["certificates"][0]["kind"] == "administrative"
    assert csos.kind == "administrative" and not csos.can_sign_orders
    assert csos.not_after - csos.not_before > dt.timedelta(days=3 * 365 - 2)


def test_codes_work_once_wrong_codes_are_counted_and_then_locked(sandbox_client: SandboxClient):
    client = sandbox_client
    email, _, _ = client.approved_applicant(PHARMACY)
    reference, access = client.codes(email)
    wrong = client.request_certificate(reference, "AAAA-BBBB-CCCC-DDDD", csr_pem(subscriber_key()))
    assert wrong.status_code == 403 and wrong.json()["error"] == "access_code_wrong"
    assert wrong.json()["attempts_left"] == 4
    unknown = client.request_certificate("0000-0000-0000", access, csr_pem(subscriber_key()))
    assert unknown.status_code == 404 and unknown.json()["error"] == "reference_number_unknown"

    # Codes typed in lower case and without hyphens still work; then they are spent.
    first = client.request_certificate(reference.replace("-", ""), access.lower(), csr_pem(subscriber_key()))
    assert first.status_code == 201, first.text
    again = client.request_certificate(reference, access, csr_pem(subscriber_key()))
    assert again.status_code == 409 and again.json()["error"] == "codes_used"

    email, _, _ = client.approved_applicant(PHARMACY)
    reference, access = client.codes(email)
    answers = [client.request_certificate(reference, f"WRONG{i}", csr_pem(subscriber_key())) for i in range(5)]
    assert [a.status_code for a in answers] == [403, 403, 403, 403, 429]
    locked = client.request_certificate(reference, access, csr_pem(subscriber_key()))
    assert locked.status_code == 429 and locked.json()["error"] == "codes_locked"
    assert access.replace("-", "") not in locked.text


def test_expired_codes_are_refused(sandbox_client: SandboxClient):
    client = sandbox_client
    email, _, _ = client.approved_applicant(CLINIC)
    reference, access = client.codes(email)
    assert client.post("/_training/expire-codes", json={"reference_number": reference}).status_code == 200
    expired = client.request_certificate(reference, access, csr_pem(subscriber_key()))
    assert expired.status_code == 410 and expired.json()["error"] == "codes_expired"


def test_a_bad_request_does_not_use_up_the_codes(sandbox_client: SandboxClient):
    client = sandbox_client
    email, _, _ = client.approved_applicant(CLINIC)
    reference, access = client.codes(email)
    key = subscriber_key()
    sha512 = client.request_certificate(reference, access, csr_pem(key, algorithm=hashes.SHA512()))
    assert sha512.status_code == 400 and sha512.json()["error"] == "csr.unsupported_hash"
    # Proof of possession: a request whose signature does not match its key is refused.
    good = make_csr(key).public_bytes(serialization.Encoding.DER)
    tampered = good[:-20] + bytes(b ^ 0x55 for b in good[-20:])
    forged_pem = x509.load_der_x509_csr(tampered).public_bytes(serialization.Encoding.PEM).decode()
    forged = client.request_certificate(reference, access, forged_pem)
    assert forged.status_code == 400 and forged.json()["error"] == "csr.bad_signature"
    assert client.request_certificate(reference, access, "not a CSR").json()["error"] == "csr.malformed"
    assert client.request_certificate(reference, access, csr_pem(key)).status_code == 201


def test_only_that_registrations_coordinator_may_approve(sandbox_client: SandboxClient):
    client = sandbox_client
    email = new_email()
    client.create_account(email)
    token = client.login(email)
    application = client.apply(token, registrations=[PHARMACY["dea_number"]]).json()["application"]

    other_coordinator = client.coordinator_token(CLINIC)
    refused = client.approve(other_coordinator, application["id"])
    assert refused.status_code == 403 and refused.json()["error"] == "not_coordinator"
    assert application["id"] not in [a["id"] for a in client.get("/reviews", other_coordinator).json()["pending"]]
    purchaser = PHARMACY["purchasers"][0]
    plain = client.login(purchaser["email"], purchaser["password"])
    assert client.approve(plain, application["id"]).status_code == 403
    assert client.get("/reviews", plain).status_code == 403
    assert client.approve(token, application["id"]).json()["error"] == "not_coordinator"  # the applicant
    assert client.approve(None, application["id"]).status_code == 401

    coordinator = client.coordinator_token(PHARMACY)
    rejected = client.post(f"/reviews/{application['id']}", coordinator,
                           json={"decision": "reject", "reason": "Not on staff"})
    assert rejected.json()["application"]["status"] == "rejected"
    assert client.approve(coordinator, application["id"]).json()["error"] == "already_decided"
    notice = client.last_message(email, "enrollment_rejected")
    assert notice["data"]["reason"] == "Not on staff"
    assert not [m for m in client.mailbox(email) if m["kind"] == "reference_number"]


def test_application_rules(sandbox_client: SandboxClient):
    client = sandbox_client
    email = new_email()
    client.create_account(email)
    token = client.login(email)
    dea = [PHARMACY["dea_number"]]
    assert client.apply(token, registrations=dea, role="power_of_attorney").json()["error"] == "poa_required"
    assert client.apply(token, registrations=dea, role="power_of_attorney",
                        poa=b"GIF89a").json()["error"] == "poa_not_pdf"
    assert client.apply(token, registrations=["BJ6125342"]).json()["error"] == "invalid_dea_number"
    assert client.apply(token, registrations=["AB1234563"]).status_code == 404
    assert client.apply(token, registrations=dea, role="pharmacist").json()["error"] == "invalid_role"
    body = {"role": "registrant", "person": {"full_name": "A B"}, "registrations": dea,
            "subscriber_agreement_accepted": False, "identity_proofing": IDENTITY}
    assert client.post("/applications", token, json=body).json()["error"] == "agreement_not_accepted"
    body |= {"subscriber_agreement_accepted": True,
             "identity_proofing": {**IDENTITY, "document_number": "X990000"}}
    failed = client.post("/applications", token, json=body)
    assert failed.status_code == 422 and failed.json()["error"] == "identity_proofing_failed"
    assert client.post("/applications", json={}).status_code in (400, 401)

    applied = client.apply(token, registrations=dea, role="power_of_attorney", poa=PDF)
    assert applied.status_code == 201
    application = applied.json()["application"]
    assert application["poa_attached"] and application["role"] == "power_of_attorney"
    coordinator = client.coordinator_token(PHARMACY)
    document = client.get(f"/applications/{application['id']}/poa", coordinator)
    assert document.status_code == 200 and document.content == PDF
    assert client.get(f"/applications/{application['id']}/poa", client.coordinator_token(CLINIC)).status_code == 403


def test_sign_in_needs_the_password_and_the_mailbox_code(sandbox_client: SandboxClient):
    client = sandbox_client
    email = new_email()
    client.create_account(email)
    assert client.post("/accounts", json={"email": email, "full_name": "X Y", "password": PASSWORD}
                       ).json()["error"] == "email_taken"
    weak = client.post("/accounts", json={"email": new_email(), "full_name": "X Y", "password": "short"})
    assert weak.status_code == 400 and weak.json()["error"] == "weak_password"
    assert client.post("/login", json={"email": email, "password": "Wrong-Password-99"}).status_code == 401
    challenge = client.post("/login", json={"email": email, "password": PASSWORD}).json()["challenge_id"]
    wrong = client.post("/login/verify", json={"challenge_id": challenge, "code": "000000x"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "login_code_wrong"
    code = client.last_message(email, "login_code")["data"]["code"]
    token = client.post("/login/verify", json={"challenge_id": challenge, "code": code}).json()["token"]
    assert client.post("/login/verify", json={"challenge_id": challenge, "code": code}
                       ).json()["error"] == "login_code_used"
    assert client.get("/me", token).json()["account"]["email"] == email
    assert client.get("/me", "not-a-token").status_code == 401
    assert client.post("/logout", token).status_code == 204
    assert client.get("/me", token).status_code == 401


# -- renewal ---------------------------------------------------------------------------------------------------------


def test_renewal_waits_for_the_coordinator_where_the_registration_requires_it(sandbox, sandbox_client, tmp_path):
    client = sandbox_client
    subscriber = client.enroll(PHARMACY)
    new = new_key()
    body = signed_request(subscriber, {"type": "renewal_request", "csr_pem": csr_pem(new)})
    pending = client.post("/renewals", data=body, headers=SIGNED_REQUEST)
    assert pending.status_code == 202, pending.text
    renewal_id = pending.json()["renewal_id"]
    assert client.get(f"/renewals/{renewal_id}").json()["status"] == "pending"

    coordinator = client.coordinator_token(PHARMACY)
    queue = client.get("/reviews", coordinator).json()["pending"]
    assert any(item["id"] == renewal_id and item["kind"] == "renewal" for item in queue)
    assert client.approve(coordinator, renewal_id).status_code == 200
    done = client.get(f"/renewals/{renewal_id}").json()
    assert done["status"] == "issued"
    renewed = x509.load_pem_x509_certificate(done["certificates"][0]["certificate_pem"].encode())
    assert renewed.public_key().public_numbers() == new.public_key().public_numbers()
    assert CsosCertificate.from_certificate(renewed).matches_dea(PHARMACY["dea_number"])
    old = client.get(f"/certificates/{subscriber.serial}").json()["certificate"]
    assert old["status"] == "superseded"
    result = validator(sandbox, tmp_path).validate(renewed, at=dt.datetime.now(dt.timezone.utc),
                                                   intermediates=subscriber.chain[:1])
    assert result.ok, result.problems
    # The superseded certificate can no longer authenticate requests.
    again = client.post("/renewals", data=signed_request(subscriber, {"type": "renewal_request",
                                                                     "csr_pem": csr_pem(new)}),
                        headers=SIGNED_REQUEST)
    assert again.status_code == 403 and again.json()["error"] == "certificate_superseded"


def test_renewal_is_immediate_where_no_approval_is_required(sandbox_client):
    client = sandbox_client
    subscriber = client.enroll(CLINIC)
    body = signed_request(subscriber, {"type": "renewal_request", "csr_pem": csr_pem(subscriber_key())})
    issued = client.post("/renewals", data=body, headers=SIGNED_REQUEST)
    assert issued.status_code == 201, issued.text
    assert issued.json()["status"] == "issued" and len(issued.json()["certificates"]) == 1
    assert client.get(f"/certificates/{subscriber.serial}").json()["certificate"]["status"] == "superseded"


def test_renewal_requests_must_be_signed_properly(sandbox_client):
    client = sandbox_client
    subscriber = client.enroll(CLINIC)
    body = signed_request(subscriber, {"type": "renewal_request", "csr_pem": csr_pem(subscriber_key())})
    assert client.post("/renewals", data=body, headers={"Content-Type": "application/json"}).status_code == 415
    assert client.post("/renewals", data=b"junk", headers=SIGNED_REQUEST).json()["error"] == "malformed"
    altered = body.replace(b"renewal_request", b"renewal_requesT")
    assert client.post("/renewals", data=altered, headers=SIGNED_REQUEST).json()["error"] == "signature_invalid"
    wrong_type = signed_request(subscriber, {"type": "revocation_request", "csr_pem": csr_pem(subscriber_key())})
    assert client.post("/renewals", data=wrong_type, headers=SIGNED_REQUEST).json()["error"] == "malformed"
    stale = sign_content(json.dumps({"type": "renewal_request", "csr_pem": csr_pem(subscriber_key())}).encode(),
                         signer=KeySigner(subscriber.key), certificate_der=subscriber.der,
                         intermediates_der=subscriber.intermediates_der,
                         signing_time=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=3))
    assert client.post("/renewals", data=stale, headers=SIGNED_REQUEST).json()["error"] == "request_stale"


# -- revocation ------------------------------------------------------------------------------------------------------


def test_a_subscriber_revocation_is_on_the_crl_at_once(sandbox, sandbox_client, tmp_path):
    client = sandbox_client
    subscriber = client.enroll(PHARMACY)
    serial = int(subscriber.serial, 16)
    check = validator(sandbox, tmp_path)
    assert check.validate(subscriber.certificate, at=dt.datetime.now(dt.timezone.utc),
                          intermediates=subscriber.chain[:1]).ok
    body = signed_request(subscriber, {"type": "revocation_request", "certificate_serial": subscriber.serial,
                                       "reason": "key_compromise"})
    revoked = client.post("/revocations", data=body, headers=SIGNED_REQUEST)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["certificate"]["status"] == "revoked"

    entries = crl_serials(sandbox)
    assert serial in entries
    assert entries[serial].extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.key_compromise
    fresh = validator(sandbox, tmp_path / "fresh")
    result = fresh.validate(subscriber.certificate, at=dt.datetime.now(dt.timezone.utc),
                            intermediates=subscriber.chain[:1])
    assert "certificate_revoked" in result.codes
    message = client.last_message(subscriber.email, "certificate_revoked")
    assert message["data"]["reason"] == "key_compromise"
    # The e-mail names the certificate by the one short ID the program shows everywhere (issue 22).
    from app.services.enrollment.certificate_overview import certificate_id_of

    short = certificate_id_of(subscriber.certificate.public_bytes(serialization.Encoding.DER))
    assert f"Certificate {short} was revoked" in message["body"]
    assert short in client.last_message(subscriber.email, "certificate_issued")["body"]
    # A revoked certificate signs nothing more at the portal.
    again = client.post("/revocations", data=body, headers=SIGNED_REQUEST)
    assert again.status_code == 403 and again.json()["error"] == "certificate_revoked"


def test_the_coordinator_revokes_for_their_registration_only(sandbox, sandbox_client):
    client = sandbox_client
    subscriber = client.enroll(CLINIC)
    path = f"/certificates/{subscriber.serial}/revoke"
    other = client.post(path, client.coordinator_token(PHARMACY), json={"reason": "employment_ended"})
    assert other.status_code == 403 and other.json()["error"] == "not_coordinator"
    coordinator = client.coordinator_token(CLINIC)
    assert client.post(path, coordinator, json={"reason": "fired"}).json()["error"] == "invalid_reason"
    done = client.post(path, coordinator, json={"reason": "employment_ended"})
    assert done.status_code == 200 and done.json()["certificate"]["revocation_reason"] == "employment_ended"
    entry = crl_serials(sandbox)[int(subscriber.serial, 16)]
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason == \
        x509.ReasonFlags.cessation_of_operation
    assert client.post(path, coordinator, json={"reason": "employment_ended"}).json()["already_revoked"] is True


def test_both_crls_are_served_signed_by_their_ca_and_current(sandbox):
    root = load_trust_bundle(sandbox.trust_bundle)[0]
    info = requests.get(sandbox.portal_url + "/ca", verify=str(sandbox.tls_bundle), timeout=30).json()
    sub = x509.load_pem_x509_certificates(info["chain_pem"].encode())[0]
    now = dt.datetime.now(dt.timezone.utc)
    for name, issuer in (("root", root), ("sub", sub)):
        data = requests.get(sandbox.crl_urls[name], verify=str(sandbox.tls_bundle), timeout=30).content
        crl = x509.load_der_x509_crl(data)
        assert crl.issuer == issuer.subject and crl.is_signature_valid(issuer.public_key())
        assert crl.last_update_utc <= now < crl.next_update_utc
    # Published over plain http, as a supplier fetches CRLs (a CRL is signed; no TLS root needed) ...
    assert all(url.startswith("http://") for url in sandbox.crl_urls.values())
    # ... while the HTTPS portal is trusted through the sandbox TLS bundle only, not through the CSOS root.
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(sandbox.base_url + "/crl/sub.crl", verify=str(sandbox.trust_bundle), timeout=30)


# -- persistence -----------------------------------------------------------------------------------------------------


def test_state_survives_a_restart_on_the_same_directory(tmp_path):
    directory = tmp_path / "sandbox"
    with start_sandbox(directory, sntp=False) as first:
        client = SandboxClient(first)
        subscriber = client.enroll(CLINIC)
        root_pem, tls_pem, port = first.trust_bundle.read_bytes(), first.tls_bundle.read_bytes(), first.port
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(first.portal_url, verify=str(first.tls_bundle), timeout=5)

    with start_sandbox(directory, sntp=False) as second:
        assert second.port == port  # the CRL address in issued certificates stays valid
        assert second.trust_bundle.read_bytes() == root_pem and second.tls_bundle.read_bytes() == tls_pem
        client = SandboxClient(second)
        assert client.get(f"/certificates/{subscriber.serial}").json()["certificate"]["status"] == "active"
        token = client.login(subscriber.email)  # the account and its password survived
        assert client.get("/me", token).json()["certificates"][0]["serial"] == subscriber.serial
        body = signed_request(subscriber, {"type": "revocation_request", "certificate_serial": subscriber.serial,
                                           "reason": "other"})
        assert client.post("/revocations", data=body, headers=SIGNED_REQUEST).status_code == 200
        assert int(subscriber.serial, 16) in crl_serials(second)
    with start_sandbox(directory, sntp=False) as third:
        assert int(subscriber.serial, 16) in crl_serials(third)
        assert [r.dea_number for r in third.registrations] == [PHARMACY["dea_number"], CLINIC["dea_number"]]
