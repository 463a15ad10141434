"""A full disk is explained and loses nothing (issue 9/10 fault suite).

SQLite's max_page_count gives the database a hard size limit, which fails exactly as a full disk does
(SQLITE_FULL, "database or disk is full") without needing a tiny filesystem.
"""

from __future__ import annotations

from sqlalchemy import event

from app.errors import StorageError
from app.models.integrity import verify_audit_chain
from app.services.orderbook import OrderBook
from tests.factories import PURCHASER_DEA, draft_order, seed


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
