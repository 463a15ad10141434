"""The training sandbox for integration tests: started once per test session on an OS-chosen loopback port.

Fixtures:

* ``sandbox`` — the running ``SandboxHandle`` (HTTPS; verify with ``sandbox.tls_bundle``).
* ``sandbox_client`` — a ``SandboxClient``: the portal's flows as short calls (sign in through the mailbox, apply,
  approve, enroll) so a test can get a real certificate from the sandbox CA in one line.

Tests share one sandbox, so each one uses fresh e-mail addresses and random order numbers (``new_order_number``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import string
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from app.sandbox import SandboxHandle, start_sandbox
from tests.pki import make_csr, subscriber_key

SEED = json.loads((Path(__file__).resolve().parents[2] / "resources" / "sandbox" / "seed.json").read_text("utf-8"))
PHARMACY = SEED["registrations"][0]  # BJ6125341, II-V, renewals need the coordinator
CLINIC = SEED["registrations"][1]  # FR3141594, III-V, renewals automatic
IDENTITY = {"document_type": "drivers_license", "document_number": "D1234567", "date_of_birth": "1980-04-02"}
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PASSWORD = "Tr41ning-Sandbox-Pass"


def new_email(prefix: str = "subscriber") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}@test.example"


def new_order_number(when: dt.datetime | None = None) -> str:
    year = (when or dt.datetime.now(dt.timezone.utc)).year % 100
    return f"{year:02d}X" + "".join(secrets.choice(string.digits + string.ascii_uppercase) for _ in range(6))


@dataclass
class Enrolled:
    """A subscriber with a certificate from the sandbox CA."""

    email: str
    full_name: str
    token: str
    key: object
    certificate: x509.Certificate
    chain: list[x509.Certificate]  # sub CA, root
    serial: str

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def intermediates_der(self) -> list[bytes]:
        return [self.chain[0].public_bytes(serialization.Encoding.DER)]


class SandboxClient:
    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.http = requests.Session()
        # verify is passed on every call: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE in the environment.
        self.verify = str(sandbox.tls_bundle)
        self.portal = sandbox.portal_url
        self._coordinator_tokens: dict[str, str] = {}

    # -- raw calls --------------------------------------------------------------------------------------------------

    def post(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.post(self.portal + path, headers=headers, timeout=30, verify=self.verify, **kwargs)

    def get(self, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.get(self.portal + path, headers=headers, timeout=30, verify=self.verify, **kwargs)

    def mailbox(self, email: str, channel: str | None = None) -> list[dict]:
        params = {"email": email, **({"channel": channel} if channel else {})}
        response = self.http.get(self.sandbox.mailbox_url, params=params, timeout=30, verify=self.verify)
        assert response.status_code == 200, response.text
        return response.json()["messages"]

    def last_message(self, email: str, kind: str, channel: str | None = None) -> dict:
        messages = [m for m in self.mailbox(email, channel) if m["kind"] == kind]
        assert messages, f"no {kind} message for {email}"
        return messages[-1]

    # -- flows ------------------------------------------------------------------------------------------------------

    def create_account(self, email: str, full_name: str = "Alex Applicant", password: str = PASSWORD) -> None:
        response = self.post("/accounts", json={"email": email, "full_name": full_name, "password": password})
        assert response.status_code == 201, response.text

    def login(self, email: str, password: str = PASSWORD) -> str:
        response = self.post("/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        code = self.last_message(email, "login_code", "email")["data"]["code"]
        verified = self.post("/login/verify", json={"challenge_id": response.json()["challenge_id"], "code": code})
        assert verified.status_code == 200, verified.text
        return verified.json()["token"]

    def coordinator_token(self, registration: dict) -> str:
        """The seeded coordinator's session (signed in once per client; sessions last 8 hours)."""
        person = registration["coordinator"]
        if person["email"] not in self._coordinator_tokens:
            self._coordinator_tokens[person["email"]] = self.login(person["email"], person["password"])
        return self._coordinator_tokens[person["email"]]

    def apply(self, token: str, *, registrations: list[str], role: str = "registrant",
              full_name: str = "Alex Applicant", poa: bytes | None = None) -> requests.Response:
        body = {"role": role, "person": {"full_name": full_name}, "registrations": registrations,
                "subscriber_agreement_accepted": True, "identity_proofing": IDENTITY}
        if poa is not None:
            body["poa_document_base64"] = base64.b64encode(poa).decode("ascii")
        return self.post("/applications", token, json=body)

    def approve(self, coordinator_token: str, application_id: str) -> requests.Response:
        return self.post(f"/reviews/{application_id}", coordinator_token, json={"decision": "approve"})

    def codes(self, email: str) -> tuple[str, str]:
        reference = self.last_message(email, "reference_number", "email")["data"]["reference_number"]
        access = self.last_message(email, "access_code", "postal")["data"]["access_code"]
        return reference, access

    def request_certificate(self, reference: str, access: str, csr_pem: str) -> requests.Response:
        return self.post("/certificates", json={"reference_number": reference, "access_code": access,
                                                "csr_pem": csr_pem})

    def approved_applicant(self, registration: dict, *, role: str = "registrant", full_name: str = "Alex Applicant"
                           ) -> tuple[str, str, str]:
        """A new account whose application was approved: (email, token, application id)."""
        email = new_email()
        self.create_account(email, full_name)
        token = self.login(email)
        applied = self.apply(token, registrations=[registration["dea_number"]], role=role, full_name=full_name,
                             poa=PDF if role == "power_of_attorney" else None)
        assert applied.status_code == 201, applied.text
        application_id = applied.json()["application"]["id"]
        if applied.json()["application"]["status"] == "pending":
            approved = self.approve(self.coordinator_token(registration), application_id)
            assert approved.status_code == 200, approved.text
        return email, token, application_id

    def enroll(self, registration: dict, *, role: str = "registrant", full_name: str = "Alex Applicant",
               key=None) -> Enrolled:
        """The whole enrollment: account, application, coordinator approval, codes from the mailbox, CSR."""
        email, token, _ = self.approved_applicant(registration, role=role, full_name=full_name)
        key = key or subscriber_key()
        reference, access = self.codes(email)
        csr_pem = make_csr(key).public_bytes(serialization.Encoding.PEM).decode("ascii")
        issued = self.request_certificate(reference, access, csr_pem)
        assert issued.status_code == 201, issued.text
        item = issued.json()["certificates"][0]
        return Enrolled(email=email, full_name=full_name, token=token, key=key,
                        certificate=x509.load_pem_x509_certificate(item["certificate_pem"].encode("ascii")),
                        chain=x509.load_pem_x509_certificates(issued.json()["chain_pem"].encode("ascii")),
                        serial=item["serial"])


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory) -> SandboxHandle:
    handle = start_sandbox(tmp_path_factory.mktemp("sandbox"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def sandbox_client(sandbox) -> SandboxClient:
    return SandboxClient(sandbox)
