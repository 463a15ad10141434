"""Every control a person can use has a name a screen reader can say (its text, or an accessible name): the main
window, the set-up screens and every enrollment wizard page (issue 18). The walkthrough finds widgets by these names.
"""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QAbstractSpinBox,
    QComboBox,
    QHeaderView,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QWidget,
)

pytestmark = pytest.mark.ui

CONTROLS = (QLineEdit, QComboBox, QAbstractSpinBox, QAbstractItemView, QPlainTextEdit, QTextEdit)


def unnamed(root: QWidget) -> list[str]:
    """Visible controls with neither text nor an accessible name."""
    missing = []
    for widget in root.findChildren(QWidget):
        if not widget.isVisible() or widget.parent() is None:
            continue
        if isinstance(widget, QAbstractButton):
            if not (widget.text().replace("&", "").strip() or widget.accessibleName()):
                if widget.parent().metaObject().className() in ("QComboBox", "QScrollBar", "QLineEdit",
                                                                "QAbstractSpinBox", "QDateEdit", "QToolBar",
                                                                "QTabBar", "QCalendarWidget"):
                    continue  # parts of a named control
                if widget.metaObject().className() in ("QToolBarExtension", "QLineEditIconButton"):
                    continue
                missing.append(f"{widget.metaObject().className()} in {root.windowTitle()}")
        elif isinstance(widget, CONTROLS) and not widget.accessibleName() and not isinstance(widget, QHeaderView):
            if isinstance(widget, QLineEdit) and isinstance(widget.parent(), (QComboBox, QAbstractSpinBox)):
                continue
            if isinstance(widget, QAbstractItemView) and widget.metaObject().className() in (
                    "QComboBoxListView", "QCalendarView", "QListView") and not widget.isWindow() \
                    and isinstance(widget.parent(), QWidget) and widget.parent().metaObject().className() in (
                    "QComboBoxPrivateContainer", "QCompleter"):
                continue
            missing.append(f"{widget.metaObject().className()} {widget.objectName()!r} in {root.windowTitle()}")
    return missing


def test_main_window_and_set_up_screens_name_every_control(qtbot, catalog_book, db, training_config):
    from app.ui.main_window import MainWindow

    order = catalog_book.new_order(registration_dea="BJ6125341", supplier_name="Acme Drug")
    catalog_book.add_line(order.id, ndc="00406055262", packages=2)
    window = MainWindow(training_config, catalog_book, db, start_checks=False)
    qtbot.addWidget(window)
    window.show()
    window.select_order(order.id)
    assert unnamed(window) == []
    for opened in (window.open_registrations(), window.open_getting_started(), window.open_user_guide(),
                   window.open_records(0)):
        qtbot.waitUntil(opened.isVisible, timeout=5000)
        assert unnamed(opened) == [], opened.windowTitle()
        opened.close()


def test_every_enrollment_page_names_its_controls(qtbot, facade, tmp_path):
    from app.services.enrollment.authority import PortalAuthority, SandboxAuthority
    from app.services.enrollment.enroll_flow import EnrollmentFlow
    from app.ui.wizards import _CONTEXT, _SAMPLE, WizardDialog

    training = SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "unused.pem")
    for authority, view in [(a, v) for a in (training, PortalAuthority())
                            for v in EnrollmentFlow(authority=training, certificates=None).navmap]:
        flow = EnrollmentFlow(authority=authority, certificates=None, store=None,
                              data={**_SAMPLE, "automatic": authority.automatic})
        flow.context.update(_CONTEXT)
        flow.wizard.view = view
        dialog = WizardDialog(flow, jobs=facade.jobs)
        qtbot.addWidget(dialog)
        dialog.show()
        dialog.render()
        assert unnamed(dialog) == [], view
        dialog.close()
