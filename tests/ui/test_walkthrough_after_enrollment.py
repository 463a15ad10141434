"""After enrollment, as a clinic meets it (issue 22), driven only by what is on screen: a renewal before its window
(refused without a reason, then with one), and the revocation after a lost computer with an overdue deadline and a
signed order not yet sent.

Widgets are found by button text, label text, accessible name and window title (the helpers of test_walkthrough).
The one thing not done from the screen is the signed-but-unsent order: it is stored through the order book as the
signing service stores it (a supplier that was down is the everyday reason such an order waits).
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLineEdit, QListWidget, QTableView
from sqlalchemy import select

from app.models.orderbook import CertificateRecord
from app.models.states import OrderStatus
from app.services.orders.orderbook import OrderBook
from tests.ui.test_walkthrough import (  # noqa: F401  (the main fixture)
    EMAIL,
    KEY_PASSWORD,
    PORTAL_PASSWORD,
    TIMEOUT,
    approve_as_the_practice_coordinator,
    click,
    enroll_from_the_checklist,
    main,
    menu,
    named,
    next_page,
    read_mail,
    type_into,
    window,
    wizard_page,
    words,
)

pytestmark = [pytest.mark.ui, pytest.mark.integration]


def _cells(table: QTableView) -> list[dict[str, str]]:
    model = table.model()
    headers = [str(model.headerData(c, Qt.Orientation.Horizontal))
               for c in range(model.columnCount())]
    return [{headers[c]: str(model.index(r, c).data() or "") for c in range(model.columnCount())}
            for r in range(model.rowCount())]


def _renew_early(qtbot, main, certificates, table) -> str:
    table.selectRow(0)
    click(qtbot, certificates, "Renew…")
    renewal = window(qtbot, "Renew a CSOS certificate — TRAINING")
    wizard_page(qtbot, renewal, "Your current certificate")
    click(qtbot, renewal, "Next >")
    qtbot.waitUntil(lambda: "nothing to do now" in words(renewal), timeout=TIMEOUT)
    click(qtbot, renewal, "The registration's schedules changed")
    next_page(qtbot, renewal, "Where the new key will live")
    type_into(qtbot, renewal, "New key password", "Juniper-Lantern-Renewal-82")
    type_into(qtbot, renewal, "Key password again", "Juniper-Lantern-Renewal-82")
    next_page(qtbot, renewal, "Unlock the current key")
    type_into(qtbot, renewal, "Key password", KEY_PASSWORD)
    next_page(qtbot, renewal, "Waiting for your coordinator")
    approve_as_the_practice_coordinator(qtbot, renewal, "Jordan Walker")
    next_page(qtbot, renewal, "Renewed certificate installed", press="Check now")
    new_id = re.search(r"New certificate ([0-9a-f]{16})", words(renewal)).group(1)
    click(qtbot, renewal, "Finish")
    qtbot.waitUntil(lambda: table.model().rowCount() == 2, timeout=TIMEOUT)
    return new_id


def test_revocation_after_a_lost_computer_with_an_overdue_deadline_and_an_unsent_signed_order(qtbot, main):
    main.start_training()
    qtbot.waitUntil(lambda: "1 of 3 done" in words(main), timeout=TIMEOUT)
    enroll_from_the_checklist(qtbot, main)
    menu(main, "Certificates", "Certificates…")
    certificates = window(qtbot, "CSOS certificates — TRAINING")
    table = named(certificates, QTableView, "Certificates")
    qtbot.waitUntil(lambda: table.model().rowCount() == 1, timeout=TIMEOUT)
    old_id = _cells(table)[0]["Certificate ID"]
    assert "Renewal opens" in _cells(table)[0]["Next action"]
    new_id = _renew_early(qtbot, main, certificates, table)

    # A signed order that has not gone out yet, signed with the current certificate.
    book = OrderBook(main.facade.db, actor="test")
    order = book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    book.add_line(order.id, ndc="00406-0552-01", packages=1)
    with main.facade.db.session() as session:
        current = next(r for r in session.scalars(select(CertificateRecord)) if r.fingerprint.startswith(new_id))
    assert book.store_signed(order.id, document=b"signed-cms", payload_sha256="a" * 64,
                             signed_at=dt.datetime.now(dt.timezone.utc), signer_fingerprint=current.fingerprint)
    number = book.get_order(order.id).order_number

    # The laptop was lost yesterday: revoke the current certificate.
    click(qtbot, certificates, "Refresh")
    row = next(i for i, r in enumerate(_cells(table)) if r["Certificate ID"] == new_id)
    table.selectRow(row)
    click(qtbot, certificates, "Revoke…")
    revocation = window(qtbot, "Revoke a CSOS certificate — TRAINING")
    wizard_page(qtbot, revocation, "What happened")
    assert new_id in words(revocation)
    click(qtbot, revocation, "No — I lost my key, my computer or my password")
    next_page(qtbot, revocation, "Reason for revocation")
    assert "deadline" not in words(revocation) and "DEA must be told" not in words(revocation)  # no reason yet
    click(qtbot, revocation, "My private key (key file or token) was lost, stolen, or someone else may have used it")
    noticed = dt.datetime.now() - dt.timedelta(hours=25)
    type_into(qtbot, revocation, "When did you notice it? (your local time)", f"{noticed:%Y-%m-%d %H:%M}")
    qtbot.waitUntil(lambda: "Report now: the deadline passed at" in words(revocation), timeout=TIMEOUT)
    click(qtbot, revocation, "The computer (or its disk or backup) with the key file was lost or stolen")
    assert old_id in words(revocation) and "superseded" in words(revocation)
    next_page(qtbot, revocation, "I lost my key or password")
    lost = words(revocation)
    assert "Report now: the deadline passed at" in lost and "report now: the deadline passed at" in lost
    assert "you have 24 hours" not in lost
    next_page(qtbot, revocation, "Your portal account")
    assert "Report now: the deadline passed at" in words(revocation)  # on every page once the reason is known
    type_into(qtbot, revocation, "E-mail address", EMAIL)
    type_into(qtbot, revocation, "Portal password", PORTAL_PASSWORD)
    next_page(qtbot, revocation, "Sign-in code")
    assert "Report now: the deadline passed at" in words(revocation)
    code = read_mail(qtbot, revocation, "Open the practice mailbox", r"sign-in code is (\d{6})")
    type_into(qtbot, revocation, "Sign-in code (6 digits)", code)
    next_page(qtbot, revocation, "Confirm the revocation")
    confirm = words(revocation)
    assert "Report now: the deadline passed at" in confirm
    assert f"Order {number} to Acme Drug" in confirm and "suppliers refuse an order signed with a revoked" in confirm
    assert old_id in confirm  # the superseded certificate whose key was on the same computer
    click(qtbot, revocation, "Delete their key files from this computer")
    click(qtbot, revocation, "I understand the certificate can never sign again")
    next_page(qtbot, revocation, "Certificate revoked", press="Next >")
    done = words(revocation)
    assert "Report now" not in done  # reported: no deadline any more
    assert f"Order {number} → new draft" in done and "Key files deleted from this computer" in done
    assert f"Also revoked: certificate {old_id}" in done
    click(qtbot, revocation, "Finish")

    # The list: both revoked, neither with "days left"; the order held, a new draft waiting.
    click(qtbot, certificates, "Refresh")
    rows = _cells(table)
    assert {r["Status"] for r in rows} == {"revoked"} and all(r["Days left"] == "" for r in rows)
    assert book.get_order(order.id).status is OrderStatus.CANCELLED
    click(qtbot, certificates, "Close")


def _approve_as(qtbot, wizard, coordinator: str, applicant: str) -> None:
    """Play the practice coordinator the waiting page names (sign in with the code from the mailbox, approve)."""
    click(qtbot, wizard, "Open approvals as the practice coordinator")
    approvals = window(qtbot, "Approvals — TRAINING")
    assert f"you now play {coordinator}" in words(approvals)
    click(qtbot, approvals, "Send me the code")
    qtbot.waitUntil(lambda: named(approvals, QLineEdit, "Sign-in code").isEnabled(), timeout=TIMEOUT)
    code = read_mail(qtbot, approvals, "Open the practice mailbox", r"sign-in code is (\d{6})")
    type_into(qtbot, approvals, "Sign-in code", code)
    click(qtbot, approvals, "Sign in")
    qtbot.waitUntil(lambda: "wait for your decision" in words(approvals), timeout=TIMEOUT)
    pending = named(approvals, QTableView, "Pending applications")
    row = next(r for r in range(pending.model().rowCount()) if applicant in pending.model().index(r, 0).data())
    pending.selectRow(row)
    click(qtbot, approvals, "Approve")
    qtbot.waitUntil(lambda: not any(applicant in str(pending.model().index(r, 0).data())
                                    for r in range(pending.model().rowCount())), timeout=TIMEOUT)
    click(qtbot, approvals, "Close")


def test_a_second_registration_added_here_is_enrolled_for_and_the_waiting_page_names_who_must_approve(qtbot, main):
    main.start_training()
    qtbot.waitUntil(lambda: "1 of 3 done" in words(main), timeout=TIMEOUT)
    menu(main, "File", "Registrations…")
    registrations = window(qtbot, "DEA registrations — TRAINING")
    click(qtbot, registrations, "Add a registration")
    for name, value in (("DEA number", "BS1234563"), ("Name (as registered)", "Lakeside Pharmacy"),
                        ("Street address", "4 Shore Rd"), ("City", "Madison"), ("State", "WI"),
                        ("ZIP code", "53703"), ("Registration expires", "06/30/2028")):
        type_into(qtbot, registrations, name, value)
    click(qtbot, registrations, "II")
    click(qtbot, registrations, "Save")
    qtbot.waitUntil(lambda: "BS1234563" in words(registrations) or any(
        "BS1234563" in str(v.model().index(r, 0).data()) for v in registrations.findChildren(QTableView)
        for r in range(v.model().rowCount())), timeout=TIMEOUT)
    click(qtbot, registrations, "Close")

    menu(main, "Certificates", "Enroll for a certificate…")
    wizard = window(qtbot, "Enroll for a CSOS certificate — TRAINING")
    wizard_page(qtbot, wizard, "What enrollment is")
    next_page(qtbot, wizard, "Your role")
    click(qtbot, wizard, "Registrant")
    next_page(qtbot, wizard, "About you")
    type_into(qtbot, wizard, "Full name", "Robin Second")
    type_into(qtbot, wizard, "E-mail address", "robin.second@lakeside.example")
    next_page(qtbot, wizard, "Registrations you will sign for")
    listed = named(wizard, QListWidget, "Registrations")
    qtbot.waitUntil(lambda: listed.count() >= 3, timeout=TIMEOUT)
    for row in range(listed.count()):
        if listed.item(row).text().startswith(("BS1234563", "FR3141594")):
            listed.item(row).setCheckState(Qt.CheckState.Checked)
    next_page(qtbot, wizard, "Subscriber agreement")
    click(qtbot, wizard, "I have read and accept the subscriber agreement")
    next_page(qtbot, wizard, "Identity proofing")
    type_into(qtbot, wizard, "Document number", "D7654321")
    type_into(qtbot, wizard, "Date of birth", "04/02/1980")
    next_page(qtbot, wizard, "Your portal account")
    type_into(qtbot, wizard, "Portal password", PORTAL_PASSWORD)
    type_into(qtbot, wizard, "Portal password again (new account only)", PORTAL_PASSWORD)
    next_page(qtbot, wizard, "Sign-in code")
    code = read_mail(qtbot, wizard, "Open the practice mailbox", r"sign-in code is (\d{6})")
    type_into(qtbot, wizard, "Sign-in code (6 digits)", code)
    next_page(qtbot, wizard, "Check and send")
    next_page(qtbot, wizard, "Waiting for approval")  # the practice portal knew Lakeside: no refusal
    waiting = words(wizard)
    assert "Still waiting for approval from:" in waiting
    assert "BS1234563 Lakeside Pharmacy: Casey Coordinator, its coordinator" in waiting
    assert "FR3141594 Riverside Family Clinic: Dana Coordinator, its coordinator" in waiting

    _approve_as(qtbot, wizard, "Dana Coordinator", "Robin Second")
    qtbot.waitUntil(lambda: "Already approved: FR3141594" in words(wizard), timeout=TIMEOUT)
    assert "Dana Coordinator, its coordinator" not in words(wizard)
    _approve_as(qtbot, wizard, "Casey Coordinator", "Robin Second")
    wizard_page(qtbot, wizard, "Reference number and access code")
    wizard.close()
