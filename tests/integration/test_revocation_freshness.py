"""Fresh revocation data before signing (issue 19) against a real training sandbox over HTTPS: a coordinator
revokes a certificate for key compromise; nine minutes later (the pharmacy's clock is injected, the sandbox runs on
the same clock) the pre-sign check fetches the CRL again because the stored one is over an hour old, refuses, and
the certificate book shows the certificate revoked (`cert list` in a real process). Without a fresh CRL, and the
stored one past its nextUpdate, production refuses with revocation_unknown."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from app.config import load_config
from app.models.database import open_database
from app.models.orderbook import CertificateStatus
from app.sandbox.server import start_sandbox
from app.services.catalog import bundled_catalog_paths, import_fda_catalog
from app.services.certificates.book import CertificateBook
from app.services.certificates.crl_cache import SIGNING_MAX_AGE, signing_crl_cache, signing_max_age
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.services.orders.details import active_certificate
from app.services.orders.orderbook import OrderBook
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.integration.conftest import PHARMACY, SandboxClient, new_order_number

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Harbor-Lantern-4417!q"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def world(tmp_path):
    clock = Clock()
    sandbox = start_sandbox(tmp_path / "sandbox", sntp=False, clock=clock)
    client = SandboxClient(sandbox)
    purchaser = client.enroll(PHARMACY, full_name="Pat Purchaser")
    config = load_config(data_dir=tmp_path / "data", profile="training")
    config.settings.update(csos_trust_bundle=str(sandbox.trust_bundle), tls_bundle=str(sandbox.tls_bundle))
    config.save_settings()
    db = open_database(config.database_url)
    book = OrderBook(db, actor="test", clock=clock)
    info = next(r for r in sandbox.registrations if r.dea_number == PHARMACY["dea_number"])
    book.add_registration(dea_number=info.dea_number, name=info.name, address_lines=info.address_lines,
                          city=info.city, state=info.state, postal_code=info.postal_code, schedules=info.schedules,
                          expires_on=info.expires_at.date())
    acme = sandbox.suppliers[0]
    book.add_supplier(name=acme.name, dea_number=acme.dea_number, address_lines=acme.address_lines, city=acme.city,
                      state=acme.state, postal_code=acme.postal_code)
    import_fda_catalog(db, *bundled_catalog_paths())
    p12 = pkcs12.serialize_key_and_certificates(b"pat", purchaser.key, purchaser.certificate, purchaser.chain,
                                                BestAvailableEncryption(SECRET.encode()))
    certificates = CertificateBook(db, config, clock=clock, actor="test")
    record = certificates.import_p12(p12, password=SECRET, new_secret=SECRET, label="Pat")
    assert record.status is CertificateStatus.ACTIVE
    validation = CertificateValidationService(trust_roots=load_trust_bundle(sandbox.trust_bundle),
                                              crl_cache=signing_crl_cache(config.cache_dir / "crl", config.settings,
                                                                          clock=clock),
                                              clock=clock)
    verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(db))
    service = OrderSigningService(book, verifier, clock=clock, on_revoked=certificates.record_crl_revocation)
    order = book.new_order(registration_dea=info.dea_number, supplier_name=acme.name,
                           order_number=new_order_number())
    book.add_line(order.id, ndc="00406055201", packages=1)
    try:
        yield clock, sandbox, client, purchaser, config, certificates, service, order, record
    finally:
        certificates.close()
        db.close()
        sandbox.stop()


def _check(service, order, purchaser, clock):
    return service.check(order.id, certificate=purchaser.certificate, intermediates=purchaser.chain[:1],
                         now=clock())


def _cert_list(config) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env.update(CSOS_DATA_DIR=str(config.data_dir.parent), CSOS_PROFILE="training")
    done = subprocess.run([sys.executable, "-m", "app", "cert", "list", "--json"], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_revocation_nine_minutes_old_stops_the_order_and_marks_the_certificate(world):
    clock, sandbox, client, purchaser, config, certificates, service, order, record = world
    assert _check(service, order, purchaser, clock).accepted  # the CRL is fetched and stored now
    clock.now += dt.timedelta(minutes=55)
    revoked = client.post(f"/certificates/{purchaser.serial}/revoke", client.coordinator_token(PHARMACY),
                          json={"reason": "key_compromise"})
    assert revoked.status_code == 200, revoked.text
    clock.now += dt.timedelta(minutes=9)  # the stored CRL is now 64 minutes old
    verdict = _check(service, order, purchaser, clock)
    assert not verdict.accepted and "certificate_revoked" in verdict.codes
    assert certificates.get(record.fingerprint).status is CertificateStatus.REVOKED
    assert active_certificate(certificates.db, config, now=clock()) is None  # the status bar's certificate
    assert [item["status"] for item in _cert_list(config) if item["fingerprint"] == record.fingerprint] == ["revoked"]


def test_a_crl_past_its_next_update_that_cannot_be_refreshed_refuses(world):
    clock, sandbox, client, purchaser, config, certificates, service, order, record = world
    assert _check(service, order, purchaser, clock).accepted
    sandbox.stop()  # the distribution point is gone
    clock.now += dt.timedelta(days=30)  # far past the stored CRL's nextUpdate
    verdict = _check(service, order, purchaser, clock)
    assert not verdict.accepted and "revocation_unknown" in verdict.codes
    assert certificates.get(record.fingerprint).status is CertificateStatus.ACTIVE  # unknown is not revoked


def test_the_age_limit_is_a_setting():
    assert signing_max_age({}) == SIGNING_MAX_AGE == dt.timedelta(hours=1)
    assert signing_max_age({"crl_max_age_seconds": 600}) == dt.timedelta(minutes=10)
    assert signing_max_age({"crl_max_age_seconds": "soon"}) == SIGNING_MAX_AGE
    assert signing_crl_cache(None, {"crl_max_age_seconds": 900}).max_age == dt.timedelta(minutes=15)
