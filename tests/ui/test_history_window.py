"""The History window (issue 21): one query fills it, filters narrow it, chart and table agree, CSV/PNG export,
the monthly limit is saved in settings."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pyqtgraph as pg
import pytest
from sqlalchemy import select

from app.models.orderbook import Order, OrderLine, Receipt
from app.models.states import OrderStatus

from app.services.orders.history import monthly_history, monthly_limits
from tests.ui.conftest import REGISTRATIONS, SUPPLIERS, bulk_orders

NOW = dt.datetime(2025, 9, 20, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def window(qtbot, training_config, book, db):
    from app.ui.facade import AppFacade
    from app.ui.history_window import HistoryWindow

    bulk_orders(db, 240, start=dt.datetime(2025, 1, 5, 13, tzinfo=dt.timezone.utc), step=dt.timedelta(days=1))
    with db.session() as session, session.begin():  # received orders: every package arrived
        for line in session.scalars(select(OrderLine).join(Order).where(Order.status == OrderStatus.RECEIVED)):
            session.add(Receipt(order_line_id=line.id, packages_received=line.packages, received_on=NOW.date()))
    facade = AppFacade(training_config, book, db, clock=lambda: NOW)
    made = HistoryWindow(facade)
    qtbot.addWidget(made)
    with qtbot.waitSignal(made.drawn, timeout=10_000):
        made.show()
    yield made
    made.close()
    assert facade.jobs.shutdown(5000)


def _table(window):
    return [[window.table.item(r, c).text() for c in range(window.table.columnCount())]
            for r in range(window.table.rowCount())]


def _choose(combo, value):
    index = combo.findData(value)
    assert index >= 0, value
    combo.setCurrentIndex(index)


def test_window_shows_controlled_substances_with_the_numbers_behind_the_chart(window, db):
    items = [window.substance_combo.itemData(i) for i in range(window.substance_combo.count())]
    assert items == [None, "alprazolam", "amphetamine", "oxycodone"]  # amoxicillin is not controlled
    assert window.schedule_combo.findData("NC") == -1
    lines = [item for item in window.plot.getPlotItem().items if isinstance(item, pg.PlotDataItem)]
    assert len(lines) == 6  # ordered and received for each of three substances
    expected = monthly_history(db, now=NOW, zone=window._zone())
    ordered = sum(row.ordered_units for row in expected.rows)
    shown = sum(Decimal(row[2].split()[0].replace(",", "")) for row in _table(window))
    assert shown == ordered > 0
    assert "24 months" in window.status.text()


def test_filters_narrow_chart_and_table_without_a_new_query(window):
    before = window.report
    _choose(window.substance_combo, "oxycodone")
    assert window.report is before
    bars = [item for item in window.plot.getPlotItem().items if isinstance(item, pg.BarGraphItem)]
    assert len(bars) == 2  # ordered and received side by side
    assert {row[1] for row in _table(window)} == {"Oxycodone"}
    _choose(window.supplier_combo, SUPPLIERS[1])
    assert {row.supplier for row in window.shown.rows} == {SUPPLIERS[1]}
    _choose(window.registration_combo, REGISTRATIONS[1][0])
    assert {row.registration for row in window.shown.rows} <= {REGISTRATIONS[1][0]}
    # received beside ordered
    assert window.shown.rows and any(not row[3].startswith("0 ") for row in _table(window))
    assert all(r.fulfilled_units <= r.ordered_units for r in window.shown.rows)


def test_csv_and_png_export(window, tmp_path):
    _choose(window.substance_combo, "alprazolam")
    path = window.export_csv(tmp_path / "history.csv")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:4] == ["registration", "supplier", "month", "substance"]
    assert len(rows) - 1 == len(window.shown.rows) > 0 and {r[3] for r in rows[1:]} == {"alprazolam"}
    png = window.export_png(tmp_path / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_monthly_limit_is_saved_and_drawn(window):
    assert not window.limit_button.isEnabled()
    assert window.set_limit("500") is False  # no substance chosen yet
    _choose(window.substance_combo, "oxycodone")
    assert not window.limit_button.isEnabled()  # two registrations: which one?
    _choose(window.registration_combo, REGISTRATIONS[0][0])
    _choose(window.substance_combo, "oxycodone")
    assert window.limit_button.isEnabled()
    assert window.set_limit("lots") is False and "not a quantity" in window.status.text()
    assert window.set_limit("1,500") is True
    assert monthly_limits(window.facade.settings) == {(REGISTRATIONS[0][0], "oxycodone"): Decimal(1500)}
    lines = [item for item in window.plot.getPlotItem().items if isinstance(item, pg.InfiniteLine)]
    assert [line.value() for line in lines] == [1500]
    assert window.set_limit("") is True and monthly_limits(window.facade.settings) == {}


def test_records_menu_opens_the_history_window(qtbot, training_config, book, db):
    from app.ui.facade import AppFacade
    from app.ui.history_window import HistoryWindow
    from app.ui.main_window import MainWindow

    facade = AppFacade(training_config, book, db, clock=lambda: NOW)
    main = MainWindow(training_config, book, db, facade=facade, start_checks=False)
    qtbot.addWidget(main)
    records = next(a.menu() for a in main.menuBar().actions() if a.text() == "Rec&ords")
    assert main.history_action in records.actions() and main.history_action.isEnabled()
    main.history_action.trigger()
    assert isinstance(main.history_window, HistoryWindow)
    qtbot.waitUntil(lambda: main.history_window.report is not None, timeout=10_000)
    main.history_window.close()
    assert facade.jobs.shutdown(5000)


def test_records_pdf_has_the_ordering_history_page(tmp_path):
    from app.ui.records_pdf import records_html, render_records_pdf

    meta = {"date_from": "2025-01-01", "date_to": "2025-09-30", "exported_at": "2025-10-01T00:00:00",
            "registrants": ["Main Street Pharmacy (BJ6125341)"],
            "history": [{"registration": "BJ6125341", "substance": "Oxycodone", "unit": "units",
                         "months": [("2025-08", "200", "100"), ("2025-09", "300", "0")]}]}
    page = records_html([], meta)
    assert "Ordering history" in page and "DEA BJ6125341" in page
    assert "<td>2025-08</td><td align='right'>200 units</td><td align='right'>100 units</td>" in page
    assert "Ordering history" not in records_html([], {k: v for k, v in meta.items() if k != "history"})
    render_records_pdf([], meta, tmp_path / "records.pdf")
    data = (tmp_path / "records.pdf").read_bytes()
    assert data.startswith(b"%PDF") and b"/Count 2" in data  # the cover page, then the history page
