"""The renewal and revocation pages (issue 22): when renewal opens and why an early one needs a reason, the reporting
deadline once a reason is chosen (flagged when past, the same on every page), the signed orders a revocation holds,
and the lost-computer path. Pages only render ``flow.data`` / ``flow.context``, like those in ``pages``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from PySide6.QtWidgets import QLineEdit, QWidget

from app.services.enrollment.certificate_overview import certificate_id
from app.services.enrollment.flow_common import Flow, parse_moment
from app.services.enrollment.renewal_flow import EARLY_REASONS, KEY_LOST_TEXT
from app.services.enrollment.revocation_flow import LOST_KEY_TEXT, REVOCATION_TEXT, deadline_passed, deadline_text
from app.ui.wizards.pages import InstalledPage, WizardPage, _when
from app.ui.wizards.pages import page_for as _base_page_for

OVERDUE_STYLE = ("QLabel { background: #fde7e4; color: #1f1f1f; border: 2px solid #b3261e; border-radius: 4px;"
                 " padding: 8px; font-weight: bold; }")


def _certificate_rows(cert: dict[str, Any]) -> list[tuple[str, str]]:
    return [("Subscriber", cert.get("subscriber", "")),
            ("Certificate ID", cert.get("certificate_id") or certificate_id(cert.get("fingerprint"))),
            ("Registration", f"{cert.get('registration', '')} {cert.get('registration_name', '')}".strip()),
            ("Valid until", _when(cert.get("not_after"))), ("Key", cert.get("key_location", ""))]


# ---------------------------------------------------------------------------------------------------------------------
# Renewal


class CurrentPage(WizardPage):
    view = "current"

    def build(self) -> None:
        current = self.data.get("current") or {}
        window = self.data.get("renewal_window") or {}
        self.summary(_certificate_rows(current)[:3] + [
            ("E-mail", current.get("email", "")), ("Schedules", (current.get("schedules") or "").replace(",", ", ")),
            *_certificate_rows(current)[3:]], name="currentSummary")
        self.notice(window.get("text") or "", name="renewalWindow")
        if window and not window.get("open"):
            self.text("Renew before then only if something changed:")
            self.choice("early_reason", [(key, title, why) for key, (title, why) in EARLY_REASONS.items()])
            return
        self.text("You get a new key (the safest choice) and a new certificate with the same details.")
        self.check("details_changed", "My name or e-mail address changed, or the registration's address or owner")


class DetailsChangedPage(WizardPage):
    view = "details_changed"

    def build(self) -> None:
        self.text("A renewal keeps the details of the current certificate. When the name, e-mail address or the "
                  "registration's address or owner changed, revoke the current certificate (reason: name or e-mail "
                  "change, or registration change) and enroll again with the new details.")


class KeyLostPage(WizardPage):
    view = "key_lost"

    def build(self) -> None:
        self.text(KEY_LOST_TEXT, name="keyLostText")


class RenewedPage(InstalledPage):
    """The confirmation after the renewed certificate is installed (also when it arrives after "Check now")."""

    view = "installed"

    def build(self) -> None:
        installed = (self.data.get("installed") or [{}])[0]
        old = (self.data.get("current") or {})
        kept = f" The old certificate {old['certificate_id']} is kept for the records." if old.get("certificate_id") \
            else ""
        self.text(f"Your certificate is renewed. New certificate {certificate_id(installed.get('fingerprint'))}, "
                  f"valid until {_when(installed.get('not_after'))}; it ends with the registration.{kept}",
                  name="renewedConfirmation")
        super().build()


# ---------------------------------------------------------------------------------------------------------------------
# Revocation


def _now(flow: Flow) -> dt.datetime:
    return flow.clock()


class SituationPage(WizardPage):
    view = "situation"

    def build(self) -> None:
        self.summary(_certificate_rows(self.data.get("certificate") or {}), name="certificateSummary")
        self.text("A revoked certificate can never sign again. Do you still have the key and its password or PIN?")
        self.choice("key_available", [
            (True, "Yes — I have the key and its password or PIN", "The request is signed with the key, and the key "
                                                                   "is destroyed once the CA confirms."),
            (False, "No — I lost my key, my computer or my password",
             "You revoke through your portal account, then enroll again."),
        ])


class ReasonPage(WizardPage):
    view = "reason"

    def build(self) -> None:
        self.text("Why is the certificate revoked? (DEA's reasons)")
        self.choice("reason", [(key, text, "") for key, text in self.context.get("reasons") or []])
        noticed = parse_moment(self.data.get("noticed_at")) or _now(self.flow)
        self.line("noticed_at", "When did you notice it? (your local time)",
                  value=f"{noticed.astimezone():%Y-%m-%d %H:%M}")
        self.deadline = self.notice("", name="deadline")
        self._calm_style = self.deadline.styleSheet()
        self.findChild(QLineEdit, "noticed_at").textChanged.connect(lambda *_: self.changed())
        if self.context.get("key_file_here"):
            others = self.context.get("other_keys_here") or []
            self.check("computer_lost", "The computer (or its disk or backup) with the key file was lost or stolen")
            if others:
                self.text("If so, these certificates' key files were on it too, and are revoked with this one: "
                          + "; ".join(f"{c.get('subscriber', '')}, certificate {c.get('certificate_id', '')} "
                                      f"({c.get('status', '')})" for c in others) + ".", name="otherKeys")
        self.changed()

    def changed(self) -> None:
        if not hasattr(self, "deadline"):
            return
        values = self.collect()
        noticed = parse_moment(values.get("noticed_at")) or _now(self.flow)
        text = deadline_text(values.get("reason"), noticed, _now(self.flow))
        self.deadline.setText(html.escape(text))
        self.deadline.setVisible(bool(text))  # no deadline talk before a reason is chosen
        self.deadline.setStyleSheet(OVERDUE_STYLE if deadline_passed(values.get("reason"), noticed, _now(self.flow))
                                    else self._calm_style)


class LostPage(WizardPage):
    view = "lost"

    def build(self) -> None:  # the deadline is in the wizard's banner above the page
        self.text(self.context.get("lost_text") or LOST_KEY_TEXT.format(deadline="as soon as you can"),
                  name="lostText")


class ConfirmPage(WizardPage):
    view = "confirm"

    def build(self) -> None:
        cert = self.data.get("certificate") or {}
        reason = REVOCATION_TEXT.get(self.data.get("reason", ""), "")
        self.summary([("Certificate of", cert.get("subscriber", "")),
                      ("Certificate ID", certificate_id(cert.get("fingerprint"))),
                      ("Registration", cert.get("registration", "")), ("Reason", reason)], name="confirmSummary")
        also = self.context.get("also_revoke") or []
        if also:
            self.text("Also revoked, because their key files were on the same computer:\n"
                      + "\n".join(f"• {c.get('subscriber', '')}, certificate {c.get('certificate_id', '')} "
                                  f"({c.get('status', '')})" for c in also), name="alsoRevoked")
        if self.data.get("computer_lost"):
            self.check("delete_key_files", "Delete their key files from this computer")
        orders = self.data.get("unsent_orders") or []
        if orders:
            self.notice("Signed orders not sent yet — suppliers refuse an order signed with a revoked certificate:\n"
                        + "\n".join(f"• Order {o['order_number']} to {o['supplier']} ({o['status']})"
                                    for o in orders)
                        + "\nHolding them cancels them before they leave (kept for the records) and makes a new "
                          "draft of each with the same products, to sign with your new certificate.",
                        name="unsentOrders")
            self.check("hold_orders", "Hold these orders and make new drafts to sign later")
        if not self.data.get("automatic"):
            url = html.escape(self.context.get("portal_url") or "")
            self.text(f"Revoke it on <a href=\"{url}\">DEA's CSOS portal</a> (certificate management → revoke), "
                      "choosing the same reason" + (", and the certificates above" if also else "")
                      + ". Then tick the box below.", rich=True)
            self.check("revoked_on_portal", "The portal confirmed the revocation")
        self.check("confirmed", "I understand the certificate can never sign again")


class RevokedPage(WizardPage):
    view = "done"

    def build(self) -> None:
        self.text("The certificate is revoked: suppliers refuse orders signed with it from now on.")
        too = self.data.get("revoked_too") or []
        if too:
            self.text("Also revoked: certificate " + ", ".join(certificate_id(f) for f in too) + ".",
                      name="revokedToo")
        for problem in self.data.get("revoke_too_problems") or []:
            self.notice(f"Not revoked: {problem} Revoke it on the portal.", name="revokeTooProblem")
        if self.data.get("key_files_deleted"):
            self.text("Key files deleted from this computer.", name="keyDestroyed")
        elif self.data.get("key_destroyed"):
            self.text("Its key was destroyed on this computer or token.", name="keyDestroyed")
        elif self.data.get("key_destroy_problem"):
            self.notice(f"The key could not be destroyed: {self.data['key_destroy_problem']}", name="keyDestroyed")
        held = self.data.get("held_orders") or []
        if held:
            self.text("Held (cancelled before sending, kept for the records), each with a new draft to sign once "
                      "you have a new certificate:\n" + "\n".join(
                          f"• Order {h['order_number']} → new draft {h.get('new_order_number') or '(none)'}"
                          for h in held), name="heldOrders")
        for problem in self.data.get("hold_problems") or []:
            self.notice(problem, name="holdProblem")
        self.text("To order again, enroll for a new certificate (a new application, your coordinator's approval, "
                  "new codes and a new key).")
        self.button("Enroll for a new certificate", "enroll", name="startEnrollment")


LIFECYCLE_PAGES: dict[tuple[str, str], type[WizardPage]] = {
    **{("renewal", p.view): p for p in (CurrentPage, DetailsChangedPage, KeyLostPage, RenewedPage)},
    **{("revocation", p.view): p for p in (SituationPage, ReasonPage, LostPage, ConfirmPage, RevokedPage)},
}


def page_for(flow: Flow, parent: QWidget | None = None) -> WizardPage:
    """The page for the flow's current view: a renewal or revocation page from here, any other from ``pages``."""
    page = LIFECYCLE_PAGES.get((flow.name, flow.view))
    return page(flow, parent) if page is not None else _base_page_for(flow, parent)


__all__ = ["LIFECYCLE_PAGES", "page_for"]
