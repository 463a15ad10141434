"""ISA15, the test indicator (issue 17, item 5): T for everything made in training (the pharmacy's orders and the
sandbox suppliers' answers), P in production; the verifier notes which; a connector refuses the wrong kind before
any network call."""

from __future__ import annotations

import base64

import pytest
import requests

from app.config import load_config
from app.models.orderbook import LinkedRecordKind
from app.models.states import OrderStatus
from app.services.catalog import bundled_catalog_paths, import_fda_catalog
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.services.orders.outbox import Outbox
from app.services.signing.cms import parse_signed_document
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.usage_indicator import (
    WrongTestIndicator,
    check_before_sending,
    for_profile,
    read_usage_indicator,
)
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.signing.x12 import parse_interchange
from app.services.transport.connectors import connector_for
from tests.factories import draft_order, seed
from tests.integration.conftest import PHARMACY, new_order_number
from tests.pki import build_training_pki, serve_directory
from tests.signers import KeySigner


@pytest.fixture
def world(book, tmp_path):
    seed(book)
    with serve_directory(tmp_path / "crl") as server:
        pki = build_training_pki(tmp_path, crl_base_url=server.base_url)
        pki.write_crls()
        validation = CertificateValidationService(trust_roots=pki.trust_roots,
                                                  crl_cache=CrlCache(tmp_path / "crl-cache"))
        yield pki, OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))


@pytest.mark.parametrize("profile, expected", [("training", "T"), ("production", "P")])
def test_the_profile_decides_isa15_and_the_verifier_notes_it(world, book, tmp_path, profile, expected):
    pki, verifier = world
    config = load_config(data_dir=tmp_path / "data", profile=profile)
    service = OrderSigningService(book, verifier, test_indicator=for_profile(config))
    subscriber = pki.issue()
    signed = service.sign(draft_order(book).id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
                          intermediates=pki.intermediates)
    content = parse_signed_document(signed.document).content
    assert parse_interchange(content).envelope.usage_indicator == expected
    assert read_usage_indicator(content) == expected
    verdict = verifier.verify(signed.document)
    assert verdict.accepted and verdict.test_indicator == expected  # a note, never a reason
    assert verdict.to_json()["notes"] == [f"test_indicator: {expected}"]
    # A production connector refuses a T interchange, a training one a P interchange; the right one passes.
    check_before_sending(signed.document, expected)
    with pytest.raises(WrongTestIndicator) as refused:
        check_before_sending(signed.document, "P" if expected == "T" else "T", supplier="Acme Drug")
    assert refused.value.code == "transport.test_indicator" and "Acme Drug" in refused.value.message


# -- over the wire: the training sandbox ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def purchaser(sandbox_client):
    return sandbox_client.enroll(PHARMACY, full_name="Tess Indicator")


@pytest.fixture
def sandbox_world(book, sandbox, purchaser, tmp_path):
    info = next(r for r in sandbox.registrations if r.dea_number == PHARMACY["dea_number"])
    book.add_registration(dea_number=info.dea_number, name=info.name, address_lines=info.address_lines,
                          city=info.city, state=info.state, postal_code=info.postal_code, schedules=info.schedules,
                          expires_on=info.expires_at.date())
    acme = sandbox.supplier("acme")
    book.add_supplier(name=acme.name, dea_number=acme.dea_number, address_lines=acme.address_lines, city=acme.city,
                      state=acme.state, postal_code=acme.postal_code,
                      connector={"kind": "https", "url": acme.url, "tls_bundle": str(sandbox.tls_bundle),
                                 "max_attempts": 1})
    import_fda_catalog(book.db, *bundled_catalog_paths())
    validation = CertificateValidationService(trust_roots=load_trust_bundle(sandbox.trust_bundle),
                                              crl_cache=CrlCache(tmp_path / "crl"))
    verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
    # The training profile's suppliers: they take T interchanges only.
    outbox = Outbox(book, connector_for=lambda s: connector_for(s, data_dir=tmp_path, test_indicator="T"))

    def signed_order(indicator: str):
        order = book.new_order(registration_dea=PHARMACY["dea_number"], supplier_name=acme.name,
                               order_number=new_order_number())
        book.add_line(order.id, ndc="00406055201", packages=2)
        OrderSigningService(book, verifier, test_indicator=indicator).sign(
            order.id, signer=KeySigner(purchaser.key), certificate=purchaser.certificate,
            intermediates=purchaser.chain[:1])
        outbox.enqueue(order.id)
        return book.get_order(order.id)

    return book, sandbox, acme, outbox, signed_order


def _sandbox_has(sandbox, acme, order) -> bool:
    response = requests.get(f"{acme.url}/orders/{PHARMACY['dea_number']}/{order.order_number}/records",
                            verify=str(sandbox.tls_bundle), timeout=30)
    return response.status_code == 200


def test_a_training_connector_refuses_a_production_interchange_before_sending(sandbox_world):
    book, sandbox, acme, outbox, signed_order = sandbox_world
    order = signed_order("P")
    report = outbox.run_once(order_ids=[order.id])
    assert report.sent == [] and [f["code"] for f in report.failed] == ["transport.test_indicator"]
    assert "practice supplier" in report.failed[0]["message"]
    assert book.get_order(order.id).status is OrderStatus.QUEUED
    assert not _sandbox_has(sandbox, acme, order)  # nothing went over the wire


def test_a_training_order_goes_through_and_the_sandbox_answers_with_test_interchanges(sandbox_world):
    book, sandbox, acme, outbox, signed_order = sandbox_world
    order = signed_order("T")
    report = outbox.run_once(order_ids=[order.id])
    assert report.sent == [order.order_number], report.failed
    order = book.get_order(order.id)
    ack = order.linked_records[0]
    assert ack.kind is LinkedRecordKind.ACKNOWLEDGEMENT
    assert parse_interchange(ack.raw).envelope.usage_indicator == "T"
    shipped = requests.post(acme.url + "/_training/ship", json={"purchaser_dea": PHARMACY["dea_number"],
                                                                "order_number": order.order_number},
                            verify=str(sandbox.tls_bundle), timeout=30)
    assert shipped.status_code == 200, shipped.text
    ship = base64.b64decode(shipped.json()["record"]["data_base64"])
    assert parse_interchange(ship).envelope.usage_indicator == "T"


def test_verify_prints_the_test_indicator_as_a_note(world, book, tmp_path, capsys):
    from app.cli import main

    pki, verifier = world
    subscriber = pki.issue()
    signed = OrderSigningService(book, verifier, test_indicator="T").sign(
        draft_order(book).id, signer=KeySigner(subscriber.key), certificate=subscriber.cert,
        intermediates=pki.intermediates)
    path = tmp_path / "order.csos"
    path.write_bytes(signed.document)
    args = ["--data-dir", str(tmp_path / "data"), "--database-url", book.db.url, "verify", str(path),
            "--trust", str(pki.trust_bundle)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Note: test_indicator: T (a test interchange, made in training)" in out and "ACCEPTABLE" in out
    assert main([*args, "--json"]) == 0
    assert '"test_indicator": "T"' in capsys.readouterr().out
