"""Index of the wizard flows (DESIGN §1 S2, S3, K1–K3, K5; §7): which flows exist, and what progress is saved.

The logic lives one flow per module: ``flow_common`` (the ``Flow`` base and shared steps), ``enroll_flow``,
``import_flow``, ``renewal_flow``, ``revocation_flow``, and ``certificate_overview`` (the certificates page's rows).
The names are re-exported here so ``from app.services.enrollment.flows import X`` keeps working.
"""

from __future__ import annotations

from typing import Any

from app.services.enrollment.certificate_overview import RENEW_FROM_DAYS, CertificateRow, certificate_rows
from app.services.enrollment.enroll_flow import AGREEMENT_TEXT, ROLE_TEXT, EnrollmentFlow, application_summary
from app.services.enrollment.flow_common import FIPS_NOTICE, Flow, key_location_text, parse_moment, summarize
from app.services.enrollment.import_flow import K2_WARNING, ImportFlow
from app.services.enrollment.renewal_flow import RenewalFlow
from app.services.enrollment.revocation_flow import (
    LOST_KEY_TEXT,
    REVOCATION_TEXT,
    RevocationFlow,
    deadline_text,
    unfinished_revocation_reminders,
)
from app.services.enrollment.wizard import WizardStateStore

FLOWS: dict[str, type[Flow]] = {f.name: f for f in (EnrollmentFlow, ImportFlow, RenewalFlow, RevocationFlow)}


def saved_progress(store: WizardStateStore) -> dict[str, dict[str, Any]]:
    """Flows with saved progress, and where they stopped (for 'Continue where you left off')."""
    out = {}
    for name in store.saved():
        state = store.load(name)
        if state and name in FLOWS:
            out[name] = {"view": state.get("view"), "saved_at": state.get("saved_at"),
                         "title": FLOWS[name].title}
    return out


__all__ = ["AGREEMENT_TEXT", "FIPS_NOTICE", "FLOWS", "K2_WARNING", "LOST_KEY_TEXT", "RENEW_FROM_DAYS",
           "REVOCATION_TEXT", "ROLE_TEXT", "CertificateRow", "EnrollmentFlow", "Flow", "ImportFlow", "RenewalFlow",
           "RevocationFlow", "application_summary", "certificate_rows", "deadline_text", "key_location_text",
           "parse_moment", "saved_progress", "summarize", "unfinished_revocation_reminders"]
