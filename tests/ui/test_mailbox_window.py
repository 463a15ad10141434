"""The practice mailbox (issue 22): one window at a time (opening it again brings the open one forward with the new
address), and its dates are never cut. Real sandbox over HTTPS on loopback."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication

from tests.ui.test_wizards import authority, client, sandbox  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.ui, pytest.mark.integration]


def _mailboxes() -> list:
    return [w for w in QApplication.topLevelWidgets()
            if w.windowTitle() == "Practice mailbox — TRAINING" and w.isVisible()]


def test_one_mailbox_window_and_whole_dates(qtbot, facade, authority, client):  # noqa: F811
    from app.ui.wizards import open_mailbox

    email = "one.mailbox@mainstreet.example"
    client.create_account(email)
    client.login(email)  # a sign-in code arrives: a dated message
    first = open_mailbox(None, facade, authority=authority, email="someone@mainstreet.example")
    second = open_mailbox(None, facade, authority=authority, email=email)
    assert second is first and len(_mailboxes()) == 1 and first.email.text() == email
    qtbot.waitUntil(lambda: first.model.rowCount() >= 2, timeout=20_000)
    table = first.table
    date = first.model.index(0, 0).data()
    needed = table.fontMetrics().horizontalAdvance(date)
    assert table.columnWidth(0) >= needed, (table.columnWidth(0), needed)
    first.close()
    qtbot.waitUntil(lambda: not _mailboxes(), timeout=5_000)
    third = open_mailbox(None, facade, authority=authority, email=email)
    assert len(_mailboxes()) == 1
    third.close()

