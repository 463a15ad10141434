"""Close the enrollment wizard at every step, reopen it from the saved progress, and finish (issue 18, item 1).

What was never saved (identity document number, date of birth, sign-in, codes) is asked again before any step that
needs it: no page is ever shown without what it works with, and the run ends with an installed certificate.
"""

from __future__ import annotations

import pytest

from app.models.orderbook import CertificateStatus
from app.services.enrollment.enroll_flow import EnrollmentFlow, application_summary
from app.services.enrollment.wizard import RESUMED_FROM
from tests.unit.enrollment.test_flows import (  # noqa: F401 - book, pki, store are fixtures
    DEA,
    KEY_PASSWORD,
    PORTAL_PASSWORD,
    MemoryAuthority,
    book,
    pki,
    store,
)

IDENTITY = {"identity_document_type": "drivers_license", "identity_document_number": "D1234567",
            "date_of_birth": "04/02/1980"}
ANSWERS = {
    "welcome": {}, "role": {"role": "registrant"},
    "person": {"full_name": "Pat Purchaser", "email": "pat@example.test"},
    "registrations": {"registrations": [DEA]}, "agreement": {"agreement_accepted": True},
    "identity": IDENTITY,
    "account": {"account_choice": "new", "password": PORTAL_PASSWORD, "password_confirm": PORTAL_PASSWORD},
    "sign_in_code": {"sign_in_code": "123456"}, "submit": {},
    "codes": {"reference_number": "1234-5678", "access_code": "access"},
    "key_location": {"key_store": "software", "key_password": KEY_PASSWORD, "key_password_confirm": KEY_PASSWORD},
    "request": {},
}
FULL_RUN = 13  # welcome … request: the number of Next presses from the first page to the installed certificate


def answer(flow: EnrollmentFlow, authority: MemoryAuthority, shown: list[str]) -> None:
    """Do what the current page asks (as a person would), after checking it has what it works with."""
    view = flow.view
    assert not flow.wizard.missing(view), f"page {view} shown without {flow.wizard.missing(view)}"
    if view == "submit":
        rows = dict(application_summary(flow.data))
        assert rows["Identity document"] == "Driver's license ending 4567", rows
    shown.append(view)
    if view == "waiting":
        application = flow.data["application_id"]
        if authority.applications[application].status == "pending":
            authority.decide_now(application, "approved")
    flow.next(dict(ANSWERS.get(view, {})))


@pytest.mark.parametrize("close_after", range(FULL_RUN))
def test_close_at_every_step_reopen_and_finish(pki, book, store, close_after):  # noqa: F811
    authority = MemoryAuthority(pki)
    first = EnrollmentFlow(authority=authority, certificates=book, store=store)
    first.start()
    before: list[str] = []
    for _ in range(close_after):
        answer(first, authority, before)
    closed_at = first.view
    # Closed: the program (and the portal sign-in with it) is gone; only the saved progress remains.
    text = store.path("enrollment").read_text() if close_after else ""
    assert "D1234567" not in text and "1980" not in text and PORTAL_PASSWORD not in text

    again = EnrollmentFlow(authority=authority, certificates=book, store=store)
    assert again.resumed or close_after == 0
    again.start()
    after: list[str] = []
    for _ in range(3 * FULL_RUN):
        if again.is_last:
            break
        answer(again, authority, after)
    assert again.view == "installed", (closed_at, before, after)
    assert RESUMED_FROM not in again.data
    if "submit" not in before:  # the application was not sent before closing: identity asked again first
        assert "identity" in after and after.index("identity") < after.index("submit"), after
    assert after.count("sign_in_code") <= 1 and after.count("submit") <= 1, after
    assert book.signing_certificate_for(DEA).status is CertificateStatus.ACTIVE
    assert authority.sent == ["registrant"]  # one application, however often the wizard was closed
    assert store.saved() == []


def test_closing_at_the_sign_in_code_does_not_come_back_to_it_after_signing_in(pki, book, store):  # noqa: F811
    """The reported loop: reopened at the sign-in code, a right code moved the step on but kept the same page."""
    authority = MemoryAuthority(pki)
    first = EnrollmentFlow(authority=authority, certificates=book, store=store)
    first.start()
    for _ in range(7):
        answer(first, authority, [])
    assert first.view == "sign_in_code"
    again = EnrollmentFlow(authority=authority, certificates=book, store=store)
    assert again.view == "account"
    again.next(ANSWERS["account"])
    assert again.view == "sign_in_code"
    again.next(ANSWERS["sign_in_code"])
    assert again.view == "identity"  # never kept: asked again before the application is sent
    again.next(IDENTITY)
    assert again.view == "submit"
