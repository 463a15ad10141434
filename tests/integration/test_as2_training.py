"""Training mode sets up a supplier reachable over AS2 (the sandbox's Acme Drug), with this profile's own AS2
identity as its trading partner, and an order goes the whole way over it."""

from __future__ import annotations

from sqlalchemy import select

from app.config import load_config
from app.models.database import open_database
from app.models.orderbook import LinkedRecordKind, Supplier
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CrlCache
from app.services.certificates.validation import CertificateValidationService, load_trust_bundle
from app.services.orders.lifecycle import Lifecycle
from app.services.orders.orderbook import OrderBook
from app.services.orders.outbox import Outbox
from app.services.signing.order_signing import OrderSigningService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from app.services.transport.as2 import load_identity
from app.services.transport.connectors import connector_for
from app.training import AS2_SUPPLIER, start_training_environment
from tests.integration.conftest import PHARMACY, SandboxClient, new_order_number
from tests.signers import KeySigner


def test_training_supplier_over_as2_takes_an_order(tmp_path):
    config = load_config(data_dir=tmp_path / "data", profile="training")
    db = open_database(config.database_url)
    book = OrderBook(db, actor="test")
    environment = start_training_environment(config, book, sandbox_dir=tmp_path / "sandbox")
    try:
        identity = load_identity(config.data_dir)
        with db.session() as session:
            supplier = session.scalar(select(Supplier).where(Supplier.name == AS2_SUPPLIER))
            connector = dict(supplier.connector)
        assert connector["kind"] == "as2" and connector["url"].endswith("/suppliers/acme/as2")
        # A second start keeps the identity the supplier already holds, and the supplier record follows the sandbox.
        environment.stop()
        environment = start_training_environment(config, book, sandbox_dir=tmp_path / "sandbox")
        assert load_identity(config.data_dir).fingerprint == identity.fingerprint
        sandbox = environment.sandbox
        purchaser = SandboxClient(sandbox).enroll(PHARMACY, full_name="Terry Trainee")
        validation = CertificateValidationService(
            trust_roots=load_trust_bundle(sandbox.trust_bundle),
            crl_cache=CrlCache(tmp_path / "crl", tls_ca_bundle=str(sandbox.tls_bundle)))
        verifier = OrderVerifier(validation=validation, catalog=MappingSchedules.from_database(db))
        order = book.new_order(registration_dea=PHARMACY["dea_number"], supplier_name=AS2_SUPPLIER,
                               order_number=new_order_number())
        book.add_line(order.id, ndc="00406055201", packages=1)
        OrderSigningService(book, verifier).sign(order.id, signer=KeySigner(purchaser.key),
                                                 certificate=purchaser.certificate,
                                                 intermediates=purchaser.chain[:1])
        outbox = Outbox(book, connector_for=lambda s: connector_for(
            s, data_dir=config.data_dir, tls_bundle=config.settings.get("tls_bundle")), lifecycle=Lifecycle(book))
        outbox.enqueue(order.id)
        report = outbox.run_once(order_ids=[order.id])
        assert report.sent == [order.order_number], report.failed
        order = book.get_order(order.id)
        assert order.status is OrderStatus.ACCEPTED
        assert [r.kind for r in order.linked_records] == [LinkedRecordKind.DELIVERY_RECEIPT,
                                                          LinkedRecordKind.ACKNOWLEDGEMENT]
    finally:
        environment.stop()
        db.close()
