"""A full disk is explained and loses nothing (issue 9/10 fault suite).

SQLite's max_page_count gives the database a hard size limit, which fails exactly as a full disk does
(SQLITE_FULL, "database or disk is full") without needing a tiny filesystem; where the tests run as root (CI) a
real 2 MB tmpfs is filled up too, while an order is being signed.
"""

from __future__ import annotations

from sqlalchemy import event

from app.errors import StorageError
from app.models.database import open_database, sqlite_url
from app.models.integrity import verify_audit_chain
from app.models.states import OrderStatus
from app.services.certificates.crl_cache import CachedCrl
from app.services.orders.orderbook import OrderBook
from app.services.orders.records import check_records
from app.services.signing.order_signing import OrderSigningService
from app.services.certificates.validation import CertificateValidationService
from app.services.signing.verifier import MappingSchedules, OrderVerifier
from tests.factories import PURCHASER_DEA, draft_order, seed
from tests.full_drive import fill_up
from tests.pki import build_training_pki
from tests.signers import KeySigner


def test_orders_added_on_a_full_disk_fail_clearly_and_earlier_ones_survive(db):
    book = OrderBook(db, actor="test")
    seed(book)
    kept = [draft_order(book, lines=1).order_number for _ in range(3)]
    with db.engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()

    @event.listens_for(db.engine, "connect")
    def limit(dbapi_connection, _record):  # every new connection sees the "disk" as full
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")

    db.engine.dispose()
    error = None
    for _ in range(400):  # each order grows the file; the limit is reached within a few dozen
        try:
            order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
            book.add_line(order.id, ndc="00406055262", packages=1)
        except StorageError as exc:
            error = exc
            break
    assert error is not None, "the size limit was never reached"
    assert error.code == "storage.disk_full"
    assert "full" in error.message and "nothing was saved" in error.message
    event.remove(db.engine, "connect", limit)
    db.engine.dispose()
    # Everything committed before the failure is intact and the audit chain is unbroken.
    for number in kept:
        assert book.find_order(number).lines[0].ndc == "00406055262"
    with db.session() as session:
        assert verify_audit_chain(session) == []
    # And the order book works again once there is room.
    assert draft_order(book, lines=1).status.value == "draft"


# -- a real full filesystem (``tiny_filesystem``: tests/conftest.py) -----------------------------------------------

def test_signing_on_a_really_full_disk_fails_clearly_keeps_the_draft_and_works_again_with_room(tiny_filesystem):
    pki = build_training_pki(tiny_filesystem.parent / "pki")
    subscriber = pki.issue()
    db = open_database(sqlite_url(tiny_filesystem / "orderbook.sqlite3"))
    try:
        book = OrderBook(db, actor="test")
        seed(book)
        verifier = OrderVerifier(
            validation=CertificateValidationService(trust_roots=pki.trust_roots), catalog=MappingSchedules.from_database(db),
            crls=[CachedCrl.from_crl(pki.crl(pki.root)).der, CachedCrl.from_crl(pki.crl()).der], fetch_crls=False)
        signing = OrderSigningService(book, verifier)
        sign = lambda order_id: signing.sign(order_id, signer=KeySigner(subscriber.key),  # noqa: E731
                                             certificate=subscriber.cert, intermediates=pki.intermediates)
        first = sign(draft_order(book, lines=2).id)
        waiting = [draft_order(book, lines=40).id for _ in range(3)]
        filler = fill_up(tiny_filesystem)
        error = None
        for order_id in waiting:  # the WAL may still have a page or two of room: the disk fills within three
            try:
                sign(order_id)
            except StorageError as exc:
                error = exc
                break
        assert error is not None, "the full filesystem was never hit"
        assert error.code == "storage.disk_full" and "nothing was saved" in error.message
        refused = book.get_order(order_id)
        assert refused.status is OrderStatus.DRAFT and refused.signed_document is None
        filler.unlink()
        db.engine.dispose()
        # With room again: the refused order signs, the earlier one is intact, the records check is clean.
        assert sign(order_id).order.status is OrderStatus.SIGNED
        assert book.get_order(first.order.id).signed_document == first.document
        with db.session() as session:
            assert verify_audit_chain(session) == []
        report = check_records(db, verifier=verifier)
        assert report.clean, report.problems
    finally:
        db.close()
