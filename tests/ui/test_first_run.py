"""First start (issue 18): the empty order book shows the getting-started checklist, its buttons open the screens
that do each step, the registrations screen adds and checks a registration, and every screen is in the menus.

Widgets are found by what a person sees (button text, labels, window titles), as in the walkthrough.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel, QLineEdit, QPushButton, QWidget

from app.ui.main_window import MainWindow

pytestmark = pytest.mark.ui


def button(parent: QWidget, text: str) -> QPushButton:
    found = [b for b in parent.findChildren(QPushButton) if b.text() == text and b.isVisible()]
    assert found, f"no visible button '{text}' in {parent.windowTitle() or parent.objectName()}: " + \
        str([b.text() for b in parent.findChildren(QPushButton) if b.isVisible()])
    return found[0]


def words(parent: QWidget) -> str:
    return "\n".join(label.text() for label in parent.findChildren(QLabel) if label.isVisible())


def window_titled(title: str) -> QWidget:
    found = [w for w in QApplication.topLevelWidgets() if w.windowTitle() == title and w.isVisible()]
    assert found, f"no window '{title}': " + str([w.windowTitle() for w in QApplication.topLevelWidgets()
                                                   if w.isVisible()])
    return found[0]


def entry(parent: QWidget, accessible_name: str) -> QLineEdit:
    found = [e for e in parent.findChildren(QLineEdit) if e.accessibleName() == accessible_name]
    assert found, f"no entry '{accessible_name}'"
    return found[0]


@pytest.fixture
def window(qtbot, book, db, training_config):
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    yield made
    for key in list(made.windows):
        try:
            made.windows[key].close()
        except RuntimeError:
            pass


def test_empty_book_shows_the_checklist_and_its_buttons_lead_on(qtbot, window):
    qtbot.waitUntil(lambda: "0 of 3 done" in words(window), timeout=10_000)
    text = words(window)
    for expected in ("Getting started", "Your CSOS certificate", "Your DEA registration(s) and suppliers",
                     "Your first order", "practise freely"):
        assert expected in text, expected
    assert "Press Ctrl+N" not in text
    for label in ("Enroll…", "Import a .p12…", "Registrations…", "Suppliers…", "New order…"):
        button(window, label)
    qtbot.mouseClick(button(window, "Registrations…"), Qt.MouseButton.LeftButton)
    registrations = window_titled("DEA registrations — TRAINING")
    assert "No registration yet" in words(registrations) or qtbot.waitUntil(
        lambda: "No registration yet" in words(registrations), timeout=5000) is None


def test_registrations_screen_checks_the_dea_number_and_adds_a_registration(qtbot, window, book):
    window.open_registrations()
    screen = window_titled("DEA registrations — TRAINING")
    qtbot.waitUntil(lambda: "No registration yet" in words(screen), timeout=5000)
    qtbot.keyClicks(entry(screen, "DEA number"), "BJ6125342")
    assert "check digit" in words(screen).lower()
    dea = entry(screen, "DEA number")
    dea.clear()
    qtbot.keyClicks(dea, "BJ6125341")
    assert "check digit" not in words(screen).lower()
    for name, value in (("Name (as registered)", "Main Street Pharmacy"), ("Street address", "1 Main St"),
                        ("City", "Springfield"), ("State", "IL"), ("ZIP code", "62701"),
                        ("Registration expires", "06/30/2028")):
        qtbot.keyClicks(entry(screen, name), value)
    qtbot.mouseClick(button(screen, "Save"), Qt.MouseButton.LeftButton)
    assert "Tick the schedules" in words(screen)
    for box in screen.findChildren(QWidget):
        if box.accessibleName() in ("Schedule II", "Schedule IV"):
            box.setChecked(True)
    qtbot.mouseClick(button(screen, "Save"), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Registration BJ6125341 saved." in words(screen) and not screen.busy, timeout=5000)
    registration = book.registration("BJ6125341")
    assert registration.schedules == "II,IV" and str(registration.expires_on) == "2028-06-30"
    assert "No installed certificate was issued for this DEA number" in words(screen)
    assert button(screen, "Remove").isEnabled()  # nothing refers to it yet
    qtbot.keyClick(screen, Qt.Key.Key_Escape)
    assert not screen.isVisible()
    # The checklist follows: a registration, but no supplier yet.
    qtbot.waitUntil(lambda: "Add a supplier" in words(window), timeout=5000)


def test_every_screen_is_in_the_menus_and_the_title_shows_once(qtbot, window):
    menus = {a.text().replace("&", ""): [x.text().replace("&", "") for x in a.menu().actions() if x.isVisible()]
             for a in window.menuBar().actions() if a.menu() is not None}
    assert {"Registrations…", "Suppliers…", "Settings…"} <= set(menus["File"])
    assert {"Getting started", "User guide", "Keyboard shortcuts", "Start training over…"} <= set(menus["Help"])
    assert window.windowTitle() == "CSOS Desk — TRAINING"
    assert QApplication.applicationDisplayName() != "CSOS Desk"  # Qt would append it: "… — TRAINING — CSOS Desk"
    window.open_user_guide()
    guide = window_titled("CSOS Desk user guide — TRAINING")
    assert "Getting started" in guide.browser.toPlainText()
    qtbot.mouseClick(button(guide, "Close"), Qt.MouseButton.LeftButton)
    window.show_shortcuts()
    shortcuts = window_titled("Keyboard shortcuts — TRAINING")
    assert "New order" in words(shortcuts) and "Ctrl+N" in words(shortcuts)


def test_start_training_over_asks_first(qtbot, window, modal_boxes):
    seen = []
    window.facade.training_reset_requested.connect(lambda: seen.append(True))
    modal_boxes.answers[:] = [False]
    assert window.start_training_over() is False and not seen
    assert modal_boxes.questions[-1][0] == "Start training over?"
    modal_boxes.answers[:] = [True]
    assert window.start_training_over() is True and seen == [True]


def test_no_byte_counts_on_the_order_timeline():
    from app.ui.order_detail import plain_summary

    assert plain_summary("324 bytes kept exactly as received") == "Kept exactly as received"
    assert plain_summary("1,024 bytes kept exactly as sent") == "Kept exactly as sent"
    assert plain_summary("Accepted in full") == "Accepted in full"


def test_filters_fit_a_1024_by_600_screen_eliding_with_a_tooltip(qtbot, book, db, training_config):
    book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy and Family Health Center",
                          address_lines=["1 Main St"], city="Springfield", state="IL", postal_code="62701",
                          schedules=["II", "IV"])
    book.add_supplier(name="Great Lakes Pharmaceutical Wholesale Distribution")
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    made.resize(1024, 600)  # after showing: the first showing fits the window to the 800-pixel test screen
    assert made.minimumSizeHint().width() <= 1024 and made.width() == 1024
    for combo in (made.status_combo, made.registration_combo, made.supplier_combo, made.schedule_combo,
                  made.created_combo):
        combo.setCurrentIndex(combo.count() - 1)
        assert combo.toolTip() == combo.currentText()
        assert combo.mapTo(made, combo.rect().topRight()).x() <= made.width()
        shown = combo.shown_text()
        assert shown == combo.currentText() or (shown.endswith("…") and len(shown) > 3), shown


def test_reorder_copies_any_orders_lines_into_a_new_draft(qtbot, catalog_book, db, training_config):
    from sqlalchemy import update

    from app.models.orderbook import Order
    from app.models.states import OrderStatus

    order = catalog_book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    catalog_book.add_line(order.id, ndc="00406055262", packages=2)
    with db.session() as session, session.begin():
        session.execute(update(Order).where(Order.id == order.id).values(status=OrderStatus.RECEIVED))
    made = MainWindow(training_config, catalog_book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    assert made.select_order(order.id)
    qtbot.waitUntil(lambda: made.reorder_action.isEnabled(), timeout=5000)
    assert not made.copy_order_action.isEnabled()  # the replacement of an unaccepted order keeps its own name
    editor = made.reorder_selected()
    assert editor is not None and editor.windowTitle().startswith("Draft order")
    copied = catalog_book.get_order(editor.order_id)
    assert copied.status is OrderStatus.DRAFT and [(l.ndc, l.packages) for l in copied.lines] == [("00406055262", 2)]
    assert catalog_book.get_order(order.id).status is OrderStatus.RECEIVED
    editor.reject()


def test_a_table_with_the_keyboard_focus_shows_an_outline(qtbot):
    from PySide6.QtWidgets import QLineEdit, QVBoxLayout

    from app.ui.widgets import RowsTableModel, make_table

    holder = QWidget()
    layout = QVBoxLayout(holder)
    other = QLineEdit(holder)
    model = RowsTableModel(("Line", "Product"), parent=holder)
    model.set_rows([("1", "Oxycodone 5 mg"), ("2", "Amoxicillin 500 mg")])
    table = make_table(holder, model, name="", accessible_name="Lines")
    layout.addWidget(other)
    layout.addWidget(table)
    qtbot.addWidget(holder)
    holder.show()
    qtbot.waitExposed(holder)
    holder.activateWindow()
    other.setFocus()
    qtbot.waitUntil(other.hasFocus, timeout=2000)
    unfocused = table.grab().toImage()
    table.setFocus()
    qtbot.waitUntil(table.hasFocus, timeout=2000)
    focused = table.grab().toImage()
    edge = (0, table.height() - 3)  # the frame, below the rows: only an outline changes it
    assert unfocused.pixel(*edge) != focused.pixel(*edge)


def test_certificates_and_approvals_windows_close_with_a_button_and_escape(qtbot, facade, tmp_path):
    from app.services.enrollment.authority import SandboxAuthority
    from app.ui.approvals_page import ApprovalsPage
    from app.ui.certificates_page import CertificatesPage

    authority = SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "unused.pem")
    for make in (lambda: CertificatesPage(facade), lambda: ApprovalsPage(authority, facade.jobs)):
        for how in ("button", "escape"):
            shown = make()
            qtbot.addWidget(shown)
            shown.show()
            qtbot.waitExposed(shown)
            if how == "button":
                qtbot.mouseClick(button(shown, "Close"), Qt.MouseButton.LeftButton)
            else:
                qtbot.keyClick(shown, Qt.Key.Key_Escape)
            assert not shown.isVisible(), (type(shown).__name__, how)


def test_the_user_guide_shows_its_pictures(qtbot, window):
    import re

    from app.ui.main_window_help import USER_GUIDE

    pictures = re.findall(r"\]\((images/[^)]+\.png)\)", USER_GUIDE.read_text("utf-8"))
    assert len(pictures) >= 5 and all((USER_GUIDE.parent / p).is_file() for p in pictures)
    guide = window.open_user_guide()
    html = guide.browser.toHtml()
    assert all(p in html for p in pictures)


def test_in_production_the_checklist_starts_with_trust_roots_and_opens_their_settings(qtbot, book, db,
                                                                                        production_config):
    made = MainWindow(production_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitUntil(lambda: "CSOS trust roots" in words(made), timeout=10_000)
    qtbot.mouseClick(button(made, "Open Settings…"), Qt.MouseButton.LeftButton)
    dialog = made.settings_dialog
    assert "trust roots" in dialog.tabs.tabText(dialog.tabs.currentIndex()).replace("&", "")
    dialog.reject()


def test_the_toolbar_fits_a_1024_pixel_window_without_an_overflow(qtbot, window):
    window.resize(1024, 600)
    qtbot.wait(50)
    hidden = [a.text() for a in window.toolbar.actions() if not a.isSeparator()
              and not (window.toolbar.widgetForAction(a) and window.toolbar.widgetForAction(a).isVisible())]
    assert hidden == [] and window.toolbar.sizeHint().width() <= 1024


def test_a_long_registration_name_in_the_order_detail_wraps_and_is_never_cut(qtbot, book, db, training_config):
    book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy and Family Health Center",
                          address_lines=["1 Main St"], city="Springfield", state="IL", postal_code="62701",
                          schedules=["II", "IV"])
    book.add_supplier(name="Acme Drug")
    order = book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    made.resize(1024, 600)  # after showing: the first showing fits the window to the 800-pixel test screen
    assert made.select_order(order.id)
    field = next(label for label in made.detail.findChildren(QLabel) if label.accessibleName() == "Registration")
    qtbot.waitUntil(lambda: "Family Health Center" in field.text(), timeout=5000)
    qtbot.wait(50)
    needed = field.heightForWidth(field.width()) if field.hasHeightForWidth() else field.sizeHint().height()
    assert field.height() >= needed, (field.height(), needed)  # every wrapped line has its room
    assert field.width() >= field.fontMetrics().horizontalAdvance("BJ6125341 — Main Street Pharmacy") * 0.6
