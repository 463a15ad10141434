"""Ordering history aggregation and the unusual-quantity notice (issue 21), on a real SQLite order book.

tests/integration/test_postgres_history.py re-collects these tests on PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from app.models.orderbook import Order, Product, Receipt
from app.models.states import OrderStatus
from app.services.orders.history import (
    HistoryError,
    HistoryFilter,
    monthly_history,
    monthly_limits,
    month_window,
    substance_of,
    unusual_quantities,
    with_monthly_limit,
)
from tests.factories import PURCHASER_DEA, seed

UTC = dt.timezone.utc
CHICAGO = ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
OXY_TABLETS = "00406055262"  # factories: Oxycodone Hydrochloride, 100 tablets
OXY_OTHER_TABLETS = "59011041010"  # a brand name; the generic name says oxycodone
OXY_SOLUTION = "00054039250"  # oral solution, 500 mL
AMPHETAMINE = "00555097302"
AMOXICILLIN = "00093310905"


@pytest.fixture
def world(book):
    seed(book)
    book.add_supplier(name="Bay Wholesale", dea_number="RB1234563")
    add_more_oxycodone_products(book)
    return book


def add_more_oxycodone_products(book):
    """A brand-name oxycodone (its generic name says oxycodone) and an oral solution in mL, beside the factories'
    tablets: three NDCs of one substance, two units."""
    with book.db.session() as session:
        session.add(Product(ndc=OXY_OTHER_TABLETS, product_ndc="59011-410", name="OxyContin", strength="10 mg",
                            generic_name="OXYCODONE HYDROCHLORIDE", schedule="II", package_quantity=Decimal(100),
                            unit="EA"))
        session.add(Product(ndc=OXY_SOLUTION, product_ndc="0054-0392", name="Oxycodone Oral Solution",
                            generic_name="Oxycodone Hydrochloride", strength="5 mg/5mL", schedule="II",
                            package_quantity=Decimal(500), unit="ML"))
        session.commit()


def signed(book, lines, *, at, status=OrderStatus.SIGNED, supplier="Acme Drug", received=()):
    """A signed order with ``lines`` [(ndc, packages)] signed ``at``, moved on to ``status``; ``received`` holds
    packages received per line (in line order)."""
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name=supplier)
    for ndc, packages in lines:
        book.add_line(order.id, ndc=ndc, packages=packages)
    with book.db.session() as session, session.begin():
        row = session.get(Order, order.id)
        row.signed_document = b"signed-" + order.order_number.encode()
        row.payload_sha256 = hashlib.sha256(row.signed_document).hexdigest()
        row.signed_at = at
        row.signer_fingerprint = "ab" * 32
        book.transition(order.id, OrderStatus.SIGNED, session=session)
    path = {
        OrderStatus.SIGNED: [],
        OrderStatus.CANCELLED: [OrderStatus.CANCELLED],
        OrderStatus.ACCEPTED: [OrderStatus.QUEUED, OrderStatus.TRANSMITTED, OrderStatus.ACCEPTED],
        OrderStatus.NOT_ACCEPTED: [OrderStatus.QUEUED, OrderStatus.TRANSMITTED, OrderStatus.NOT_ACCEPTED],
        OrderStatus.LOST: [OrderStatus.QUEUED, OrderStatus.TRANSMITTED, OrderStatus.LOST],
        OrderStatus.PARTIALLY_RECEIVED: [OrderStatus.QUEUED, OrderStatus.TRANSMITTED, OrderStatus.ACCEPTED,
                                         OrderStatus.PARTIALLY_RECEIVED],
    }[status]
    for step in path:
        book.transition(order.id, step)
    if received:
        full = book.get_order(order.id)
        with book.db.session() as session, session.begin():
            for line, packages in zip(full.lines, received):
                if packages:
                    session.add(Receipt(order_line_id=line.id, packages_received=packages,
                                        received_on=at.date()))
    return book.get_order(order.id)


def _by(report, **wanted):
    return [row for row in report.rows if all(getattr(row, k) == v for k, v in wanted.items())]


def test_every_ndc_of_a_substance_counts_together_in_dosage_units(world, db):
    at = dt.datetime(2026, 10, 5, 12, tzinfo=UTC)
    signed(world, [(OXY_TABLETS, 2), (OXY_OTHER_TABLETS, 3), (AMPHETAMINE, 1), (AMOXICILLIN, 4)], at=at)
    signed(world, [(OXY_SOLUTION, 2)], at=at)
    report = monthly_history(db, now=NOW, zone=UTC_ZONE)
    oxy = _by(report, substance="oxycodone", unit="EA")
    assert [(r.month, r.ordered_packages, r.ordered_units) for r in oxy] == [(dt.date(2026, 10, 1), 5, 500)]
    # mL where the package is measured so, in its own row
    assert [(r.ordered_packages, r.ordered_units) for r in _by(report, substance="oxycodone", unit="ML")] == \
        [(2, 1000)]
    assert [r.ordered_units for r in _by(report, substance="amphetamine")] == [100]
    assert not any(r.schedule == "NC" for r in report.rows)  # amoxicillin is not controlled
    assert len(report.months) == 24 and report.months[-1] == dt.date(2026, 11, 1)


def test_cancelled_not_accepted_lost_and_draft_orders_are_not_counted(world, db):
    at = dt.datetime(2026, 9, 10, 12, tzinfo=UTC)
    signed(world, [(OXY_TABLETS, 1)], at=at, status=OrderStatus.ACCEPTED)
    signed(world, [(OXY_TABLETS, 10)], at=at, status=OrderStatus.CANCELLED)
    signed(world, [(OXY_TABLETS, 20)], at=at, status=OrderStatus.NOT_ACCEPTED)
    signed(world, [(OXY_TABLETS, 30)], at=at, status=OrderStatus.LOST)  # its replacement orders the goods again
    draft = world.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    world.add_line(draft.id, ndc=OXY_TABLETS, packages=40)
    report = monthly_history(db, now=NOW, zone=UTC_ZONE)
    assert [(r.ordered_packages, r.ordered_units) for r in _by(report, substance="oxycodone")] == [(1, 100)]


def test_partial_receipts_are_fulfilled_beside_ordered(world, db):
    at = dt.datetime(2026, 8, 3, 12, tzinfo=UTC)
    signed(world, [(OXY_TABLETS, 4), (OXY_OTHER_TABLETS, 2)], at=at, status=OrderStatus.PARTIALLY_RECEIVED,
           received=(1, 2))
    # two receipts of one line add up
    order = signed(world, [(OXY_TABLETS, 3)], at=at, status=OrderStatus.PARTIALLY_RECEIVED, received=(1,))
    with db.session() as session, session.begin():
        session.add(Receipt(order_line_id=order.lines[0].id, packages_received=1, received_on=at.date()))
    (row,) = _by(monthly_history(db, now=NOW, zone=UTC_ZONE), substance="oxycodone")
    assert (row.ordered_packages, row.ordered_units) == (9, 900)
    assert (row.fulfilled_packages, row.fulfilled_units) == (5, 500)


def test_months_are_the_pharmacys_local_months(world, db):
    # 03:00 UTC on 1 March is 21:00 on 28 February in Chicago (and DST starts in March there).
    signed(world, [(OXY_TABLETS, 1)], at=dt.datetime(2026, 3, 1, 3, tzinfo=UTC))
    # Daylight saving ends on 1 November 2026: 05:30 UTC is 00:30 CDT that day (November) ...
    signed(world, [(OXY_TABLETS, 2)], at=dt.datetime(2026, 11, 1, 5, 30, tzinfo=UTC))
    # ... and 04:30 UTC is 23:30 CDT on 31 October.
    signed(world, [(OXY_TABLETS, 4)], at=dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC))
    chicago = {r.month: r.ordered_packages for r in monthly_history(db, now=NOW, zone=CHICAGO).rows}
    assert chicago == {dt.date(2026, 2, 1): 1, dt.date(2026, 10, 1): 4, dt.date(2026, 11, 1): 2}
    utc = {r.month: r.ordered_packages for r in monthly_history(db, now=NOW, zone=UTC_ZONE).rows}
    assert utc == {dt.date(2026, 3, 1): 1, dt.date(2026, 11, 1): 6}


def test_window_is_the_last_months_and_filters_narrow(world, db):
    signed(world, [(OXY_TABLETS, 1)], at=dt.datetime(2024, 11, 1, 12, tzinfo=UTC))  # 25 months back: outside
    signed(world, [(OXY_TABLETS, 2)], at=dt.datetime(2024, 12, 1, 12, tzinfo=UTC))
    signed(world, [(OXY_TABLETS, 3), (AMPHETAMINE, 1)], at=dt.datetime(2026, 11, 2, tzinfo=UTC),
           supplier="Bay Wholesale")
    report = monthly_history(db, now=NOW, zone=UTC_ZONE)
    assert sorted((r.month, r.supplier, r.ordered_packages) for r in _by(report, substance="oxycodone")) == [
        (dt.date(2024, 12, 1), "Acme Drug", 2), (dt.date(2026, 11, 1), "Bay Wholesale", 3)]
    assert {r.substance for r in monthly_history(db, HistoryFilter(schedule="IIN"), now=NOW, zone=UTC_ZONE).rows} \
        == {"amphetamine"}
    assert [r.supplier for r in monthly_history(db, HistoryFilter(supplier="Acme Drug"), now=NOW,
                                                zone=UTC_ZONE).rows] == ["Acme Drug"]
    assert {r.substance for r in monthly_history(db, HistoryFilter(substances=("amphetamine",)), now=NOW,
                                                 zone=UTC_ZONE).rows} == {"amphetamine"}
    assert monthly_history(db, HistoryFilter(registration="FN5623740"), now=NOW, zone=UTC_ZONE).rows == []
    series = report.totals("substance")
    assert series[("oxycodone", "EA")]["ordered"][-1] == 300 and series[("oxycodone", "EA")]["ordered"][0] == 200


def test_month_window_boundaries_follow_daylight_saving():
    months, bounds = month_window(NOW, 24, CHICAGO)
    assert months[0] == dt.date(2024, 12, 1) and len(bounds) == 25
    assert bounds[-1] == dt.datetime(2026, 12, 1, 6, tzinfo=UTC)  # CST, UTC-6
    assert bounds[months.index(dt.date(2026, 7, 1))] == dt.datetime(2026, 7, 1, 5, tzinfo=UTC)  # CDT, UTC-5
    with pytest.raises(HistoryError):
        month_window(NOW, 0, None)


def test_substance_is_found_by_whole_words_in_table_order():
    assert substance_of("OXYCODONE HYDROCHLORIDE") == "oxycodone"
    assert substance_of("Oxycodone and Acetaminophen") == "oxycodone"
    assert substance_of("Dexmethylphenidate Hydrochloride") == "dexmethylphenidate"
    assert substance_of("Methylphenidate HCl") == "methylphenidate"
    assert substance_of("Hydrocodone Bitartrate/Acetaminophen") == "hydrocodone"
    assert substance_of("Amoxicillin") == "other"


# -- the notice ------------------------------------------------------------------------------------------------------

UTC_ZONE = ZoneInfo("UTC")


def _usual_history(book, packages_per_month=(1, 1, 1, 1, 1, 1)):
    """One order of OXY_TABLETS per month over the six months before NOW's month (100 tablets a package)."""
    for offset, packages in zip(range(6, 0, -1), packages_per_month):
        month = (NOW.month - offset - 1) % 12 + 1
        year = NOW.year if NOW.month - offset > 0 else NOW.year - 1
        signed(book, [(OXY_TABLETS, packages)], at=dt.datetime(year, month, 10, tzinfo=UTC),
               status=OrderStatus.ACCEPTED)


def _draft(book, lines):
    order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
    for ndc, packages in lines:
        book.add_line(order.id, ndc=ndc, packages=packages)
    return order


def test_notice_when_this_month_would_pass_twice_the_usual(world, db):
    _usual_history(world)  # usual = 100 tablets a month
    signed(world, [(OXY_OTHER_TABLETS, 1)], at=dt.datetime(2026, 11, 2, tzinfo=UTC))  # 100 already this month
    draft = _draft(world, [(OXY_TABLETS, 2), (OXY_OTHER_TABLETS, 1)])  # +300 → 400 = 4.0×
    (notice,) = unusual_quantities(db, draft.id, now=NOW, zone=UTC_ZONE)
    assert (notice.substance, notice.this_order, notice.month_before, notice.usual) == ("oxycodone", 300, 100, 100)
    assert notice.ratio == Decimal("4.0")
    assert notice.message.startswith("Oxycodone this month would be 4.0× your usual: your supplier may hold "
                                     "this order for review.")
    # exactly twice the usual is not unusual
    small = _draft(world, [(OXY_TABLETS, 1)])  # 100 + 100 = 200 = 2.0×
    assert unusual_quantities(db, small.id, now=NOW, zone=UTC_ZONE) == []


def test_no_notice_without_history_or_controlled_lines(world, db):
    assert unusual_quantities(db, _draft(world, [(OXY_TABLETS, 50)]).id, now=NOW, zone=UTC_ZONE) == []
    _usual_history(world)
    assert unusual_quantities(db, _draft(world, [(AMOXICILLIN, 50)]).id, now=NOW, zone=UTC_ZONE) == []


def test_a_limit_the_pharmacy_entered_replaces_the_usual(world, db):
    _usual_history(world, (10, 10, 10, 10, 10, 10))  # usual 1,000 tablets: 3 packages is far below twice that
    draft = _draft(world, [(OXY_TABLETS, 3)])
    assert unusual_quantities(db, draft.id, now=NOW, zone=UTC_ZONE) == []
    settings = {"monthly_limits": with_monthly_limit({}, registration=PURCHASER_DEA, substance="Oxycodone",
                                                     limit="250")}
    (notice,) = unusual_quantities(db, draft.id, now=NOW, zone=UTC_ZONE, limits=monthly_limits(settings))
    assert notice.limit == 250 and notice.projected == 300
    assert notice.message == ("Oxycodone this month would be 300 units, above the 250 units a month you set: "
                              "your supplier may hold this order for review.")
    assert unusual_quantities(db, draft.id, now=NOW, zone=UTC_ZONE,
                              limits={(PURCHASER_DEA, "oxycodone"): Decimal(300)}) == []


def test_limit_setting_is_checked_and_can_be_removed():
    settings = {"monthly_limits": with_monthly_limit({}, registration=PURCHASER_DEA, substance="oxycodone",
                                                     limit="3,000")}
    assert monthly_limits(settings) == {(PURCHASER_DEA, "oxycodone"): Decimal(3000)}
    assert with_monthly_limit(settings, registration=PURCHASER_DEA, substance="oxycodone", limit="") == {}
    with pytest.raises(HistoryError):
        with_monthly_limit({}, registration=PURCHASER_DEA, substance="aspirin", limit="5")
    with pytest.raises(HistoryError):
        with_monthly_limit({}, registration=PURCHASER_DEA, substance="oxycodone", limit="lots")
    assert monthly_limits({"monthly_limits": {"X": {"oxycodone": "nan?"}}}) == {}


def test_zone_and_limits_come_from_the_registrations_settings(world, db):
    from app.services.orders.history import pharmacy_zone

    settings = {"time_zones": {PURCHASER_DEA: "America/Chicago"}}
    assert pharmacy_zone(settings, PURCHASER_DEA) == CHICAGO
    assert pharmacy_zone(settings, "FN5623740") is None and pharmacy_zone({}, PURCHASER_DEA) is None
    _usual_history(world)
    # 04:30 UTC on 1 November is still October in Chicago: 2 packages this month only if read in UTC.
    signed(world, [(OXY_TABLETS, 2)], at=dt.datetime(2026, 11, 1, 4, 30, tzinfo=UTC))
    draft = _draft(world, [(OXY_TABLETS, 1)])
    assert [n.month_before for n in unusual_quantities(db, draft.id, now=NOW, zone=UTC_ZONE)] == [200]
    assert unusual_quantities(db, draft.id, now=NOW, settings=settings) == []  # 100 this month in Chicago
    limited = dict(settings, monthly_limits={PURCHASER_DEA: {"oxycodone": "50"}})
    assert [n.limit for n in unusual_quantities(db, draft.id, now=NOW, settings=limited)] == [50]


def test_report_filters_without_a_new_query(world, db):
    signed(world, [(OXY_TABLETS, 3), (AMPHETAMINE, 1)], at=dt.datetime(2026, 11, 2, tzinfo=UTC),
           supplier="Bay Wholesale")
    signed(world, [(OXY_TABLETS, 1)], at=dt.datetime(2026, 10, 2, tzinfo=UTC))
    report = monthly_history(db, now=NOW, zone=UTC_ZONE)
    assert report.choices() == {"registration": [PURCHASER_DEA], "schedule": ["II", "IIN"],
                                "substance": ["amphetamine", "oxycodone"], "supplier": ["Acme Drug", "Bay Wholesale"]}
    assert [r.ordered_packages for r in report.filtered(substance="oxycodone", supplier="Acme Drug").rows] == [1]
    assert [r.substance for r in report.filtered(schedule="IIN").rows] == ["amphetamine"]
    assert report.filtered(registration="FN5623740").rows == []


def test_the_records_export_hands_the_history_page_to_the_pdf(world, db, tmp_path):
    from app.services.orders.records import drawn_in_this_process, export_records

    signed(world, [(OXY_TABLETS, 2), (OXY_SOLUTION, 1)], at=dt.datetime.now(UTC) - dt.timedelta(days=1))
    seen = {}
    today = dt.date.today()
    export_records(db, date_from=today - dt.timedelta(days=30), date_to=today, out_dir=tmp_path / "out",
                   render_pdf=drawn_in_this_process(
                       lambda views, meta, path: seen.update(meta) or path.write_bytes(b"%PDF-1.4\n")))
    rows = {(entry["substance"], entry["unit"]): entry for entry in seen["history"]}
    assert set(rows) == {("Oxycodone", "units"), ("Oxycodone", "mL")}
    assert [m[1] for m in rows[("Oxycodone", "units")]["months"]] == ["200"]
    assert rows[("Oxycodone", "mL")]["registration"] == PURCHASER_DEA


@pytest.mark.parametrize("zone_name", ["UTC", "America/Chicago", "Asia/Kolkata", "Pacific/Auckland",
                                       "Pacific/Honolulu"])
def test_the_notice_reads_the_same_months_as_the_charts(world, db, zone_name):
    """The notice has its own lean query (issue 21: ≤ 5 ms on a 300k-order book). Its figures must be the charts'
    own: orders signed around every UTC and local month start, several NDCs of one substance, mL apart from
    tablets, a cancelled order; compared month by month with ``monthly_history`` in zones whose months start
    inside a UTC day on either side."""
    zone = ZoneInfo(zone_name)
    _firsts, bounds = month_window(NOW, 7, zone)
    moments = []
    for bound in bounds[:-1]:
        for hours in (-13, -1, -0.5, 0.5, 1, 13, 24 * 9):
            moments.append(bound + dt.timedelta(hours=hours))
        midnight = bound.astimezone(UTC).replace(hour=0, minute=0)
        moments += [midnight + dt.timedelta(minutes=20), midnight - dt.timedelta(minutes=20)]
    products = [OXY_TABLETS, OXY_OTHER_TABLETS, OXY_SOLUTION, AMPHETAMINE]
    for index, moment in enumerate(m for m in moments if m < NOW):
        lines = [(products[index % 4], 1 + index % 3), (products[(index + 1) % 4], 2)]
        signed(world, lines, at=moment, status=OrderStatus.CANCELLED if index % 11 == 5 else OrderStatus.ACCEPTED)
    draft = _draft(world, [(OXY_TABLETS, 1), (OXY_SOLUTION, 1), (AMPHETAMINE, 1)])
    limits = {(PURCHASER_DEA, "oxycodone"): Decimal("0.5"), (PURCHASER_DEA, "amphetamine"): Decimal("0.5")}
    notices = {(n.substance, n.unit): n for n in unusual_quantities(db, draft.id, now=NOW, zone=zone,
                                                                     limits=limits)}
    assert set(notices) == {("oxycodone", "EA"), ("oxycodone", "ML"), ("amphetamine", "EA")}
    chart = monthly_history(db, HistoryFilter(registration=PURCHASER_DEA), months=7, now=NOW, zone=zone)
    for (substance, unit), notice in notices.items():
        per_month = [sum((r.ordered_units for r in _by(chart, substance=substance, unit=unit, month=month)),
                         Decimal(0)) for month in chart.months]
        assert notice.month_before == per_month[-1]
        assert notice.usual == (sum(per_month[:-1], Decimal(0)) / 6).quantize(Decimal("0.1"))
        assert sum(per_month) > 0


@pytest.mark.parametrize("zone", [None, ZoneInfo("America/New_York"), ZoneInfo("Pacific/Auckland"), ZoneInfo("UTC")])
def test_the_notices_months_kept_per_month_are_the_window_of_each_moment(zone):
    """The notice's window is worked out once per local month and zone: any moment gets the window it would get
    worked out afresh, across month ends, year ends and daylight-saving changes in either hemisphere."""
    from app.services.orders.history import BASELINE_MONTHS, _notice_months, month_window

    start = dt.datetime(2025, 12, 30, tzinfo=dt.timezone.utc)
    moments = [start + dt.timedelta(hours=7 * step) for step in range(0, 24 * 480 // 7)]  # 16 months, 7-hour steps
    for moment in moments:
        assert _notice_months(moment, zone) == month_window(moment, BASELINE_MONTHS + 1, zone), moment


def test_the_notices_months_follow_a_change_of_the_computers_zone(monkeypatch):
    import time

    from app.services.orders.history import BASELINE_MONTHS, _notice_months, month_window

    moment = dt.datetime(2026, 3, 31, 23, 30, tzinfo=dt.timezone.utc)  # April in Tokyo, March in UTC and Los Angeles
    try:
        windows = []
        for name in ("UTC", "Asia/Tokyo", "America/Los_Angeles", "UTC"):
            monkeypatch.setenv("TZ", name)
            time.tzset()
            windows.append(_notice_months(moment, None))
            assert windows[-1] == month_window(moment, BASELINE_MONTHS + 1, None), name
        assert windows[0] == windows[3] and len({tuple(w[1]) for w in windows}) == 3
    finally:
        monkeypatch.undo()
        time.tzset()
