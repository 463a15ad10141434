"""The certificate windows the main window opens: the certificates page, the enrollment, import, renewal and
revocation wizards, the coordinator's approvals page and the practice mailbox — one window of each kind at a time.

A mixin of ``MainWindow`` (app/ui/main_window.py); it needs the frame's ``config``, ``facade``, ``windows``,
``report_failure``, ``refresh_status`` and ``open_editor``. The pages and wizards are imported when opened.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QTimer, Slot

from app.errors import CsosError
from app.ui.lazy_qt import Qt

log = logging.getLogger(__name__)


class CertificateWindowsMixin:
    """Opens (or brings forward) the certificate windows and wizards; keeps one of each in ``windows``."""

    config: Any
    facade: Any
    dialog: Any
    windows: dict[str, Any]

    # -- certificates (the wizards and pages of issue 7/10) ------------------------------------------------------

    def _window(self, key: str, make: Any) -> Any:
        window = self.windows.get(key)
        if window is not None:
            try:
                window.show()
                window.raise_()
                window.activateWindow()
                return window
            except RuntimeError:  # closed and deleted by Qt
                self.windows.pop(key, None)
        try:
            window = make()
        except CsosError as exc:
            self.report_failure(exc)
            return None
        if window is None:
            return None
        window.setWindowFlag(Qt.WindowType.Window, True)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(lambda *_a, k=key: self.windows.pop(k, None))
        self.windows[key] = window
        window.show()
        return window

    @Slot()
    def open_certificates(self) -> Any:
        from app.ui.certificates_page import CertificatesPage

        def make() -> Any:
            page = CertificatesPage(self.facade, parent=self)
            page.setWindowTitle("CSOS certificates" + (" — TRAINING" if self.config.is_training else ""))
            # Every column, with "next action" wrapping — but never wider than the screen it opens on.
            screen = self.screen().availableGeometry() if self.screen() is not None else None
            page.resize(min(1320, screen.width() - 40) if screen is not None else 1320, 460)
            page.open_wizard.connect(self.open_wizard)
            return page

        return self._window("certificates", make)

    @Slot(str, str)
    def open_wizard(self, kind: str, fingerprint: str = "") -> Any:
        from app.ui import wizards

        openers = {
            "enroll": lambda: wizards.open_enrollment_wizard(self, self.facade),
            "import": lambda: wizards.open_import_wizard(self, self.facade),
            "renew": lambda: wizards.open_renewal_wizard(self, self.facade, fingerprint),
            "revoke": lambda: wizards.open_revocation_wizard(self, self.facade, fingerprint),
        }
        if kind == "approvals":
            return self.open_approvals()
        opener = openers.get(kind)
        if opener is None:
            log.info("unknown wizard asked for: %s", kind)
            return None
        dialog = opener()
        if dialog is not None:
            self.dialog = dialog
            dialog.test_order_requested.connect(self.open_test_order)
            dialog.enrollment_requested.connect(self.open_enrollment)
            dialog.flow_finished.connect(lambda _name: self._after_certificates_changed())
        return dialog

    def _after_certificates_changed(self) -> None:
        self.refresh_status()
        for panel in (getattr(self, "_getting_started", None), self.windows.get("getting_started")):
            if panel is not None:
                try:
                    panel.refresh()  # the checklist ticks "Your CSOS certificate"
                except RuntimeError:
                    pass
        page = self.windows.get("certificates")
        if page is not None and hasattr(page, "refresh"):
            try:
                page.refresh()
            except RuntimeError:
                self.windows.pop("certificates", None)

    @Slot()
    def open_enrollment(self) -> Any:
        return self.open_wizard("enroll")

    @Slot()
    def open_import(self) -> Any:
        return self.open_wizard("import")

    @Slot(str)
    def open_test_order(self, registration_dea: str) -> Any:
        """After a certificate was installed: a first (practice) order for that registration. Once it is saved the
        wizard finishes and the sign screen opens: a new user who saved it landed back on "Certificate installed"
        and had to find Finish, then Sign and send, alone."""
        wizard = self.sender() if hasattr(self.sender(), "flow") else None
        editor = self.open_editor(None)
        if editor is not None:
            found = editor.registration_combo.findData(registration_dea)
            if found >= 0 and editor.registration_combo.isEnabled():
                editor.registration_combo.setCurrentIndex(found)

            def sign_it(order_id: int) -> None:
                if wizard is not None and wizard.isVisible() and wizard.flow.is_last:
                    wizard.go_next()  # Finish: the certificate is in; the practice order comes next
                if self.selected_order_id() == order_id:
                    QTimer.singleShot(0, self.sign_selected)

            editor.saved.connect(sign_it)
        return editor

    @Slot()
    def open_approvals(self) -> Any:
        from app.services.enrollment.authority import authority_for
        from app.ui.approvals_page import ApprovalsPage

        def make() -> Any:
            authority = authority_for(self.config)
            page = ApprovalsPage(authority, self.facade.jobs, parent=self)
            page.setWindowTitle("Approvals" + (" — TRAINING" if self.config.is_training else ""))
            if authority.training:
                from app.ui.wizards import open_mailbox

                page.mailbox_opener = lambda email: open_mailbox(page, self.facade, authority=authority, email=email)
            page.resize(900, 520)
            return page

        return self._window("approvals", make)

    @Slot()
    def open_mailbox(self) -> Any:
        from app.ui.wizards import open_mailbox

        panel = open_mailbox(self, self.facade)
        if panel is not None:
            self.windows["mailbox"] = panel
        return panel
