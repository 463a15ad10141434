"""A second registration in training (issue 22): the practice portal learns a registration added on this computer,
so enrolling for it works; while an application waits, the flow knows which registrations' approvals are missing.

Real sandbox over HTTPS on loopback, real order book (SQLite), the enrollment flow the wizard drives.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from app.config import load_config
from app.models.database import open_database
from app.services.certificates.book import CertificateBook
from app.services.enrollment.authority import SandboxAuthority
from app.services.enrollment.enroll_flow import EnrollmentFlow
from app.services.enrollment.wizard import WizardStateStore
from app.services.orders.orderbook import OrderBook
from app.training import start_training_environment, teach_portal_registrations

pytestmark = pytest.mark.integration

LAKESIDE = "BS1234563"  # added on this computer, unknown to the seeded practice portal
CASEY = ("casey@mainstreet.example", "Practice-Approvals-2026")
PORTAL_PASSWORD = "Lilac-Harbor-Portal-2026"


@pytest.fixture
def world(tmp_path):
    config = load_config(data_dir=tmp_path / "data", profile="training")
    db = open_database(config.database_url)
    book = OrderBook(db, actor="test")
    book.add_registration(dea_number=LAKESIDE, name="Lakeside Pharmacy", address_lines=["4 Shore Rd"],
                          city="Madison", state="WI", postal_code="53703", schedules=["II", "III", "IV", "V"])
    environment = start_training_environment(config, book, sandbox_dir=tmp_path / "sandbox")
    yield config, db, book, environment.sandbox
    environment.stop()
    db.close()


def _mail(sandbox, email: str, kind: str, channel: str = "email") -> dict:
    answer = requests.get(sandbox.mailbox_url, params={"email": email, "channel": channel},
                          verify=str(sandbox.tls_bundle), timeout=10)
    answer.raise_for_status()
    return [m for m in answer.json()["messages"] if m["kind"] == kind][-1]["data"]


def _apply(config, db, sandbox, registrations: list[str]) -> tuple[EnrollmentFlow, SandboxAuthority]:
    authority = SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle, trust_bundle=sandbox.trust_bundle)
    email = f"second-{time.time_ns()}@mainstreet.example"
    flow = EnrollmentFlow(authority=authority, certificates=CertificateBook(db, config, environ={}),
                          store=WizardStateStore(Path(config.data_dir) / "w" / email))
    flow.start()
    flow.next()
    flow.next({"role": "registrant"})
    flow.next({"full_name": "Robin Second", "email": email})
    flow.next({"registrations": registrations})
    flow.next({"agreement_accepted": True})
    flow.next({"identity_document_type": "drivers_license", "identity_document_number": "D1234567",
               "date_of_birth": "1980-04-02"})
    flow.next({"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD})
    flow.next({"sign_in_code": _mail(sandbox, email, "login_code")["code"]})
    flow.next()
    assert flow.view == "waiting"
    return flow, authority


def _approve_as(authority, sandbox, who: tuple[str, str], application_id: str) -> None:
    challenge = authority.start_sign_in(email=who[0], password=who[1])
    session = authority.finish_sign_in(challenge_id=challenge.challenge_id, code=_mail(sandbox, who[0], "login_code")
                                       ["code"])
    authority.decide(session, application_id, approve=True, reason="test")


def test_the_practice_portal_learns_a_local_registration_and_enrolls_for_it(world):
    config, db, book, sandbox = world
    listed = requests.get(f"{sandbox.portal_url}/registrations", verify=str(sandbox.tls_bundle), timeout=10).json()
    lakeside = next(r for r in listed["registrations"] if r["dea_number"] == LAKESIDE)
    assert lakeside["name"] == "Lakeside Pharmacy" and lakeside["coordinators"][0]["email"] == CASEY[0]
    assert teach_portal_registrations(book, sandbox.portal_url, str(sandbox.tls_bundle)) == []  # known now
    flow, authority = _apply(config, db, sandbox, [LAKESIDE])
    assert flow.data["approvals_missing"] == [LAKESIDE]
    _approve_as(authority, sandbox, CASEY, flow.data["application_id"])
    assert flow.poll() and flow.view == "codes"


def test_the_waiting_flow_knows_which_approvals_are_still_missing(world):
    config, db, book, sandbox = world
    flow, authority = _apply(config, db, sandbox, ["BJ6125341", "FR3141594"])
    assert flow.data["approvals_missing"] == ["BJ6125341", "FR3141594"]
    _approve_as(authority, sandbox, CASEY, flow.data["application_id"])
    assert flow.poll() is True and flow.view == "waiting"  # still waiting, but for one approval less
    assert flow.data["approvals_missing"] == ["FR3141594"]  # Dana, the clinic's coordinator, has not decided
