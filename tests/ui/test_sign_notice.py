"""The unusual-quantity notice in the sign dialog (issue 21): shown beside the checks, never a block, recorded with
the signing in the audit trail. Real training sandbox, real key."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.models.orderbook import AuditEvent  # noqa: E402
from app.models.states import OrderStatus  # noqa: E402
from tests.ui.test_sign_and_send import facade, open_dialog, sign  # noqa: E402,F401 - fixture re-used
from tests.ui.training_world import KEY_PASSWORD, PHARMACY_DEA, TrainingWorld  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    made = TrainingWorld.start(tmp_path_factory.mktemp("sign-notice"))
    made.record = made.enroll()
    yield made
    made.stop()


def test_the_notice_is_shown_does_not_block_and_is_audited(qtbot, facade, world):
    facade.settings["monthly_limits"] = {PHARMACY_DEA: {"oxycodone": "50"}}
    try:
        order = world.new_order()  # 2 packages of oxycodone: above the 50 tablets set
        dialog = open_dialog(qtbot, facade, order.id)
        assert dialog.usage_notice.isVisible()
        text = dialog.usage_notice.text()
        assert "Oxycodone this month would be" in text and "your supplier may hold this order for review" in text
        assert "you can still sign" in text
        assert dialog.go_button.isEnabled()  # a notice, never a block
        sign(qtbot, dialog, KEY_PASSWORD)
        assert world.book.get_order(order.id).status is not OrderStatus.DRAFT, dialog.status_label.text()
        with world.db.session() as session:
            details = [e.details for e in session.scalars(select(AuditEvent).where(AuditEvent.order_id == order.id))]
        (signing,) = [d for d in details if d.get("to") == "signed"]
        assert [n["substance"] for n in signing["unusual_quantity"]] == ["oxycodone"]
        assert signing["unusual_quantity"][0]["limit"] == "50"
        # The notice recorded is the one the dialog showed before the password (not worked out a second time).
        assert signing["unusual_quantity"][0]["message"] in text
        assert signing["unusual_quantity_shown_at"] == dialog.preparation.shown_notices.worked_out_at.isoformat()
        dialog.close()
    finally:
        facade.settings.pop("monthly_limits", None)
    quiet = open_dialog(qtbot, facade, world.new_order(lines=(("00009-0055-01", 1),)).id)
    assert not quiet.usage_notice.isVisible() and quiet.go_button.isEnabled()
