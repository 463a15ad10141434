"""The sign screen's clock check (K6) and the signing after the password share one rule: the time server is asked
when the screen opens, and the signing a moment later reuses that answer instead of asking again (a real SNTP
server on loopback counts the questions). Real training sandbox, real key."""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app.models.orderbook import AuditEvent  # noqa: E402
from app.models.states import OrderStatus  # noqa: E402
from app.sandbox.sntp import SntpServer  # noqa: E402
from app.services.signing.clock import ClockBasis  # noqa: E402
from tests.ui.test_sign_and_send import facade, open_dialog, sign  # noqa: E402,F401 - fixture re-used
from tests.ui.training_world import KEY_PASSWORD, TrainingWorld  # noqa: E402

pytestmark = [pytest.mark.ui, pytest.mark.integration]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    made = TrainingWorld.start(tmp_path_factory.mktemp("sign-clock"))
    made.record = made.enroll()
    yield made
    made.stop()


@contextlib.contextmanager
def _time_server(facade):
    """A loopback SNTP server set as the profile's time server for the duration."""
    saved = facade.settings.get("sntp_server")
    with SntpServer() as sntp:
        facade.settings["sntp_server"] = f"{sntp.host}:{sntp.port}"
        try:
            yield sntp
        finally:
            if saved is None:
                facade.settings.pop("sntp_server", None)
            else:
                facade.settings["sntp_server"] = saved


def test_the_time_server_is_asked_once_for_the_screen_and_its_signing(qtbot, facade, world):
    with _time_server(facade) as sntp:
        assert facade.clock_check() is facade.clock_check()  # one rule for the profile and its server
        order = world.new_order()
        dialog = open_dialog(qtbot, facade, order.id)
        assert sntp.answered == 1  # the screen's check, before the password
        sign(qtbot, dialog, KEY_PASSWORD)
        assert world.book.get_order(order.id).status is not OrderStatus.DRAFT, dialog.status_label.text()
        assert sntp.answered == 1  # the signing reused it
        with world.db.session() as session:
            (signing,) = [e.details for e in session.scalars(
                select(AuditEvent).where(AuditEvent.order_id == order.id)) if e.details.get("to") == "signed"]
        assert signing["clock"] == ClockBasis.TIME_SERVER.value  # verified by the time server, a moment ago
        dialog.close()
    with _time_server(facade) as other:  # another time server set: another rule, which asks it
        rule = facade.clock_check()
        assert rule.server == other.host and rule.port == other.port
        assert rule().verified and other.answered == 1
