"""Fixtures for the pytest-qt tests: a real SQLite order book in tmp_path, filled fast with SQLAlchemy Core."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import datetime as dt  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Sequence  # noqa: E402

import pytest  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from app.config import load_config  # noqa: E402
from app.models.database import Database, open_database, sqlite_url  # noqa: E402
from app.models.orderbook import Order, OrderLine, Product, Registration, Supplier  # noqa: E402
from app.models.states import OrderStatus  # noqa: E402
from app.services.orders.orderbook import OrderBook, OrderFilter, OrderRow, PageKey  # noqa: E402

SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "screenshots"

REGISTRATIONS = [("BJ6125341", "Main Street Pharmacy"), ("FN5623740", "Riverside Clinic Pharmacy")]
SUPPLIERS = ["Acme Drug", "Cardinal Training Supply", "Great Lakes Pharmaceutical Wholesale"]
PRODUCTS = [  # (NDC-11, name, strength, schedule): the catalog the order lines come from
    ("00406055262", "Oxycodone Hydrochloride", "5 mg", "II"),
    ("00009002901", "Alprazolam", "0.5 mg", "IV"),
    ("00555097302", "Amphetamine Aspartate; Amphetamine Sulfate", "20 mg", "IIN"),
    ("00093310905", "Amoxicillin", "500 mg", "NC"),
]
STATUS_CYCLE = [
    OrderStatus.RECEIVED, OrderStatus.ACCEPTED, OrderStatus.TRANSMITTED, OrderStatus.DRAFT, OrderStatus.SIGNED,
    OrderStatus.PARTIALLY_RECEIVED, OrderStatus.NOT_ACCEPTED, OrderStatus.RECEIVED, OrderStatus.QUEUED,
    OrderStatus.CANCELLED, OrderStatus.PARTIALLY_VOIDED, OrderStatus.EXPIRED,
]
BASE_TIME = dt.datetime(2025, 9, 1, 13, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(sqlite_url(tmp_path / "orderbook.sqlite3"))
    yield database
    database.close()


@pytest.fixture
def book(db: Database) -> OrderBook:
    return OrderBook(db, actor="test")


@pytest.fixture
def training_config(tmp_path: Path, db: Database):
    return load_config(data_dir=tmp_path / "data", database_url=db.url, profile="training")


@pytest.fixture
def production_config(tmp_path: Path, db: Database):
    return load_config(data_dir=tmp_path / "data", database_url=db.url, profile="production")


def bulk_orders(db: Database, count: int, *, start: dt.datetime = BASE_TIME,
                step: dt.timedelta = dt.timedelta(minutes=37)) -> list[int]:
    """Insert ``count`` orders (with 1–2 lines each) in a few Core statements; returns ids, oldest first.

    Order ``i`` gets status ``STATUS_CYCLE[i % 12]`` and product ``PRODUCTS[i % 4]`` (plus ``PRODUCTS[(i+1) % 4]``
    on odd ``i``), so tests can compute what a filter must return.
    """
    with db.session() as session, session.begin():
        registration_ids = []
        for dea, name in REGISTRATIONS:
            found = session.scalar(select(Registration.id).where(Registration.dea_number == dea))
            if found is None:
                found = session.execute(insert(Registration).values(
                    dea_number=dea, name=name, address_lines=["1 Main St"], city="Springfield", state="IL",
                    postal_code="62701", schedules="II,IIN,III,IIIN,IV,V").returning(Registration.id)).scalar_one()
            registration_ids.append(found)
        supplier_ids = []
        for name in SUPPLIERS:
            found = session.scalar(select(Supplier.id).where(Supplier.name == name))
            if found is None:
                found = session.execute(insert(Supplier).values(name=name, connector={"kind": "manual"})
                                        .returning(Supplier.id)).scalar_one()
            supplier_ids.append(found)
        product_ids = []
        for ndc, name, strength, schedule in PRODUCTS:
            found = session.scalar(select(Product.id).where(Product.ndc == ndc))
            if found is None:
                found = session.execute(insert(Product).values(
                    ndc=ndc, product_ndc=f"{ndc[:5]}-{ndc[5:9]}", name=name, strength=strength, schedule=schedule,
                    package_quantity=Decimal(100), unit="EA").returning(Product.id)).scalar_one()
            product_ids.append(found)
        first = (session.scalar(select(Order.id).order_by(Order.id.desc()).limit(1)) or 0) + 1
        orders: list[dict[str, Any]] = []
        for i in range(count):
            status = STATUS_CYCLE[i % len(STATUS_CYCLE)]
            created = start + step * i
            orders.append({
                "id": first + i,
                "order_number": f"25X{first + i:06d}",
                "registration_id": registration_ids[i % len(registration_ids)],
                "supplier_id": supplier_ids[i % len(supplier_ids)],
                "status": status,
                "created_at": created,
                "updated_at": created,
                "signed_at": created + dt.timedelta(minutes=5) if status.is_signed else None,
                "note": "",
            })
        if orders:
            session.execute(insert(Order), orders)
        lines: list[dict[str, Any]] = []
        for i in range(count):
            picks = [i % len(PRODUCTS)] + ([(i + 1) % len(PRODUCTS)] if i % 2 else [])
            for number, pick in enumerate(picks, start=1):
                ndc, name, strength, schedule = PRODUCTS[pick]
                lines.append({"order_id": first + i, "line_number": number, "product_id": product_ids[pick],
                              "ndc": ndc, "description": f"{name} {strength}", "schedule": schedule,
                              "packages": 1 + i % 3, "package_quantity": Decimal(100), "unit": "EA"})
        if lines:
            session.execute(insert(OrderLine), lines)
    return [first + i for i in range(count)]


def expected_ids(ids: Sequence[int], predicate: Any) -> set[int]:
    """The ids (from ``bulk_orders``) whose index ``i`` satisfies ``predicate(i)``."""
    return {order_id for i, order_id in enumerate(ids) if predicate(i)}


class CountingSource:
    """Wraps the real ``OrderBookSource`` and records every call, to prove the model reads lazily."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.page_calls = 0
        self.count_calls = 0
        self.row_calls: list[list[int]] = []

    def page(self, order_filter: OrderFilter, *, after: PageKey | None, limit: int,
             newest_first: bool) -> list[PageKey]:
        self.page_calls += 1
        return self.inner.page(order_filter, after=after, limit=limit, newest_first=newest_first)

    def count(self, order_filter: OrderFilter) -> int:
        self.count_calls += 1
        return self.inner.count(order_filter)

    def rows(self, ids: Sequence[int]) -> dict[int, OrderRow]:
        self.row_calls.append(list(ids))
        return self.inner.rows(ids)

    @property
    def rows_loaded(self) -> int:
        return sum(len(call) for call in self.row_calls)


@pytest.fixture
def source(book: OrderBook, db: Database) -> CountingSource:
    from app.ui.order_table_model import OrderBookSource

    return CountingSource(OrderBookSource(book, db))


def add_book_parties(book: OrderBook) -> None:
    """A registration and a supplier created through the order book (for orders made with ``new_order``)."""
    dea, name = REGISTRATIONS[0]
    book.add_registration(dea_number=dea, name=name, address_lines=["1 Main St"], city="Springfield", state="IL",
                          postal_code="62701", schedules=["II", "IIN", "III", "IIIN", "IV", "V"])
    book.add_supplier(name=SUPPLIERS[0])


# -- the bundled FDA catalog, registrations and suppliers, as the order editor and settings tests use them ------------

LIMITED_DEA = "FN5623740"  # a second registration that may only order schedules IV and V


def seed_catalog_book(book: OrderBook) -> None:
    """The bundled catalog plus two registrations (one for every schedule, one for IV and V only) and a supplier."""
    from app.services.catalog import bundled_catalog_paths, import_fda_catalog

    import_fda_catalog(book.db, *bundled_catalog_paths())
    book.add_registration(dea_number=REGISTRATIONS[0][0], name=REGISTRATIONS[0][1], address_lines=["1 Main St"],
                          city="Springfield", state="IL", postal_code="62701",
                          schedules=["II", "IIN", "III", "IIIN", "IV", "V"], expires_on=dt.date(2030, 6, 30))
    book.add_registration(dea_number=LIMITED_DEA, name="Riverside Clinic", address_lines=["5 River Rd"],
                          city="Springfield", state="IL", postal_code="62702", schedules=["IV", "V"],
                          expires_on=dt.date(2030, 6, 30))
    book.add_supplier(name="Acme Drug", dea_number="RA1234563", address_lines=["9 Depot Rd"], city="Memphis",
                      state="TN", postal_code="38118")


@pytest.fixture
def catalog_book(book: OrderBook) -> OrderBook:
    seed_catalog_book(book)
    return book


@pytest.fixture
def facade(qtbot, training_config, book, db):
    """The app-wide façade over the tmp order book; at teardown no worker thread may be left running."""
    from PySide6.QtCore import QThreadPool

    from app.ui.facade import AppFacade

    made = AppFacade(training_config, book, db)
    yield made
    assert made.jobs.shutdown(5000), "background work still running at teardown"
    assert made.jobs.pool.activeThreadCount() == 0
    assert QThreadPool.globalInstance().activeThreadCount() == 0


class ModalAnswers:
    """Stands in for the modal boxes of ``app.ui.messages`` (a real one would wait for a click forever)."""

    def __init__(self) -> None:
        self.alerts: list[tuple[str, str]] = []
        self.questions: list[tuple[str, str]] = []
        self.answers: list[bool] = []

    def alert(self, parent: Any, title: str, message: str) -> None:
        self.alerts.append((title, message))

    def confirm(self, parent: Any, title: str, message: str, **kwargs: Any) -> bool:
        self.questions.append((title, message))
        return self.answers.pop(0) if self.answers else True


@pytest.fixture(autouse=True)
def modal_boxes(monkeypatch) -> ModalAnswers:
    from app.ui import messages

    answers = ModalAnswers()
    monkeypatch.setattr(messages, "alert", answers.alert)
    monkeypatch.setattr(messages, "confirm", answers.confirm)
    return answers
