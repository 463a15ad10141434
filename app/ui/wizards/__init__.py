"""Entry points for the certificate wizards, and the offscreen page screenshots ``csos-desk demo --screenshots`` uses.

    dialog = open_enrollment_wizard(window, facade)          # resumes saved progress, if any
    dialog.test_order_requested.connect(window.open_test_order)

Each ``open_*`` shows a non-modal ``WizardDialog`` and returns it (None, after telling the person why, when the
authority cannot be reached from this profile — e.g. training mode without its sandbox).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QWidget

from app.errors import CsosError
from app.services.enrollment.authority import EnrollmentAuthority, PortalAuthority, SandboxAuthority, authority_for
from app.services.enrollment.enroll_flow import EnrollmentFlow
from app.services.enrollment.flow_common import Flow
from app.services.enrollment.import_flow import ImportFlow
from app.services.enrollment.renewal_flow import RenewalFlow
from app.services.enrollment.revocation_flow import RevocationFlow
from app.services.enrollment.wizard import WizardStateStore
from app.ui import messages
from app.ui.widgets import fit_on_show
from app.ui.wizards.host import WizardDialog

log = logging.getLogger(__name__)

__all__ = ["WizardDialog", "open_approvals", "open_enrollment_wizard", "open_import_wizard", "open_mailbox",
           "open_renewal_wizard",
           "open_revocation_wizard", "render_wizard_screenshots", "wizard_state_store"]


def wizard_state_store(config: Any) -> WizardStateStore:
    return WizardStateStore(Path(config.data_dir) / "wizards")


def _services(facade: Any, authority: EnrollmentAuthority | None, certificates: Any) -> tuple[Any, Any]:
    if authority is None:
        authority = authority_for(facade.config)
    if certificates is None:
        from app.services.certificates.book import CertificateBook

        certificates = CertificateBook(facade.db, facade.config, actor="gui")
    return authority, certificates


def _open(parent: QWidget | None, facade: Any, flow_type: type[Flow], *, authority: EnrollmentAuthority | None,
          certificates: Any, **kwargs: Any) -> WizardDialog | None:
    try:
        authority, certificates = _services(facade, authority, certificates)
        if flow_type is EnrollmentFlow and authority.training:
            _teach_practice_portal(facade, authority)
        flow = flow_type(authority=authority, certificates=certificates, store=wizard_state_store(facade.config),
                         clock=facade.clock, **kwargs)
    except CsosError as exc:
        log.info("wizard %s not opened: %s", flow_type.name, exc.code)
        messages.alert(parent, flow_type.title, exc.message)
        return None
    dialog = WizardDialog(flow, jobs=facade.jobs, parent=parent,
                          mailbox_opener=(lambda email: open_mailbox(dialog, facade, authority=authority, email=email))
                          if authority.training else None,
                          approvals_opener=(lambda registrations: open_approvals(
                              dialog, facade, authority=authority, registrations=registrations))
                          if authority.training else None,
                          registrations_opener=lambda: _open_registrations(parent, facade, authority))
    fit_on_show(dialog)  # 700×640 ran past the bottom of a 1024×600 screen (Next out of reach)
    dialog.show()
    dialog.begin()
    return dialog


def _open_registrations(parent: QWidget | None, facade: Any, authority: Any) -> Any:
    """The main window's registrations window when there is one, else a window of its own. In training a saved
    registration is taught to the practice portal at once, so the enrollment can use it."""
    opener = getattr(parent, "open_registrations", None)
    if opener is not None:
        window = opener()
    else:
        from PySide6.QtCore import Qt

        from app.ui.registrations_window import RegistrationsWindow

        window = RegistrationsWindow(facade, parent)
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.show()
    if window is not None and authority.training and hasattr(window, "saved"):
        window.saved.connect(lambda _dea: _teach_practice_portal(facade, authority))
    return window


def _teach_practice_portal(facade: Any, authority: Any) -> None:
    """Training: a registration added on this computer since the start becomes known to the practice portal, so it
    can be chosen in the enrollment like the seeded ones (a quick call to the sandbox on this computer)."""
    from app.training import teach_portal_registrations

    portal_url, tls = getattr(authority, "portal_url", ""), getattr(authority, "tls_bundle", None)
    if portal_url and tls and getattr(facade, "book", None) is not None:
        teach_portal_registrations(facade.book, portal_url, str(tls))


def open_enrollment_wizard(parent: QWidget | None, facade: Any, *, authority: EnrollmentAuthority | None = None,
                           certificates: Any = None, resume: bool = True) -> WizardDialog | None:
    return _open(parent, facade, EnrollmentFlow, authority=authority, certificates=certificates, resume=resume)


def open_import_wizard(parent: QWidget | None, facade: Any, *, authority: EnrollmentAuthority | None = None,
                       certificates: Any = None) -> WizardDialog | None:
    return _open(parent, facade, ImportFlow, authority=authority or PortalAuthority(), certificates=certificates,
                 resume=False)


def open_renewal_wizard(parent: QWidget | None, facade: Any, fingerprint: str, *,
                        authority: EnrollmentAuthority | None = None, certificates: Any = None) -> WizardDialog | None:
    return _open(parent, facade, RenewalFlow, authority=authority, certificates=certificates, fingerprint=fingerprint)


def open_revocation_wizard(parent: QWidget | None, facade: Any, fingerprint: str, *,
                           authority: EnrollmentAuthority | None = None,
                           certificates: Any = None) -> WizardDialog | None:
    return _open(parent, facade, RevocationFlow, authority=authority, certificates=certificates,
                 fingerprint=fingerprint)


_MAILBOX: list[Any] = []  # the practice mailbox window, while it exists


def open_mailbox(parent: QWidget | None, facade: Any, *, authority: EnrollmentAuthority | None = None,
                 email: str = "") -> Any:
    """The practice mailbox as its own window (training only)."""
    from PySide6.QtCore import Qt

    from app.ui.mailbox_panel import MailboxPanel

    try:
        authority = authority or authority_for(facade.config)
    except CsosError as exc:
        messages.alert(parent, "Practice mailbox", exc.message)
        return None
    from shiboken6 import isValid

    open_now = [p for p in _MAILBOX if isValid(p) and p.isVisible()]
    if open_now:  # one practice mailbox at a time: the open one comes to the front (with this address)
        panel = open_now[0]
        if email and panel.email.text().strip().lower() != email.strip().lower():
            panel.set_email(email)
        panel.raise_()
        panel.activateWindow()
        return panel
    panel = MailboxPanel(authority, facade.jobs, email=email, parent=parent)
    panel.setWindowFlag(Qt.WindowType.Window, True)
    panel.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    _MAILBOX[:] = [panel]
    panel.show()
    return panel


def open_approvals(parent: QWidget | None, facade: Any, *, authority: EnrollmentAuthority | None = None,
                   registrations: Any = ()) -> Any:
    """Training: the approvals window with the practice coordinator's sign-in filled in (the trainee plays them)."""
    from PySide6.QtCore import Qt

    from app.ui.approvals_page import ApprovalsPage

    try:
        authority = authority or authority_for(facade.config)
    except CsosError as exc:
        messages.alert(parent, "Approvals", exc.message)
        return None
    page = ApprovalsPage(authority, facade.jobs, parent=parent)
    page.setWindowFlag(Qt.WindowType.Window, True)
    page.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    page.setWindowTitle("Approvals" + (" — TRAINING" if authority.training else ""))
    page.mailbox_opener = lambda email: open_mailbox(page, facade, authority=authority, email=email)
    page.use_practice_coordinator(registrations)
    page.show()
    return page


# ---------------------------------------------------------------------------------------------------------------------
# Screenshots of every page (issue item 8)

_SAMPLE = {
    "automatic": True, "role": "registrant", "full_name": "Jordan Example", "email": "jordan@mainstreet.example",
    "title": "Pharmacist in charge", "registrations": ["BJ6125341"],
    "registration_names": {"BJ6125341": "Main Street Pharmacy"}, "poa_file": "/home/jordan/power-of-attorney.pdf",
    "agreement_accepted": True, "identity_document_type": "drivers_license", "account_choice": "new",
    "sign_in_message": "A one-time code was sent to your practice mailbox (e-mail channel).",
    "application_id": "q3J9-training-application", "application_status": "pending",
    "submitted_at": "2026-03-02T10:15:00+00:00", "key_store": "software",
    "key_id": "5f2a9c0e11d04b7c", "key_description": "'CSOS Jordan Example 2026-03-02' (RSA-2048, key file on this "
                                                     "computer)",
    "csr_pem": "-----BEGIN CERTIFICATE REQUEST-----\nMIICvDCCAaQCAQAwdzELMAkGA1UEBhMCVVMx…\n"
               "-----END CERTIFICATE REQUEST-----\n",
    "csr_sha256": "9b1c7e0d4f6a28e3b5c0d9a17f42e6b8c3d5e7f90a1b2c3d4e5f60718293a4b5",
    "installed": [{"subscriber": "Jordan Example", "kind": "signing", "registration": "BJ6125341",
                   "registration_name": "Main Street Pharmacy", "schedules": "II,IIN,III,IIIN,IV,V",
                   "not_after": "2027-03-01T23:59:59+00:00", "key_location": "Key file on this computer",
                   "email": "jordan@mainstreet.example", "fingerprint": "c41f0e9a77d2b3e8" + "0" * 48}],
    "check_problems": [], "test_order_registration": "BJ6125341",
    "application_reason": "Not on our staff list yet — see the pharmacist in charge.",
    "p12_file": "/home/jordan/csos-2025.p12",
    "p12_summary": {"subject": "CN=Jordan Example,O=Main Street Pharmacy,C=US",
                    "not_after": "2026-09-30T23:59:59+00:00"},
    "renewal_id": "renewal-7Hq2", "renewal_status": "pending", "old_status": "superseded",
    "key_available": True, "reason": "key_compromise", "noticed_at": "2026-03-02T09:30:00+00:00",
    "deadline_text": "DEA must be told within 24 hours: revoke by 2026-03-03 09:30 (your computer's time).",
    "key_destroyed": True, "approvals_missing": ["BJ6125341"],
    "renewal_window": {"open": False, "opens_on": "2026-02-24", "ends_on": "2026-04-10",
                       "text": "Renewal opens on 2026-02-24, 45 days before this certificate ends on 2026-04-10. "
                               "Renewing earlier gains nothing: a certificate never outlasts its DEA registration: "
                               "the new certificate ends when the registration does."},
    "computer_lost": True, "delete_key_files": True, "hold_orders": True,
    "unsent_orders": [{"order_id": 7, "order_number": "260000412", "supplier": "Summit Medical Supply",
                       "registration": "BJ6125341", "status": "queued"}],
    "held_orders": [{"order_number": "260000412", "new_order_number": "260000413"}],
    "revoked_too": ["5b7c0d2e9f1a3c46" + "0" * 48], "key_files_deleted": ["9e3b51d0c2a4f817", "5b7c0d2e9f1a3c46"],
}
_CERT = {"subscriber": "Jordan Example", "email": "jordan@mainstreet.example", "registration": "BJ6125341",
         "registration_name": "Main Street Pharmacy", "schedules": "II,IIN,III,IIIN,IV,V",
         "not_after": "2026-04-10T23:59:59+00:00", "key_location": "Key file on this computer",
         "status": "active", "kind": "signing", "fingerprint": "9e3b51d0c2a4f817" + "0" * 48,
         "certificate_id": "9e3b51d0c2a4f817"}
_CONTEXT = {
    "registrations": [
        {"dea_number": "BJ6125341", "name": "Main Street Pharmacy", "city": "Springfield", "state": "IL",
         "schedules": ["II", "IIN", "III", "IIIN", "IV", "V"], "expires_at": "2027-03-01T23:59:59+00:00"},
        {"dea_number": "FR3141594", "name": "Riverside Family Clinic", "city": "Dayton", "state": "OH",
         "schedules": ["III", "IIIN", "IV", "V"], "expires_at": "2027-01-25T23:59:59+00:00"}],
    "tokens": [{"serial": "7c1e55a02b", "label": "csos-jordan", "manufacturer": "SafeNet", "model": "eToken 5110",
                "pin_pad": False, "pin_locked": False, "module": ""}],
    "deadline_text": "Report now: the deadline passed at 2026-03-03 09:30 (your computer's time). DEA must be told "
                     "within 24 hours of noticing; revoke at once and note why it was late.",
    "key_file_here": True,
    "other_keys_here": [{"subscriber": "Jordan Example", "certificate_id": "5b7c0d2e9f1a3c46",
                         "fingerprint": "5b7c0d2e9f1a3c46" + "0" * 48, "status": "superseded"}],
    "reasons": [], "current_on_token": False, "current_pin_pad": False, "on_token": False, "pin_pad": False,
}


_UNREACHABLE = {("renewal", "request", True), ("renewal", "waiting", False), ("enrollment", "codes", False)}


def render_wizard_screenshots(folder: str | Path, *, width: int = 720, height: int = 660) -> list[Path]:
    """Render every page of every wizard offscreen into ``folder`` as PNGs (sample data; no network, no keys).

    Views that look different in production (DEA's portal in the browser) are rendered a second time with a
    ``-production`` suffix.
    """
    from PySide6.QtWidgets import QApplication

    from app.services.enrollment.authority import REVOCATION_REASONS
    from app.services.enrollment.revocation_flow import LOST_KEY_TEXT, REVOCATION_TEXT
    from app.ui.jobs import JobRunner

    app = QApplication.instance()
    if app is None:
        raise CsosError("Screenshots need the Qt application to be running.", code="screenshots.no_app")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    training = SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=folder / "unused.pem")
    production = PortalAuthority()
    jobs = JobRunner()
    written: list[Path] = []
    # Dialogs are kept until the job runner has stopped: a background job finishing after its dialog was deleted
    # would deliver its result to a dead object (a crash, seen now and then in the test suite).
    rendered: list[Any] = []
    differ = {"identity", "submit", "waiting", "request", "confirm"}
    try:
        for flow_type in (EnrollmentFlow, ImportFlow, RenewalFlow, RevocationFlow):
            for index, view in enumerate(flow_type(authority=training, certificates=None).navmap):
                for authority in (training, production):
                    if authority is production and view not in differ:
                        continue
                    if (flow_type.name, view, authority.automatic) in _UNREACHABLE:
                        continue
                    flow = flow_type(authority=authority, certificates=None, store=None,
                                     data={**_SAMPLE, "automatic": authority.automatic,
                                           "current": _CERT, "certificate": _CERT})
                    flow.context.update(_CONTEXT)
                    flow.context["reasons"] = [(r, REVOCATION_TEXT[r]) for r in REVOCATION_REASONS]
                    flow.context["lost_text"] = LOST_KEY_TEXT.format(
                        deadline="report now: the deadline passed at 2026-03-03 09:30")
                    flow.context["also_revoke"] = _CONTEXT["other_keys_here"]
                    flow.context["portal_url"] = authority.portal_url
                    flow.wizard.view = view
                    flow.wizard.stack = list(flow.navmap)[:index]
                    if view == "key_location" or view == "destination":
                        flow.data.pop("key_id", None)
                    dialog = WizardDialog(flow, jobs=jobs)
                    dialog.resize(width, height)
                    dialog.render()
                    app.processEvents()
                    suffix = "-production" if authority is production else ""
                    target = folder / f"{flow.name}-{index + 1:02d}-{view}{suffix}.png"
                    dialog.grab().save(str(target))
                    written.append(target)
                    dialog.hide()
                    rendered.append(dialog)
            app.processEvents()
    finally:
        jobs.shutdown()
        for dialog in rendered:
            dialog.deleteLater()
        app.processEvents()
    return written
