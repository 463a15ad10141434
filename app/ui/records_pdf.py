"""The records PDF (O9): Qt's PDF writer renders an HTML rendition of each order, page by page.

Lives in ``app.ui`` because it needs Qt; ``app.services.records`` receives ``render_records_pdf`` as a plain
callable, so services never import Qt. Works headless (``QT_QPA_PLATFORM=offscreen``): it creates a
QGuiApplication only when none exists.
"""

from __future__ import annotations

import html
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


def _party(title: str, party: dict[str, Any]) -> str:
    return (f"<td><b>{_e(title)}</b><br>{_e(party.get('name'))}<br>DEA {_e(party.get('dea_number') or '—')}"
            f"<br>{_e(party.get('address') or '')}</td>")


def order_html(view: Any) -> str:
    """One order as HTML (also handy for a print preview in the GUI)."""
    signer = view.signer or {}
    parts = [f"<h2>Order {_e(view.order_number)} — {_e(view.status.replace('_', ' '))}</h2>",
             "<table width='100%'><tr>", _party("Purchaser", view.purchaser), _party("Supplier", view.supplier),
             "</tr></table>",
             f"<p>Created {_e(view.created_at)}<br>Signed {_e(view.signed_at or 'not signed')}"
             f"{' by ' + _e(signer.get('name')) if signer.get('name') else ''}"
             f"{' (certificate ' + _e(signer.get('certificate_serial')) + ')' if signer.get('certificate_serial') else ''}"
             f"<br>Transmitted {_e(view.transmitted_at or '—')}"
             + (f"<br>Replaces order {_e(view.replaces_order_number)}" if view.replaces_order_number else "")
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
    head = (f"<h1>CSOS order records</h1><p>{_e('; '.join(meta.get('registrants', [])) or '')}<br>"
            f"Orders created {_e(meta.get('date_from'))} to {_e(meta.get('date_to'))}: {len(views)} order(s). "
            f"Exported {_e(str(meta.get('exported_at', ''))[:16].replace('T', ' '))} UTC"
            f"{' by CSOS Desk ' + _e(meta['version']) if meta.get('version') else ''}.</p>")
    if not views:
        return f"<html><head><style>{_STYLE}</style></head><body>{head}<p>No orders in this period.</p></body></html>"
    pages = [order_html(view) for view in views]
    separator = "<div style='page-break-before: always'></div>"
    return (f"<html><head><style>{_STYLE}</style></head><body>{head}{separator}"
            + separator.join(pages) + "</body></html>")


def _ensure_application() -> Any:
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QGuiApplication(sys.argv[:1])
    return app


def render_records_pdf(views: Sequence[Any], meta: dict[str, Any], path: Path) -> None:
    """Write the records of ``views`` as a PDF at ``path`` (A4/Letter by locale default: Letter for US records)."""
    from PySide6.QtCore import QMarginsF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter, QTextDocument

    _ensure_application()
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.Letter))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle("CSOS order records")
    writer.setCreator("CSOS Desk")
    document = QTextDocument()
    document.setDefaultStyleSheet(_STYLE)
    document.setHtml(records_html(views, meta))
    # No explicit page size: print_() then lays the text out in points and scales it to the writer's resolution
    # (a page size in device pixels would shrink the text by 96/300).
    document.print_(writer)
    del writer  # finishes the file
