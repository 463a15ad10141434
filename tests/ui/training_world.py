"""A real training world for GUI tests: the sandbox (HTTPS CA + suppliers), an order book set up by the training
starter, and a subscriber enrolled through the same enrollment flow the wizard drives (software key or token).

Built once per test module (``TrainingWorld.start``); each test makes its own orders.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from app.config import load_config
from app.models.database import open_database
from app.services.orders.orderbook import OrderBook

PHARMACY_DEA = "BJ6125341"
SUPPLIER = "Acme Drug"
KEY_PASSWORD = "Juniper-Canyon-Key-7391"  # training only
PORTAL_PASSWORD = "Lilac-Harbor-Portal-2026"
OXYCODONE, ALPRAZOLAM, AMOXICILLIN = "00406-0552-01", "00009-0055-01", "65862-0017-01"


@dataclass
class TrainingWorld:
    config: Any
    db: Any
    book: OrderBook
    environment: Any

    @property
    def sandbox(self) -> Any:
        return self.environment.sandbox

    @classmethod
    def start(cls, folder: Path) -> "TrainingWorld":
        config = load_config(data_dir=folder / "data", profile="training")
        db = open_database(config.database_url)
        book = OrderBook(db, actor="test")
        from app.training import start_training_environment

        environment = start_training_environment(config, book, sandbox_dir=folder / "sandbox")
        return cls(config=config, db=db, book=book, environment=environment)

    def stop(self) -> None:
        self.environment.stop()
        self.db.close()

    def supplier_url(self, name: str = SUPPLIER) -> str:
        return next(s.url for s in self.sandbox.suppliers if s.name == name)

    def mail(self, email: str, kind: str, channel: str) -> dict[str, Any]:
        response = requests.get(self.sandbox.mailbox_url, params={"email": email, "channel": channel},
                                verify=str(self.sandbox.tls_bundle), timeout=10)
        response.raise_for_status()
        found = [m for m in response.json()["messages"] if m["kind"] == kind]
        assert found, f"no {kind} for {email}"
        return found[-1]["data"]

    def enroll(self, *, key: dict[str, Any] | None = None, certificates: Any = None, name: str = "Jordan Test"
               ) -> Any:
        """Apply, have the seeded coordinator approve, make the key (``key`` = the wizard's key-location answers;
        default a software key with KEY_PASSWORD) and install the certificate. Returns the certificate record."""
        from app.demo import COORDINATOR
        from app.services.certificates.book import CertificateBook
        from app.services.enrollment.authority import SandboxAuthority
        from app.services.enrollment.enroll_flow import EnrollmentFlow
        from app.services.enrollment.wizard import WizardStateStore

        sandbox = self.sandbox
        certificates = certificates or CertificateBook(self.db, self.config, environ={})
        authority = SandboxAuthority(sandbox.portal_url, tls_bundle=sandbox.tls_bundle,
                                     trust_bundle=sandbox.trust_bundle)
        email = f"gui-{time.time_ns()}@mainstreet.example"
        flow = EnrollmentFlow(authority=authority, certificates=certificates,
                              store=WizardStateStore(Path(self.config.data_dir) / "test-wizards" / email))
        flow.start()
        flow.next()
        flow.next({"role": "registrant"})
        flow.next({"full_name": name, "email": email})
        flow.next({"registrations": [PHARMACY_DEA]})
        flow.next({"agreement_accepted": True})
        flow.next({"identity_document_type": "drivers_license", "identity_document_number": "D1234567",
                   "date_of_birth": "1980-04-02"})
        flow.next({"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD})
        flow.next({"sign_in_code": self.mail(email, "login_code", "email")["code"]})
        flow.next()
        application_id = flow.data["application_id"]
        challenge = authority.start_sign_in(email=COORDINATOR[0], password=COORDINATOR[1])
        session = authority.finish_sign_in(challenge_id=challenge.challenge_id,
                                           code=self.mail(COORDINATOR[0], "login_code", "email")["code"])
        authority.decide(session, application_id, approve=True, reason="GUI test")
        assert flow.poll()
        flow.next({"reference_number": self.mail(email, "reference_number", "email")["reference_number"],
                   "access_code": self.mail(email, "access_code", "postal")["access_code"]})
        flow.next(key or {"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD})
        flow.next()
        return certificates.signing_certificate_for(PHARMACY_DEA, at=dt.datetime.now(dt.timezone.utc))

    def new_order(self, lines: tuple[tuple[str, int], ...] = ((OXYCODONE, 2), (ALPRAZOLAM, 1), (AMOXICILLIN, 3)),
                  supplier: str = SUPPLIER) -> Any:
        order = self.book.new_order(registration_dea=PHARMACY_DEA, supplier_name=supplier)
        for ndc, packages in lines:
            self.book.add_line(order.id, ndc=ndc, packages=packages)
        return self.book.get_order(order.id)

    def training(self, action: str, body: dict[str, Any], supplier: str = SUPPLIER) -> dict[str, Any]:
        response = requests.post(f"{self.supplier_url(supplier)}/_training/{action}", json=body,
                                 verify=str(self.sandbox.tls_bundle), timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def ship(self, order: Any, lines: list[dict[str, int]] | None) -> None:
        self.training("ship", {"purchaser_dea": PHARMACY_DEA, "order_number": order.order_number, "lines": lines})
