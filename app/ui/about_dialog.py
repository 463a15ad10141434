"""Help → About: version, the program's licence, and the licences of every bundled third-party component.

The licence texts are the ones shipped in ``resources/licenses`` (collected from the packages' own metadata by
``installer/collect_licenses.py``), so what the dialog shows is exactly what the installer distributes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app import __version__
from app.ui import theme

log = logging.getLogger(__name__)

LICENSES_DIR = Path(__file__).resolve().parents[2] / "resources" / "licenses"


@dataclass(frozen=True)
class ComponentLicence:
    name: str
    version: str
    licence: str
    files: tuple[str, ...]

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}"

    def text(self, directory: Path) -> str:
        parts = []
        for name in self.files:
            try:
                parts.append((directory / name).read_text(encoding="utf-8", errors="replace").strip())
            except OSError:
                parts.append(f"(the licence file {name} is missing from this installation)")
        return "\n\n".join(parts) or f"Licence: {self.licence}"


def load_licences(directory: Path = LICENSES_DIR) -> tuple[dict[str, Any], list[ComponentLicence]]:
    """The program's own entry and the bundled components, from ``index.json``; empty when it cannot be read."""
    try:
        index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
        components = [ComponentLicence(name=c["name"], version=c["version"], licence=c["license"],
                                       files=tuple(c.get("files", ())))
                      for c in index["components"]]
        return dict(index.get("program", {})), sorted(components, key=lambda c: c.name.lower())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("licence index unreadable: %s", type(exc).__name__)
        return {}, []


class AboutDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, *, licences_dir: Path = LICENSES_DIR,
                 profile_text: str | None = None, data_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("aboutDialog")
        self.setWindowTitle("About CSOS Desk")
        self.resize(760, 520)
        self.licences_dir = licences_dir
        program, self.components = load_licences(licences_dir)

        icon = QIcon(str(theme.ICON_PATH))
        self.setWindowIcon(icon)
        self.icon_label = QLabel(self)
        self.icon_label.setObjectName("aboutIcon")
        self.icon_label.setPixmap(icon.pixmap(64, 64))
        self.icon_label.setAccessibleName("CSOS Desk icon")

        program_licence = program.get("license") or "see the licence agreement that came with CSOS Desk"
        lines = [f"<h3>CSOS Desk {__version__}</h3>",
                 "<p>Electronic ordering of controlled substances under the DEA Controlled Substance Ordering "
                 "System (CSOS).</p>",
                 f"<p>Licence: {program_licence}</p>"]
        if profile_text:
            lines.append(f"<p>Profile: {profile_text}" + (f"<br>Data folder: {data_dir}" if data_dir else "") + "</p>")
        self.summary = QLabel("".join(lines), self)
        self.summary.setObjectName("aboutSummary")
        self.summary.setWordWrap(True)
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        header = QHBoxLayout()
        header.addWidget(self.icon_label, 0, Qt.AlignmentFlag.AlignTop)
        header.addSpacing(12)
        header.addWidget(self.summary, 1)

        caption = QLabel(f"This program includes {len(self.components)} third-party components. "
                         "Choose one to read its licence:", self)
        caption.setObjectName("componentsCaption")
        caption.setWordWrap(True)

        self.component_list = QListWidget(self)
        self.component_list.setObjectName("componentList")
        self.component_list.setAccessibleName("Bundled components")
        for component in self.components:
            item = QListWidgetItem(f"{component.title} — {component.licence}")
            item.setData(Qt.ItemDataRole.UserRole, component)
            self.component_list.addItem(item)
        self.licence_text = QPlainTextEdit(self)
        self.licence_text.setObjectName("licenceText")
        self.licence_text.setReadOnly(True)
        self.licence_text.setAccessibleName("Licence text")
        self.licence_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        if not self.components:
            self.licence_text.setPlainText("The list of bundled components is missing from this installation.")

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.component_list)
        splitter.addWidget(self.licence_text)
        splitter.setStretchFactor(1, 2)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(caption)
        layout.addWidget(splitter, 1)
        layout.addWidget(buttons)

        self.component_list.currentItemChanged.connect(self._show_licence)
        if self.components:
            self.component_list.setCurrentRow(0)

    @Slot(QListWidgetItem, QListWidgetItem)
    def _show_licence(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        component = current.data(Qt.ItemDataRole.UserRole) if current is not None else None
        if isinstance(component, ComponentLicence):
            self.licence_text.setPlainText(component.text(self.licences_dir))
