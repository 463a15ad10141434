"""The order editor, driven from the keyboard over a real SQLite order book holding the bundled FDA catalog."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from app.models.orderbook import AuditEvent, Order
from app.models.states import OrderStatus
from app.services.orders import drafts
from app.services.orders.drafts import DraftLine
from app.ui.main_window import MainWindow
from app.ui.order_editor import DraftLinesModel, OrderEditor, ProductSuggestionModel
from tests.factories import sign_for_test
from tests.ui.conftest import LIMITED_DEA, SCREENSHOT_DIR

pytestmark = pytest.mark.ui

MAIN_DEA = "BJ6125341"
OXYCODONE_5MG = "00406055201"  # Oxycodone Hydrochloride 5 mg, schedule II, 100 tablets
XANAX_05MG = "00009005501"  # Xanax 0.5 mg, schedule IV


@pytest.fixture
def window(qtbot, facade, catalog_book, db, training_config):
    made = MainWindow(training_config, catalog_book, db, facade=facade, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    made.activateWindow()
    return made


@pytest.fixture
def open_editor(qtbot, facade, catalog_book):
    def make(order_id=None) -> OrderEditor:
        editor = OrderEditor(facade, order_id=order_id)
        qtbot.addWidget(editor)
        editor.show()
        qtbot.waitExposed(editor)
        editor.activateWindow()
        qtbot.waitUntil(lambda: QApplication.activeWindow() is editor, timeout=3000)
        return editor

    return make


def pick_product(qtbot, editor: OrderEditor, typed: str, *, down: int = 1) -> None:
    """Type into the product box, wait for the catalog popup, choose with the arrow keys and Enter."""
    # Generous deadlines: waitUntil returns as soon as the condition holds, and a loaded CI machine can take seconds
    # to run the catalog search in the background and show the popup.
    qtbot.waitUntil(lambda: editor.product_edit.text() == "", timeout=10_000)
    editor.product_edit.setFocus()
    qtbot.keyClicks(editor.product_edit, typed)
    popup = editor.completer.popup()
    # The popup must show the suggestions for the whole text typed, not those of the first letters (the search
    # runs on a short timer after the last key): otherwise Enter may land on a stale list.
    qtbot.waitUntil(lambda: popup.isVisible() and not editor._suggest_timer.isActive(), timeout=10_000)
    qtbot.wait(50)
    for _ in range(down):
        qtbot.keyClick(popup, Qt.Key.Key_Down)
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: QApplication.focusWidget() is editor.packages_spin, timeout=10_000)


def type_packages_and_add(qtbot, editor: OrderEditor, packages: str) -> None:
    qtbot.keyClicks(editor.packages_spin, packages)  # the number is selected, typing replaces it
    qtbot.keyClick(editor.packages_spin, Qt.Key.Key_Return)


def stored_lines(db, order_id):
    with db.session() as session:
        order = session.get(Order, order_id)
        return [(line.line_number, line.ndc, line.packages) for line in order.lines]


def test_create_an_order_with_the_keyboard_only_and_find_it(qtbot, window, facade, db):
    qtbot.keyClick(window.search_box, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    editor = window.editor
    assert editor is not None and editor.isVisible()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is editor.registration_combo, timeout=3000)

    # Registration: two are set up, so the editor asks; the arrow key picks Main Street Pharmacy.
    qtbot.keyClick(editor.registration_combo, Qt.Key.Key_Down)
    assert editor.registration_combo.currentData() == MAIN_DEA
    qtbot.keyClick(editor.registration_combo, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is editor.supplier_combo
    assert editor.supplier_combo.currentData() == "Acme Drug"  # the only supplier is chosen already
    qtbot.keyClick(editor.supplier_combo, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is editor.product_edit

    pick_product(qtbot, editor, "oxycodone hydro")
    assert editor.chosen_product.ndc.startswith("00406")
    assert "100 EA per package" in editor.product_info.text()
    type_packages_and_add(qtbot, editor, "3")
    # ready for the next product
    qtbot.waitUntil(lambda: QApplication.focusWidget() is editor.product_edit, timeout=10_000)
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "2")
    lines = editor.lines_model.lines
    assert [(line.description.split()[0], line.packages) for line in lines] == [("Oxycodone", 3), ("Xanax", 2)]
    assert editor.lines_model.data(editor.lines_model.index(0, DraftLinesModel.COL_PER_PACKAGE)) == "100 EA"

    qtbot.keyClick(editor.product_edit, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=5000)
    order_id = editor.order_id
    assert order_id is not None
    assert stored_lines(db, order_id) == [(1, lines[0].ndc, 3), (2, lines[1].ndc, 2)]

    # The order book shows it, selected, and the search finds it by its order number.
    qtbot.waitUntil(lambda: window.selected_order_id() == order_id, timeout=3000)
    number = window.detail.order.order_number
    assert window.detail.fields["status"].text() == "Draft"
    window.activateWindow()  # the offscreen platform does not hand activation back when a dialog closes
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window, timeout=3000)
    assert QApplication.focusWidget() is window.table  # the new order is selected and the list has the focus
    qtbot.keyClick(window.table, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert QApplication.focusWidget() is window.search_box
    qtbot.keyClicks(window.search_box, number)
    qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    assert window.model.rowCount() == 1 and window.model.order_id(0) == order_id


def test_saving_an_empty_order_shows_each_problem_at_its_field(qtbot, open_editor, db):
    editor = open_editor()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert editor.isVisible() and editor.saving_job is None
    assert editor.registration_message.text == "Choose the registration this order is for."
    assert editor.product_message.text == "Add at least one product to the order."
    assert editor.supplier_message.text == ""  # the only supplier is already chosen
    assert QApplication.focusWidget() is editor.registration_combo
    assert editor.registration_combo.accessibleDescription() == "Choose the registration this order is for."
    with db.session() as session:
        assert session.scalars(select(Order)).all() == []


def test_zero_packages_is_flagged_next_to_the_field_as_it_changes(qtbot, open_editor):
    editor = open_editor()
    editor.packages_spin.setFocus()
    editor.packages_spin.selectAll()
    qtbot.keyClicks(editor.packages_spin, "0")
    assert editor.packages_message.isVisible()
    assert editor.packages_message.text == "Enter at least 1 package."
    qtbot.keyClicks(editor.packages_spin, "5")  # 05 → 5
    assert not editor.packages_message.isVisible()


def test_zero_packages_on_a_line_blocks_saving(qtbot, open_editor, db):
    editor = open_editor()
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData(MAIN_DEA))
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "2")
    model = editor.lines_model
    assert model.setData(model.index(0, DraftLinesModel.COL_PACKAGES), 0)
    assert editor.lines_message.text == "Line 1: Enter at least 1 package."
    assert model.data(model.index(0, DraftLinesModel.COL_CHECK)) == "Needs at least 1 package"
    assert model.data(model.index(0, DraftLinesModel.COL_CHECK), Qt.ItemDataRole.ToolTipRole) == \
        "Line 1: Enter at least 1 package."
    editor.save()
    assert editor.isVisible()
    with db.session() as session:
        assert session.scalars(select(Order)).all() == []


def test_a_schedule_the_registration_does_not_cover_is_flagged_on_the_line(qtbot, open_editor):
    editor = open_editor()
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData(LIMITED_DEA))
    pick_product(qtbot, editor, "oxycodone hydro")
    assert "which registration FN5623740 is not registered for" in editor.product_message.text
    type_packages_and_add(qtbot, editor, "1")
    assert editor.lines_message.isVisible()
    assert "Schedule II (narcotic), which registration FN5623740 is not registered for" in \
        editor.lines_message.text
    check = editor.lines_model.data(editor.lines_model.index(0, DraftLinesModel.COL_CHECK))
    assert check == "Schedule II (narcotic) not on this registration"
    # Choosing the registration that covers schedule II clears it, live.
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData(MAIN_DEA))
    assert not editor.lines_message.isVisible()
    assert editor.lines_model.data(editor.lines_model.index(0, DraftLinesModel.COL_CHECK)) == "OK"


def test_an_ndc_not_in_the_catalog_and_a_name_that_matches_nothing(qtbot, open_editor):
    editor = open_editor()
    qtbot.keyClicks(editor.product_edit, "0406-0552-99")
    qtbot.keyClick(editor.product_edit, Qt.Key.Key_Escape) if editor.completer.popup().isVisible() else None
    editor.completer.popup().hide()
    qtbot.keyClick(editor.product_edit, Qt.Key.Key_Return)
    assert editor.product_message.text.startswith("NDC 00406-0552-99 is not in the product catalog.")
    assert editor.chosen_product is None

    editor.product_edit.clear()
    qtbot.keyClicks(editor.product_edit, "zzqx")
    qtbot.waitUntil(lambda: editor.product_message.isVisible(), timeout=3000)
    assert editor.product_message.text.startswith("“zzqx” is not in the practice catalog")  # training
    qtbot.keyClick(editor.add_button, Qt.Key.Key_Space)
    assert editor.lines_model.rowCount() == 0


def test_an_expired_registration_is_flagged(qtbot, catalog_book, open_editor):
    catalog_book.add_registration(dea_number="AB1234563", name="Old Town Pharmacy", address_lines=["2 Elm St"],
                                  city="Springfield", state="IL", postal_code="62703", schedules=["II"],
                                  expires_on=dt.date(2020, 1, 31))
    editor = open_editor()
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData("AB1234563"))
    assert editor.registration_message.text.startswith("Registration AB1234563 expired on January 31, 2020.")


def test_the_same_product_twice_points_at_the_existing_line(qtbot, open_editor):
    editor = open_editor()
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "1")
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "4")
    assert editor.lines_model.rowCount() == 1
    assert editor.product_message.text == "This product is already on line 1. Change the number of packages " \
                                          "there instead."


def test_editing_a_saved_draft_keeps_unchanged_lines_and_renumbers_the_rest(qtbot, catalog_book, open_editor, db):
    order = catalog_book.new_order(registration_dea=MAIN_DEA, supplier_name="Acme Drug")
    for ndc in (OXYCODONE_5MG, XANAX_05MG, "00009009001"):
        catalog_book.add_line(order.id, ndc=ndc, packages=1)
    editor = open_editor(order.id)
    assert editor.heading.text() == f"Draft order {order.order_number}"
    assert not editor.registration_combo.isEnabled()  # the order number belongs to the registration
    assert editor.lines_model.rowCount() == 3
    editor.lines_table.selectRow(1)
    editor.lines_table.setFocus()
    qtbot.keyClick(editor.lines_table, Qt.Key.Key_Delete)
    model = editor.lines_model
    assert model.rowCount() == 2
    model.setData(model.index(1, DraftLinesModel.COL_PACKAGES), 6)
    with qtbot.waitSignal(editor.saved, timeout=5000):
        editor.save()
    assert stored_lines(db, order.id) == [(1, OXYCODONE_5MG, 1), (2, "00009009001", 6)]
    with db.session() as session:
        actions = [e.action for e in session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id)
                                                     .order_by(AuditEvent.id))]
    # Line 1 did not change, so it was neither removed nor added again: lines 3 and 2 went, the new line 2 came.
    assert actions == ["order.created"] + ["order.line_added"] * 3 + \
        ["order.line_removed", "order.line_removed", "order.line_added"]


def test_editing_changes_the_supplier_of_a_draft(qtbot, catalog_book, open_editor, db):
    catalog_book.add_supplier(name="Great Lakes Wholesale")
    order = catalog_book.new_order(registration_dea=MAIN_DEA, supplier_name="Acme Drug")
    catalog_book.add_line(order.id, ndc=XANAX_05MG, packages=2)
    editor = open_editor(order.id)
    editor.supplier_combo.setCurrentIndex(editor.supplier_combo.findData("Great Lakes Wholesale"))
    with qtbot.waitSignal(editor.saved, timeout=5000):
        editor.save()
    assert catalog_book.get_order(order.id).supplier.name == "Great Lakes Wholesale"


def test_a_failed_save_keeps_everything_and_says_what_to_do(qtbot, catalog_book, open_editor, db):
    order = catalog_book.new_order(registration_dea=MAIN_DEA, supplier_name="Acme Drug")
    catalog_book.add_line(order.id, ndc=XANAX_05MG, packages=2)
    editor = open_editor(order.id)
    pick_product(qtbot, editor, "oxycodone hydro")
    type_packages_and_add(qtbot, editor, "1")
    catalog_book.transition(order.id, OrderStatus.CANCELLED)  # meanwhile, someone cancelled it elsewhere
    editor.save()
    qtbot.waitUntil(lambda: editor.form_message.isVisible(), timeout=5000)
    assert editor.isVisible() and editor.lines_model.rowCount() == 2
    assert editor.form_message.text.startswith("The draft was not saved: Order")
    assert "only draft orders can be changed" in editor.form_message.text
    assert editor.save_button.isEnabled()


def test_closing_with_unsaved_lines_asks_first(qtbot, open_editor, modal_boxes):
    editor = open_editor()
    editor.reject()  # nothing entered: closes without asking
    assert not editor.isVisible() and modal_boxes.questions == []
    editor = open_editor()
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "1")
    modal_boxes.answers.append(False)
    qtbot.keyClick(editor.product_edit, Qt.Key.Key_Escape)
    assert editor.isVisible()
    assert modal_boxes.questions == [("Discard this order?",
                                      "The changes to this order have not been saved. Discard them?")]
    modal_boxes.answers.append(True)
    editor.reject()
    assert not editor.isVisible()


def test_new_order_from_an_unaccepted_one_copies_the_lines_and_leaves_it_alone(qtbot, window, catalog_book, db):
    old = catalog_book.new_order(registration_dea=MAIN_DEA, supplier_name="Acme Drug")
    catalog_book.add_line(old.id, ndc=OXYCODONE_5MG, packages=4)
    catalog_book.add_line(old.id, ndc=XANAX_05MG, packages=2)
    sign_for_test(catalog_book, old.id, document=b"signed-bytes")
    for status in (OrderStatus.QUEUED, OrderStatus.TRANSMITTED, OrderStatus.NOT_ACCEPTED):
        catalog_book.transition(old.id, status)
    window.refresh()
    assert window.select_order(old.id)
    assert window.copy_order_action.isEnabled() and not window.edit_order_action.isEnabled()

    window.copy_order_action.trigger()
    editor = window.editor
    assert editor is not None and editor.isVisible()
    new_id = editor.order_id
    assert new_id != old.id
    assert stored_lines(db, new_id) == [(1, OXYCODONE_5MG, 4), (2, XANAX_05MG, 2)]
    with db.session() as session:
        copied, original = session.get(Order, new_id), session.get(Order, old.id)
        assert copied.replaces_order_id == old.id and copied.status is OrderStatus.DRAFT
        assert copied.order_number != original.order_number
        assert original.status is OrderStatus.NOT_ACCEPTED and original.signed_document == b"signed-bytes"
    editor.reject()
    assert window.select_order(old.id)
    assert f"replaced by {copied.order_number}" in window.detail.fields["linked"].text()
    assert window.select_order(new_id)
    assert f"issued in place of {original.order_number}" in window.detail.fields["linked"].text()


def test_new_order_from_this_one_is_refused_for_other_states(catalog_book):
    order = catalog_book.new_order(registration_dea=MAIN_DEA, supplier_name="Acme Drug")
    with pytest.raises(Exception) as refused:
        drafts.new_order_from(catalog_book, order.id)
    assert getattr(refused.value, "code", "") == "order.not_unaccepted"


def test_model_tester_on_the_lines_model(qtmodeltester, catalog_book, db):
    model = DraftLinesModel()
    qtmodeltester.check(model)
    with db.session() as session:
        from app.services.catalog import find_product

        products = [find_product(session, ndc) for ndc in (OXYCODONE_5MG, XANAX_05MG)]
    model.set_lines([DraftLine.from_product(p, 2) for p in products])
    model.set_problems(drafts.check_lines(None, [DraftLine.from_product(products[0], 0)]))
    qtmodeltester.check(model)
    assert model.rowCount() == 2 and model.columnCount() == 7
    assert model.data(model.index(1, DraftLinesModel.COL_PER_PACKAGE)) == "100 EA"
    assert model.data(model.index(0, DraftLinesModel.COL_PACKAGES), Qt.ItemDataRole.EditRole) == 2
    assert not model.setData(model.index(0, DraftLinesModel.COL_PRODUCT), "x")  # only packages are editable
    assert not model.setData(model.index(0, DraftLinesModel.COL_PACKAGES), "many")


def test_model_tester_on_the_product_suggestions(qtmodeltester, catalog_book, db):
    model = ProductSuggestionModel()
    qtmodeltester.check(model)
    model.set_products(drafts.product_suggestions(db, "oxy"))
    qtmodeltester.check(model)
    assert model.rowCount() >= 4
    assert all("Oxy" in model.data(model.index(row, 0)) or "Percocet" in model.data(model.index(row, 0))
               for row in range(model.rowCount()))
    assert model.data(model.index(0, 0), ProductSuggestionModel.NdcRole) == model.product(0).ndc


def test_product_rules_for_enter_in_the_product_box(catalog_book, db):
    assert drafts.product_for_entry(db, "0406-0552-01").ndc == OXYCODONE_5MG
    assert drafts.product_for_entry(db, "Lipitor").name == "Lipitor"
    with pytest.raises(Exception) as several:
        drafts.product_for_entry(db, "oxycodone")
    assert several.value.code == "catalog.ambiguous"
    with pytest.raises(Exception) as missing:
        drafts.product_for_entry(db, "")
    assert missing.value.code == "product.empty"


def test_screenshot_of_the_order_editor(qtbot, open_editor):
    editor = open_editor()
    editor.resize(1000, 640)
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData(LIMITED_DEA))
    pick_product(qtbot, editor, "xanax")
    type_packages_and_add(qtbot, editor, "4")
    pick_product(qtbot, editor, "oxycodone hydro")
    type_packages_and_add(qtbot, editor, "2")
    editor.product_message.clear()  # the lines table shows the schedule problem; one message in the picture
    assert editor.lines_message.isVisible()
    qtbot.keyClicks(editor.product_edit, "lorazep")
    qtbot.waitUntil(editor.completer.popup().isVisible, timeout=3000)
    editor.completer.popup().hide()
    QApplication.processEvents()
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    target = SCREENSHOT_DIR / "order-editor.png"
    assert editor.grab().save(str(target))
    assert target.stat().st_size > 10_000


def test_catalog_names_x12_cannot_carry_are_shown_as_they_will_be_signed(qtbot, catalog_book, open_editor, db):
    """Issue 16 item 4: "Xanax®", a name with '*', accents and a 120-character FDA name are ordered with the X12-safe
    description; the editor shows that text (and the catalog's own spelling beside it), and it is what is signed."""
    from pathlib import Path

    from app.services.catalog import import_fda_catalog
    from app.services.signing import x12
    from app.services.signing.order_signing import purchase_order_from

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "hostile_catalog"
    import_fda_catalog(db, fixtures / "product.txt", fixtures / "package.txt")
    editor = open_editor()
    editor.registration_combo.setCurrentIndex(editor.registration_combo.findData(MAIN_DEA))
    pick_product(qtbot, editor, "70001-104")
    assert editor.product_info.text().startswith("Oxycodone Kit 5 mg — NDC ")
    assert "In the catalog: Oxycodone*Kit 5 mg" in editor.product_info.text()
    type_packages_and_add(qtbot, editor, "1")
    for typed in ("70001-102", "70001-103", "70001-101"):
        qtbot.waitUntil(lambda: QApplication.focusWidget() is editor.product_edit, timeout=10_000)
        pick_product(qtbot, editor, typed)
        type_packages_and_add(qtbot, editor, "1")
    model = editor.lines_model
    shown = [model.data(model.index(row, DraftLinesModel.COL_PRODUCT)) for row in range(model.rowCount())]
    assert shown[:3] == ["Oxycodone Kit 5 mg", "Xanax .5 mg", "Clement Lorazepam 1 mg"]
    assert len(shown[3]) <= 80 and shown[3].endswith("... 1.25 mg; 1.25 mg; 1.25 mg; 1.25 mg")
    qtbot.keyClick(editor.product_edit, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: not editor.isVisible(), timeout=5000)

    order = catalog_book.get_order(editor.order_id)
    envelope = x12.Envelope(sender_id="PHARM1", receiver_id="ACME", created_at=dt.datetime(2026, 1, 15, 10, 30),
                            interchange_control_number=1, group_control_number=1)
    document = x12.write(purchase_order_from(order, signed_on=dt.date.today()), envelope)
    assert [line.description for line in x12.parse_850(document).lines] == shown
