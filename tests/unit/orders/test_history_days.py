"""history_days (migration 0003) is what a fresh aggregation of the order lines gives, whatever changed the book.

The triggers keep it in the transaction that changes an order, a line or a receipt; these tests make random
changes through the order book and, for what the program never does but a hand-made fix could, plain SQL — on a real
SQLite file (tests/integration/test_postgres_history.py runs them again on PostgreSQL) — and compare the table with
the lines summed afresh after every few steps.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from decimal import Decimal

import pytest
from sqlalchemy import Date, cast, delete, func, select, text, update
from sqlalchemy.orm import sessionmaker

from app.errors import CsosError
from app.models.database import (
    Database,
    _alembic_config,
    make_engine,
    open_database,
    sqlite_url,
    upgrade_schema,
)
from app.models.integrity import install_integrity_rules
from app.models.orderbook import HistoryDay, Order, OrderLine, Receipt
from app.models.states import TRANSITIONS, OrderStatus
from app.services.orders.history import COUNTED_STATUSES
from app.services.orders.orderbook import OrderBook
from tests.factories import PRODUCTS, PURCHASER_DEA, seed

UTC = dt.timezone.utc
START = dt.datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture
def book_url(tmp_path):
    """The order book's URL: a new SQLite file (PostgreSQL in tests/integration/test_postgres_history.py)."""
    return sqlite_url(tmp_path / "orderbook.sqlite3")


def _fresh(connection) -> list[tuple]:
    """The lines of counted orders summed per registration, UTC day, supplier and package, from the lines."""
    o, line, receipts = Order.__table__.c, OrderLine.__table__.c, Receipt.__table__.c
    day = func.date(o.signed_at) if connection.dialect.name == "sqlite" else cast(o.signed_at, Date)
    got = func.coalesce(select(func.sum(receipts.packages_received)).where(receipts.order_line_id == line.id)
                        .scalar_subquery(), 0)
    query = (select(o.registration_id, day, o.supplier_id, line.ndc, line.schedule, line.unit, line.package_quantity,
                    line.description, func.count(), func.sum(line.packages), func.sum(got))
             .select_from(OrderLine.__table__.join(Order.__table__, o.id == line.order_id))
             .where(o.status.in_([s.value for s in COUNTED_STATUSES]), o.signed_at.is_not(None),
                    line.schedule != "NC")
             .group_by(o.registration_id, day, o.supplier_id, line.ndc, line.schedule, line.unit,
                       line.package_quantity, line.description))
    return _normalised(connection.execute(query))


def _kept(connection) -> list[tuple]:
    h = HistoryDay.__table__.c
    return _normalised(connection.execute(select(
        h.registration_id, h.day, h.supplier_id, h.ndc, h.schedule, h.unit, h.package_quantity, h.description,
        h.lines, h.packages, h.fulfilled)))


def _normalised(rows) -> list[tuple]:
    return sorted((reg, str(day)[:10], sup, ndc, schedule, unit, Decimal(str(size)).normalize(), description,
                   int(lines), int(packages), int(fulfilled))
                  for reg, day, sup, ndc, schedule, unit, size, description, lines, packages, fulfilled in rows)


def _assert_consistent(db) -> None:
    with db.engine.connect() as connection:
        assert _kept(connection) == _fresh(connection)


def _sign(book: OrderBook, order_id: int, at: dt.datetime) -> None:
    with book.db.session() as session, session.begin():
        row = session.get(Order, order_id)
        row.signed_document = f"signed-{order_id}".encode()
        row.payload_sha256 = hashlib.sha256(row.signed_document).hexdigest()
        row.signed_at = at
        row.signer_fingerprint = "ab" * 32
        book.transition(order_id, OrderStatus.SIGNED, session=session)


def _step(book: OrderBook, rng: random.Random) -> None:
    """One random change: through the order book where the program makes it, else plain SQL (a hand-made fix)."""
    db = book.db
    with db.engine.connect() as connection:
        orders = connection.execute(select(Order.id, Order.status)).all()
        lines = connection.execute(select(OrderLine.id, OrderLine.order_id, OrderLine.line_number)).all()
        receipts = connection.execute(select(Receipt.id)).scalars().all()
    drafts = [i for i, status in orders if status is OrderStatus.DRAFT]
    signed = [i for i, status in orders if status is not OrderStatus.DRAFT]
    signed_lines = [line_id for line_id, order_id, _number in lines if order_id in signed]  # receivable ones
    action = rng.choice(["new", "new", "line", "remove_line", "sign", "sign", "move", "move", "receipt",
                         "receipt", "receipt_fix", "receipt_delete", "resign_day", "line_fix", "line_delete"])
    at = START + dt.timedelta(days=rng.randrange(60), hours=rng.randrange(24))
    if action == "new" or (action in ("line", "remove_line", "sign") and not drafts):
        order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name=rng.choice(["Acme Drug", "Bay"]))
        for _ in range(rng.randint(0, 3)):
            book.add_line(order.id, ndc=rng.choice(PRODUCTS)[0], packages=rng.randint(1, 9))
    elif action == "line":
        book.add_line(rng.choice(drafts), ndc=rng.choice(PRODUCTS)[0], packages=rng.randint(1, 9))
    elif action == "remove_line":
        draft_lines = [(order_id, number) for _id, order_id, number in lines if order_id in drafts]
        if draft_lines:
            book.remove_line(*rng.choice(draft_lines))
    elif action == "sign":
        _sign(book, rng.choice(drafts), at)
    elif action == "move" and orders:
        order_id, status = rng.choice(orders)
        choices = sorted(TRANSITIONS[status] - {OrderStatus.SIGNED}, key=lambda s: s.value)
        if choices:
            book.transition(order_id, rng.choice(choices))
    elif action == "receipt" and signed_lines:
        line_id = rng.choice(signed_lines)
        with db.session() as session, session.begin():
            session.add(Receipt(order_line_id=line_id, packages_received=rng.randint(1, 5), received_on=at.date()))
    elif action == "receipt_fix" and receipts and signed_lines:
        with db.engine.begin() as connection:
            connection.execute(update(Receipt).where(Receipt.id == rng.choice(receipts)).values(
                packages_received=rng.randint(0, 7), **({"order_line_id": rng.choice(signed_lines)}
                                                         if rng.random() < 0.3 else {})))
    elif action == "receipt_delete" and receipts:
        with db.engine.begin() as connection:
            connection.execute(delete(Receipt).where(Receipt.id == rng.choice(receipts)))
    elif action == "resign_day" and signed:
        # Another UTC day (or hour of the same day), another supplier
        with db.engine.begin() as connection:
            supplier = connection.execute(text("SELECT id FROM suppliers ORDER BY id")).scalars().all()
            connection.execute(update(Order).where(Order.id == rng.choice(signed)).values(
                signed_at=at, supplier_id=rng.choice(supplier)))
    elif action == "line_fix" and lines:
        ndc, name, _strength, schedule, size, unit = rng.choice(PRODUCTS)
        with db.engine.begin() as connection:
            connection.execute(update(OrderLine).where(OrderLine.id == rng.choice(lines)[0]).values(
                packages=rng.randint(1, 9), ndc=ndc, description=name, schedule=schedule, package_quantity=size,
                unit=unit))
    elif action == "line_delete" and lines:
        line_id = rng.choice(lines)[0]
        with db.engine.begin() as connection:
            connection.execute(delete(Receipt).where(Receipt.order_line_id == line_id))
            connection.execute(delete(OrderLine).where(OrderLine.id == line_id))


@pytest.mark.parametrize("seed_value", [1, 2])
def test_history_days_equals_a_fresh_aggregation_after_random_changes(book_url, seed_value):
    db = open_database(book_url)
    try:
        book = OrderBook(db, actor="test")
        seed(book)
        book.add_supplier(name="Bay", dea_number="RB1234563")
        rng = random.Random(seed_value)
        checked_non_empty = 0
        for step in range(1, 161):
            try:
                _step(book, rng)
            except CsosError:
                pass  # a change the order book refuses (e.g. receiving more than shipped): nothing changed
            if step % 8 == 0:
                _assert_consistent(db)
                with db.engine.connect() as connection:
                    checked_non_empty += bool(_kept(connection))
        assert checked_non_empty >= 10  # the comparisons were not of two empty tables
    finally:
        db.close()


def test_upgrade_fills_history_days_from_the_lines_already_in_the_book(tmp_path):
    """An order book made before migration 0003: the upgrade sums what it already holds, then the triggers keep
    it."""
    upgrade_fills_history_days(sqlite_url(tmp_path / "old.sqlite3"))


def upgrade_fills_history_days(url: str) -> None:
    """``url``: an empty database (tests/integration/test_postgres_history.py passes a PostgreSQL one)."""
    from alembic import command

    engine = make_engine(url)
    with engine.begin() as connection:
        config = _alembic_config(engine)
        config.attributes["connection"] = connection
        command.upgrade(config, "0002_outbox")
    # The older book as the program of that time wrote it (open_database refuses an older shared schema).
    db = Database(url=url, engine=engine, session_factory=sessionmaker(engine, expire_on_commit=False))
    install_integrity_rules(db.session_factory)
    book = OrderBook(db, actor="test")
    seed(book)
    for packages, status in ((2, OrderStatus.QUEUED), (3, OrderStatus.CANCELLED), (4, OrderStatus.QUEUED)):
        order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name="Acme Drug")
        book.add_line(order.id, ndc=PRODUCTS[0][0], packages=packages)
        book.add_line(order.id, ndc=PRODUCTS[3][0], packages=1)  # not controlled
        _sign(book, order.id, START + dt.timedelta(days=packages))
        book.transition(order.id, status)
    db.close()

    upgrade_schema(engine := make_engine(url))  # as `csos-desk db upgrade` does
    engine.dispose()
    db = open_database(url)
    try:
        with db.engine.connect() as connection:
            kept = _kept(connection)
            assert kept == _fresh(connection)
        assert [(day, packages) for _r, day, *_rest, _lines, packages, _f in kept] == [("2026-09-03", 2),
                                                                                     ("2026-09-05", 4)]
        book = OrderBook(db, actor="test")
        book.transition(1, OrderStatus.CANCELLED)
        _assert_consistent(db)
    finally:
        db.close()


def test_the_triggers_count_the_statuses_the_history_counts():
    """The migration names the statuses that do not count; the history's COUNTED_STATUSES must be the rest."""
    import importlib.util

    from app.models.database import MIGRATIONS_DIR

    spec = importlib.util.spec_from_file_location("m0003", MIGRATIONS_DIR / "versions" / "0003_history_days.py")
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert {s.value for s in OrderStatus} - set(migration.NOT_COUNTED) == {s.value for s in COUNTED_STATUSES}


ZONES = ["America/Chicago", "UTC", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney", "Pacific/Honolulu",
         "Europe/London"]


def _expected(book: OrderBook, history_filter, months: int, now: dt.datetime, zone) -> list[tuple]:
    """The history computed in Python from every line, as the old one-pass query did: lines of counted orders
    summed per registration, supplier, local month and package (the greatest description), named, summed again."""
    from app.models.orderbook import Product
    from app.services.orders.history import month_window, substance_names, substance_of

    firsts, bounds = month_window(now, months, zone)
    with book.db.session() as session:
        products = {p.ndc: p for p in session.scalars(select(Product))}
        groups: dict[tuple, list] = {}
        for order in session.scalars(select(Order)).unique():
            if order.status not in COUNTED_STATUSES or order.signed_at is None:
                continue
            if not bounds[0] <= order.signed_at < bounds[-1]:
                continue
            if history_filter.registration and order.registration.dea_number != history_filter.registration:
                continue
            if history_filter.supplier and order.supplier.name != history_filter.supplier:
                continue
            month = max(i for i, bound in enumerate(bounds[:-1]) if bound <= order.signed_at)
            for line in order.lines:
                if line.schedule == "NC" or (history_filter.schedule and line.schedule != history_filter.schedule):
                    continue
                key = (order.registration.dea_number, order.supplier.name, month, line.ndc, line.schedule,
                       line.unit, Decimal(line.package_quantity))
                entry = groups.setdefault(key, ["", 0, 0])
                entry[0] = max(entry[0], line.description)
                entry[1] += line.packages
                entry[2] += sum(r.packages_received for r in line.receipts)
    named: dict[tuple, list] = {}
    for (dea, supplier, month, ndc, schedule, unit, size), (description, packages, got) in groups.items():
        product = products.get(ndc)
        text_ = f"{product.generic_name if product else ''} {product.name if product else ''} {description}"
        substance = substance_of(text_, substance_names())
        if history_filter.substances and substance not in history_filter.substances:
            continue
        entry = named.setdefault((dea, substance, month, supplier, schedule, unit), [0, Decimal(0), 0, Decimal(0)])
        entry[0] += packages
        entry[1] += packages * size
        entry[2] += got
        entry[3] += got * size
    return sorted((dea, supplier, firsts[month], substance, schedule, unit, p, u.normalize(), f, fu.normalize())
                  for (dea, substance, month, supplier, schedule, unit), (p, u, f, fu) in named.items())


def test_history_equals_the_lines_summed_in_python_in_every_zone(book_url):
    """Orders signed in the hours around local month starts (UTC days split at whole, half and quarter hours, on
    either side of noon), received in part: the history from history_days and the split days' lines equals the
    lines summed afresh, for every zone, window and filter."""
    from zoneinfo import ZoneInfo

    from app.services.orders.history import HistoryFilter, monthly_history

    db = open_database(book_url)
    try:
        book = OrderBook(db, actor="test")
        seed(book)
        book.add_supplier(name="Bay", dea_number="RB1234563")
        rng = random.Random(5)
        now = dt.datetime(2026, 11, 20, 15, tzinfo=UTC)
        statuses = [OrderStatus.QUEUED, OrderStatus.CANCELLED, OrderStatus.EXPIRED]
        for number in range(70):
            month = dt.datetime(2026, rng.randint(3, 11), 1, tzinfo=UTC)
            at = month + dt.timedelta(minutes=rng.randint(-16 * 60, 16 * 60))
            order = book.new_order(registration_dea=PURCHASER_DEA, supplier_name=rng.choice(["Acme Drug", "Bay"]))
            for _ in range(rng.randint(1, 3)):
                book.add_line(order.id, ndc=rng.choice(PRODUCTS)[0], packages=rng.randint(1, 9))
            _sign(book, order.id, at)
            book.transition(order.id, statuses[number % 3])
        with db.session() as session, session.begin():
            for line in session.scalars(select(OrderLine)):
                if rng.random() < 0.4:
                    session.add(Receipt(order_line_id=line.id, packages_received=rng.randint(1, line.packages),
                                        received_on=dt.date(2026, 11, 1)))
        with db.engine.begin() as connection:  # two descriptions of one package (a hand-entered line)
            connection.execute(update(OrderLine).where(OrderLine.id % 7 == 0).values(description="Oxycodone HCl"))
        filters = [HistoryFilter(), HistoryFilter(registration=PURCHASER_DEA, substances=("oxycodone",)),
                   HistoryFilter(supplier="Bay", schedule="II")]
        compared = 0
        for name in ZONES:
            zone = ZoneInfo(name)
            for months, history_filter in ((24, filters[0]), (7, filters[1]), (3, filters[2])):
                report = monthly_history(db, history_filter, months=months, now=now, zone=zone)
                got = sorted((r.registration, r.supplier, r.month, r.substance, r.schedule, r.unit,
                              r.ordered_packages, r.ordered_units, r.fulfilled_packages, r.fulfilled_units)
                             for r in report.rows)
                assert got == _expected(book, history_filter, months, now, zone), (name, months)
                compared += len(got)
        assert compared > 100
    finally:
        db.close()
