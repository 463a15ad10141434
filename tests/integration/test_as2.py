"""Orders over AS2 (RFC 4130) against the training sandbox: the pharmacy's own AS2 identity, a signed + encrypted
message, the synchronous signed MDN verified (signer, Message-ID, disposition, MIC) and kept as the delivery proof,
the 855/856 answers fetched as usual, and the failures — a negative MDN, no MDN, a wrong partner certificate, a
payload damaged in transfer — each leaving the order queued with a clear error and sending it once on recovery with
the same Message-ID. Real sandbox over HTTPS on loopback, real CMS, real SQLite; nothing mocked."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import zipfile

import pytest
import requests
from cryptography.hazmat.primitives import serialization

from app.models.orderbook import LinkedRecordKind, Supplier
from app.models.outbox import OutboxState
from app.models.states import OrderStatus
from app.services.catalog import bundled_catalog_paths, import_fda_catalog
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.outbox import Outbox
from app.services.orders.records import check_records, export_records
from app.services.signing.cms import MEDIA_TYPE, check_signature, parse_signed_document
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.transport import as2_mime
from app.services.transport.as2 import create_identity, message_id_for
from app.services.transport.connectors import FolderConnector, connector_for
from tests.integration.conftest import PHARMACY, new_order_number
from tests.signers import KeySigner

S = OrderStatus
OXYCODONE, ALPRAZOLAM = "00406055201", "00009005501"
SUPPLIER = "Acme Drug"


@pytest.fixture(scope="module")
def purchaser(sandbox_client):
    return sandbox_client.enroll(PHARMACY, full_name="Ada AS2 Purchaser")


class As2World:
    def __init__(self, book, sandbox, purchaser, tmp_path):
        self.book, self.sandbox, self.purchaser, self.tmp_path = book, sandbox, purchaser, tmp_path
        self.supplier = sandbox.supplier("acme")
        self.verify = str(sandbox.tls_bundle)
        self.identity = create_identity(tmp_path, f"TEST-PHARMACY-{secrets.token_hex(4).upper()}")
        self.training("as2/partners", {"as2_id": self.identity.as2_id,
                                       "certificate_pem": self.identity.certificate_pem.decode("ascii")})
        self.status = self.as2_status()
        info = next(r for r in sandbox.registrations if r.dea_number == PHARMACY["dea_number"])
        book.add_registration(dea_number=info.dea_number, name=info.name, address_lines=info.address_lines,
                              city=info.city, state=info.state, postal_code=info.postal_code,
                              schedules=info.schedules, expires_on=info.expires_at.date())
        book.add_supplier(name=SUPPLIER, dea_number=self.supplier.dea_number,
                          address_lines=self.supplier.address_lines, city=self.supplier.city,
                          state=self.supplier.state, postal_code=self.supplier.postal_code,
                          connector=self.connector_settings())
        import_fda_catalog(book.db, *bundled_catalog_paths())
        validation = CertificateValidationService(
            trust_roots=load_trust_bundle(sandbox.trust_bundle),
            crl_cache=CrlCache(tmp_path / "crl", tls_ca_bundle=self.verify))
        self.verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(book.db))
        self.signing = OrderSigningService(book, self.verifier)
        self.lifecycle = Lifecycle(book)
        self.connectors = lambda s: connector_for(s, data_dir=tmp_path)  # noqa: E731
        self.outbox = Outbox(book, connector_for=self.connectors, lifecycle=self.lifecycle)

    def connector_settings(self, **changes) -> dict:
        return {"kind": "as2", "url": self.status["url"], "partner_as2_id": self.status["as2_id"],
                "partner_certificate": self.status["certificate_pem"], "records_url": self.supplier.url,
                "tls_bundle": self.verify, "read_timeout": 10, **changes}

    def training(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.supplier.url}/_training/{path}", json=body, verify=self.verify, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def as2_status(self) -> dict:
        response = requests.get(f"{self.supplier.url}/_training/as2", verify=self.verify, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def messages(self, message_id: str) -> list[dict]:
        return [m for m in self.as2_status()["messages"] if m["message_id"] == message_id]

    def order(self, lines=((OXYCODONE, 2), (ALPRAZOLAM, 1)), *, queue: bool = True):
        order = self.book.new_order(registration_dea=PHARMACY["dea_number"], supplier_name=SUPPLIER,
                                    order_number=new_order_number())
        for ndc, packages in lines:
            self.book.add_line(order.id, ndc=ndc, packages=packages)
        self.signing.sign(order.id, signer=KeySigner(self.purchaser.key), certificate=self.purchaser.certificate,
                          intermediates=self.purchaser.chain[:1])
        if queue:
            self.outbox.enqueue(order.id)
        return self.book.get_order(order.id)

    def message_id(self, order) -> str:
        return message_id_for("order", order_number=order.order_number, purchaser_dea=PHARMACY["dea_number"],
                              document=order.signed_document, as2_id=self.identity.as2_id)

    def records(self, order) -> list[dict]:
        response = requests.get(f"{self.supplier.url}/orders/{PHARMACY['dea_number']}/{order.order_number}/records",
                                verify=self.verify, timeout=10)
        return response.json()["records"] if response.status_code == 200 else []


@pytest.fixture
def world(book, sandbox, purchaser, tmp_path):
    return As2World(book, sandbox, purchaser, tmp_path)


def _receipts(order):
    return [r for r in order.linked_records if r.kind is LinkedRecordKind.DELIVERY_RECEIPT]


def test_full_order_life_over_as2_with_the_mdn_kept_as_delivery_proof(world, tmp_path):
    order = world.order()
    report = world.outbox.run_once(order_ids=[order.id])
    assert report.sent == [order.order_number], report.failed
    order = world.book.get_order(order.id)
    assert order.status is S.ACCEPTED  # the 855 fetched from the supplier's records right after the MDN
    assert [r.kind for r in order.linked_records] == [LinkedRecordKind.DELIVERY_RECEIPT,
                                                      LinkedRecordKind.ACKNOWLEDGEMENT]
    # What the supplier's AS2 server received: encrypted with AES-256-CBC, and the bytes it stored are exactly the
    # signed order — its own CMS check passed on them and their digest is the order's.
    [message] = world.messages(world.message_id(order))
    assert message["disposition"] == "processed" and message["encryption"] == "aes256_cbc"
    assert message["payload_type"] == MEDIA_TYPE and message["cms_problems"] == []
    assert message["payload_sha256"] == hashlib.sha256(order.signed_document).hexdigest()
    assert message["order_status"] == "accepted"
    # The kept MDN is the signed receipt itself: it verifies again with the supplier's certificate, names our
    # Message-ID and returns the MIC of what we signed.
    [receipt] = _receipts(order)
    headers, body = as2_mime.split_entity(receipt.raw)
    mdn = as2_mime.read_mdn(dict(headers.items()), body, partner_certificate=_certificate(world.status["certificate_pem"]),
                            partner="Acme")
    assert mdn.processed and mdn.original_message_id == world.message_id(order)
    assert mdn.mic == message["mic"] == receipt.parsed["mic_sent"]
    assert receipt.parsed["message_id"] == world.message_id(order)
    # The rest of the life as usual: shipment fetched, goods received.
    world.training("ship", {"purchaser_dea": PHARMACY["dea_number"], "order_number": order.order_number,
                            "lines": None})
    sync = world.lifecycle.sync(world.connectors, order_ids=[order.id])
    assert sync.errors == [] and [a.kind for a in sync.applied] == ["856"]
    assert world.lifecycle.receive(order.id).status == "received"
    # The receipt is in the records export, byte for byte, and the records check is clean.
    out = tmp_path / "export"
    today = dt.date.today()
    export_records(world.book.db, date_from=today - dt.timedelta(days=1), date_to=today + dt.timedelta(days=1),
                   out_dir=out)
    exported = list((out / "archive" / "orders" / order.order_number / "records").glob("*-delivery_receipt.mdn.eml"))
    assert len(exported) == 1 and exported[0].read_bytes() == receipt.raw
    with zipfile.ZipFile(out / "archive.zip") as archive:
        assert [n for n in archive.namelist() if n.endswith(exported[0].name)]
    assert b"message/disposition-notification" in receipt.raw
    view = json.loads((out / "archive" / "orders" / order.order_number / "order.json").read_text("utf-8"))
    [described] = [r for r in view["linked_records"] if r["kind"] == "delivery_receipt"]
    assert described["summary"].startswith("Delivery receipt (AS2) from Acme Drug: processed")
    assert check_records(world.book.db, verifier=world.verifier).clean


def _certificate(pem: str):
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode("ascii"))


def test_negative_mdn_leaves_the_order_queued_then_it_is_sent_once_with_the_same_message_id(world):
    world.training("as2/faults", {"negative_next": 1})
    order = world.order()
    report = world.outbox.run_once(order_ids=[order.id])
    assert [f["code"] for f in report.failed] == ["transport.as2_negative_mdn"]
    assert "did not accept the delivery" in report.failed[0]["message"]
    order = world.book.get_order(order.id)
    entry = world.outbox.entry_for(order.id)
    assert order.status is S.QUEUED and entry.state is OutboxState.QUEUED
    assert entry.last_error_code == "transport.as2_negative_mdn" and _receipts(order) == []
    assert world.records(order) == []  # the supplier's desk never got it
    world.outbox.retry_now(order.id)
    assert world.outbox.run_once(order_ids=[order.id]).sent == [order.order_number]
    order = world.book.get_order(order.id)
    assert order.status is S.ACCEPTED and len(_receipts(order)) == 1
    messages = world.messages(world.message_id(order))
    assert [m["disposition"] for m in messages] == ["processed/error: unexpected-processing-error", "processed"]
    # Acknowledged: the outbox never sends it again, and the supplier has one order with one 855.
    world.outbox.retry_now(order.id)
    assert world.outbox.run_once(order_ids=[order.id]).tried == 0
    assert len(world.messages(world.message_id(order))) == 2
    assert [r["kind"] for r in world.records(order)] == ["855"]


def test_a_receipt_with_another_mic_does_not_count_as_delivered(world):
    world.training("as2/faults", {"wrong_mic_next": 1})
    order = world.order()
    report = world.outbox.run_once(order_ids=[order.id])
    assert [f["code"] for f in report.failed] == ["transport.as2_mic_mismatch"]
    assert "exact content" in report.failed[0]["message"]
    order = world.book.get_order(order.id)
    assert order.status is S.QUEUED and _receipts(order) == []
    world.outbox.retry_now(order.id)
    assert world.outbox.run_once(order_ids=[order.id]).sent == [order.order_number]
    [receipt] = _receipts(world.book.get_order(order.id))
    assert receipt.parsed["received_content_mic"].startswith(receipt.parsed["mic_sent"])
    assert [r["kind"] for r in world.records(order)] == ["855"]  # the supplier took it once


def test_a_repeat_after_a_lost_mdn_gets_the_first_mdn_and_is_not_processed_twice(world):
    """A crash after the MDN arrived but before it was recorded means one more send of the same message: the partner
    recognises the Message-ID and answers with the same receipt."""
    order = world.order()
    connector = world.connectors(order.supplier)
    try:
        first = connector.send_order(order_number=order.order_number, purchaser_dea=PHARMACY["dea_number"],
                                     document=order.signed_document)
        second = connector.send_order(order_number=order.order_number, purchaser_dea=PHARMACY["dea_number"],
                                      document=order.signed_document)
    finally:
        connector.close()
    assert first.proofs[0].data == second.proofs[0].data
    messages = world.messages(world.message_id(order))
    assert len(messages) == 2 and messages[1].get("duplicate") is True
    assert [r["kind"] for r in world.records(order)] == ["855"]


def test_no_mdn_when_the_supplier_is_down_leaves_the_order_queued(world):
    world.training("faults", {"fail_next": 1})
    order = world.order()
    report = world.outbox.run_once(order_ids=[order.id])
    assert [f["code"] for f in report.failed] == ["transport.as2_no_mdn"]
    assert world.book.get_order(order.id).status is S.QUEUED
    world.outbox.retry_now(order.id)
    assert world.outbox.run_once(order_ids=[order.id]).sent == [order.order_number]


def test_a_wrong_partner_certificate_is_a_clear_error_and_nothing_is_delivered(world):
    other = create_identity(world.tmp_path / "other", "SOMEONE-ELSE").certificate_pem.decode("ascii")
    with world.book.db.session() as session, session.begin():
        supplier = session.query(Supplier).filter_by(name=SUPPLIER).one()
        supplier.connector = world.connector_settings(partner_certificate=other)
    order = world.order()
    report = world.outbox.run_once(order_ids=[order.id])
    assert [f["code"] for f in report.failed] == ["transport.as2_wrong_certificate"]
    assert "certificate" in report.failed[0]["message"] and "Settings" in report.failed[0]["message"]
    assert world.book.get_order(order.id).status is S.QUEUED
    [message] = world.messages(world.message_id(order))
    assert message["disposition"] == "processed/error: decryption-failed"
    assert world.records(order) == []


def test_a_payload_changed_in_transfer_is_refused_although_its_as2_mic_matches(world):
    """The pyas2lib trap: line endings rewritten before signing and encrypting, so AS2 signature and MIC match the
    damaged bytes. The supplier checks the CSOS signature on the bytes it stored and refuses them."""
    order = world.order()
    document = order.signed_document
    damaged = document.replace(b"\n", b"\r\n") if b"\n" in document else document[:-1] + b"\r\n"
    assert damaged != document
    message = as2_mime.build_message(
        damaged, message_id="<damaged-" + secrets.token_hex(6) + "@test.as2>", as2_from=world.identity.as2_id,
        as2_to=world.status["as2_id"], media_type=MEDIA_TYPE, filename="x.csos", key=world.identity.key,
        certificate=world.identity.certificate, partner_certificate=_certificate(world.status["certificate_pem"]))
    response = requests.post(world.status["url"], data=message.body, headers=message.headers, verify=world.verify,
                             timeout=10)
    mdn = as2_mime.read_mdn(dict(response.headers), response.content,
                            partner_certificate=_certificate(world.status["certificate_pem"]), partner="Acme")
    assert not mdn.processed and mdn.error == "integrity-check-failed"
    [logged] = world.messages(message.message_id)
    assert logged["cms_problems"] and "order_status" not in logged
    assert world.records(order) == []
    # The same document sent properly is byte-identical at the supplier: its CMS verifies there.
    assert world.outbox.run_once(order_ids=[order.id]).sent == [order.order_number]
    [good] = world.messages(world.message_id(order))
    assert good["cms_problems"] == [] and good["payload_sha256"] == hashlib.sha256(document).hexdigest()
    assert check_signature(parse_signed_document(document)) == []


def test_identity_key_file_is_private_and_separate_from_the_csos_key(world):
    folder = world.identity.folder
    assert (folder / "transport-key.pem").stat().st_mode & 0o777 == 0o600
    ours = world.identity.certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    csos = world.purchaser.certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    assert ours != csos


def test_a_lost_order_statement_goes_over_as2_with_its_receipt_kept(world, tmp_path):
    order = world.order(queue=False)
    astray = Outbox(world.book, connector_for=lambda s: FolderConnector(tmp_path / "astray", tmp_path / "in"),
                    lifecycle=world.lifecycle)  # the original never reaches the supplier
    astray.enqueue(order.id)
    assert astray.run_once().sent == [order.order_number]
    world.lifecycle.report_lost(order.id, signer=KeySigner(world.purchaser.key),
                                certificate=world.purchaser.certificate, intermediates=world.purchaser.chain[:1])
    assert world.outbox.run_once().sent == [order.order_number]  # the signed statement, over AS2
    statement = next(r for r in world.book.get_order(order.id).linked_records
                     if r.kind is LinkedRecordKind.LOST_STATEMENT)
    message_id = message_id_for("statement", order_number=order.order_number, purchaser_dea=PHARMACY["dea_number"],
                                document=statement.raw, as2_id=world.identity.as2_id)
    [logged] = world.messages(message_id)
    assert logged["document"] == "statement" and logged["disposition"] == "processed"
    assert logged["order_status"] == "recorded"
    [receipt] = _receipts(world.book.get_order(order.id))
    assert receipt.parsed["message_id"] == message_id
