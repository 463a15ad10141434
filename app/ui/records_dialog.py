"""Records (O9): export for an inspection, check that nothing was altered, back up the order book.

Each runs as a background job with a progress bar; the export can be cancelled (and then leaves nothing
half-written — ``export_records`` builds in a temporary folder). The work and its rules are ``app.services.orders.records``.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QDate, QSize, Qt, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QDateEdit,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.ui.jobs import Cancelled
from app.ui.widgets import FieldMessage

log = logging.getLogger(__name__)

EXPORT_TAB, CHECK_TAB, BACKUP_TAB = 0, 1, 2


def documents_folder() -> Path:
    """Where exports go by default: the person's Documents folder (the home folder if there is none)."""
    from PySide6.QtCore import QStandardPaths

    found = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(found) if found and Path(found).is_dir() else Path.home()


def check_report_html(report: Any) -> str:
    """The integrity check as a person reads it: the verdict first, then each problem with what to do."""
    e = html.escape
    facts = (f"{report.orders_checked:,} signed order(s) and {report.linked_records_checked:,} linked record(s) "
             "checked; the audit trail " + ("is intact." if report.audit_events_ok else "has a break."))
    if report.clean:
        parts = ["<h3 style='color:#2e8540'>✓ Nothing was altered</h3>",
                 f"<p>{e(facts)} Every stored signature still verifies, every linked record is exactly as it was "
                 "received or sent, and the audit trail is unbroken.</p>"]
    else:
        parts = [f"<h3 style='color:#c0392b'>✗ {len(report.problems)} problem(s) found</h3>",
                 f"<p>{e(facts)}</p><p><b>What to do:</b> do not delete anything. Keep this report, restore the "
                 "order book from your latest backup into a separate folder to compare, and tell your CSOS "
                 "coordinator: records of controlled-substance orders must be kept unaltered for two years.</p><ul>"]
        parts += [f"<li><b>{e(p.order_number or 'Order book')}</b>: {e(p.message)} "
                  f"<span style='color:#777'>({e(p.code)})</span></li>" for p in report.problems]
        parts.append("</ul>")
    if report.notes:
        parts.append("<h4>For your information (not a problem with the records)</h4><ul>")
        parts += [f"<li>{e(n.message)}</li>" for n in report.notes[:50]]
        if len(report.notes) > 50:
            parts.append(f"<li>…and {len(report.notes) - 50} more.</li>")
        parts.append("</ul>")
    return "".join(parts)


class RecordsDialog(QDialog):
    def __init__(self, facade: Any, *, tab: int = EXPORT_TAB, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.facade = facade
        self.job: Any = None
        self.last_export: Any = None
        self.last_check: Any = None
        self.last_backup: Any = None
        self.setObjectName("recordsDialog")
        self.setWindowTitle("Records")
        self.setAccessibleName("Records")
        self.resize(QSize(820, 560))
        layout = QVBoxLayout(self)
        heading = QLabel("Records of your orders", self)
        font = QFont(heading.font())
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        heading.setFont(font)
        layout.addWidget(heading)
        intro = QLabel("Signed orders and every linked record are kept for two years and must be available to DEA "
                       "on request.", self)
        intro.setWordWrap(True)
        layout.addWidget(intro)
        self.tabs = QTabWidget(self)
        self.tabs.setObjectName("recordsTabs")
        self.tabs.setAccessibleName("Records tasks")
        self.tabs.addTab(self._export_tab(), "&Export for an inspection")
        self.tabs.addTab(self._check_tab(), "C&heck integrity")
        self.tabs.addTab(self._backup_tab(), "&Back up")
        layout.addWidget(self.tabs, 1)

        row = QHBoxLayout()
        self.progress_label = QLabel(self)
        self.progress_label.setObjectName("recordsProgressText")
        self.progress = QProgressBar(self)
        self.progress.setObjectName("recordsProgress")
        self.progress.setAccessibleName("Progress")
        self.cancel_button = QPushButton("&Stop", self)
        self.cancel_button.setObjectName("recordsCancel")
        self.cancel_button.setAccessibleName("Stop the running task")
        self.cancel_button.clicked.connect(self.cancel_job)
        row.addWidget(self.progress_label, 1)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self._show_progress(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        self.close_button = buttons.button(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.tabs.setCurrentIndex(tab)

    # -- tabs ----------------------------------------------------------------------------------------------------

    def _export_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        text = QLabel("Writes a folder with a PDF a person can read, a spreadsheet (CSV) and an archive of every "
                      "signed order and linked record exactly as sent or received, with SHA-256 digests. Private "
                      "keys are never included.", page)
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        today = QDate.currentDate()
        self.from_date = QDateEdit(QDate(today.year(), 1, 1), page)
        self.to_date = QDateEdit(today, page)
        for edit, name, accessible in ((self.from_date, "exportFrom", "Orders created from"),
                                       (self.to_date, "exportTo", "Orders created until")):
            edit.setObjectName(name)
            edit.setAccessibleName(accessible)
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("MMM d, yyyy")
        label = QLabel("Orders created &from:", page)
        label.setBuddy(self.from_date)
        form.addRow(label, self.from_date)
        label = QLabel("&until (inclusive):", page)
        label.setBuddy(self.to_date)
        form.addRow(label, self.to_date)
        self.export_folder = QLineEdit(str(documents_folder() / f"CSOS records {today.toString('yyyy-MM-dd')}"),
                                       page)
        self.export_folder.setObjectName("exportFolder")
        self.export_folder.setAccessibleName("Export into this new folder")
        browse = QPushButton("B&rowse…", page)
        browse.setAccessibleName("Choose the export folder")
        browse.clicked.connect(self._browse_export)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.export_folder, 1)
        folder_row.addWidget(browse)
        label = QLabel("Into the new &folder:", page)
        label.setBuddy(self.export_folder)
        form.addRow(label, folder_row)
        layout.addLayout(form)
        self.export_message = FieldMessage(self.export_folder, page)
        layout.addWidget(self.export_message)
        self.export_button = QPushButton("E&xport", page)
        self.export_button.setObjectName("exportButton")
        self.export_button.clicked.connect(self.export)
        layout.addWidget(self.export_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.export_result = QLabel(page)
        self.export_result.setObjectName("exportResult")
        self.export_result.setWordWrap(True)
        self.export_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.export_result)
        self.open_folder_button = QPushButton("Open folder", page)
        self.open_folder_button.setAccessibleName("Open the export folder")
        self.open_folder_button.setVisible(False)
        self.open_folder_button.clicked.connect(self.open_export_folder)
        layout.addWidget(self.open_folder_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        return page

    def open_export_folder(self) -> bool:
        """Show the exported folder in the file manager (the next step after an export)."""
        from PySide6.QtCore import QUrl
        from PySide6.QtGui import QDesktopServices

        summary = getattr(self, "last_export", None)
        if summary is None:
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(summary.out_dir)))

    def _check_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        text = QLabel("Verifies every stored signature again, compares every linked record with the digest taken "
                      "when it was stored, and follows the audit trail's hash chain from the first event.", page)
        text.setWordWrap(True)
        layout.addWidget(text)
        self.check_button = QPushButton("&Run the check", page)
        self.check_button.setObjectName("checkButton")
        self.check_button.clicked.connect(self.run_check)
        layout.addWidget(self.check_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.check_report = QTextBrowser(page)
        self.check_report.setObjectName("checkReport")
        self.check_report.setAccessibleName("Integrity check report")
        self.check_report.setPlaceholderText("The report appears here.")
        layout.addWidget(self.check_report, 1)
        return page

    def _backup_tab(self) -> QWidget:
        page = QWidget(self)
        layout = QVBoxLayout(page)
        text = QLabel("Copies the order book into one file while the program keeps running. Keep the copy on "
                      "another disk or computer. Private keys are never in a backup: a key file stays in this "
                      "computer's key folder, a token key on the token.", page)
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        stamp = dt.date.today().isoformat()
        self.backup_path = QLineEdit(str(Path.home() / f"csos-orderbook-{stamp}.sqlite3"), page)
        self.backup_path.setObjectName("backupPath")
        self.backup_path.setAccessibleName("Backup file")
        browse = QPushButton("Bro&wse…", page)
        browse.setAccessibleName("Choose the backup file")
        browse.clicked.connect(self._browse_backup)
        row = QHBoxLayout()
        row.addWidget(self.backup_path, 1)
        row.addWidget(browse)
        label = QLabel("Backup &file:", page)
        label.setBuddy(self.backup_path)
        form.addRow(label, row)
        layout.addLayout(form)
        self.backup_message = FieldMessage(self.backup_path, page)
        layout.addWidget(self.backup_message)
        self.backup_button = QPushButton("Back &up now", page)
        self.backup_button.setObjectName("backupButton")
        self.backup_button.clicked.connect(self.backup)
        layout.addWidget(self.backup_button, 0, Qt.AlignmentFlag.AlignLeft)
        self.backup_result = QLabel(page)
        self.backup_result.setObjectName("backupResult")
        self.backup_result.setWordWrap(True)
        self.backup_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.backup_result)
        layout.addStretch(1)
        return page

    def _browse_export(self) -> None:
        chosen = QFileDialog.getExistingDirectory(self, "Where to create the export folder", str(documents_folder()))
        if chosen:
            self.export_folder.setText(str(Path(chosen) / Path(self.export_folder.text()).name))

    def _browse_backup(self) -> None:
        chosen, _f = QFileDialog.getSaveFileName(self, "Back up the order book to", self.backup_path.text(),
                                                 "Order book backup (*.sqlite3)")
        if chosen:
            self.backup_path.setText(chosen)

    # -- jobs ----------------------------------------------------------------------------------------------------

    def _show_progress(self, visible: bool, *, cancellable: bool = False) -> None:
        for widget in (self.progress_label, self.progress):
            widget.setVisible(visible)
        self.cancel_button.setVisible(visible and cancellable)
        self.cancel_button.setEnabled(True)

    def _run(self, title: str, work: Any, on_success: Any, on_failure: Any, *, cancellable: bool = False) -> None:
        for button in (self.export_button, self.check_button, self.backup_button):
            button.setEnabled(False)
        self.progress.setRange(0, 0)
        self.progress_label.setText(title + "…")
        self._show_progress(True, cancellable=cancellable)

        def finish(callback: Any) -> Any:
            def done(value: Any) -> None:
                self.job = None
                self._show_progress(False)
                for button in (self.export_button, self.check_button, self.backup_button):
                    button.setEnabled(True)
                callback(value)
            return done

        self.job = self.facade.jobs.run(title, work, on_success=finish(on_success), on_failure=finish(on_failure),
                                        cancellable=cancellable, owner=self)
        self.job.progress.connect(self._on_progress)

    def _on_progress(self, done: int, total: int, text: str) -> None:
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
        if text:
            self.progress_label.setText(text)

    @Slot()
    def cancel_job(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress_label.setText("Stopping…")

    @Slot()
    def export(self) -> None:
        if self.job is not None:
            return
        self.export_message.clear()
        self.export_result.clear()
        text = self.export_folder.text().strip()
        if not text:
            self.export_message.show_problem("Give the folder to create for the export.")
            return
        from app import __version__
        from app.services.orders.records import export_records
        from app.ui.records_pdf import RecordsPdfProcess

        db = self.facade.db
        start, end = self.from_date.date().toPython(), self.to_date.date().toPython()
        out = Path(text).expanduser()

        def work(context: Any) -> Any:
            return export_records(
                db, date_from=start, date_to=end, out_dir=out, render_pdf=RecordsPdfProcess, version=__version__,
                progress=lambda done, total: context.progress(done, total, f"Order {done:,} of {total:,}…"),
                cancelled=lambda: context.cancelled)

        self._run("Exporting the records", work, self._on_exported, self._on_export_failed, cancellable=True)

    def _on_exported(self, summary: Any) -> None:
        self.last_export = summary
        self.export_result.setText(f"✓ {summary.orders:,} order(s) exported into {summary.out_dir} — open "
                                   "records.pdf to read them; give the whole folder (or archive.zip) to an "
                                   "inspector.")
        self.open_folder_button.setVisible(True)

    def _on_export_failed(self, error: CsosError) -> None:
        if isinstance(error, Cancelled) or error.code == "records.export_cancelled":
            self.export_result.setText("The export was stopped; nothing was written.")
            return
        self.export_message.show_problem(error.message)

    @Slot()
    def run_check(self) -> None:
        if self.job is not None:
            return
        from app.services.orders.records import check_records

        facade = self.facade
        self.check_report.clear()

        def work(context: Any) -> Any:
            verifier = facade.verifier()
            return check_records(facade.db, verifier=verifier,
                                 progress=lambda done, total: context.progress(done, total,
                                                                               f"Order {done:,} of {total:,}…"))

        self._run("Checking the records", work, self._on_checked, self._on_check_failed)

    def _on_checked(self, report: Any) -> None:
        self.last_check = report
        self.check_report.setHtml(check_report_html(report))

    def _on_check_failed(self, error: CsosError) -> None:
        self.check_report.setHtml(f"<p><b>The check could not run:</b> {html.escape(error.message)}</p>"
                                  "<p>Nothing was changed. Fix the cause and run the check again.</p>")

    @Slot()
    def backup(self) -> None:
        if self.job is not None:
            return
        self.backup_message.clear()
        self.backup_result.clear()
        text = self.backup_path.text().strip()
        if not text:
            self.backup_message.show_problem("Give the file to write the backup to.")
            return
        from app.services.orders.records import backup_order_book

        db, out = self.facade.db, Path(text).expanduser()
        self._run("Backing up the order book", lambda _c: backup_order_book(db, out), self._on_backed_up,
                  lambda error: self.backup_message.show_problem(error.message))

    def _on_backed_up(self, summary: Any) -> None:
        self.last_backup = summary
        self.backup_result.setText(f"✓ Backup written: {summary.path} ({summary.bytes / 1024:,.0f} KB, "
                                   f"{summary.orders:,} order(s)). Keys are not in it.")

    def reject(self) -> None:
        if self.job is not None:
            self.cancel_job()
            return
        super().reject()
