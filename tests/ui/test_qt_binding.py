"""The Qt binding keeps Python's reference counts straight.

PySide6 6.12.0 dropped one reference to ``None`` on every call of a method that returns nothing (``painter.save()``,
``setFont``, ``translate``, ...). On Python 3.11, where ``None`` is still reference counted, a long session — or the
records PDF of a few thousand orders — then ends in "Fatal Python error: none_dealloc" and an abort; before that it
shows up as rare crashes. The lock pins a release without the fault; this test refuses one that has it.
"""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QRectF, QSizeF
from PySide6.QtGui import QFont, QImage, QPainter, QTextDocument

pytestmark = pytest.mark.ui
CALLS = 500


def test_methods_returning_nothing_leave_the_reference_count_of_none_alone(qapp):
    image = QImage(64, 64, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    font = QFont("DejaVu Sans")
    document = QTextDocument()
    try:
        calls = {
            "QPainter.save/restore": lambda: (painter.save(), painter.restore()),
            "QPainter.translate": lambda: painter.translate(0, 0),
            "QPainter.setFont": lambda: painter.setFont(font),
            "QTextDocument.setPageSize": lambda: document.setPageSize(QSizeF(50, 50)),
            "QTextDocument.drawContents": lambda: document.drawContents(painter, QRectF(0, 0, 50, 50)),
        }
        drift = {}
        for name, call in calls.items():
            before = sys.getrefcount(None)
            for _ in range(CALLS):
                call()
            drift[name] = sys.getrefcount(None) - before
    finally:
        painter.end()
    # A few references may come and go with caches; a leak or a drop of one per call is thousands.
    assert all(abs(change) < CALLS // 10 for change in drift.values()), drift
