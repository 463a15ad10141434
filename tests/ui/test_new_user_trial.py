"""What a new user met when trying the program in a real window (issue 18's trial, 1366×768, 1024×600 and 200%):
windows larger than the screen, filters cut with room to spare, a byte count after sending, and a training product
search that gave no way on. Widgets are found by what a person sees (titles, button texts, the text shown).
"""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QPushButton, QWidget

from app.ui.main_window import MainWindow

pytestmark = pytest.mark.ui


def screen_area() -> object:
    return QApplication.primaryScreen().availableGeometry()


def on_screen(window: QWidget) -> bool:
    """The whole window is inside the screen, or as much of it as its minimum size lets."""
    area, frame = screen_area(), window.frameGeometry()
    width_ok = frame.width() <= area.width() or window.width() == window.minimumWidth()
    return (frame.x() >= area.x() and frame.y() >= area.y() and width_ok
            and frame.y() + frame.height() <= area.y() + area.height())


def test_the_main_window_opens_no_larger_than_the_screen(qtbot, book, db, training_config):
    """At 1024×600 the 1180×760 window ran past the right and bottom edges: the status bar and the last columns
    were off screen. (The offscreen test screen is 800×800: narrower than the window's 1180.)"""
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    assert made.windowTitle() == "CSOS Desk — TRAINING"
    assert made.width() <= max(screen_area().width() - 16, made.minimumWidth()), made.width()
    assert on_screen(made)


def test_the_order_editor_fits_a_small_screen(qtbot, facade):
    """Its minimum of 900×600 put 'Save draft' below the bottom of a 1024×600 screen."""
    from app.ui.order_editor import OrderEditor

    editor = OrderEditor(facade)
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitExposed(editor)
    assert editor.windowTitle() == "New order"
    assert editor.minimumHeight() <= 600 - 40 - 30  # a 1024×600 screen less the panel and the title bar
    assert editor.width() <= screen_area().width() - 16
    assert on_screen(editor)
    save = [b for b in editor.findChildren(QPushButton) if b.text().replace("&", "") == "Save draft"]
    assert save and save[0].isVisible()
    corner = save[0].mapToGlobal(save[0].rect().bottomRight())
    assert screen_area().contains(corner)


def test_the_filters_show_all_registrations_whole_when_there_is_room(qtbot, book, db, training_config):
    """The registration and supplier filters are refilled when the book attaches; their width stayed that of the
    empty box, so a 1366-pixel window showed 'All regist…' and 'All suppli…' beside 300 empty pixels."""
    book.add_registration(dea_number="BJ6125341", name="Main Street Pharmacy", address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701", schedules=["II", "IV"])
    book.add_supplier(name="Acme Drug")
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    made.resize(1180, 700)  # a 1366-pixel screen's window (the test screen is 800 wide: the first showing fits it)
    for text in ("All registrations", "All suppliers"):
        combos = [c for c in made.findChildren(QComboBox) if c.currentText() == text and c.isVisible()]
        assert combos, text
        qtbot.waitUntil(lambda combo=combos[0]: combo.shown_text() == text, timeout=3000)
        assert combos[0].toolTip() == text


def test_after_sending_no_byte_count_is_shown():
    """'✓ Acme Drug accepted the order. (324 bytes kept exactly as received)' was the last line of the sign screen."""
    from types import SimpleNamespace

    from app.models.states import OrderStatus
    from app.ui.sign_dialog import describe_outcome

    answer = SimpleNamespace(direction="from supplier", summary="324 bytes kept exactly as received")
    shown = SimpleNamespace(supplier_name="Acme Drug", timeline=[answer], status=OrderStatus.ACCEPTED,
                            order_number="26X000001")
    details = SimpleNamespace(order_details=lambda _db, _order_id: shown)
    outcome = describe_outcome(SimpleNamespace(db=None), 1, details_module=details)
    assert outcome.message == "Acme Drug accepted the order."
    answer.summary = "Accepted with changes on line 2"
    assert describe_outcome(SimpleNamespace(db=None), 1, details_module=details).message == \
        "Acme Drug accepted the order. (Accepted with changes on line 2)"


def visible_words(parent: QWidget) -> str:
    return "\n".join(label.text() for label in parent.findChildren(QLabel) if label.isVisible())


def test_the_ordering_history_window_closes_with_escape(qtbot, book, db, training_config):
    """Every other window of its own closes with Escape; the ordering history ignored it."""
    from PySide6.QtCore import Qt

    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    action = next(a for a in made.findChildren(type(made.history_action)) if a.text() == "Ordering &history…")
    action.trigger()
    history = next(w for w in QApplication.topLevelWidgets() if w.windowTitle() == "Ordering history" and w.isVisible())
    qtbot.waitExposed(history)
    assert "Close" in [b.text() for b in history.findChildren(QPushButton)]
    qtbot.keyClick(history, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not history.isVisible(), timeout=3000)


def test_a_training_search_that_finds_nothing_names_what_the_practice_catalog_holds(qtbot, facade, catalog_book):
    """A new user typed 'ibuprofen' for the non-controlled line and was told to check the spelling; nothing said the
    practice catalog is a short list, nor what is in it."""
    from PySide6.QtWidgets import QLineEdit

    from app.ui.order_editor import OrderEditor

    editor = OrderEditor(facade)
    qtbot.addWidget(editor)
    editor.show()
    qtbot.waitExposed(editor)
    product = next(e for e in editor.findChildren(QLineEdit)
                   if e.placeholderText().startswith("Type a product name or NDC"))
    qtbot.keyClicks(product, "ibuprofen")
    qtbot.waitUntil(lambda: "ibuprofen" in visible_words(editor), timeout=3000)
    said = next(line for line in visible_words(editor).splitlines() if "ibuprofen" in line)
    assert "practice catalog" in said and "Check the spelling" not in said
    named = said.split("for example ")[1].split(". Type")[0].split(", ")
    assert len(named) == 6
    product.clear()
    qtbot.keyClicks(product, named[2][:5])  # what it names is found
    qtbot.waitUntil(lambda: editor.completer.popup().isVisible(), timeout=3000)
    assert "ibuprofen" not in visible_words(editor)


def test_the_key_password_hint_names_the_rule_before_it_is_broken(qtbot, tmp_path):
    """A new user's key password held her name: the hint said only 'At least 12 characters', and the rule came as
    an error after Next (the portal password's hint names it)."""
    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards.pages import KeyLocationPage

    flow = EnrollmentFlow(authority=SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem"),
                          certificates=None, store=None, data={"full_name": "Maria Lopez"})
    page = KeyLocationPage(flow)
    qtbot.addWidget(page)
    page.show()
    said = visible_words(page)
    assert "This computer, with a password" in [b.text() for b in page.findChildren(QWidget)
                                                 if hasattr(b, "isChecked") and hasattr(b, "text")]
    assert "At least 12 characters; not your name, the pharmacy's name or DEA number." in said


def test_a_late_answer_from_last_runs_time_server_does_not_undo_the_clock_check(qtbot, book, db, training_config):
    """At every start after the first, the status bar said 'Clock: not checked' for good: the first check asked the
    practice time server remembered from the last run (gone: no answer, 2 s), the sandbox then started on a new port
    and its check said 'right' — and the old check's time-out, arriving last, overwrote it."""
    import socket

    from app.sandbox.sntp import SntpServer

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers: the old check times out
    silent.bind(("127.0.0.1", 0))
    try:
        with SntpServer() as server:
            training_config.settings["sntp_server"] = f"127.0.0.1:{silent.getsockname()[1]}"
            made = MainWindow(training_config, book, db, start_checks=False)
            qtbot.addWidget(made)
            made.show()
            made.check_clock()  # last run's server
            training_config.settings["sntp_server"] = f"127.0.0.1:{server.port}"  # the sandbox moved
            made.check_clock()
            qtbot.waitUntil(lambda: made.facade.jobs.running == [], timeout=10_000)
            qtbot.wait(50)
            shown = next(label.text() for label in made.findChildren(QLabel) if "Clock:" in label.text())
            assert "Clock: right" in shown, shown
    finally:
        silent.close()


def test_the_request_page_keeps_the_fingerprint_behind_details(qtbot, tmp_path):
    """'Request fingerprint (SHA-256): d86ef90bfc…' stood on the main path of the training enrollment."""
    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards.pages import RequestPage

    flow = EnrollmentFlow(authority=SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem"),
                          certificates=None, store=None,
                          data={"key_description": "'CSOS Maria Lopez' (key file on this computer)",
                                "csr_sha256": "d86ef90b" * 8, "automatic": True})
    page = RequestPage(flow)
    qtbot.addWidget(page)
    page.show()
    assert "Press Next to send the request" in visible_words(page)
    assert "d86ef90b" not in visible_words(page) and "SHA-256" not in visible_words(page)
    details = next(b for b in page.findChildren(QPushButton) if b.text() == "Details")
    details.click()
    assert "Request fingerprint (SHA-256): " + "d86ef90b" * 8 in visible_words(page)


def test_the_last_wizard_page_offers_one_way_out(qtbot, tmp_path):
    """'Certificate installed' showed 'Close' and 'Finish' side by side; a new user stopped to wonder which."""
    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.jobs import JobRunner
    from app.ui.wizards import _CERT, _CONTEXT, _SAMPLE
    from app.ui.wizards.host import WizardDialog

    flow = EnrollmentFlow(authority=SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem"),
                          certificates=None, store=None,
                          data={**_SAMPLE, "automatic": True, "current": _CERT, "certificate": _CERT})
    flow.context.update(_CONTEXT)
    views = list(flow.navmap)
    flow.wizard.view = "installed"
    flow.wizard.stack = views[:views.index("installed")]
    jobs = JobRunner()
    dialog = WizardDialog(flow, jobs=jobs)
    qtbot.addWidget(dialog)
    dialog.render()
    dialog.show()
    assert "Certificate installed" in visible_words(dialog)
    shown = [b.text() for b in dialog.findChildren(QPushButton) if b.isVisible()]
    assert "Finish" in shown and "Close" not in shown, shown
    dialog.close()
    jobs.shutdown()


def test_a_saved_test_order_goes_on_to_the_sign_screen(qtbot, catalog_book, db, training_config):
    """'Prepare a test order' on 'Certificate installed' opened the editor; saving it put the new user back on the
    wizard's last page, with Finish and then Sign and send to find alone."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QLineEdit

    made = MainWindow(training_config, catalog_book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    editor = made.open_test_order("BJ6125341")
    assert editor.windowTitle() == "New order"
    supplier = editor.supplier_combo
    supplier.setCurrentIndex(supplier.findText("Acme Drug"))
    product = next(e for e in editor.findChildren(QLineEdit)
                   if e.placeholderText().startswith("Type a product name or NDC"))
    qtbot.keyClicks(product, "0406-0552-01")
    qtbot.keyClick(product, Qt.Key.Key_Return)
    add = next(b for b in editor.findChildren(QPushButton) if b.text().replace("&", "") == "Add line")
    qtbot.waitUntil(lambda: editor.chosen_product is not None, timeout=3000)
    add.click()
    save = next(b for b in editor.findChildren(QPushButton) if b.text().replace("&", "") == "Save draft")
    save.click()

    def sign_screen() -> QWidget | None:
        return next((w for w in QApplication.topLevelWidgets()
                     if w.isVisible() and w.windowTitle().startswith("Sign and send")), None)

    qtbot.waitUntil(lambda: sign_screen() is not None, timeout=10_000)
    sign_screen().close()


def test_training_enrollment_says_made_up_details_will_do(qtbot, tmp_path):
    """The first page asked to have ready 'your identity document' and the next one an e-mail address for the
    reference number; in training a new user wondered whether to fetch her real license and give her real e-mail."""
    from app.services.enrollment.authority import PortalAuthority, SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards.pages import PersonPage, WelcomePage

    training = SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem")
    for authority, expected in ((training, True), (PortalAuthority(), False)):
        flow = EnrollmentFlow(authority=authority, certificates=None, store=None, data={})
        welcome, person = WelcomePage(flow), PersonPage(flow)
        for page in (welcome, person):
            qtbot.addWidget(page)
            page.show()
        assert ("made-up details will do" in visible_words(welcome)) is expected
        assert ("arrives in the practice mailbox" in visible_words(person)) is expected


def test_no_token_found_is_said_only_when_a_token_is_chosen(qtbot, tmp_path):
    """With 'This computer, with a password' chosen, the page still said 'No token found. Insert your token…' — it
    read as a problem to solve."""
    from PySide6.QtWidgets import QRadioButton

    from app.services.enrollment.authority import SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards.pages import KeyLocationPage

    flow = EnrollmentFlow(authority=SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem"),
                          certificates=None, store=None, data={})
    page = KeyLocationPage(flow)
    qtbot.addWidget(page)
    page.show()
    assert "No token found" not in visible_words(page)
    token = next(b for b in page.findChildren(QRadioButton) if b.text() == "A USB security token")
    token.click()
    assert "No token found" in visible_words(page)


def test_help_windows_are_kept_on_the_screen(qtbot, book, db, training_config):
    """Help → User guide (780×640) and Help → Getting started (640×600) ran past the bottom of a 1024×600 screen;
    each is kept on the screen whenever it opens (here made larger than the 800-pixel test screen, then reopened)."""
    made = MainWindow(training_config, book, db, start_checks=False)
    qtbot.addWidget(made)
    made.show()
    qtbot.waitExposed(made)
    for text, title in (("&User guide", "CSOS Desk user guide"), ("&Getting started", "Getting started")):
        action = next(a for a in made.findChildren(type(made.user_guide_action)) if a.text() == text)
        action.trigger()
        window = next(w for w in QApplication.topLevelWidgets() if w.isVisible() and title in w.windowTitle())
        window.hide()
        window.resize(1500, 1500)
        action.trigger()  # opens the same window again
        qtbot.waitExposed(window)
        assert window.height() <= screen_area().height() - 40 and on_screen(window), (title, window.size())
        window.close()
