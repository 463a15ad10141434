"""The Approvals window stays on the screen (issue 22: it ran past the right edge of a 1366-pixel screen)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.ui]


def test_the_approvals_window_stays_inside_the_screen(qtbot, tmp_path):
    from PySide6.QtCore import Qt

    from app.services.enrollment.authority import SandboxAuthority
    from app.ui.approvals_page import ApprovalsPage
    from app.ui.jobs import JobRunner

    jobs = JobRunner()
    page = ApprovalsPage(SandboxAuthority("https://127.0.0.1:1/portal", tls_bundle=tmp_path / "x.pem"), jobs)
    page.setWindowFlag(Qt.WindowType.Window, True)
    qtbot.addWidget(page)
    area = page.screen().availableGeometry()
    page.resize(area.width() + 300, 520)
    page.move(area.x() + area.width() - 200, area.y() + 10)  # where a parent window far right would put it
    page.show()
    qtbot.waitExposed(page)
    frame = page.frameGeometry()
    assert frame.width() <= area.width()
    assert area.x() <= frame.x() and frame.x() + frame.width() <= area.x() + area.width(), (frame, area)
    page.close()
    jobs.shutdown()
