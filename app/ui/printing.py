"""Print an order, or save it as PDF: the same page the records export shows for it (``records_pdf.order_html``).

QtPrintSupport does both: ``QPrintDialog`` for a printer, ``QPrinter`` in PDF mode for a file.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from PySide6.QtGui import QPageLayout, QPageSize, QTextDocument
from PySide6.QtPrintSupport import QPrintDialog, QPrinter
from PySide6.QtWidgets import QDialog, QFileDialog, QWidget

from app.errors import CsosError

log = logging.getLogger(__name__)


class PrintError(CsosError):
    code = "print.failed"


def order_document(facade: Any, order_id: int) -> QTextDocument:
    from app.services.orders.records import order_view
    from app.ui.records_pdf import _STYLE, order_html

    order = facade.book.get_order(order_id)
    replaces = facade.book.get_order(order.replaces_order_id).order_number if order.replaces_order_id else None
    view = order_view(order, replaces=replaces)
    printed = dt.datetime.now().astimezone()
    footer = (f"<p class='small'>Printed {printed:%Y-%m-%d %H:%M} from CSOS Desk"
              + (" — TRAINING order, not a real order" if facade.is_training else "") + ".</p>")
    document = QTextDocument()
    document.setDefaultStyleSheet(_STYLE)
    document.setHtml(f"<html><body>{order_html(view)}{footer}</body></html>")
    document.setMetaInformation(QTextDocument.MetaInformation.DocumentTitle, f"Order {view.order_number}")
    return document


def _printer(mode: QPrinter.PrinterMode = QPrinter.PrinterMode.HighResolution) -> QPrinter:
    printer = QPrinter(mode)
    printer.setPageSize(QPageSize(QPageSize.PageSizeId.Letter))
    printer.setPageOrientation(QPageLayout.Orientation.Portrait)
    printer.setCreator("CSOS Desk")
    return printer


def save_order_pdf(facade: Any, order_id: int, path: str | Path) -> Path:
    """Write one order as a PDF file; the file appears whole or not at all."""
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    document = order_document(facade, order_id)
    printer = _printer()
    printer.setOutputFormat(QPrinter.OutputFormat.PdfFormat)
    printer.setOutputFileName(str(partial))
    printer.setDocName(document.metaInformation(QTextDocument.MetaInformation.DocumentTitle))
    document.print_(printer)
    del printer
    try:
        if not partial.is_file() or partial.stat().st_size == 0:
            raise PrintError(f"The PDF could not be written to {path.parent}. Check that the folder exists and can "
                             "be written, then try again.", code="print.pdf_unwritable")
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise PrintError(f"The PDF could not be saved as {path} ({exc.strerror}). Choose another folder.",
                         code="print.pdf_unwritable") from None
    return path


def print_order(parent: QWidget | None, facade: Any, order_id: int) -> bool:
    """Ask for a printer and print; False when the person cancelled."""
    document = order_document(facade, order_id)
    printer = _printer()
    dialog = QPrintDialog(printer, parent)
    dialog.setWindowTitle("Print order")
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return False
    document.print_(printer)
    return True


def ask_pdf_path(parent: QWidget | None, order_number: str) -> Path | None:
    start = Path.home() / f"CSOS order {order_number}.pdf"
    chosen, _filter = QFileDialog.getSaveFileName(parent, "Save order as PDF", str(start), "PDF files (*.pdf)")
    if not chosen:
        return None
    path = Path(chosen)
    return path if path.suffix.lower() == ".pdf" else path.with_name(path.name + ".pdf")
