"""Issue 22, without Qt: renewal says when it opens and refuses an early one without a reason; one short certificate
ID; the revocation deadline only once a reason is chosen and flagged when past; a lost computer revokes every
certificate whose key file was on it (the superseded one included), deletes the key files, and holds the signed orders
not yet sent (cancelled, audited, a new draft to sign again).

Real training CA, real software keys, real SQLite (the fixtures of test_flows).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from app.models.integrity import AuditEvent
from app.models.orderbook import CertificateStatus
from app.models.states import OrderStatus
from app.services.certificates.book import record_key_ref
from app.services.enrollment.certificate_overview import certificate_id, certificate_rows, renewal_window
from app.services.enrollment.renewal_flow import RenewalFlow
from app.services.enrollment.revocation_flow import RevocationFlow, deadline_text
from app.services.enrollment.wizard import WizardInputError
from app.services.orders.orderbook import OrderBook
from app.models.orderbook import Product
from tests.factories import PRODUCTS, SUPPLIER_DEA
from tests.unit.enrollment.test_flows import (  # noqa: F401  (fixtures)
    DEA,
    KEY_PASSWORD,
    NOW,
    MemoryAuthority,
    book,
    enrolled,
    pki,
    store,
)


def test_one_short_certificate_id_is_the_first_16_hex_digits_of_the_sha256_fingerprint():
    fingerprint = "AB:CD:" + "0123456789abcdef" * 4
    assert certificate_id(fingerprint) == "abcd0123456789ab"
    assert certificate_id(None) == ""


def test_early_renewal_is_refused_without_a_reason_and_each_reason_goes_its_way(pki, book):
    fingerprint = enrolled(pki, book)
    flow = RenewalFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=fingerprint)
    flow.start()
    window = flow.data["renewal_window"]
    assert window["open"] is False and "Renewal opens on" in window["text"]
    assert "ends when the registration does" in window["text"]
    assert flow.data["current"]["certificate_id"] == fingerprint[:16]
    with pytest.raises(WizardInputError) as caught:
        flow.next({})
    assert caught.value.field == "early_reason" and caught.value.code == "flow.renewal_not_open"
    assert flow.view == "current"
    flow.next({"early_reason": "key"})
    assert flow.view == "key_lost" and flow.is_last
    flow.back()
    flow.next({"early_reason": "name"})
    assert flow.view == "details_changed"
    flow.back()
    flow.next({"early_reason": "schedules"})
    assert flow.view == "key_location"


def test_renewal_in_its_window_needs_no_reason_and_supersedes(pki, book):
    fingerprint = enrolled(pki, book)
    ends = book.get(fingerprint).not_after
    in_window = ends - dt.timedelta(days=30)
    flow = RenewalFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=fingerprint,
                       clock=lambda: in_window)
    flow.start()
    assert flow.data["renewal_window"]["open"] is True and "Renewal is open" in flow.data["renewal_window"]["text"]
    flow.next({})
    assert flow.view == "key_location"
    password = "Harbor-Thistle-Copper-28"
    flow.next({"key_password": password, "key_password_confirm": password})
    flow.next({"current_secret": KEY_PASSWORD})
    assert flow.view == "installed" and book.get(fingerprint).status is CertificateStatus.SUPERSEDED


def test_rows_name_the_certificate_say_when_renewal_opens_and_a_revoked_one_has_no_days_left(pki, book):
    fingerprint = enrolled(pki, book)
    row = certificate_rows(book, today=NOW.date())[0]
    opens = renewal_window(book.get(fingerprint).not_after, today=NOW.date()).opens_on
    assert row.certificate_id == fingerprint[:16]
    assert f"Renewal opens {opens:%Y-%m-%d}" in row.next_action and "ends with the registration" in row.next_action
    assert row.key_location == "Key file on this computer"  # no key id: the certificate ID is the one name
    book.mark_revoked(fingerprint, reason="key_compromise")
    revoked = certificate_rows(book, today=NOW.date())[0]
    assert revoked.status == "revoked" and revoked.days_left is None


def test_the_deadline_appears_once_a_reason_is_chosen_and_is_flagged_when_past():
    noticed = NOW - dt.timedelta(hours=25)
    assert deadline_text(None, noticed, NOW) == ""
    assert deadline_text("key_compromise", noticed, NOW).startswith("Report now: the deadline passed at ")
    assert "revoke by" in deadline_text("key_compromise", NOW - dt.timedelta(hours=2), NOW)


def _signed_unsent_order(book_, fingerprint: str) -> int:
    orders = OrderBook(book_.db, actor="test")
    orders.add_supplier(name="Acme Drug", dea_number=SUPPLIER_DEA, address_lines=["9 Depot Rd"], city="Memphis",
                        state="TN", postal_code="38118")
    with orders.db.session() as session:
        for ndc, name, strength, schedule, quantity, unit in PRODUCTS[:1]:
            session.add(Product(ndc=ndc, product_ndc=ndc[:9], name=name, strength=strength, schedule=schedule,
                                package_quantity=quantity, unit=unit))
        session.commit()
    order = orders.new_order(registration_dea=DEA, supplier_name="Acme Drug")
    orders.add_line(order.id, ndc=PRODUCTS[0][0], packages=1)
    assert orders.store_signed(order.id, document=b"signed-bytes", payload_sha256="a" * 64, signed_at=NOW,
                               signer_fingerprint=fingerprint)
    orders.transition(order.id, OrderStatus.QUEUED)
    return order.id


def test_lost_computer_revokes_every_key_on_it_deletes_key_files_and_holds_unsent_orders(pki, book, store):
    first = enrolled(pki, book)
    renewal = RenewalFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=first)
    renewal.start()
    renewal.next({"early_reason": "schedules"})
    renewal.next({"key_password": "Harbor-Thistle-Copper-28", "key_password_confirm": "Harbor-Thistle-Copper-28"})
    renewal.next({"current_secret": KEY_PASSWORD})
    current = renewal.data["installed"][0]["fingerprint"]
    assert book.get(first).status is CertificateStatus.SUPERSEDED
    order_id = _signed_unsent_order(book, current)

    authority = MemoryAuthority(pki)
    authority.accounts["pat@example.test"] = "Portal-Practice-Pass-2026"
    flow = RevocationFlow(authority=authority, certificates=book, store=store, fingerprint=current,
                          clock=lambda: NOW)
    flow.start()
    flow.next({"key_available": False})
    assert [c["fingerprint"] for c in flow.context["other_keys_here"]] == [first]
    noticed = (NOW - dt.timedelta(hours=25)).isoformat()
    flow.next({"reason": "key_compromise", "noticed_at": noticed, "computer_lost": True})
    assert flow.view == "lost"
    assert "report now: the deadline passed at" in flow.context["lost_text"]
    assert "24 hours from when you noticed" not in flow.context["lost_text"]
    assert flow.context["deadline_text"].startswith("Report now")
    flow.next()
    flow.next({"account_choice": "existing", "email": "pat@example.test", "password": "Portal-Practice-Pass-2026"})
    flow.next({"sign_in_code": "123456"})
    assert flow.view == "confirm" and flow.context["deadline_text"].startswith("Report now")
    assert [o["order_id"] for o in flow.data["unsent_orders"]] == [order_id]
    key_files = [book.software_store.path_of(record_key_ref(book.get(f))) for f in (first, current)]
    assert all(p.exists() for p in key_files)
    flow.next({"confirmed": True, "delete_key_files": True, "hold_orders": True})
    assert flow.view == "done"
    assert book.get(current).status is CertificateStatus.REVOKED
    assert book.get(first).status is CertificateStatus.REVOKED  # the superseded one too
    assert len(authority.revoked) == 2
    assert not any(p.exists() for p in key_files)
    rows = certificate_rows(book, today=NOW.date())
    assert {r.key_location for r in rows} == {"Key file deleted"} and {r.days_left for r in rows} == {None}
    held = flow.data["held_orders"]
    assert [h["order_id"] for h in held] == [order_id] and held[0]["new_order_number"]
    orders = OrderBook(book.db)
    assert orders.get_order(order_id).status is OrderStatus.CANCELLED
    assert orders.get_order(held[0]["new_order_id"]).status is OrderStatus.DRAFT
    with book.db.session() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert "certificate.key_files_deleted" in actions


def test_the_lost_computer_choice_is_offered_only_without_the_key(pki, book):
    fingerprint = enrolled(pki, book)
    with_key = RevocationFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=fingerprint,
                              clock=lambda: NOW)
    with_key.start()
    with_key.next({"key_available": True})
    assert with_key.context["key_file_here"] is False
    with_key.next({"reason": "key_compromise", "noticed_at": NOW.isoformat(), "computer_lost": True})
    assert with_key.data["also_revoke"] == []
    without = RevocationFlow(authority=MemoryAuthority(pki), certificates=book, fingerprint=fingerprint,
                             clock=lambda: NOW)
    without.start()
    without.next({"key_available": False})
    assert without.context["key_file_here"] is True


def test_no_source_tree_path_on_the_key_screen():
    from app.services.enrollment.flow_common import FIPS_NOTICE, KEY_CHOICE_SOFTWARE_TEXT, KEY_CHOICE_TOKEN_TEXT

    for text in (FIPS_NOTICE, KEY_CHOICE_SOFTWARE_TEXT, KEY_CHOICE_TOKEN_TEXT):
        assert "docs/" not in text and ".md" not in text
