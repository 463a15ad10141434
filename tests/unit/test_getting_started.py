"""The getting-started checklist reads the real order book (SQLite): each step ticks when its part is there."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from app.models.orderbook import CertificateRecord, CertificateStatus, Order
from app.models.states import OrderStatus
from app.services.getting_started import getting_started, how_reached

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.timezone.utc)


def test_empty_book_offers_every_step_and_ticks_them_one_by_one(book, db):
    empty = getting_started(db, training=True, now=NOW)
    assert [s.key for s in empty.steps] == ["certificate", "parties", "first_order"] and empty.done == 0
    assert [a.label for a in empty.step("certificate").actions] == ["Enroll…", "Import a .p12…"]
    assert "your DEA registration and a supplier" in empty.step("parties").text

    registration = book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy",
                                         address_lines=["1 Main St"], city="Springfield", state="IL",
                                         postal_code="62701", schedules=["II", "III", "IV", "V"])
    book.add_supplier(name="Acme Drug", dea_number="RA1234563",
                      connector={"kind": "https", "url": "https://127.0.0.1:8443/acme"})
    half = getting_started(db, training=True, now=NOW)
    assert half.step("parties").done and half.done == 1
    assert "Supplier Acme Drug: sent over the internet to the practice supplier on this computer" in \
        half.step("parties").items

    with db.session() as session, session.begin():
        session.add(CertificateRecord(fingerprint="ab" * 32, subscriber_name="Pat Purchaser", kind="signing",
                                      registration_id=registration.id, status=CertificateStatus.ACTIVE,
                                      not_after=NOW + dt.timedelta(days=300)))
    order = book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    two = getting_started(db, training=True, now=NOW)
    assert two.step("certificate").done and not two.step("first_order").done
    assert "draft is waiting" in two.step("first_order").text
    with db.session() as session, session.begin():
        session.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.TRANSMITTED))
    assert getting_started(db, training=True, now=NOW).complete
    # An expired certificate does not count.
    assert not getting_started(db, training=True, now=NOW + dt.timedelta(days=400)).step("certificate").done


def test_how_each_supplier_is_reached_in_plain_words():

    assert how_reached({}) == "saved as a file you upload to the supplier yourself"
    assert how_reached({"kind": "https", "url": "https://orders.acme.example/csos"}) == \
        "sent over the internet to orders.acme.example"


def test_production_checklist_starts_with_trust_roots(db):
    checklist = getting_started(db, training=False, trust_roots=False, now=NOW)
    first = checklist.steps[0]
    assert first.key == "trust_roots" and not first.done and first.actions[0].key == "trust_roots"
