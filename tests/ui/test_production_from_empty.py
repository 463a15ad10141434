"""Production from an empty data folder (issue 22), by what is on screen: every empty list offers the step that fills
it. A new order with no registration offers "Add your DEA registration…"; a product search on an empty catalog says
the product list is empty and offers "Import the FDA product list…", a screen that says where to download it and
imports FDA's zip with a progress bar; afterwards the search finds the product. The enrollment's registration step
offers "Add a registration…". A self-made .p12 is refused as "not a CSOS certificate"; a real (training CA) one is
imported once its root is trusted after comparing the fingerprint.
"""

from __future__ import annotations

import zipfile

import pytest
from PySide6.QtWidgets import QApplication, QComboBox, QLineEdit, QListWidget, QProgressBar, QTableView

from app.config import load_config
from app.models.database import open_database
from app.services.catalog import bundled_catalog_paths
from app.services.orders.orderbook import OrderBook
from app.ui.main_window import MainWindow
from tests.ui.test_walkthrough import (
    TIMEOUT,
    button,
    click,
    menu,
    named,
    next_page,
    type_into,
    window,
    wizard_page,
    words,
)

pytestmark = [pytest.mark.ui]


@pytest.fixture
def production(qtbot, tmp_path):
    config = load_config(data_dir=tmp_path / "data", profile="production")
    db = open_database(config.database_url)
    made = MainWindow(config, OrderBook(db, actor="gui"), db, start_checks=False)
    qtbot.addWidget(made)
    made.resize(1180, 760)
    made.show()
    qtbot.waitExposed(made)
    yield made
    for widget in QApplication.topLevelWidgets():
        if widget.isVisible() and widget is not made:
            widget.close()
    made.close()
    db.close()


def test_an_empty_production_folder_offers_the_registration_and_the_fda_product_list(qtbot, production, tmp_path):
    product, package = bundled_catalog_paths()
    download = tmp_path / "ndctext.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(product, "product.txt")
        out.write(package, "package.txt")

    menu(production, "Order", "New order…")
    editor = window(qtbot, "New order")
    assert button(editor, "Add your DEA registration…").isVisible()
    click(qtbot, editor, "Add your DEA registration…")
    registrations = window(qtbot, "DEA registrations")
    for name, value in (("DEA number", "BS1234563"), ("Name (as registered)", "Lakeside Pharmacy"),
                        ("Street address", "4 Shore Rd"), ("City", "Madison"), ("State", "WI"),
                        ("ZIP code", "53703"), ("Registration expires", "06/30/2028")):
        type_into(qtbot, registrations, name, value)
    click(qtbot, registrations, "II")
    click(qtbot, registrations, "Save")
    combo = named(editor, QComboBox, "Registration")
    qtbot.waitUntil(lambda: any("BS1234563" in combo.itemText(i) for i in range(combo.count())), timeout=TIMEOUT)
    assert not button_visible(editor, "Add your DEA registration…")
    click(qtbot, registrations, "Close")
    click(qtbot, editor, "Add a supplier…")
    settings = window(qtbot, "Settings")
    click(qtbot, settings, "New supplier")
    type_into(qtbot, settings, "Supplier name", "Summit Medical Supply")
    named(settings, QComboBox, "How orders reach this supplier").setCurrentIndex(2)  # a file I upload myself
    click(qtbot, settings, "Save")
    suppliers = named(editor, QComboBox, "Supplier")
    qtbot.waitUntil(lambda: any(suppliers.itemText(i) == "Summit Medical Supply" for i in range(suppliers.count())),
                    timeout=TIMEOUT)
    assert not button_visible(editor, "Add a supplier…")
    search = named(editor, QLineEdit, "Product name or NDC")
    qtbot.keyClicks(search, "oxy")
    qtbot.waitUntil(lambda: "The product list is empty" in words(editor), timeout=TIMEOUT)
    assert "Check the spelling" not in words(editor)
    click(qtbot, editor, "Import the FDA product list…")
    dialog = window(qtbot, "Import the FDA product list")
    assert "National Drug Code Directory" in words(dialog)
    type_into(qtbot, dialog, "The file you downloaded", str(download))
    click(qtbot, dialog, "Import")
    qtbot.waitUntil(lambda: "Done:" in words(dialog), timeout=TIMEOUT)
    bar = named(dialog, QProgressBar, "Import progress")
    assert bar.value() == bar.maximum()
    click(qtbot, dialog, "Close")
    qtbot.waitUntil(lambda: not button_visible(editor, "Import the FDA product list…"), timeout=TIMEOUT)
    search.clear()
    qtbot.keyClicks(search, "oxy")
    qtbot.waitUntil(lambda: editor.suggestions.rowCount() > 0, timeout=TIMEOUT)
    assert "The product list is empty" not in words(editor)
    popup = editor.completer.popup()  # the suggestions are shown whole ("Schedule II (narcotic)" was cut)
    qtbot.waitUntil(popup.isVisible, timeout=TIMEOUT)
    assert popup.viewport().width() >= popup.sizeHintForColumn(0), (popup.viewport().width(),
                                                                    popup.sizeHintForColumn(0))


def button_visible(parent, text: str) -> bool:
    try:
        return button(parent, text).isVisible()
    except AssertionError:
        return False


def test_the_enrollment_registration_step_offers_to_add_a_registration(qtbot, production):
    menu(production, "Certificates", "Enroll for a certificate…")
    wizard = window(qtbot, "Enroll for a CSOS certificate")
    wizard_page(qtbot, wizard, "What enrollment is")
    next_page(qtbot, wizard, "Your role")
    click(qtbot, wizard, "Registrant")
    next_page(qtbot, wizard, "About you")
    type_into(qtbot, wizard, "Full name", "Morgan Empty")
    type_into(qtbot, wizard, "E-mail address", "morgan@lakeside.example")
    next_page(qtbot, wizard, "Registrations you will sign for")
    assert "No registration is listed yet" in words(wizard)
    click(qtbot, wizard, "Add a registration…")
    registrations = window(qtbot, "DEA registrations")
    for name, value in (("DEA number", "BS1234563"), ("Name (as registered)", "Lakeside Pharmacy"),
                        ("Street address", "4 Shore Rd"), ("City", "Madison"), ("State", "WI"),
                        ("ZIP code", "53703"), ("Registration expires", "06/30/2028")):
        type_into(qtbot, registrations, name, value)
    click(qtbot, registrations, "II")
    click(qtbot, registrations, "Save")
    qtbot.waitUntil(lambda: named(wizard, QListWidget, "Registrations").count() == 1, timeout=TIMEOUT)
    assert "BS1234563" in named(wizard, QListWidget, "Registrations").item(0).text()
    click(qtbot, registrations, "Close")


def test_an_empty_production_folder_refuses_a_self_made_p12_and_imports_a_real_one_after_trusting_its_root(
        qtbot, production, tmp_path):
    from tests.fixtures.hostile_certificates import p12, self_made_p12
    from tests.pki import build_training_pki, new_key

    pki = build_training_pki(tmp_path / "pki")
    key = new_key("rsa")
    genuine = tmp_path / "mine.p12"
    genuine.write_bytes(p12(key, pki.issue(key=key).cert, [pki.sub.certificate, pki.root.certificate],
                            "File-pass-2026"))
    self_made = tmp_path / "test.p12"
    self_made.write_bytes(self_made_p12("File-pass-2026"))

    menu(production, "Certificates", "Import a .p12 file…")
    wizard = window(qtbot, "Import a certificate file (.p12 / .pfx)")
    wizard_page(qtbot, wizard, "Choose the file")
    type_into(qtbot, wizard, "Certificate file", str(self_made))
    type_into(qtbot, wizard, "The file's password", "File-pass-2026")
    click(qtbot, wizard, "Next >")
    qtbot.waitUntil(lambda: "is not a CSOS certificate" in words(wizard), timeout=TIMEOUT)
    assert "Choose the file" in words(wizard) and "trusted chain" not in words(wizard)

    type_into(qtbot, wizard, "Certificate file", str(genuine))
    type_into(qtbot, wizard, "The file's password", "File-pass-2026")
    next_page(qtbot, wizard, "Trust the CSOS root certificate")
    assert "CSOS Training Root CA" in words(wizard)
    click(qtbot, wizard, "I compared the fingerprint with DEA's and it is the same: trust this root")
    next_page(qtbot, wizard, "Where the key will live")
    click(qtbot, wizard, "I understand, and I will delete or lock away the file")
    type_into(qtbot, wizard, "New key password", "Harbor-Lantern-Import-57")
    type_into(qtbot, wizard, "Key password again", "Harbor-Lantern-Import-57")
    next_page(qtbot, wizard, "Certificate imported")
    # Imported (the supplier-style check says the test CA's revocation list cannot be fetched here: no network).
    assert "The certificate and its key are imported" in words(wizard) and "Pat Purchaser" in words(wizard)
    click(qtbot, wizard, "Finish")
    menu(production, "Certificates", "Certificates…")
    listing = window(qtbot, "CSOS certificates")
    table = named(listing, QTableView, "Certificates")
    qtbot.waitUntil(lambda: table.model().rowCount() == 1, timeout=TIMEOUT)
    assert table.model().index(0, 0).data() == "Pat Purchaser"
    click(qtbot, listing, "Close")
