"""Modal questions and alerts in one place, so every screen words them the same way (and tests can answer them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget
# QMessageBox is imported when a message is shown: the main window imports this module before its first paint.


def alert(parent: QWidget | None, title: str, message: str) -> None:
    """Something failed: what happened and what to do next, in the message itself."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, parent)
    box.setAccessibleName(title)
    box.exec()


def confirm(parent: QWidget | None, title: str, message: str, *, yes_text: str, no_text: str = "Cancel",
            warning: bool = False) -> bool:
    """Ask before something that cannot be undone; the safe answer is the default."""
    from PySide6.QtWidgets import QMessageBox

    box = QMessageBox(QMessageBox.Icon.Warning if warning else QMessageBox.Icon.Question, title, message,
                      QMessageBox.StandardButton.NoButton, parent)
    yes = box.addButton(yes_text, QMessageBox.ButtonRole.AcceptRole)
    no = box.addButton(no_text, QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(no)
    box.setEscapeButton(no)
    box.setAccessibleName(title)
    box.exec()
    return box.clickedButton() is yes
