"""The records PDF (O9): Qt's PDF writer renders an HTML rendition of each order, page by page.

Lives in ``app.ui`` because it needs Qt; ``app.services.orders.records`` receives ``render_records_pdf`` as a plain
callable, so services never import Qt. Works headless (``QT_QPA_PLATFORM=offscreen``): it creates an application
object only when none exists — a widgets ``QApplication``, so that windows opened later in the same process (the
desktop program, tests) do not find a bare QGuiApplication in their way, which Qt answers with an abort.
"""

from __future__ import annotations

import html
import itertools
import os
import sys
from pathlib import Path
from typing import Any, Sequence

_STYLE = """
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 9pt; }
h1 { font-size: 15pt; margin-bottom: 2pt; }
h2 { font-size: 12pt; margin-top: 0; margin-bottom: 2pt; }
h3 { font-size: 10pt; margin-bottom: 2pt; margin-top: 8pt; }
table { border-collapse: collapse; }
td, th { border: 1px solid #999; padding: 2px 4px; vertical-align: top; }
th { background-color: #e6e6e6; text-align: left; }
.flag { color: #a00000; font-weight: bold; }
.small { color: #444; font-size: 8pt; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _moment(value: Any) -> str:
    """An ISO timestamp as a person reads it (2026-12-04 12:47 UTC); anything else as it is. The exact value stays
    in order.json and the CSV."""
    import datetime as dt

    try:
        moment = dt.datetime.fromisoformat(str(value))
    except (TypeError, ValueError):
        return "" if value is None else str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc)
    return f"{moment:%Y-%m-%d %H:%M}" + (" UTC" if moment.tzinfo is not None else "")


def _party(title: str, party: dict[str, Any]) -> str:
    return (f"<td><b>{_e(title)}</b><br>{_e(party.get('name'))}<br>DEA {_e(party.get('dea_number') or '—')}"
            f"<br>{_e(party.get('address') or '')}</td>")


def order_html(view: Any) -> str:
    """One order as HTML (also handy for a print preview in the GUI)."""
    signer = view.signer or {}
    parts = [f"<h2>Order {_e(view.order_number)} — {_e(view.status.replace('_', ' '))}</h2>",
             "<table width='100%'><tr>", _party("Purchaser", view.purchaser), _party("Supplier", view.supplier),
             "</tr></table>",
             f"<p>Created {_e(_moment(view.created_at))}<br>Signed {_e(_moment(view.signed_at) or 'not signed')}"
             f"{' by ' + _e(signer.get('name')) if signer.get('name') else ''}"
             f"{' (certificate ' + _e(signer.get('certificate_serial')) + ')' if signer.get('certificate_serial') else ''}"
             f"<br>Transmitted {_e(_moment(view.transmitted_at) or '—')}"
             + (f"<br>Replaces order {_e(view.replaces_order_number)}" if view.replaces_order_number else "")
             + (f"<br>Replaced by order {_e(', '.join(getattr(view, 'replaced_by', [])))}"
                if getattr(view, "replaced_by", None) else "")
             + (f"<br><span class='small'>Signed content SHA-256 {_e(view.payload_sha256)}</span>"
                if view.payload_sha256 else "") + "</p>",
             "<h3>Lines</h3><table width='100%'><tr><th>#</th><th>NDC</th><th>Product</th><th>Schedule</th>"
             "<th>Packages</th><th>Package size</th><th>Supplier</th><th>Received</th></tr>"]
    for line in view.lines:
        parts.append(f"<tr><td>{_e(line['line_number'])}</td><td>{_e(line['ndc'])}</td>"
                     f"<td>{_e(line['description'])}</td><td>{_e(line['schedule'])}</td>"
                     f"<td>{_e(line['packages'])}</td><td>{_e(line['package_quantity'])}</td>"
                     f"<td>{_e(line['supplier_status'])}</td><td>{_e(line['received'])}</td></tr>")
    parts.append("</table>")
    if getattr(view, "discrepancies", None):
        parts.append("<h3>Discrepancies in the supplier's answers</h3>"
                     + "".join(f"<p class='flag'>⚠ {_e(text)}</p>" for text in view.discrepancies))
    if getattr(view, "lost_statement", None):
        parts.append("<h3>Lost-order statement (as signed)</h3><pre>" + _e(view.lost_statement) + "</pre>")
    parts.append("<h3>Linked records</h3>")
    if view.linked_records:
        parts.append("<table width='100%'><tr><th>When</th><th>Record</th><th>File</th></tr>")
        for record in view.linked_records:
            flags = "".join(f"<br><span class='flag'>⚠ {_e(flag)}</span>" for flag in record.get("flags", []))
            parts.append(f"<tr><td>{_e(record['created_at'][:16].replace('T', ' '))}</td>"
                         f"<td>{_e(record['summary'])}{flags}</td><td class='small'>{_e(record['file'])}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h3>Receipts</h3>")
    if view.receipts:
        parts.append("<table><tr><th>Line</th><th>Packages received</th><th>Date</th><th>Recorded by</th>"
                     "<th>Reason</th></tr>")
        for receipt in view.receipts:
            parts.append(f"<tr><td>{_e(receipt['line_number'])}</td><td>{_e(receipt['packages_received'])}</td>"
                         f"<td>{_e(receipt['received_on'])}</td><td>{_e(receipt['recorded_by'])}</td>"
                         f"<td>{_e(receipt['reason'])}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None recorded.</p>")
    return "".join(parts)


def records_html(views: Sequence[Any], meta: dict[str, Any]) -> str:
    """The whole export as one HTML page (print preview); the PDF is painted order by order instead."""
    head = _head_html(views, meta)
    pages = ([history_html(meta)] if meta.get("history") else []) + [order_html(view) for view in views]
    if not pages:
        return f"<html><head><style>{_STYLE}</style></head><body>{head}</body></html>"
    separator = "<div style='page-break-before: always'></div>"
    return (f"<html><head><style>{_STYLE}</style></head><body>{head}{separator}"
            + separator.join(pages) + "</body></html>")


def _ensure_application() -> Any:
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QGuiApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication(sys.argv[:1])
    return app


def render_records_pdf(views: Sequence[Any], meta: dict[str, Any], path: Path) -> None:
    """Write the records of ``views`` as a PDF at ``path`` (US Letter): a cover page, then each order from a new page.

    Each order is laid out as its own small document and painted page by page, so memory stays flat whatever the
    number of orders (one document of 20,000 orders would hold every page in memory at once).
    """
    from PySide6.QtCore import QMarginsF, QRectF, QSizeF, Qt
    from PySide6.QtGui import QFont, QPageLayout, QPageSize, QPainter, QPdfWriter, QTextDocument

    _ensure_application()
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.Letter))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle("CSOS order records")
    writer.setCreator("CSOS Desk")
    painter = QPainter(writer)
    try:
        scale = writer.resolution() / 96.0  # lay text out at 96 units per inch, as on screen, then scale to 300
        painter.scale(scale, scale)
        area = writer.pageLayout().paintRectPixels(writer.resolution())
        width, height = area.width() / scale, area.height() / scale
        footer = 18.0
        body = height - footer
        footer_font = QFont("DejaVu Sans")
        footer_font.setPixelSize(10)  # painter units are 1/96 inch: about 7.5 pt
        page_number = 0
        # One order's HTML at a time: building all of it first held ~100 MB for 20,000 orders.
        sections = itertools.chain([_head_html(views, meta)], [history_html(meta)] if meta.get("history") else [],
                                   (order_html(view) for view in views))
        for section in sections:
            document = QTextDocument()
            document.setDefaultStyleSheet(_STYLE)
            document.setHtml(f"<html><body>{section}</body></html>")
            document.setPageSize(QSizeF(width, body))
            for page in range(document.pageCount()):
                if page_number:
                    writer.newPage()
                page_number += 1
                painter.save()
                painter.translate(0, -page * body)
                document.drawContents(painter, QRectF(0, page * body, width, body))
                painter.restore()
                painter.setFont(footer_font)
                painter.drawText(QRectF(0, height - footer + 4, width, footer - 4),
                                 int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignBottom),
                                 f"CSOS order records — page {page_number}")
    finally:
        painter.end()


def history_html(meta: dict[str, Any]) -> str:
    """The ordering-history page: per registration, each controlled substance's ordered and received quantities
    per month (``app.services.orders.history.history_rows_for_records``)."""
    parts = ["<h2>Ordering history (controlled substances, last 24 months)</h2>",
             "<p class='small'>Orders signed and later; cancelled, not accepted and lost orders left out. Quantities "
             "in dosage units (packages × quantity in one package); received = recorded receipts of those orders."
             "</p>"]
    registration = None
    for entry in meta.get("history", []):
        if entry["registration"] != registration:
            if registration is not None:
                parts.append("</table>")
            registration = entry["registration"]
            parts.append(f"<h3>DEA {_e(registration)}</h3><table width='100%'><tr><th>Substance</th><th>Month</th>"
                         "<th>Ordered</th><th>Received</th></tr>")
        for month, ordered, received in entry["months"]:
            parts.append(f"<tr><td>{_e(entry['substance'])}</td><td>{_e(month)}</td>"
                         f"<td align='right'>{_e(ordered)} {_e(entry['unit'])}</td>"
                         f"<td align='right'>{_e(received)} {_e(entry['unit'])}</td></tr>")
    if registration is not None:
        parts.append("</table>")
    return "".join(parts)


def _head_html(views: Sequence[Any], meta: dict[str, Any]) -> str:
    head = (f"<h1>CSOS order records</h1><p>{_e('; '.join(meta.get('registrants', [])) or '')}<br>"
            f"Orders created {_e(meta.get('date_from'))} to {_e(meta.get('date_to'))}: {len(views)} order(s). "
            f"Exported {_e(str(meta.get('exported_at', ''))[:16].replace('T', ' '))} UTC"
            f"{' by CSOS Desk ' + _e(meta['version']) if meta.get('version') else ''}.</p>")
    return head if views else head + "<p>No orders in this period.</p>"
