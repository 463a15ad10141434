"""The Settings dialog: round trip to settings.json, suppliers into the order book, problems at their fields."""

from __future__ import annotations

import json

import pytest
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from app.config import load_config
from app.models.orderbook import AuditEvent
from app.services import app_settings
from app.ui.settings_dialog import SettingsDialog, SupplierEntry, SupplierListModel
from tests.ui.conftest import SCREENSHOT_DIR

pytestmark = pytest.mark.ui


@pytest.fixture
def open_settings(qtbot, facade, catalog_book):
    def make() -> SettingsDialog:
        dialog = SettingsDialog(facade)
        qtbot.addWidget(dialog)
        dialog.show()
        qtbot.waitExposed(dialog)
        dialog.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is dialog, timeout=3000)
        return dialog

    return make


def type_into(qtbot, edit, text: str) -> None:
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text) if text else edit.clear()
    if not text:
        edit.textEdited.emit("")


def test_settings_round_trip_to_settings_json(qtbot, open_settings, training_config, tmp_path, db):
    module = tmp_path / "libvendor-pkcs11.so"
    module.write_bytes(b"\x7fELF")
    dialog = open_settings()
    type_into(qtbot, dialog.sntp_edit, "127.0.0.1:12345")
    type_into(qtbot, dialog.reminder_edit, "60, 30 7")
    type_into(qtbot, dialog.database_edit, "postgresql://desk@db.example/csos")
    type_into(qtbot, dialog.module_edit, str(module))
    dialog.add_module_button.click()
    assert dialog.module_paths() == [str(module)]
    assert dialog.save()
    assert not dialog.isVisible()

    stored = json.loads(training_config.settings_path.read_text())
    assert stored["sntp_server"] == "127.0.0.1:12345"
    assert stored["reminder_days"] == [60, 30, 7]
    assert stored["pkcs11_modules"] == [str(module)]
    assert stored["database_url"] == "postgresql://desk@db.example/csos"
    # Read back the way the program starts: the values are there, and the next dialog shows them.
    again = load_config(data_dir=tmp_path / "data", profile="training", database_url=db.url)
    assert again.settings == stored
    second = open_settings()
    assert second.sntp_edit.text() == "127.0.0.1:12345" and second.reminder_edit.text() == "60, 30, 7"

    # Emptying a field removes the setting (the default applies again).
    type_into(qtbot, second.database_edit, "")
    type_into(qtbot, second.sntp_edit, "")
    assert second.save()
    stored = json.loads(training_config.settings_path.read_text())
    assert "database_url" not in stored and "sntp_server" not in stored


def test_bad_values_are_shown_at_their_field_and_nothing_is_written(qtbot, open_settings, training_config):
    dialog = open_settings()
    type_into(qtbot, dialog.reminder_edit, "45, soon")
    assert not dialog.save()
    assert dialog.isVisible() and dialog.tabs.currentIndex() == 3
    assert dialog.reminder_message.text == "“soon” is not a number of days from 1 to 365. Separate the numbers " \
                                           "with commas."
    assert QApplication.focusWidget() is dialog.reminder_edit
    assert not training_config.settings_path.exists()

    type_into(qtbot, dialog.reminder_edit, "45")
    type_into(qtbot, dialog.database_edit, "mysql://x@y/z")
    assert not dialog.save()
    assert dialog.tabs.currentIndex() == 2 and "SQLite or PostgreSQL" in dialog.database_message.text

    type_into(qtbot, dialog.database_edit, "")
    type_into(qtbot, dialog.module_edit, "/no/such/driver.so")
    dialog.add_module_button.click()
    assert dialog.module_message.text.startswith("The token driver /no/such/driver.so does not exist.")


def test_a_new_https_supplier_is_added_to_the_order_book(qtbot, open_settings, facade, catalog_book, tmp_path, db):
    bundle = tmp_path / "sandbox-tls.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    changed = []
    facade.parties_changed.connect(lambda: changed.append(True))
    dialog = open_settings()
    dialog.new_supplier_button.click()
    assert QApplication.focusWidget() is dialog.supplier_fields["name"]
    qtbot.keyClicks(dialog.supplier_fields["name"], "Sandbox Supplier East")
    qtbot.keyClicks(dialog.supplier_fields["dea_number"], "RA1234563")
    qtbot.keyClicks(dialog.supplier_fields["state"], "tn")
    assert dialog.kind_combo.currentData() == "https"
    assert dialog.supplier_fields["url"].isVisible() and not dialog.supplier_fields["folder"].isVisible()

    # No web address yet: the problem shows at that field.
    assert not dialog.save()
    assert dialog.supplier_messages["url"].text.startswith("Enter the supplier's web address starting with https://")
    qtbot.keyClicks(dialog.supplier_fields["url"], "https://127.0.0.1:8443/suppliers/east/")
    qtbot.keyClicks(dialog.supplier_fields["tls_bundle"], str(bundle))
    assert dialog.save()

    supplier = catalog_book.supplier("Sandbox Supplier East")
    assert supplier.dea_number == "RA1234563" and supplier.state == "TN"
    assert supplier.connector == {"kind": "https", "url": "https://127.0.0.1:8443/suppliers/east",
                                  "tls_bundle": str(bundle)}
    assert changed == [True]


def test_changing_a_supplier_writes_an_audit_event(qtbot, open_settings, catalog_book, tmp_path, db):
    folder = tmp_path / "edi-out"
    folder.mkdir()
    dialog = open_settings()
    assert dialog.supplier_model.rowCount() == 1 and dialog.supplier_fields["name"].text() == "Acme Drug"
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("folder"))
    assert dialog.supplier_fields["folder"].isVisible()
    type_into(qtbot, dialog.supplier_fields["dea_number"], "RA1234564")  # a typing mistake: wrong check digit
    qtbot.keyClicks(dialog.supplier_fields["folder"], str(folder))
    assert not dialog.save()
    assert "fails the DEA check digit" in dialog.supplier_messages["dea_number"].text
    assert dialog.supplier_model.data(dialog.supplier_model.index(0)) == "Acme Drug *"
    type_into(qtbot, dialog.supplier_fields["dea_number"], "RA1234563")
    assert dialog.save()
    assert catalog_book.supplier("Acme Drug").connector == {"kind": "folder", "folder": str(folder)}
    with db.session() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "supplier.updated")).one()
    assert event.details["changed"] == ["folder", "kind"]


def test_switching_to_production_warns_and_needs_a_yes(qtbot, open_settings, facade, training_config, modal_boxes):
    switched = []
    facade.profile_switch_requested.connect(switched.append)
    dialog = open_settings()
    assert not dialog.profile_note.isHidden() and dialog.profile_warning.isHidden()
    assert "nothing is sent to a real supplier" in dialog.profile_note.text().lower()
    dialog.production_radio.setChecked(True)
    assert not dialog.profile_warning.isHidden() and dialog.profile_note.isHidden()
    assert "legally binding orders" in dialog.profile_warning.text()
    assert dialog.profile_warning.accessibleName() == "Profile warning"

    modal_boxes.answers.append(False)  # "Stay in training"
    assert not dialog.save()
    assert switched == [] and dialog.isVisible()
    assert modal_boxes.questions[-1][0] == "Switch to production?"

    modal_boxes.answers.append(True)
    assert dialog.save()
    assert switched == ["production"]
    assert app_settings.remembered_profile(training_config.data_dir.parent) == "production"


def test_model_tester_on_the_supplier_list(qtmodeltester):
    model = SupplierListModel([])
    qtmodeltester.check(model)
    model.add(SupplierEntry(1, app_settings.SupplierForm(name="Acme Drug")))
    model.add(SupplierEntry(None, app_settings.SupplierForm(name="", kind="https"), changed=True))
    qtmodeltester.check(model)
    assert model.data(model.index(1)) == "(new supplier) *"


def test_settings_values_rules():
    assert app_settings.parse_sntp_server("time.nist.gov") == "time.nist.gov"
    assert app_settings.parse_sntp_server(" ") == "time.nist.gov"
    with pytest.raises(Exception) as bad_port:
        app_settings.parse_sntp_server("time.nist.gov:99999")
    assert bad_port.value.code == "settings.sntp_port"
    with pytest.raises(Exception) as bad_host:
        app_settings.parse_sntp_server("time nist")
    assert bad_host.value.code == "settings.sntp_server"
    assert app_settings.parse_reminder_days("1,45 30;30") == [45, 30, 1]
    assert app_settings.reminder_days({"reminder_days": "junk"}) == (45, 30, 14, 7, 1)
    assert app_settings.check_database_url("") == ""


def test_screenshot_of_the_settings_dialog(qtbot, open_settings, catalog_book):
    catalog_book.add_supplier(name="Sandbox Supplier East", dea_number="RA1234563",
                              connector={"kind": "https", "url": "https://127.0.0.1:8443/suppliers/east"})
    dialog = open_settings()
    dialog.resize(900, 600)
    dialog.supplier_list.setCurrentIndex(dialog.supplier_model.index(1))
    QApplication.processEvents()
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    target = SCREENSHOT_DIR / "settings.png"
    assert dialog.grab().save(str(target))
    dialog.tabs.setCurrentIndex(2)
    dialog.production_radio.setChecked(True)
    QApplication.processEvents()
    assert dialog.grab().save(str(SCREENSHOT_DIR / "settings-profile.png"))
    assert target.stat().st_size > 10_000


def test_supplier_fields_are_checked_by_the_same_rule_and_words_as_the_command_line(qtbot, open_settings,
                                                                                     catalog_book):
    from app.services.orders.parties import SupplierForm, check_supplier

    dialog = open_settings()
    type_into(qtbot, dialog.supplier_fields["postal_code"], "ABCDE")
    type_into(qtbot, dialog.supplier_fields["state"], "ZZ")
    type_into(qtbot, dialog.supplier_fields["address1"], "9 Depot Rd*")
    assert not dialog.save()
    expected = {p.field: p.message for p in check_supplier(SupplierForm(
        name="Acme Drug", address_lines=("9 Depot Rd*",), state="ZZ", postal_code="ABCDE"))}
    for field in ("postal_code", "state", "address1"):
        assert dialog.supplier_messages[field].text == expected[field]
    assert "ZIP" in expected["postal_code"] and "not a US state" in expected["state"]
    for key, value in (("postal_code", "38118-1234"), ("state", "tn"), ("address1", "9 Depot Rd")):
        type_into(qtbot, dialog.supplier_fields[key], value)
    dialog.kind_combo.setCurrentIndex(dialog.kind_combo.findData("https"))
    type_into(qtbot, dialog.supplier_fields["url"], "http://acme.example/csos")
    assert not dialog.save()
    assert "http:// is not accepted" in dialog.supplier_messages["url"].text
    type_into(qtbot, dialog.supplier_fields["url"], "https://acme.example/csos")
    assert dialog.save()
    saved = catalog_book.supplier("acme drug")
    assert (saved.state, saved.postal_code, saved.connector["url"]) == ("TN", "38118-1234", "https://acme.example/csos")
