"""Order-book benchmark: 300,000 orders / 900,000 lines; page latencies and peak RSS.

Run: .venv/bin/python -m tests.bench.bench_orderbook [--orders N] [--json OUT]
Not a test: it prints figures and ratios against a floor measured in the same run (a bare indexed SQLite read of
100 ids, through the sqlite3 module with no ORM), so a slower machine moves both numbers together.
Targets (issue 1/10): first, filtered, deepest page and search ≤ 20 ms each; peak RSS ≤ 350 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STATUSES = ["draft", "signed", "transmitted", "accepted", "partially_received", "received", "not_accepted", "voided",
            "expired"]
PRODUCTS = [("00406055262", "Oxycodone Hydrochloride 5 mg", "II"), ("00555097302", "Amphetamine Salts 20 mg", "IIN"),
            ("00009002901", "Alprazolam 0.5 mg", "IV"), ("00093310905", "Amoxicillin 500 mg", "NC"),
            ("00591040401", "Lorazepam 1 mg", "IV"), ("63459050260", "Buprenorphine and Naloxone 8 mg/2 mg", "IIIN"),
            ("00054023525", "Morphine Sulfate 15 mg", "II"), ("00093005801", "Tramadol Hydrochloride 50 mg", "IV")]


def build(path: Path, orders: int) -> float:
    from app.models.database import open_database, sqlite_url

    open_database(sqlite_url(path)).close()  # schema through the real migrations
    started = time.perf_counter()
    rng = random.Random(7)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    now = dt.datetime(2026, 11, 1)
    connection.executemany(
        "INSERT INTO registrations (id, dea_number, name, address_lines, city, state, postal_code, business_activity,"
        " schedules, created_at) VALUES (?, ?, ?, '[]', 'Springfield', 'IL', '62701', 'RETAIL PHARMACY', "
        "'II,IIN,III,IIIN,IV,V', ?)", [(1, "BJ6125341", "Main Street Pharmacy", now), (2, "FN5623740", "Clinic", now)])
    connection.executemany(
        "INSERT INTO suppliers (id, name, address_lines, connector, created_at) VALUES (?, ?, '[]', '{}', ?)",
        [(i, f"Supplier {i}", now) for i in range(1, 11)])
    connection.executemany(
        "INSERT INTO products (ndc, product_ndc, name, generic_name, strength, dosage_form, labeler, "
        "package_description, package_quantity, unit, schedule, source) VALUES (?, ?, ?, '', '', '', '', '', 100, "
        "'EA', ?, 'bench')", [(ndc, ndc[:9], name, schedule) for ndc, name, schedule in PRODUCTS])
    # A catalog the size of FDA's directory, so product search pays for scanning it.
    connection.executemany(
        "INSERT INTO products (ndc, product_ndc, name, generic_name, strength, dosage_form, labeler, "
        "package_description, package_quantity, unit, schedule, source) VALUES (?, ?, ?, ?, '', '', '', '', 100, "
        "'EA', 'NC', 'bench')",
        [(f"9{i:010d}", f"9{i:08d}", f"Product {i} {rng.choice(['Tablet', 'Capsule', 'Solution'])}",
          f"generic substance {i % 5000}") for i in range(100_000)])
    batch_orders, batch_lines = [], []
    line_id = 0
    for order_id in range(1, orders + 1):
        created = now - dt.timedelta(seconds=(orders - order_id) * 60)
        registration = 1 if order_id % 5 else 2
        number = f"{created:%y}X{order_id:06d}"
        batch_orders.append((order_id, number, registration, rng.randint(1, 10), rng.choice(STATUSES),
                             created.isoformat(sep=" "), created.isoformat(sep=" ")))
        for line_number in range(1, 4):
            line_id += 1
            ndc, name, schedule = PRODUCTS[rng.randrange(len(PRODUCTS))]
            batch_lines.append((line_id, order_id, line_number, ndc, name, schedule, rng.randint(1, 5)))
        if len(batch_orders) >= 20_000:
            _flush(connection, batch_orders, batch_lines)
    _flush(connection, batch_orders, batch_lines)
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return time.perf_counter() - started


def _flush(connection: sqlite3.Connection, orders: list, lines: list) -> None:
    connection.executemany(
        "INSERT INTO orders (id, order_number, registration_id, supplier_id, status, created_at, updated_at, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, '')", orders)
    connection.executemany(
        "INSERT INTO order_lines (id, order_id, line_number, ndc, description, schedule, packages, package_quantity,"
        " unit, line_status) VALUES (?, ?, ?, ?, ?, ?, ?, 100, 'EA', 'open')", lines)
    orders.clear()
    lines.clear()


def _median_ms(function, repeat: int = 15) -> float:
    function()  # warm the page cache and statement cache
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(path: Path) -> dict:
    """Runs in a fresh process so peak RSS is the order book's, not the builder's."""
    from app.models.database import open_database, sqlite_url
    from app.models.orderbook import Order
    from app.models.states import OrderStatus
    from app.services.orders.orderbook import OrderBook, OrderFilter, PageKey
    from sqlalchemy import select

    db = open_database(sqlite_url(path))
    book = OrderBook(db)
    session = db.session()
    raw = sqlite3.connect(path)

    def floor():
        raw.execute("SELECT id FROM orders ORDER BY id DESC LIMIT 100").fetchall()

    def page(order_filter=OrderFilter(), after=None):
        keys = book.order_ids_page(session, order_filter, after=after, limit=100)
        book.order_rows(session, [k.id for k in keys])
        return keys

    total = book.count_orders(session)
    deep_created, deep_id = session.execute(
        select(Order.created_at, Order.id).order_by(Order.created_at.desc(), Order.id.desc())
        .offset(total - 101).limit(1)).one()
    deepest_key = PageKey(deep_created, deep_id)
    assert len(page(after=deepest_key)) == 100
    results = {
        "orders": total,
        "floor_ms": _median_ms(floor),
        "first_page_ms": _median_ms(lambda: page()),
        "filtered_page_ms": _median_ms(lambda: page(OrderFilter(statuses=frozenset({OrderStatus.RECEIVED}),
                                                                supplier_id=3))),
        "deepest_page_ms": _median_ms(lambda: page(after=deepest_key)),
        "search_product_ms": _median_ms(lambda: page(OrderFilter(text="buprenorphine"))),
        "search_order_number_ms": _median_ms(lambda: page(OrderFilter(text="26X10000"))),
        # Worst case: a product no order contains, so every line is looked at.
        "search_absent_product_ms": _median_ms(lambda: page(OrderFilter(text="zolpidem")), repeat=3),
    }
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return results


PAGE_FIGURES = ("first_page_ms", "filtered_page_ms", "deepest_page_ms", "search_product_ms", "search_order_number_ms",
                "search_absent_product_ms")


def run(orders: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        build_seconds = build(path, orders)
        done = subprocess.run([sys.executable, "-m", "tests.bench.bench_orderbook", "--measure", str(path)],
                              capture_output=True, text=True, check=True)
        return build_seconds, json.loads(done.stdout.strip().splitlines()[-1])


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    orders = 30_000 if quick else 300_000
    _build, results = run(orders)
    floor = results["floor_ms"]
    out = [{"figure": f"order book {orders:,} orders: {key[:-3].replace('_', ' ')}", "value": results[key],
            "unit": "ms", "floor": floor, "floor_name": "raw sqlite3 read of 100 ids", "ratio": results[key] / floor,
            "target": "≤ 20 ms", "ok": results[key] <= 20} for key in PAGE_FIGURES]
    out.append({"figure": f"order book {orders:,} orders: peak RSS", "value": results["peak_rss_mb"], "unit": "MB",
                "floor": None, "floor_name": "", "ratio": None, "target": "≤ 350 MB",
                "ok": results["peak_rss_mb"] <= 350})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--json", help="write the figures as JSON to this file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure))))
        return
    build_seconds, results = run(args.orders)
    print(f"built {args.orders:,} orders / {args.orders * 3:,} lines in {build_seconds:.1f} s")
    floor = results["floor_ms"]
    print(f"{'figure':<24}{'value':>10}{'floor':>10}{'ratio':>8}{'target':>10}")
    for key in ("first_page_ms", "filtered_page_ms", "deepest_page_ms", "search_product_ms",
                "search_order_number_ms",
                "search_absent_product_ms"):
        value = results[key]
        verdict = "ok" if value <= 20 else "MISS"
        print(f"{key:<24}{value:>9.2f}ms{floor:>8.3f}ms{value / floor:>7.1f}x{'≤ 20 ms':>9} {verdict}")
    rss = results["peak_rss_mb"]
    print(f"{'peak_rss':<24}{rss:>8.0f}MB{'':>10}{'':>8}{'≤ 350 MB':>10} {'ok' if rss <= 350 else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"build_seconds": build_seconds, **results}, indent=2))


if __name__ == "__main__":
    main()
