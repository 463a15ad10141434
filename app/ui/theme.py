"""Colours and small style sheets shared by the windows. Presentation only: no rule decides anything here."""

from __future__ import annotations

from pathlib import Path

from app.models.states import OrderStatus

ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "csos-desk.svg"

# The training banner must be impossible to miss and readable on any desktop theme, so it sets both colours.
TRAINING_BANNER_STYLE = (
    "QLabel#trainingBanner {"
    " background-color: #f5b400; color: #1f1f1f;"
    " border-bottom: 2px solid #b07f00;"
    " padding: 7px 12px; font-weight: bold; font-size: 11pt;"
    "}"
)

EMPTY_HINT_STYLE = "QLabel#emptyHint { font-size: 11pt; padding: 24px; }"

DETAIL_PANE_STYLE = (
    "QFrame#detailPane { border-top: 1px solid palette(mid); }"
    " QLabel[role=\"caption\"] { color: palette(dark); }"
    " QLabel[role=\"heading\"] { font-weight: bold; font-size: 11pt; }"
)

# Mid-tone colours that stay readable on light and dark palettes; the status text itself carries the meaning.
_GREY = "#7a7a7a"
_BLUE = "#2f6fb2"
_GREEN = "#2e8540"
_AMBER = "#a86500"
_RED = "#c0392b"

STATUS_COLOURS: dict[OrderStatus, str] = {
    OrderStatus.DRAFT: _GREY,
    OrderStatus.SIGNED: _BLUE,
    OrderStatus.QUEUED: _BLUE,
    OrderStatus.TRANSMITTED: _BLUE,
    OrderStatus.ACCEPTED: _GREEN,
    OrderStatus.PARTIALLY_ACCEPTED: _AMBER,
    OrderStatus.NOT_ACCEPTED: _RED,
    OrderStatus.PARTIALLY_RECEIVED: _AMBER,
    OrderStatus.RECEIVED: _GREEN,
    OrderStatus.VOIDED: _RED,
    OrderStatus.PARTIALLY_VOIDED: _AMBER,
    OrderStatus.CANCELLED: _GREY,
    OrderStatus.LOST: _RED,
    OrderStatus.EXPIRED: _RED,
}


def status_colour(status: OrderStatus) -> str:
    return STATUS_COLOURS.get(status, _GREY)

ICONS_DIR = ICON_PATH.parent


def icon_path(name: str) -> Path:
    return ICONS_DIR / f"{name}.svg"


def icon(name: str) -> "QIcon":  # noqa: F821 - Qt is imported lazily so this module stays importable without Qt
    """An SVG icon from resources/icons (crisp at any scale); an empty icon if the file is missing."""
    from PySide6.QtGui import QIcon

    path = icon_path(name)
    return QIcon(str(path)) if path.is_file() else QIcon()


NOTICE_STYLE = (
    "QFrame#noticeBar { background-color: #fff4d6; border-bottom: 1px solid #e0c77a; }"
    " QFrame#noticeBar[urgent=\"true\"] { background-color: #fde2df; border-bottom: 1px solid #e3a59e; }"
    " QFrame#noticeBar QLabel { color: #1f1f1f; }"
)

# Keyboard users must see where they are: a table or list with the focus gets a clear outline (issue 18).
FOCUS_STYLE = ("QTableView:focus, QListView:focus, QListWidget:focus {"
               " border: 2px solid palette(highlight); border-radius: 2px; }")

FIELD_ERROR_STYLE = "QLabel[role=\"fieldError\"] { color: #b3261e; }"

CLOCK_COLOURS = {"ok": _GREEN, "off": _RED, "unknown": _AMBER, "unchecked": _GREY}
