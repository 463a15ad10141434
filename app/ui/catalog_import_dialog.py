"""Import the FDA product list (issue 22): the screen an empty catalog leads to.

Says where to download FDA's NDC Directory (named in words: the page "National Drug Code Directory" on FDA's web
site), takes the .zip (or its product.txt) and imports it in the background with a progress bar
(``app.ui.jobs``); nothing is written if the file is wrong, and the message says why in plain words.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.services.catalog import FDA_DOWNLOAD_HINT, import_fda_download

TITLE = "Import the FDA product list"
FILES = "FDA NDC Directory (*.zip product.txt);;All files (*)"


class CatalogImportDialog(QDialog):
    """``imported(packages)`` once the product list is in."""

    imported = Signal(int)

    def __init__(self, facade: Any, parent: QWidget | None = None, *, path: str = "") -> None:
        super().__init__(parent)
        self.facade = facade
        self.job: Any = None
        self.setWindowTitle(TITLE)
        self.setObjectName("catalogImportDialog")
        self.resize(620, 330)
        layout = QVBoxLayout(self)
        intro = QLabel("Orders are checked against FDA's list of products (the NDC Directory): it gives each product "
                       "its name, package size and DEA schedule. Import it once; import it again now and then to "
                       "get new products.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        where = QLabel("Where to get it: " + FDA_DOWNLOAD_HINT, self)
        where.setObjectName("downloadHint")
        where.setWordWrap(True)
        layout.addWidget(where)
        caption = QLabel("The file you downloaded (.zip, or its product.txt):", self)
        layout.addWidget(caption)
        row = QHBoxLayout()
        self.path = QLineEdit(path, self)
        self.path.setAccessibleName("The file you downloaded")
        caption.setBuddy(self.path)
        self.choose = QPushButton("Choose…", self)
        self.choose.clicked.connect(self._choose)
        row.addWidget(self.path, 1)
        row.addWidget(self.choose)
        layout.addLayout(row)
        self.progress = QProgressBar(self)
        self.progress.setAccessibleName("Import progress")
        self.progress.setVisible(False)
        layout.addWidget(self.progress)
        self.result = QLabel(self)
        self.result.setObjectName("importResult")
        self.result.setWordWrap(True)
        layout.addWidget(self.result)
        layout.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.start = QPushButton("Import", self)
        self.start.setDefault(True)
        self.start.clicked.connect(self.begin)
        self.close_button = QPushButton("Close", self)
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.start)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)

    def _choose(self) -> None:
        chosen, _ = QFileDialog.getOpenFileName(self, TITLE, self.path.text() or str(Path.home()), FILES)
        if chosen:
            self.path.setText(chosen)

    def begin(self) -> None:
        """Import the chosen file in the background; the bar follows the lines read."""
        text = self.path.text().strip()
        if not text:
            self.result.setText("Choose the file you downloaded first (Choose…).")
            return
        if not Path(text).expanduser().exists():
            self.result.setText(f"There is no file {text}. Choose the .zip you downloaded (Choose…).")
            return
        db = self.facade.db
        self.start.setEnabled(False)
        self.choose.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.result.setText("Importing… this takes a minute or two for FDA's whole list.")

        def work(context: Any) -> Any:
            return import_fda_download(db, Path(text).expanduser(),
                                       progress=lambda done, total: context.progress(done, total))

        self.job = self.facade.jobs.run(TITLE, work, on_success=self._done, on_failure=self._failed,
                                        announce=False, owner=self)
        self.job.progress.connect(self._progressed)

    def _progressed(self, done: int, total: int, _text: str) -> None:
        if total:
            self.progress.setRange(0, total)
            self.progress.setValue(done)

    def _done(self, summary: Any) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.start.setEnabled(True)
        self.choose.setEnabled(True)
        self.result.setText(f"Done: {summary.packages:,} packages of {summary.products:,} products are in the "
                            f"product list, {summary.controlled:,} of them controlled. You can search them in a new "
                            "order now.")
        self.imported.emit(int(summary.packages))

    def _failed(self, error: CsosError) -> None:
        self.progress.setVisible(False)
        self.start.setEnabled(True)
        self.choose.setEnabled(True)
        self.result.setText("Nothing was imported. " + error.message)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)


def open_catalog_import(parent: QWidget | None, facade: Any) -> CatalogImportDialog:
    dialog = CatalogImportDialog(facade, parent)
    dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dialog.show()
    return dialog


__all__ = ["CatalogImportDialog", "open_catalog_import"]
