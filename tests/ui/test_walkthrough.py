"""A new person's first session in training, from an empty data folder, driven only by what is on screen (issue 18).

Every widget is found by the text a person sees — button text, label text, accessible name, window title — never
by objectName, and nothing is done by calling services: first start → getting started → enroll (the practice
coordinator's approval included, played by the person) → a first order with a C-II and a non-controlled line → sign
→ send → the supplier's answer → receive → records export. Each step checks the words on screen.

The sandbox is the real one (HTTPS on loopback), started by the window as ``./run`` does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QSpinBox,
    QTableView,
    QWidget,
)

from app.config import load_config
from app.models.database import open_database
from app.services.orders.orderbook import OrderBook
from app.ui.main_window import MainWindow

pytestmark = [pytest.mark.ui, pytest.mark.integration]

PORTAL_PASSWORD = "Lantern-Meadow-Portal-2026"
KEY_PASSWORD = "Copper-Harbor-Signing-4417"
EMAIL = "jordan.walk@mainstreet.example"
TIMEOUT = 60_000

# -- finding things by what a person sees ----------------------------------------------------------------------------


def plain(text: str) -> str:
    """The text as read: no HTML tags, no accelerator marks, single spaces."""
    text = re.sub(r"<[^>]+>", "", text.replace("&&", "\0").replace("&", "").replace("\0", "&"))
    return re.sub(r"[ \t]+", " ", text).strip()


def words(parent: QWidget) -> str:
    """Every visible label's text (HTML tags removed)."""
    return "\n".join(plain(label.text()) for label in parent.findChildren(QLabel) if label.isVisible())


def button(parent: QWidget, text: str) -> QAbstractButton:
    found = [b for b in parent.findChildren(QAbstractButton) if plain(b.text()).strip() == text and b.isVisible()]
    assert found, f"no button '{text}' on '{parent.windowTitle()}': " + \
        str(sorted({plain(b.text()) for b in parent.findChildren(QAbstractButton) if b.isVisible()}))
    return found[0]


def click(qtbot: Any, parent: QWidget, text: str) -> None:
    target = button(parent, text)
    qtbot.waitUntil(target.isEnabled, timeout=TIMEOUT)
    # Near the left edge: a radio button or check box reacts on its mark and text, not on the empty room after it.
    qtbot.mouseClick(target, Qt.MouseButton.LeftButton, pos=QPoint(min(8, target.width() // 2), target.height() // 2))


def named(parent: QWidget, kind: type, accessible_name: str) -> Any:
    found = [w for w in parent.findChildren(kind) if w.accessibleName() == accessible_name and w.isVisible()]
    assert found, f"no {kind.__name__} '{accessible_name}' on '{parent.windowTitle()}'"
    return found[0]


def type_into(qtbot: Any, parent: QWidget, accessible_name: str, text: str) -> None:
    entry = named(parent, QLineEdit, accessible_name)
    entry.clear()
    qtbot.keyClicks(entry, text)


def window(qtbot: Any, title: str) -> QWidget:
    def found() -> list[QWidget]:
        return [w for w in QApplication.topLevelWidgets() if w.windowTitle() == title and w.isVisible()]

    qtbot.waitUntil(lambda: bool(found()), timeout=TIMEOUT)
    return found()[-1]


def menu(main: QWidget, menu_text: str, item: str) -> None:
    for action in main.menuBar().actions():
        if plain(action.text()) == menu_text:
            for entry in action.menu().actions():
                if plain(entry.text()) == item:
                    assert entry.isEnabled(), f"{menu_text} → {item} is greyed out"
                    entry.trigger()
                    return
    raise AssertionError(f"no menu item {menu_text} → {item}")


def wizard_page(qtbot: Any, wizard: QWidget, heading: str) -> None:
    """Wait until the wizard shows ``heading`` and its Next/Check now/Finish button can be pressed."""
    def ready() -> bool:
        shown = [plain(lab.text()) for lab in wizard.findChildren(QLabel) if lab.isVisible()]
        buttons = [b for b in wizard.findChildren(QAbstractButton)
                   if plain(b.text()) in ("Next >", "Check now", "Finish") and b.isVisible()]
        return heading in shown and bool(buttons) and buttons[0].isEnabled()

    qtbot.waitUntil(ready, timeout=TIMEOUT)


def next_page(qtbot: Any, wizard: QWidget, heading: str, press: str = "Next >") -> None:
    click(qtbot, wizard, press)
    wizard_page(qtbot, wizard, heading)


def read_mail(qtbot: Any, opener: QWidget, button_text: str, pattern: str) -> str:
    """Open the practice mailbox from ``opener``, find the newest message saying ``pattern`` (a regex with one
    group), close the mailbox, and return what the group matched."""
    before = {id(w) for w in QApplication.topLevelWidgets() if w.windowTitle() == "Practice mailbox — TRAINING"}
    click(qtbot, opener, button_text)
    qtbot.waitUntil(lambda: any(id(w) not in before for w in QApplication.topLevelWidgets()
                                if w.windowTitle() == "Practice mailbox — TRAINING" and w.isVisible()),
                    timeout=TIMEOUT)
    mailbox = next(w for w in QApplication.topLevelWidgets()
                   if w.windowTitle() == "Practice mailbox — TRAINING" and id(w) not in before)
    table, body = named(mailbox, QTableView, "Messages"), named(mailbox, QPlainTextEdit, "Message")
    found: list[str] = []

    def look() -> bool:
        for row in range(table.model().rowCount()):
            table.selectRow(row)
            match = re.search(pattern, body.toPlainText())
            if match:
                found.append(match.group(1))
                return True
        return False

    qtbot.waitUntil(look, timeout=TIMEOUT)
    click(qtbot, mailbox, "Close")
    return found[0]


def approve_as_the_practice_coordinator(qtbot: Any, wizard: QWidget, applicant: str) -> None:
    """From a waiting page: play the practice coordinator — sign in (code from the practice mailbox), approve."""
    click(qtbot, wizard, "Open approvals as the practice coordinator")
    approvals = window(qtbot, "Approvals — TRAINING")
    assert "you now play Casey Coordinator" in words(approvals)
    click(qtbot, approvals, "Send me the code")
    qtbot.waitUntil(lambda: "practice mailbox" in words(approvals) and
                    named(approvals, QLineEdit, "Sign-in code").isEnabled(), timeout=TIMEOUT)
    code = read_mail(qtbot, approvals, "Open the practice mailbox", r"sign-in code is (\d{6})")
    type_into(qtbot, approvals, "Sign-in code", code)
    click(qtbot, approvals, "Sign in")
    qtbot.waitUntil(lambda: "wait for your decision" in words(approvals), timeout=TIMEOUT)
    pending = named(approvals, QTableView, "Pending applications")

    def listed() -> str:
        return " ".join(str(pending.model().index(r, 0).data()) for r in range(pending.model().rowCount()))

    row = next(r for r in range(pending.model().rowCount()) if applicant in pending.model().index(r, 0).data())
    pending.selectRow(row)
    assert applicant in words(approvals)
    click(qtbot, approvals, "Approve")
    qtbot.waitUntil(lambda: applicant not in listed(), timeout=TIMEOUT)
    click(qtbot, approvals, "Close")


def enroll_from_the_checklist(qtbot: Any, main: QWidget) -> None:
    """Getting started → Enroll… → … → the certificate installed and ticked on the checklist."""
    click(qtbot, main, "Enroll…")
    wizard = window(qtbot, "Enroll for a CSOS certificate — TRAINING")
    wizard_page(qtbot, wizard, "What enrollment is")
    assert "training portal" in words(wizard)
    next_page(qtbot, wizard, "Your role")
    click(qtbot, wizard, "Registrant")
    next_page(qtbot, wizard, "About you")
    type_into(qtbot, wizard, "Full name", "Jordan Walker")
    type_into(qtbot, wizard, "E-mail address", EMAIL)
    next_page(qtbot, wizard, "Registrations you will sign for")
    registrations = named(wizard, QListWidget, "Registrations")
    qtbot.waitUntil(lambda: registrations.count() > 0, timeout=TIMEOUT)
    for row in range(registrations.count()):
        item = registrations.item(row)
        if item.text().startswith("BJ6125341"):
            item.setCheckState(Qt.CheckState.Checked)
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
    assert "Driver's license ending 4321" in words(wizard)
    next_page(qtbot, wizard, "Waiting for approval", press="Next >")
    waiting = words(wizard)
    assert "the practice coordinator is played by you" in waiting and "casey@mainstreet.example" in waiting

    # The practice coordinator (the person again) approves.
    approve_as_the_practice_coordinator(qtbot, wizard, "Jordan Walker")

    # Back in the wizard: the codes, the key, the certificate.
    next_page(qtbot, wizard, "Reference number and access code", press="Check now")
    reference = read_mail(qtbot, wizard, "Open the practice mailbox", r"reference number is ([\d -]+)\.")
    access = read_mail(qtbot, wizard, "Open the practice mailbox", r"access code is ([A-Z0-9 -]+)\.")
    type_into(qtbot, wizard, "Reference number (from the e-mail)", reference)
    type_into(qtbot, wizard, "Access code (from the letter)", access)
    click(qtbot, wizard, "Show the access code")
    assert named(wizard, QLineEdit, "Access code (from the letter)").text() == access
    next_page(qtbot, wizard, "Where your key will live")
    key_words = words(wizard)
    assert "This computer, with a password" in plain(button(wizard, "This computer, with a password").text())
    assert "A USB security token" in plain(button(wizard, "A USB security token").text())
    assert "1311.55" not in key_words and "bytes" not in key_words  # the rule stays behind "Why does this matter?"
    type_into(qtbot, wizard, "New key password", KEY_PASSWORD)
    type_into(qtbot, wizard, "Key password again", KEY_PASSWORD)
    next_page(qtbot, wizard, "Request your certificate")
    next_page(qtbot, wizard, "Certificate installed")
    assert "Checked like a supplier checks it" in words(wizard) and "Jordan Walker" in words(wizard)
    click(qtbot, wizard, "Finish")
    qtbot.waitUntil(lambda: "2 of 3 done" in words(main), timeout=TIMEOUT)
    assert "Your CSOS certificate — done" in words(main)


# -- the walk ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def main(qtbot, tmp_path):
    config = load_config(data_dir=tmp_path / "data", profile="training")  # an empty data folder
    db = open_database(config.database_url)
    made = MainWindow(config, OrderBook(db, actor="gui"), db, start_checks=False)
    qtbot.addWidget(made)
    made.resize(1180, 760)
    made.show()
    qtbot.waitExposed(made)
    yield made
    for key in list(made.windows):
        try:
            made.windows[key].close()
        except RuntimeError:
            pass
    made.close()
    db.close()


def test_first_start_to_a_received_order_and_a_records_export(qtbot, main, tmp_path):
    # First start: the window is the training one and says what to do first.
    assert main.windowTitle() == "CSOS Desk — TRAINING"
    main.start_training()  # what the program does once the window is up (./run)
    qtbot.waitUntil(lambda: "1 of 3 done" in words(main), timeout=TIMEOUT)  # practice registrations and suppliers
    text = words(main)
    for expected in ("Getting started", "practise freely", "Your CSOS certificate",
                     "Your DEA registration(s) and suppliers — done",
                     "Registration BJ6125341 — Main Street Pharmacy",
                     "Supplier Acme Drug: sent over the internet to the practice supplier on this computer",
                     "Your first order"):
        assert expected in text, expected

    # 1. Enroll, from the checklist.
    enroll_from_the_checklist(qtbot, main)

    # 2. The first order: a C-II and a non-controlled line.
    click(qtbot, main, "New order…")
    editor = window(qtbot, "New order")
    registration = named(editor, QComboBox, "Registration")
    registration.setCurrentIndex(next(i for i in range(registration.count())
                                      if "BJ6125341" in registration.itemText(i)))
    supplier = named(editor, QComboBox, "Supplier")
    supplier.setCurrentIndex(next(i for i in range(supplier.count()) if supplier.itemText(i) == "Acme Drug"))
    for ndc, packages in (("00406-0552-01", 2), ("65862-0017-01", 3)):
        product = named(editor, QLineEdit, "Product name or NDC")
        product.clear()
        qtbot.keyClicks(product, ndc)
        qtbot.keyClick(product, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: "per package" in words(editor), timeout=TIMEOUT)
        named(editor, QSpinBox, "Number of packages").setValue(packages)
        click(qtbot, editor, "Add line")
    lines = named(editor, QTableView, "Lines of this order")
    assert lines.model().rowCount() == 2
    columns = lines.model().columnCount()
    shown = " ".join(str(lines.model().index(r, c).data()) for r in range(2) for c in range(columns))
    assert "Oxycodone" in shown and "Amoxicillin" in shown and "II" in shown
    click(qtbot, editor, "Save draft")
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: "Draft" in words(main), timeout=TIMEOUT)

    # 3. Sign and send; the supplier answers at once.
    menu(main, "Order", "Sign and send…")
    signing = next(w for w in QApplication.topLevelWidgets() if w.windowTitle().startswith("Sign and send")
                   and w.isVisible())
    qtbot.waitUntil(lambda: "Every check passed" in words(signing), timeout=TIMEOUT)
    assert "Jordan Walker" in words(signing)
    type_into(qtbot, signing, "Key password", KEY_PASSWORD)
    click(qtbot, signing, "Sign and send")
    qtbot.waitUntil(lambda: "accepted the order" in words(signing), timeout=TIMEOUT)
    click(qtbot, signing, "Close")
    qtbot.waitUntil(lambda: "Accepted" in words(main), timeout=TIMEOUT)

    # 4. The goods arrive: receive them.
    menu(main, "Order", "Receive goods…")
    receiving = next(w for w in QApplication.topLevelWidgets() if w.windowTitle().startswith("Receive goods")
                     and w.isVisible())
    assert "Count what is in the delivery" in words(receiving)
    click(qtbot, receiving, "Record receipt")
    qtbot.waitUntil(lambda: "Received" in words(main), timeout=TIMEOUT)

    # 5. The records of the year, for an inspector.
    menu(main, "Records", "Export for an inspection…")
    export = next(w for w in QApplication.topLevelWidgets() if w.isVisible() and
                  any(b.text() == "E&xport" for b in w.findChildren(QAbstractButton)))
    assert "Documents" in named(export, QLineEdit, "Export into this new folder").text() or \
        str(Path.home()) in named(export, QLineEdit, "Export into this new folder").text()
    target = tmp_path / "inspection"
    type_into(qtbot, export, "Export into this new folder", str(target))
    click(qtbot, export, "Export")
    qtbot.waitUntil(lambda: "order(s) exported" in words(export), timeout=TIMEOUT)
    assert "1 order(s) exported" in words(export) and button(export, "Open folder").isVisible()
    assert (target / "records.pdf").is_file() and (target / "orders.csv").is_file()
    export.close()


def test_renewing_the_certificate_from_the_certificates_window(qtbot, main):
    """The second walk: a certificate renewed, with the practice coordinator's approval, from the menus."""
    main.start_training()
    qtbot.waitUntil(lambda: "1 of 3 done" in words(main), timeout=TIMEOUT)
    enroll_from_the_checklist(qtbot, main)
    menu(main, "Certificates", "Certificates…")
    certificates = window(qtbot, "CSOS certificates — TRAINING")
    table = named(certificates, QTableView, "Certificates")
    qtbot.waitUntil(lambda: table.model().rowCount() == 1, timeout=TIMEOUT)
    table.selectRow(0)
    click(qtbot, certificates, "Renew…")
    renewal = window(qtbot, "Renew a CSOS certificate — TRAINING")
    wizard_page(qtbot, renewal, "Your current certificate")
    assert "Jordan Walker" in words(renewal)
    # A fresh certificate: renewal is not open yet, and an early one needs a reason (issue 22).
    assert "Renewal opens on" in words(renewal) and "ends when the registration does" in words(renewal)
    click(qtbot, renewal, "Next >")
    qtbot.waitUntil(lambda: "nothing to do now" in words(renewal), timeout=TIMEOUT)
    click(qtbot, renewal, "The registration's schedules changed")
    next_page(qtbot, renewal, "Where the new key will live")
    type_into(qtbot, renewal, "New key password", "Juniper-Lantern-Renewal-82")
    type_into(qtbot, renewal, "Key password again", "Juniper-Lantern-Renewal-82")
    next_page(qtbot, renewal, "Unlock the current key")
    type_into(qtbot, renewal, "Key password", KEY_PASSWORD)
    next_page(qtbot, renewal, "Waiting for your coordinator")
    assert "the practice coordinator is played by you" in words(renewal)
    approve_as_the_practice_coordinator(qtbot, renewal, "Jordan Walker")
    next_page(qtbot, renewal, "Renewed certificate installed", press="Check now")
    assert "Checked like a supplier checks it" in words(renewal) and "superseded" in words(renewal)
    confirmation = re.search(r"Your certificate is renewed\. New certificate ([0-9a-f]{16})", words(renewal))
    assert confirmation, words(renewal)
    click(qtbot, renewal, "Finish")
    qtbot.waitUntil(lambda: table.model().rowCount() == 2, timeout=TIMEOUT)
    # The same short ID in the list as on the confirmation page.
    shown = [str(table.model().index(r, c).data()) for r in range(2) for c in range(table.model().columnCount())]
    assert confirmation.group(1) in shown
    click(qtbot, certificates, "Close")
