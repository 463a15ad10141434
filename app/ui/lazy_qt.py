"""Qt's namespace (``Qt.AlignmentFlag``, ``Qt.ItemDataRole``, …) made when a ``Qt.*`` value is first used, not when
a module imports it (start-up, issue 20).

PySide6 builds the Python enums of a class the first time the class is imported; for ``Qt`` that is about 95 enums,
~15 ms on the 2-core reference machine, which the bare PySide6 window of the start-up benchmark never pays. The
modules the main window's frame is made of import ``Qt`` from here; it behaves as ``PySide6.QtCore.Qt`` (each name
is looked up there once, on its first use). What the frame sets before its first paint uses no ``Qt.*`` value:
enum properties are set by the names of their values (``set_properties``), the rest waits for the paint.
tests/ui/test_startup.py checks that the window is painted before Qt's namespace is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtCore import QObject, Qt
else:
    class _QtNamespace:
        """Stands in for ``PySide6.QtCore.Qt``; the first use of a name imports it and keeps the value."""

        def __getattr__(self, name: str) -> Any:
            from PySide6.QtCore import Qt

            value = getattr(Qt, name)
            setattr(self, name, value)  # found on the instance from now on, without this method
            return value

    Qt = _QtNamespace()

# Default arguments are worked out when a module is imported: the values Qt fixes for its item data roles
# (``Qt.ItemDataRole`` is an int enum, so these compare equal to its members).
DISPLAY_ROLE = 0  # Qt.ItemDataRole.DisplayRole
USER_ROLE = 0x0100  # Qt.ItemDataRole.UserRole


def set_properties(target: QObject, **values: str) -> None:
    """Set Qt properties of ``target`` by the names of their enum values, e.g. ``alignment="AlignCenter"`` or
    ``toolButtonStyle="ToolButtonTextBesideIcon"`` (Qt's meta-object system converts the names, flags joined by
    "|"), so no ``Qt.*`` enum is needed. A property or value name Qt does not know is an error, not ignored."""
    for name, value in values.items():
        if not target.setProperty(name, value):
            raise ValueError(f"{type(target).__name__} has no property {name} that takes {value!r}")
