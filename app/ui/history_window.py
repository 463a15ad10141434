"""Ordering history: what this pharmacy ordered of each controlled substance, month by month, and what arrived.

Why: a supplier holds orders that look unusual next to the pharmacy's pattern; here the pharmacy sees that pattern
itself. One query (``app.services.orders.history.monthly_history``) fills the window; the filters narrow the rows it
returned, so changing a filter never waits for the database. The chart (pyqtgraph) has the numbers behind it in
the table beside it; both can be saved (CSV, PNG).
"""

from __future__ import annotations

import csv
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt, Signal, Slot
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.errors import CsosError
from app.ui.widgets import fit_on_show, heading_label, training_banner

log = logging.getLogger(__name__)

ALL = "All"
# Colour-blind-safe (Okabe–Ito); ordered is the full colour, fulfilled the same colour lighter.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
TABLE_HEADERS = ("Month", "Substance", "Ordered", "Received")


def _month_label(month: Any) -> str:
    return f"{month:%b} {month:%y}"


def _amount(value: Decimal, unit: str) -> str:
    from app.services.orders.history import UNIT_WORDS

    number = f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.1f}"
    return f"{number} {UNIT_WORDS.get(unit, unit.lower())}"


class HistoryWindow(QWidget):
    """``drawn`` after each chart is drawn (tests and the benchmark wait for it)."""

    drawn = Signal()

    def __init__(self, facade: Any, parent: QWidget | None = None, *, months: int = 24) -> None:
        super().__init__(parent, Qt.WindowType.Window)
        self.facade = facade
        self.report: Any = None
        self.shown: Any = None
        self.job: Any = None
        self.setObjectName("historyWindow")
        self.setWindowTitle("Ordering history")
        self.setAccessibleName("Ordering history")
        self.resize(QSize(1180, 720))
        fit_on_show(self)
        self._build(months)
        facade.order_book_changed.connect(self.reload)
        self.reload()

    # -- building ------------------------------------------------------------------------------------------------

    def _combo(self, name: str, label: str, row: QHBoxLayout) -> QComboBox:
        caption = QLabel(label, self)
        combo = QComboBox(self)
        combo.setObjectName(name)
        combo.setAccessibleName(label.replace("&", "").rstrip(":"))
        combo.addItem(ALL, None)
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        caption.setBuddy(combo)
        combo.currentIndexChanged.connect(self.redraw)
        row.addWidget(caption)
        row.addWidget(combo)
        return combo

    def _build(self, months: int) -> None:
        outer = QVBoxLayout(self)
        outer.addWidget(heading_label(self, "Ordering history", name="historyHeading"))
        if getattr(self.facade, "is_training", False):
            outer.addWidget(training_banner(self, "TRAINING — practice orders"))
        intro = QLabel("Controlled substances ordered each month (orders signed and later; cancelled and not "
                       "accepted orders are left out) beside what was received. A supplier may hold an order that "
                       "is much larger than your usual.", self)
        intro.setWordWrap(True)
        outer.addWidget(intro)

        filters = QHBoxLayout()
        self.registration_combo = self._combo("historyRegistration", "&Registration:", filters)
        self.schedule_combo = self._combo("historySchedule", "Sc&hedule:", filters)
        self.substance_combo = self._combo("historySubstance", "&Substance:", filters)
        self.supplier_combo = self._combo("historySupplier", "Su&pplier:", filters)
        months_label = QLabel("&Months:", self)
        self.months_spin = QSpinBox(self)
        self.months_spin.setObjectName("historyMonths")
        self.months_spin.setAccessibleName("Months shown")
        self.months_spin.setRange(3, 24)
        self.months_spin.setValue(months)
        self.months_spin.editingFinished.connect(self.reload)
        months_label.setBuddy(self.months_spin)
        filters.addWidget(months_label)
        filters.addWidget(self.months_spin)
        filters.addStretch(1)
        outer.addLayout(filters)

        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        pg.setConfigOptions(antialias=True, background="w", foreground="#222")
        self.plot = pg.PlotWidget(splitter)
        self.plot.setObjectName("historyChart")
        self.plot.setAccessibleName("Chart of quantities ordered and received per month")
        self.plot.showGrid(x=False, y=True, alpha=0.25)
        self.plot.setMenuEnabled(False)
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.legend = self.plot.addLegend(offset=(10, 10))
        self.table = QTableWidget(0, len(TABLE_HEADERS), splitter)
        self.table.setObjectName("historyTable")
        self.table.setAccessibleName("The numbers behind the chart")
        self.table.setHorizontalHeaderLabels(TABLE_HEADERS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        splitter.addWidget(self.plot)
        splitter.addWidget(self.table)
        splitter.setSizes([720, 440])
        outer.addWidget(splitter, 1)

        self.status = QLabel("Reading the order book…", self)
        self.status.setObjectName("historyStatus")
        self.status.setWordWrap(True)
        outer.addWidget(self.status)
        buttons = QHBoxLayout()
        self.limit_button = QPushButton("Set a monthly &limit…", self)
        self.limit_button.setObjectName("historyLimit")
        self.limit_button.setToolTip("The quantity a month above which the sign screen warns you, for example the "
                                     "limit your supplier told you. Choose one registration and one substance.")
        self.limit_button.clicked.connect(self.set_limit)
        self.csv_button = QPushButton("Save as &CSV…", self)
        self.csv_button.setObjectName("historyCsv")
        self.csv_button.clicked.connect(lambda: self.export_csv())
        self.png_button = QPushButton("Save chart as &picture…", self)
        self.png_button.setObjectName("historyPng")
        self.png_button.clicked.connect(lambda: self.export_png())
        close = QPushButton("Close", self)
        close.clicked.connect(self.close)
        buttons.addWidget(self.limit_button)
        buttons.addStretch(1)
        for button in (self.csv_button, self.png_button, close):
            buttons.addWidget(button)
        outer.addLayout(buttons)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape closes it, as it closes every other window of its own (a new user pressed it and nothing happened)."""
        if event.key() == Qt.Key.Key_Escape:
            self.close()
            return
        super().keyPressEvent(event)

    # -- loading -------------------------------------------------------------------------------------------------

    @Slot()
    def reload(self) -> None:
        """One query on a worker; the filters then narrow its rows."""
        from app.services.orders.history import monthly_history

        if self.job is not None:
            return
        db, months = self.facade.book.db, self.months_spin.value()
        zone = self._zone()
        self.status.setText("Reading the order book…")
        self.job = self.facade.jobs.run("Reading the ordering history",
                                        lambda _c: monthly_history(db, months=months, now=self.facade.clock(),
                                                                   zone=zone),
                                        on_success=self._loaded, on_failure=self._failed, owner=self)

    def _zone(self) -> Any:
        from app.services.orders.history import pharmacy_zone

        registrations = [r.dea_number for r in self.facade.book.list_registrations()]
        try:
            # Months are one registration's local months; with several, the first one's zone (or the computer's).
            return pharmacy_zone(self.facade.settings, registrations[0] if registrations else None)
        except CsosError as exc:
            log.info("history zone: %s", exc.code)
            return None

    def _loaded(self, report: Any) -> None:
        self.job = None
        self.report = report
        choices = report.choices()
        for combo, key in ((self.registration_combo, "registration"), (self.schedule_combo, "schedule"),
                           (self.substance_combo, "substance"), (self.supplier_combo, "supplier")):
            self._fill(combo, key, choices[key])
        self.redraw()

    def _fill(self, combo: QComboBox, key: str, values: list[str]) -> None:
        from app.services.orders.history import substance_label

        current = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem(ALL, None)
        for value in values:
            combo.addItem(substance_label(value) if key == "substance" else value, value)
        index = combo.findData(current)
        combo.setCurrentIndex(max(index, 0))
        combo.blockSignals(False)

    def _failed(self, error: CsosError) -> None:
        self.job = None
        self.status.setText(f"The history could not be read: {error.message} Close this window and open it "
                            "again; if it keeps failing, check the order book with Records → Check integrity.")

    # -- drawing -------------------------------------------------------------------------------------------------

    def selection(self) -> dict[str, str | None]:
        return {"registration": self.registration_combo.currentData(), "schedule": self.schedule_combo.currentData(),
                "substance": self.substance_combo.currentData(), "supplier": self.supplier_combo.currentData()}

    @Slot()
    def redraw(self) -> None:
        from app.services.orders.history import substance_label

        if self.report is None:
            return
        self.shown = self.report.filtered(**self.selection())
        series = self.shown.totals("substance")
        self.plot.clear()
        self.legend.clear()
        months = self.shown.months
        axis = self.plot.getAxis("bottom")
        step = 1 if len(months) <= 8 else 2 if len(months) <= 14 else 3
        last = len(months) - 1  # the current month always has its label
        axis.setTicks([[(i, _month_label(m)) for i, m in enumerate(months) if (last - i) % step == 0],
                       [(i, "") for i in range(len(months))]])
        units = sorted({unit for _name, unit in series})
        self.plot.setLabel("left", "Dosage units" if units in ([], ["EA"]) else
                           " / ".join({"EA": "units", "ML": "mL", "GR": "g"}.get(u, u) for u in units))
        x = list(range(len(months)))
        if len(series) == 1:
            # One substance: bars, ordered and received side by side.
            ((name, unit), values), = series.items()
            self.plot.addItem(pg.BarGraphItem(x=[i - 0.2 for i in x], height=[float(v) for v in values["ordered"]],
                                              width=0.38, brush=COLOURS[0], pen=pg.mkPen(None),
                                              name=f"{substance_label(name)} ordered"))
            self.plot.addItem(pg.BarGraphItem(x=[i + 0.2 for i in x],
                                              height=[float(v) for v in values["fulfilled"]], width=0.38,
                                              brush=QColor(COLOURS[0]).lighter(170), pen=pg.mkPen(None),
                                              name=f"{substance_label(name)} received"))
            self._limit_line(name, unit)
        else:
            for index, ((name, unit), values) in enumerate(series.items()):
                colour = COLOURS[index % len(COLOURS)]
                label = substance_label(name) + ("" if unit == "EA" else f" ({unit.lower()})")
                self.plot.plot(x, [float(v) for v in values["ordered"]], name=f"{label} ordered",
                               pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5, symbolBrush=colour)
                # Lighter and dashed, drawn on top: visible even where everything ordered was received.
                self.plot.plot(x, [float(v) for v in values["fulfilled"]], name=f"{label} received",
                               pen=pg.mkPen(QColor(colour).lighter(160), width=2.5, style=Qt.PenStyle.DashLine))
        # Room on the right for the current month's label (an axis hides a label that would stick out).
        self.plot.setXRange(-0.6, len(months) + 0.2, padding=0)
        self.plot.enableAutoRange(axis="y")
        self._fill_table(series)
        total = sum((r.ordered_packages for r in self.shown.rows), 0)
        self.status.setText(
            f"{len(series)} substance(s), {total:,} package(s) ordered over {len(months)} months "
            f"({_month_label(months[0])} to {_month_label(months[-1])}, months in "
            f"{self.shown.zone_name or 'this computer’s time zone'})." if series else
            "No controlled-substance orders match these choices in this period. Choose “All” in a filter to see "
            "more.")
        self.limit_button.setEnabled(bool(self._limit_registration() and self.selection()["substance"]))
        self.drawn.emit()

    def _limit_registration(self) -> str | None:
        """The chosen registration, or the only one there is."""
        chosen = self.selection()["registration"]
        only = self.report.choices()["registration"] if self.report is not None else []
        return chosen or (only[0] if len(only) == 1 else None)

    def _limit_line(self, name: str, unit: str) -> None:
        from app.services.orders.history import monthly_limits

        registration = self._limit_registration()
        limit = monthly_limits(self.facade.settings).get((registration or "", name))
        if limit is not None:
            line = pg.InfiniteLine(pos=float(limit), angle=0, pen=pg.mkPen("#a00000", width=1.5,
                                                                          style=Qt.PenStyle.DotLine),
                                   label=f"your limit {_amount(limit, unit)}", labelOpts={"position": 0.1})
            self.plot.addItem(line)

    def _fill_table(self, series: dict) -> None:
        from app.services.orders.history import substance_label

        packages: dict[tuple[Any, str, str], list[int]] = {}
        for row in self.shown.rows:
            entry = packages.setdefault((row.month, row.substance, row.unit), [0, 0])
            entry[0] += row.ordered_packages
            entry[1] += row.fulfilled_packages
        rows = []
        for (name, unit), values in series.items():
            for index, month in enumerate(self.shown.months):
                ordered, fulfilled = values["ordered"][index], values["fulfilled"][index]
                if not ordered and not fulfilled:
                    continue
                count = packages.get((month, name, unit), [0, 0])
                rows.append((month, substance_label(name), f"{_amount(ordered, unit)} ({count[0]:,} pkg)",
                             f"{_amount(fulfilled, unit)} ({count[1]:,} pkg)"))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        self.table.setRowCount(len(rows))
        for r, values in enumerate(rows):
            for c, value in enumerate((_month_label(values[0]),) + values[1:]):
                item = QTableWidgetItem(value)
                if c >= 2:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    # -- export and limits -----------------------------------------------------------------------------------------

    def export_csv(self, path: str | Path | None = None) -> Path | None:
        """The rows behind the chart, one per registration, supplier, month, substance and unit."""
        from app.services.orders.history import CSV_HEADER

        if self.shown is None:
            return None
        target = self._save_target(path, "Save the history as CSV", "ordering-history.csv", "CSV files (*.csv)")
        if target is None:
            return None
        try:
            with open(target, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(CSV_HEADER)
                writer.writerows(self.shown.csv_rows())
        except OSError as exc:
            self.status.setText(f"{target} could not be written ({exc.strerror}). Choose another folder.")
            return None
        self.status.setText(f"Saved {len(self.shown.rows)} row(s) in {target}.")
        return target

    def _save_target(self, path: str | Path | None, title: str, default: str, kinds: str) -> Path | None:
        """The file to write: the one given (tests, scripts) or the one chosen in a save dialog (None if cancelled)."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, title, default, kinds)
        return Path(path) if path else None

    def export_png(self, path: str | Path | None = None) -> Path | None:
        target = self._save_target(path, "Save the chart as a picture", "ordering-history.png",
                                   "PNG pictures (*.png)")
        if target is None:
            return None
        if not self.plot.grab().save(str(target), "PNG"):
            self.status.setText(f"{target} could not be written. Choose another folder.")
            return None
        self.status.setText(f"Saved the chart in {target}.")
        return target

    @Slot()
    def set_limit(self, text: str | None = None) -> bool:
        """Ask for (or take) the monthly limit of the chosen registration and substance; empty removes it."""
        from app.services.orders.history import monthly_limits, substance_label, with_monthly_limit

        registration, substance = self._limit_registration(), self.selection()["substance"]
        if not registration or not substance:
            self.status.setText("Choose one registration and one substance first, then set its monthly limit.")
            return False
        current = monthly_limits(self.facade.settings).get((registration, substance))
        if text is None:
            text, ok = QInputDialog.getText(
                self, "Monthly limit", f"{substance_label(substance)} for {registration}: the most you expect to "
                "order in a month (tablets, mL or g). Leave empty to go back to “twice your usual”.",
                text="" if current is None else format(current, "f"))
            if not ok:
                return False
        try:
            limits = with_monthly_limit(self.facade.settings, registration=registration, substance=substance,
                                        limit=text)
            self.facade.save_settings({"monthly_limits": limits})
        except CsosError as exc:
            self.status.setText(exc.message)
            return False
        self.redraw()
        return True
