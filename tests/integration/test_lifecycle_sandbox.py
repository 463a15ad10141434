"""The whole life of an order against the training sandbox over HTTPS: each supplier answer, partial fills, voids,
a lost order with its statement and replacement and the late original, the 60-day rule, a supplier fault — with
certificates from the sandbox CA, CRLs from its distribution points, and the sandbox's own verifier on the other
side (duties O4–O8)."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from app.models.orderbook import LineStatus, LinkedRecordKind, Supplier
from app.models.outbox import OutboxState
from app.models.states import OrderStatus
from app.services.catalog import bundled_catalog_paths, import_fda_catalog
from app.services.certificates.crl_cache import CrlCache
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.outbox import Outbox
from app.services.orders.records import check_records
from app.services.signing.order_signing import OrderSigningService
from app.services.transport.connectors import FolderConnector, connector_for
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.integration.conftest import PHARMACY, new_order_number
from tests.signers import KeySigner

S = OrderStatus
OXYCODONE, ALPRAZOLAM, AMOXICILLIN = "00406055201", "00009005501", "65862001701"
BACKORDERED_AT_BLUE_RIVER = "00093083301"


@pytest.fixture(scope="module")
def purchaser(sandbox_client):
    return sandbox_client.enroll(PHARMACY, full_name="Pat Purchaser")


@pytest.fixture
def world(book, sandbox, purchaser, tmp_path):
    info = next(r for r in sandbox.registrations if r.dea_number == PHARMACY["dea_number"])
    book.add_registration(dea_number=info.dea_number, name=info.name, address_lines=info.address_lines,
                          city=info.city, state=info.state, postal_code=info.postal_code, schedules=info.schedules,
                          expires_on=info.expires_at.date())
    for supplier in sandbox.suppliers:
        book.add_supplier(name=supplier.name, dea_number=supplier.dea_number, address_lines=supplier.address_lines,
                          city=supplier.city, state=supplier.state, postal_code=supplier.postal_code,
                          connector={"kind": "https", "url": supplier.url, "tls_bundle": str(sandbox.tls_bundle),
                                     "connect_timeout": 5, "read_timeout": 5, "max_attempts": 1})
    import_fda_catalog(book.db, *bundled_catalog_paths())
    validation = CertificateValidationService(
        trust_roots=load_trust_bundle(sandbox.trust_bundle),
        crl_cache=CrlCache(tmp_path / "crl", tls_ca_bundle=str(sandbox.tls_bundle)))
    verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
    connectors = lambda s: connector_for(s, data_dir=tmp_path)  # noqa: E731
    lifecycle = Lifecycle(book)
    return World(book, sandbox, purchaser, verifier, OrderSigningService(book, verifier),
                 Outbox(book, connector_for=connectors, lifecycle=lifecycle), lifecycle, connectors)


class World:
    def __init__(self, book, sandbox, purchaser, verifier, signing, outbox, lifecycle, connectors):
        self.book, self.sandbox, self.purchaser, self.verifier = book, sandbox, purchaser, verifier
        self.signing, self.outbox, self.lifecycle, self.connectors = signing, outbox, lifecycle, connectors

    def order(self, supplier: str = "Acme Drug", lines=((OXYCODONE, 2), (ALPRAZOLAM, 1), (AMOXICILLIN, 3))):
        order = self.book.new_order(registration_dea=PHARMACY["dea_number"], supplier_name=supplier,
                                    order_number=new_order_number())
        for ndc, packages in lines:
            self.book.add_line(order.id, ndc=ndc, packages=packages)
        self.signing.sign(order.id, signer=KeySigner(self.purchaser.key), certificate=self.purchaser.certificate,
                          intermediates=self.purchaser.chain[:1])
        return self.book.get_order(order.id)

    def send(self, order):
        self.outbox.enqueue(order.id)
        report = self.outbox.run_once(order_ids=[order.id])
        return report, self.book.get_order(order.id)

    def training(self, order, action: str, body: dict) -> dict:
        supplier = next(s for s in self.sandbox.suppliers if s.name == order.supplier.name)
        response = requests.post(f"{supplier.url}/_training/{action}", timeout=10, verify=str(self.sandbox.tls_bundle),
                                 json={"purchaser_dea": PHARMACY["dea_number"], "order_number": order.order_number,
                                       **body})
        assert response.status_code == 200, response.text
        return response.json()

    def sync(self, order):
        report = self.lifecycle.sync(self.connectors, order_ids=[order.id])
        assert report.errors == [], report.errors
        return report, self.book.get_order(order.id)


def test_accepted_partial_shipments_and_receipts_to_received(world):
    report, order = world.send(world.order())
    assert report.sent == [order.order_number]
    assert order.status is S.ACCEPTED and order.linked_records[0].kind is LinkedRecordKind.ACKNOWLEDGEMENT
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED] * 3
    world.training(order, "ship", {"lines": [{"line_number": 1, "packages": 1}, {"line_number": 3, "packages": 3}]})
    sync, order = world.sync(order)
    assert [a.kind for a in sync.applied] == ["856"]
    assert world.lifecycle.receive(order.id).status == "partially_received"
    world.training(order, "ship", {"lines": None})  # the rest
    world.sync(order)
    result = world.lifecycle.receive(order.id)
    assert result.status == "received" and result.lines == {1: 1, 2: 1}
    order = world.book.get_order(order.id)
    assert [r.kind.value for r in order.linked_records] == ["acknowledgement", "shipment", "receipt", "shipment",
                                                            "receipt"]
    assert world.sync(order)[0].applied == []  # nothing new: every record linked once
    report = check_records(world.book.db, verifier=world.verifier)
    assert report.clean, report.problems


def test_accepted_with_changes_for_a_backordered_product(world):
    _, order = world.send(world.order("Blue River Wholesale", lines=((OXYCODONE, 1), (BACKORDERED_AT_BLUE_RIVER, 2))))
    assert order.status is S.PARTIALLY_ACCEPTED
    assert [line.line_status for line in order.lines] == [LineStatus.ACCEPTED, LineStatus.BACKORDERED]


def test_not_accepted_links_the_statement_and_a_new_order_is_issued(world):
    order = world.order()
    world.training(order, "reject", {"next": 1, "reason": "Account on credit hold"})
    _, order = world.send(order)
    assert order.status is S.NOT_ACCEPTED
    record = order.linked_records[0]
    assert record.kind is LinkedRecordKind.NON_ACCEPTANCE and record.parsed["document"]["status"] == "RJ"
    assert "credit hold" in (record.parsed["document"]["reason"] or "")
    new = world.lifecycle.new_from(order.id)
    assert new.status is S.DRAFT and new.replaces_order_id == order.id
    assert world.book.get_order(order.id).status is S.NOT_ACCEPTED


def test_full_and_partial_voids(world):
    _, whole = world.send(world.order())
    world.training(whole, "void", {"lines": None, "reason": "Discontinued"})
    _, whole = world.sync(whole)
    assert whole.status is S.VOIDED and whole.linked_records[-1].kind is LinkedRecordKind.VOID
    _, part = world.send(world.order())
    world.training(part, "void", {"lines": [2], "reason": "Out of stock"})
    _, part = world.sync(part)
    assert part.status is S.PARTIALLY_VOIDED
    assert [line.line_status for line in part.lines] == [LineStatus.ACCEPTED, LineStatus.VOIDED, LineStatus.ACCEPTED]
    world.training(part, "ship", {"lines": None})
    world.sync(part)
    assert world.lifecycle.receive(part.id).status == "received"


def test_lost_order_statement_replacement_and_the_late_original(world, tmp_path):
    order = world.order()
    # The original goes astray on its way (a drop folder nobody collects), so the supplier never sees it.
    astray = Outbox(world.book, connector_for=lambda s: FolderConnector(tmp_path / "astray", tmp_path / "in"),
                    lifecycle=world.lifecycle)
    astray.enqueue(order.id)
    assert astray.run_once().sent == [order.order_number]
    assert world.book.get_order(order.id).status is S.TRANSMITTED
    lost = world.lifecycle.report_lost(order.id, signer=KeySigner(world.purchaser.key),
                                       certificate=world.purchaser.certificate,
                                       intermediates=world.purchaser.chain[:1])
    assert world.outbox.run_once().sent == [order.order_number]  # the statement, over https
    entry = [e for e in world.outbox.entries() if e.purpose == "lost_statement"][0]
    assert entry.state == "sent"
    replacement = world.book.get_order(lost.replacement_order_id)
    assert replacement.replaces_order_id == order.id and replacement.status is S.DRAFT
    # The original turns up at the supplier after all: it is returned "not accepted", and we link that.
    supplier = next(s for s in world.sandbox.suppliers if s.name == "Acme Drug")
    late = requests.post(f"{supplier.url}/orders", data=world.book.get_order(order.id).signed_document, timeout=10,
                         headers={"Content-Type": "application/x-csos-signed-order"},
                         verify=str(world.sandbox.tls_bundle)).json()
    assert late["status"] == "rejected" and "lost_order_replaced" in [r["code"] for r in late["reasons"]]
    sync, order = world.sync(order)
    assert order.status is S.LOST
    [applied] = sync.applied
    assert [f.code for f in applied.flags] == ["late_original_not_accepted"]
    assert order.linked_records[-1].kind is LinkedRecordKind.NON_ACCEPTANCE


@pytest.mark.parametrize("switch, code", [("fail_next", "transport.server_error"),
                                          ("drop_next", "transport.connection")])
def test_a_supplier_fault_keeps_the_order_queued_and_it_is_sent_once_when_the_supplier_recovers(world, switch, code):
    """The sandbox's own fault switches (issue 9/10): a 503, a dropped connection. (A garbled answer to an order the
    supplier took is never sent again: tests/integration/test_hostile_answers_cli.py.)"""
    order = world.order()
    supplier = next(s for s in world.sandbox.suppliers if s.name == "Acme Drug")
    response = requests.post(f"{supplier.url}/_training/faults", json={switch: 1}, timeout=10,
                             verify=str(world.sandbox.tls_bundle))
    assert response.status_code == 200, response.text
    report, order = world.send(order)
    assert report.failed[0]["code"] == code and order.status is S.QUEUED
    assert world.outbox.entry_for(order.id).last_error
    world.outbox.retry_now(order.id)
    assert world.outbox.run_once().sent == [order.order_number]
    order = world.book.get_order(order.id)
    assert order.status is S.ACCEPTED and world.outbox.entry_for(order.id).state is OutboxState.SENT
    assert [r.kind.value for r in order.linked_records] == ["acknowledgement"]


def test_sixty_days_after_signing_the_order_expires_and_a_later_shipment_is_flagged(world):
    _, order = world.send(world.order())
    world.training(order, "ship", {"lines": [{"line_number": 1, "packages": 1}]})
    world.sync(order)
    world.lifecycle.receive(order.id)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=61)
    assert world.lifecycle.expire_overdue(now=later) == [order.order_number]
    order = world.book.get_order(order.id)
    assert order.status is S.EXPIRED and order.linked_records[-1].kind is LinkedRecordKind.EXPIRY
    world.training(order, "ship", {"lines": [{"line_number": 2, "packages": 1}]})
    sync, order = world.sync(order)
    assert [f.code for f in sync.applied[0].flags] == ["shipment_after_60_days"]
    assert order.status is S.EXPIRED


def test_supplier_settings_select_the_https_connector(world):
    with world.book.db.session() as session:
        supplier = session.query(Supplier).filter_by(name="Acme Drug").one()
    connector = world.connectors(supplier)
    assert connector.kind == "https" and connector.answers_at_once
