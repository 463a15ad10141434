"""The records PDF (O9): each order drawn on Qt's PDF writer, page by page (``RecordsSheet``), and the same order as
HTML (``order_html``) for printing one order and for a preview.

Lives in ``app.ui`` because it needs Qt; ``app.services.orders.records`` receives ``RecordsPdfProcess`` as a plain
callable, so services never import Qt. The export's PDF is drawn in a process of its own (``RecordsPdfProcess``,
``draw_from_stdin``) while the archive is written. Works headless (``QT_QPA_PLATFORM=offscreen``): it creates an
application object only when none exists — a widgets ``QApplication``, so that windows opened later in the same
process (the desktop program, tests) do not find a bare QGuiApplication in their way, which Qt answers with an abort.
"""

from __future__ import annotations

import html
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Sequence

log = logging.getLogger(__name__)

DRAW_RECORDS_PDF = "--draw-records-pdf"  # `csos-desk --draw-records-pdf`: the child of ``RecordsPdfProcess``
_PROBLEM = "records-pdf-problem: "  # the child's last words on stderr when it could not write the PDF

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
    """Write the records of ``views`` as a PDF at ``path`` (US Letter): a cover page, the ordering history when
    ``meta`` has one, then each order from a new page.

    The pages are drawn straight with a painter in a plain layout (headings, paragraphs, ruled tables) rather than
    through Qt's HTML layout: the same words as ``order_html``, about six times faster (the HTML layout was most of
    a 20,000-order export). One order at a time, so memory stays flat whatever the number of orders.
    """
    sheet = RecordsSheet(records_writer(path))
    try:
        sheet.cover(views, meta)
        if meta.get("history"):
            sheet.new_page()
            sheet.history(meta)
        for view in views:
            sheet.new_page()
            sheet.order(view)
    finally:
        sheet.end()
    _check_complete(path)


def _check_complete(path: Path) -> None:
    """Qt's PDF writer says nothing when its file could not be written to the end (a full disk): a PDF ends with
    its end-of-file mark."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, os.path.getsize(path) - 16))
            complete = b"%%EOF" in handle.read()
    except OSError:
        complete = False
    if not complete:
        from app.services.orders.records import RecordsError

        raise RecordsError("The records PDF could not be written to the end; check that the folder's drive has room. "
                           "Nothing was exported.", code="records.pdf_unwritable")


class RecordsPdfProcess:
    """The records PDF drawn in a process of its own while the export writes the archive (a ``PdfRenderer``).

    Drawing 20,000 orders' pages takes longer than writing their archive, and Python draws on one core at a time:
    in this process the pages had to wait for the archive (a thread only took turns with it). The child is this
    program again (``DRAW_RECORDS_PDF``); it is given each order's order.json as soon as it is written, so the PDF
    shows what the archive holds. The pipe holds a few hundred orders: the export stays that close to the pages.
    """

    def __init__(self, orders: int, meta: dict[str, Any], path: Path) -> None:
        self._problems = tempfile.TemporaryFile()
        try:
            self._child = subprocess.Popen(
                _child_command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._problems,
                env=_child_environment(), cwd=_program_root(), creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
        except OSError as exc:
            self._problems.close()
            from app.services.orders.records import RecordsError

            raise RecordsError(f"The records PDF could not be started ({exc.strerror or exc}). Nothing was exported; "
                               "try again.", code="records.pdf_failed") from None
        self._send({"orders": orders, "meta": meta, "path": os.path.abspath(path)})

    def add(self, view_file: str) -> None:
        self._send(os.path.abspath(view_file))

    def finish(self) -> None:
        try:
            self._child.stdin.close()
        except OSError:
            pass  # it stopped early: what it said follows
        if self._child.wait() != 0:
            raise self._failure()
        self._problems.close()

    def abort(self) -> None:
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        try:
            self._child.stdin.close()
        except OSError:
            pass
        self._problems.close()

    @property
    def running(self) -> bool:
        return self._child.poll() is None

    def _send(self, value: Any) -> None:
        try:
            self._child.stdin.write(json.dumps(value, default=str).encode() + b"\n")
        except (OSError, ValueError):  # the child has stopped (broken pipe), or its input was closed
            self._child.wait()
            raise self._failure() from None

    def _failure(self) -> Exception:
        """The child's own words when it could say what went wrong; otherwise a plain sentence, its output logged."""
        from app.services.orders.records import RecordsError

        self._problems.seek(0)
        said = self._problems.read().decode("utf-8", "replace").strip().splitlines()
        self._problems.close()
        if said and said[-1].startswith(_PROBLEM):
            code, _, message = said[-1][len(_PROBLEM):].partition(" ")
            return RecordsError(message, code=code)
        log.warning("records PDF process stopped with status %s: %s", self._child.returncode, "\n".join(said[-20:]))
        return RecordsError("The records PDF could not be made: its drawing stopped unexpectedly (the log has the "
                            "details). Nothing was exported; try again.", code="records.pdf_failed")


def _child_command() -> list[str]:
    if getattr(sys, "frozen", False):  # the bundled program: its executable is `csos-desk` itself
        return [sys.executable, DRAW_RECORDS_PDF]
    return [sys.executable, "-m", "app", DRAW_RECORDS_PDF]


def _program_root() -> str | None:
    """The folder holding this ``app`` package, where the child starts (``python -m`` looks in its working folder
    first, where another ``app`` could be); the bundled program finds itself anyway."""
    return None if getattr(sys, "frozen", False) else str(Path(__file__).resolve().parents[2])


def _child_environment() -> dict[str, str]:
    """This environment, drawing offscreen (a file, no window), and finding this ``app`` package first."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    root = _program_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env


def draw_from_stdin(stream: IO[bytes] | None = None) -> int:
    """The child's side of ``RecordsPdfProcess``: a first line with the number of orders, the cover's facts and the
    PDF's path, then the path of each order's order.json as it is written, until the input ends."""
    from app.errors import CsosError

    stream = stream or sys.stdin.buffer
    try:
        head = json.loads(stream.readline())
        render_records_pdf(_ArrivingViews(head["orders"], stream), head["meta"], Path(head["path"]))
    except CsosError as exc:
        print(f"{_PROBLEM}{exc.code} {exc.message}", file=sys.stderr)
        return 3
    except OSError as exc:  # an order.json could not be read back
        print(f"{_PROBLEM}records.pdf_failed The records PDF could not read an order back from the archive "
              f"({exc.strerror or exc}). Nothing was exported; try again.", file=sys.stderr)
        return 3
    return 0


class _ArrivingViews:
    """The orders' views as their order.json paths arrive on the pipe; ``len`` is the number announced (cover)."""

    def __init__(self, orders: int, stream: IO[bytes]) -> None:
        self._orders, self._stream = orders, stream

    def __len__(self) -> int:
        return self._orders

    def __iter__(self) -> Iterator[Any]:
        from app.services.orders.records import OrderRecordView

        for line in self._stream:
            with open(json.loads(line), "rb") as handle:
                yield OrderRecordView(**json.loads(handle.read()))


def records_writer(path: Path) -> Any:
    """The records PDF's writer: US Letter, 15 mm margins, 300 dpi."""
    from PySide6.QtCore import QMarginsF
    from PySide6.QtGui import QPageLayout, QPageSize, QPdfWriter

    _ensure_application()
    writer = QPdfWriter(str(path))
    writer.setPageSize(QPageSize(QPageSize.PageSizeId.Letter))
    writer.setPageMargins(QMarginsF(15, 15, 15, 15), QPageLayout.Unit.Millimeter)
    writer.setResolution(300)
    writer.setTitle("CSOS order records")
    writer.setCreator("CSOS Desk")
    return writer


_HISTORY_TITLE = "Ordering history (controlled substances, last 24 months)"
_HISTORY_NOTE = ("Orders signed and later; cancelled, not accepted and lost orders left out. Quantities in dosage "
                 "units (packages × quantity in one package); received = recorded receipts of those orders.")


def history_html(meta: dict[str, Any]) -> str:
    """The ordering-history page: per registration, each controlled substance's ordered and received quantities
    per month (``app.services.orders.history.history_rows_for_records``)."""
    parts = [f"<h2>{_e(_HISTORY_TITLE)}</h2>", f"<p class='small'>{_e(_HISTORY_NOTE)}</p>"]
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


# =====================================================================================================================
# The records PDF drawn with a painter


class _Font:
    """A font with its metrics on the PDF writer, its colour, and the widths of the texts measured so far (the same
    headers, dates and product names come back on every page)."""

    __slots__ = ("font", "metrics", "ascent", "height", "color", "_device", "_widths", "_runs", "_seen")

    def __init__(self, device: Any, points: float, *, bold: bool = False, color: str = "#000000",
                 family: str = "DejaVu Sans") -> None:
        from PySide6.QtGui import QColor, QFont, QFontMetricsF

        self._device = device
        self._runs: dict[str, Any] = {}
        self._seen: set[str] = set()
        self.font = QFont(family)
        self.font.setPointSizeF(points)
        self.font.setBold(bold)
        self.metrics = QFontMetricsF(self.font, device)
        self.ascent = self.metrics.ascent()
        self.height = self.metrics.height()
        self.color = QColor(color)
        self._widths: dict[str, float] = {}

    def width(self, text: str) -> float:
        found = self._widths.get(text)
        if found is None:
            if len(self._widths) > 20_000:
                self._widths.clear()
            found = self._widths[text] = self.metrics.horizontalAdvance(text)
        return found

    def glyphs(self, text: str) -> Any:
        """The glyph runs of a text drawn before (shaped once, then drawn as glyphs: headers, names, products and
        dates come back on page after page), or None the first time."""
        found = self._runs.get(text)
        if found is None:
            if text not in self._seen:
                if len(self._seen) > 20_000:
                    self._seen.clear()
                self._seen.add(text)
                return None
            from PySide6.QtGui import QTextLayout

            if len(self._runs) > 5_000:  # texts that recur: headers, names, products, days
                self._runs.clear()
            layout = QTextLayout(text, self.font, self._device)
            layout.beginLayout()
            layout.createLine().setNumColumns(len(text))
            layout.endLayout()
            found = self._runs[text] = layout.glyphRuns()
        return found

    def wrap(self, text: str, width: float) -> list[str]:
        """``text`` in lines no wider than ``width``: at spaces, inside a word only when the word alone is wider
        (a SHA-256, a file name); a newline always starts a new line."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            if self.width(paragraph) <= width:
                lines.append(paragraph)
                continue
            line = ""
            for word in paragraph.split(" "):
                candidate = f"{line} {word}" if line else word
                if self.metrics.horizontalAdvance(candidate) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = word
                while len(line) > 1 and self.metrics.horizontalAdvance(line) > width:
                    cut = self._fitting(line, width)
                    lines.append(line[:cut])
                    line = line[cut:]
            lines.append(line)
        return lines

    def _fitting(self, text: str, width: float) -> int:
        low, high = 1, len(text)  # the longest start of ``text`` that fits (at least one character)
        while low < high:
            middle = (low + high + 1) // 2
            if self.metrics.horizontalAdvance(text[:middle]) <= width:
                low = middle
            else:
                high = middle - 1
        return low


Run = tuple[str, _Font]  # one line of a cell or paragraph (wrapped when too wide) and its font


class RecordsSheet:
    """Draws the records pages on a ``QPdfWriter``: headings, paragraphs and ruled tables that continue on the next
    page (a table's header row repeated), a page number at the foot of every page. Units are the writer's pixels
    (300 per inch); sizes are given in points. ``painted``, when a list, collects every text drawn (tests)."""

    def __init__(self, writer: Any) -> None:
        from PySide6.QtCore import QLineF, QPointF, QRectF
        from PySide6.QtGui import QColor, QPainter, QPen

        self._point, self._rect, self._line = QPointF, QRectF, QLineF
        self.writer = writer
        self.painter = QPainter(writer)
        if not self.painter.isActive():
            from app.services.orders.records import RecordsError

            raise RecordsError("The records PDF could not be written; check that the folder can be written and has "
                               "room.", code="records.pdf_unwritable")
        dpi = writer.resolution()
        self.pt = dpi / 72.0
        area = writer.pageLayout().paintRectPixels(dpi)
        self.width, self.height = float(area.width()), float(area.height())
        self.footer = _Font(writer, 7.5)
        self.bottom = self.height - self.footer.height * 1.8
        self.body = _Font(writer, 9)
        self.bold = _Font(writer, 9, bold=True)
        self.small = _Font(writer, 8, color="#444444")
        self.flag = _Font(writer, 9, bold=True, color="#a00000")
        self.mono = _Font(writer, 8.5, family="DejaVu Sans Mono")
        self.h1 = _Font(writer, 15, bold=True)
        self.h2 = _Font(writer, 12, bold=True)
        self.h3 = _Font(writer, 10, bold=True)
        self.pad = 2.0 * self.pt
        self.rule = QPen(QColor("#999999"))
        self.rule.setWidthF(0.6 * self.pt)
        self.shade = QColor("#e6e6e6")
        self.painted: list[str] | None = None
        self.page = 1
        self.y = 0.0
        self._font: _Font | None = None
        self._pen: Any = None

    # ---------------------------------------------------------------------------------------------------- pages

    def new_page(self) -> None:
        self._foot()
        self.writer.newPage()
        self.page += 1
        self.y = 0.0

    def end(self) -> None:
        if self.painter.isActive():
            self._foot()
            self.painter.end()

    def _foot(self) -> None:
        text = f"CSOS order records — page {self.page}"
        self._text(self.width - self.footer.width(text), self.height - self.footer.height, text, self.footer)

    def _room(self, height: float) -> bool:
        """Start a new page unless ``height`` fits below the current line (or the page is still empty)."""
        if self.y + height <= self.bottom or self.y == 0.0:
            return False
        self.new_page()
        return True

    def _text(self, x: float, top: float, text: str, font: _Font) -> None:
        painter = self.painter
        if font is not self._font:
            painter.setFont(font.font)
            painter.setPen(font.color)
            self._font, self._pen = font, None
        if text:
            runs = font.glyphs(text)
            if runs is None:
                painter.drawText(self._point(x, top + font.ascent), text)
            else:
                point = self._point(x, top)
                for run in runs:
                    painter.drawGlyphRun(point, run)
        if self.painted is not None:
            self.painted.append(text)

    # ------------------------------------------------------------------------------------------------- blocks

    def space(self, points: float) -> None:
        if self.y:
            self.y += points * self.pt

    def heading(self, text: str, font: _Font, *, before: float = 0.0, after: float = 2.0) -> None:
        self.space(before)
        self._room(font.height * 3)  # never a heading alone at the foot of a page
        for line in font.wrap(text, self.width):
            self._text(0.0, self.y, line, font)
            self.y += font.height
        self.y += after * self.pt

    def paragraph(self, runs: Sequence[Run], *, after: float = 6.0) -> None:
        for text, font in runs:
            for line in font.wrap(text, self.width):
                self._room(font.height)
                self._text(0.0, self.y, line, font)
                self.y += font.height
        self.y += after * self.pt

    def table(self, header: Sequence[str] | None, rows: Sequence[Sequence[Sequence[Run]]], *, full: bool = True,
              right: Sequence[int] = (), widths: Sequence[float] | None = None, after: float = 2.0) -> None:
        """A ruled table; each cell is lines of (text, font). ``full``: as wide as the page, the room shared as
        the contents need it; ``right``: columns aligned right; ``widths``: fixed shares of the page instead."""
        head = [[(text, self.bold)] for text in header] if header else None
        columns = self._columns([head, *rows] if head else rows, full=full, widths=widths)
        lefts = [0.0]
        for width in columns:
            lefts.append(lefts[-1] + width)
        rooms = [width - 2 * self.pad for width in columns]
        laid_head = self._lay_out(head, rooms) if head else None
        if laid_head:
            self._room(laid_head[1] * 2)
            self._row(laid_head, lefts, right, shaded=True)
        for row in rows:
            laid = self._lay_out(row, rooms)
            if self._room(laid[1]) and laid_head:
                self._row(laid_head, lefts, right, shaded=True)
            self._row(laid, lefts, right, shaded=False, header=laid_head)
        self.y += after * self.pt

    def _columns(self, rows: Sequence[Sequence[Sequence[Run]]], *, full: bool,
                 widths: Sequence[float] | None) -> list[float]:
        if widths is not None:
            return [share * self.width for share in widths]
        count = max(len(row) for row in rows)
        natural = [0.0] * count
        for row in rows:
            for index, cell in enumerate(row):
                for text, font in cell:
                    need = font.width(text)
                    if need > natural[index]:
                        natural[index] = need
        natural = [width + 2 * self.pad + self.pt for width in natural]
        total = sum(natural)
        if total <= self.width:
            return [width * self.width / total for width in natural] if full else natural
        # Too wide: the columns narrower than an equal share keep their width, the others share what is left.
        fixed: set[int] = set()
        while True:
            left = self.width - sum(natural[i] for i in fixed)
            wide = [i for i in range(count) if i not in fixed]
            newly = {i for i in wide if natural[i] <= left / len(wide)}
            if not newly or len(newly) == len(wide):
                break
            fixed |= newly
        wide_total = sum(natural[i] for i in wide)
        return [natural[i] if i in fixed else natural[i] * left / wide_total for i in range(count)]

    def _lay_out(self, row: Sequence[Sequence[Run]], rooms: list[float]) -> tuple[list[list[Run]], float]:
        """A row's cells in lines that fit their columns, and the row's height."""
        cells, tallest = [], 0.0
        for cell, room in zip(row, rooms):
            lines: list[Run] = []
            height = 0.0
            for text, font in cell:
                if font.width(text) <= room and "\n" not in text:
                    lines.append((text, font))
                    height += font.height
                else:
                    for line in font.wrap(text, room):
                        lines.append((line, font))
                        height += font.height
            if not lines:
                lines.append(("", self.body))
                height = self.body.height
            cells.append(lines)
            if height > tallest:
                tallest = height
        return cells, tallest + 2 * self.pad

    def _row(self, laid: tuple[list[list[Run]], float], lefts: list[float], right: Sequence[int], *, shaded: bool,
             header: tuple[list[list[Run]], float] | None = None) -> None:
        cells, height = laid
        if self.y + height > self.bottom:  # taller than a page: what fits here, the rest on the next pages
            cells = [list(cell) for cell in cells]
            while self.y + self._height(cells) > self.bottom:
                room = self.bottom - self.y - 2 * self.pad
                here = []
                for cell in cells:
                    taken, used = 0, 0.0
                    while taken < len(cell) and used + cell[taken][1].height <= room:
                        used += cell[taken][1].height
                        taken += 1
                    here.append(cell[:taken] or [("", self.body)])
                    del cell[:taken]
                self._row((here, self._height(here)), lefts, right, shaded=shaded)
                self.new_page()
                if header:
                    self._row(header, lefts, right, shaded=True)
            cells = [cell or [("", self.body)] for cell in cells]
            height = self._height(cells)
        top = self.y
        painter = self.painter
        if shaded:
            painter.fillRect(self._rect(0.0, top, lefts[-1], height), self.shade)
        pad = self.pad
        for index, cell in enumerate(cells):
            y = top + pad
            aligned_right = index in right
            for text, font in cell:
                self._text(lefts[index + 1] - pad - font.width(text) if aligned_right else lefts[index] + pad, y,
                           text, font)
                y += font.height
        painter.setPen(self.rule)
        self._font = None
        bottom, line = top + height, self._line
        painter.drawLines([line(0.0, top, lefts[-1], top), line(0.0, bottom, lefts[-1], bottom),
                           *[line(x, top, x, bottom) for x in lefts]])
        self.y = bottom

    def _height(self, cells: list[list[Run]]) -> float:
        return max(sum(font.height for _text, font in cell) for cell in cells) + 2 * self.pad

    # -------------------------------------------------------------------------------------------------- pages

    def cover(self, views: Sequence[Any], meta: dict[str, Any]) -> None:
        self.heading("CSOS order records", self.h1)
        version = f" by CSOS Desk {meta['version']}" if meta.get("version") else ""
        self.paragraph([("; ".join(meta.get("registrants", [])) or "", self.body),
                        (f"Orders created {meta.get('date_from')} to {meta.get('date_to')}: {len(views)} order(s). "
                         f"Exported {str(meta.get('exported_at', ''))[:16].replace('T', ' ')} UTC{version}.",
                         self.body)])
        if not views:
            self.paragraph([("No orders in this period.", self.body)])

    def history(self, meta: dict[str, Any]) -> None:
        self.heading(_HISTORY_TITLE, self.h2)
        self.paragraph([(_HISTORY_NOTE, self.small)])
        by_registration: dict[str, list[list[list[Run]]]] = {}
        for entry in meta.get("history", []):
            rows = by_registration.setdefault(entry["registration"], [])
            for month, ordered, received in entry["months"]:
                rows.append([[(str(entry["substance"]), self.body)], [(str(month), self.body)],
                             [(f"{ordered} {entry['unit']}", self.body)],
                             [(f"{received} {entry['unit']}", self.body)]])
        for registration, rows in by_registration.items():
            self.heading(f"DEA {registration}", self.h3, before=6.0)
            self.table(["Substance", "Month", "Ordered", "Received"], rows, right=(2, 3))

    def order(self, view: Any) -> None:
        """One order: the same facts, in the same order, as ``order_html``."""
        body, small = self.body, self.small
        self.heading(f"Order {view.order_number} — {view.status.replace('_', ' ')}", self.h2)
        self.table(None, [[self._party("Purchaser", view.purchaser), self._party("Supplier", view.supplier)]],
                   widths=(0.5, 0.5), after=6.0)
        signer = view.signer or {}
        signed = f"Signed {_moment(view.signed_at) or 'not signed'}"
        if signer.get("name"):
            signed += f" by {signer['name']}"
        if signer.get("certificate_serial"):
            signed += f" (certificate {signer['certificate_serial']})"
        facts: list[Run] = [(f"Created {_moment(view.created_at)}", body), (signed, body),
                            (f"Transmitted {_moment(view.transmitted_at) or '—'}", body)]
        if view.replaces_order_number:
            facts.append((f"Replaces order {view.replaces_order_number}", body))
        if getattr(view, "replaced_by", None):
            facts.append((f"Replaced by order {', '.join(view.replaced_by)}", body))
        if view.payload_sha256:
            facts.append((f"Signed content SHA-256 {view.payload_sha256}", small))
        self.paragraph(facts, after=2.0)
        self.heading("Lines", self.h3, before=6.0)
        self.table(["#", "NDC", "Product", "Schedule", "Packages", "Package size", "Supplier", "Received"],
                   [[[(_s(line[key]), body)] for key in ("line_number", "ndc", "description", "schedule",
                                                          "packages", "package_quantity", "supplier_status",
                                                          "received")] for line in view.lines])
        if getattr(view, "discrepancies", None):
            self.heading("Discrepancies in the supplier's answers", self.h3, before=6.0)
            for text in view.discrepancies:
                self.paragraph([(f"⚠ {text}", self.flag)], after=4.0)
        if getattr(view, "lost_statement", None):
            self.heading("Lost-order statement (as signed)", self.h3, before=6.0)
            self.paragraph([(str(view.lost_statement), self.mono)])
        self.heading("Linked records", self.h3, before=6.0)
        if view.linked_records:
            self.table(["When", "Record", "File"], [
                [[(_s(record["created_at"])[:16].replace("T", " "), body)],
                 [(_s(record["summary"]), body)] + [(f"⚠ {flag}", self.flag) for flag in record.get("flags", [])],
                 [(_s(record["file"]), small)]] for record in view.linked_records])
        else:
            self.paragraph([("None.", body)], after=2.0)
        self.heading("Receipts", self.h3, before=6.0)
        if view.receipts:
            self.table(["Line", "Packages received", "Date", "Recorded by", "Reason"],
                       [[[(_s(receipt[key]), body)] for key in ("line_number", "packages_received", "received_on",
                                                                 "recorded_by", "reason")]
                        for receipt in view.receipts], full=False)
        else:
            self.paragraph([("None recorded.", body)], after=2.0)

    def _party(self, title: str, party: dict[str, Any]) -> list[Run]:
        return [(title, self.bold), (_s(party.get("name")), self.body),
                (f"DEA {party.get('dea_number') or '—'}", self.body), (_s(party.get("address") or ""), self.body)]


def _s(value: Any) -> str:
    return "" if value is None else str(value)
