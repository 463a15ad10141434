"""Ordering history benchmark (issue 21): the History window drawn on the 300k-order bench book, and what the
unusual-quantity notice adds to the pre-sign check.

Run: .venv/bin/python -m tests.bench.bench_history [--orders N] [--json OUT]
Not a test: figures and ratios against a floor measured in the same run (a bare indexed SQLite read of 100 ids, as
bench_orderbook). The book is bench_orderbook's (300,000 orders, 900,000 lines, 100,000 catalog products), with
signing times and receipts for the received orders added (the history_days triggers fill their table as it is built).
Targets (issue 21): window opened and drawn ≤ 300 ms; the notice adds ≤ 5 ms to the pre-sign check.
The window and notice rows use UTC months (local month starts at UTC midnight: history_days alone); the "Chicago"
figures show the price of months that start inside a UTC day (those days' lines on one side are read one by one).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

NOW = dt.datetime(2026, 11, 15, 12, tzinfo=dt.timezone.utc)
CHICAGO = ZoneInfo("America/Chicago")


def build(path: Path, orders: int) -> float:
    from tests.bench.bench_orderbook import build as build_book

    started = time.perf_counter()
    build_book(path, orders)
    connection = sqlite3.connect(path)
    connection.execute("UPDATE orders SET signed_at = created_at WHERE status != 'draft'")
    connection.execute(
        "INSERT INTO receipts (order_line_id, packages_received, received_on, recorded_at, recorded_by, reason) "
        "SELECT l.id, l.packages, date(o.created_at), o.created_at, '', '' FROM order_lines l "
        "JOIN orders o ON o.id = l.order_id WHERE o.status IN ('received', 'partially_received')")
    connection.commit()
    connection.execute("ANALYZE")
    connection.close()
    return time.perf_counter() - started


def _median_ms(function, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def measure(path: Path, repeat: int) -> dict:
    """In a fresh process: floor, the history query, the window drawn, the notice."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from app.config import load_config
    from app.models.database import open_database, sqlite_url
    from app.services.orders.history import monthly_history, unusual_quantities
    from app.services.orders.orderbook import OrderBook
    from app.ui.facade import AppFacade
    from app.ui.history_window import HistoryWindow

    app = QApplication.instance() or QApplication([])
    db = open_database(sqlite_url(path))
    book = OrderBook(db, actor="bench")
    raw = sqlite3.connect(path)
    utc = dt.timezone.utc
    floor = _median_ms(lambda: raw.execute("SELECT id FROM orders ORDER BY id DESC LIMIT 100").fetchall(), 15)
    query = _median_ms(lambda: monthly_history(db, now=NOW, zone=utc), repeat)
    query_chicago = _median_ms(lambda: monthly_history(db, now=NOW, zone=CHICAGO), repeat)

    with tempfile.TemporaryDirectory() as folder:
        config = load_config(data_dir=folder, database_url=db.url, profile="training")
        facade = AppFacade(config, book, db, clock=lambda: NOW)

        def window_drawn() -> None:
            loop = QEventLoop()
            window = HistoryWindow(facade)
            window.drawn.connect(loop.quit)
            QTimer.singleShot(120_000, loop.quit)
            window.show()
            loop.exec()
            assert window.report is not None
            window.close()
            window.deleteLater()
            app.processEvents()

        drawn = _median_ms(window_drawn, repeat)
        facade.shutdown()

    draft = book.new_order(registration_dea="BJ6125341", supplier_name="Supplier 1")
    book.add_line(draft.id, ndc="00406055262", packages=400)
    book.add_line(draft.id, ndc="00009002901", packages=1)
    notices = unusual_quantities(db, draft.id, now=NOW, zone=utc)
    notice = _median_ms(lambda: unusual_quantities(db, draft.id, now=NOW, zone=utc), max(repeat, 5))
    notice_chicago = _median_ms(lambda: unusual_quantities(db, draft.id, now=NOW, zone=CHICAGO), max(repeat, 5))
    orders = raw.execute("SELECT count(*) FROM orders").fetchone()[0]
    return {"orders": orders, "floor_ms": floor, "query_ms": query, "window_ms": drawn, "notice_ms": notice,
            "query_chicago_ms": query_chicago, "notice_chicago_ms": notice_chicago,
            "notices": [n.message for n in notices]}


def run(orders: int, repeat: int) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        build_seconds = build(path, orders)
        done = subprocess.run([sys.executable, "-m", "tests.bench.bench_history", "--measure", str(path),
                               "--repeat", str(repeat)], capture_output=True, text=True, check=True)
        return build_seconds, json.loads(done.stdout.strip().splitlines()[-1])


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    orders = 30_000 if quick else 300_000
    _build, results = run(orders, repeat=3)
    floor = results["floor_ms"]
    common = {"unit": "ms", "floor": floor, "floor_name": "raw sqlite3 read of 100 ids"}
    return [
        {"figure": f"history {orders:,} orders: window opened and drawn", "value": results["window_ms"],
         "ratio": results["window_ms"] / floor, "target": "≤ 300 ms", "ok": results["window_ms"] <= 300, **common},
        {"figure": f"history {orders:,} orders: its one query", "value": results["query_ms"],
         "ratio": results["query_ms"] / floor, "target": "(in the above)", "ok": results["query_ms"] <= 300,
         **common},
        {"figure": f"history {orders:,} orders: notice added to pre-sign", "value": results["notice_ms"],
         "ratio": results["notice_ms"] / floor, "target": "≤ 5 ms", "ok": results["notice_ms"] <= 5, **common},
        {"figure": f"history {orders:,} orders: its query, Chicago months", "value": results["query_chicago_ms"],
         "ratio": results["query_chicago_ms"] / floor, "target": "(for comparison)", "ok": True, **common},
        {"figure": f"history {orders:,} orders: notice, Chicago months", "value": results["notice_chicago_ms"],
         "ratio": results["notice_chicago_ms"] / floor, "target": "(for comparison)", "ok": True, **common},
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orders", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the figures as JSON to this file")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.repeat)))
        return
    build_seconds, results = run(args.orders, args.repeat)
    print(f"built {args.orders:,} orders in {build_seconds:.1f} s; floor {results['floor_ms']:.3f} ms")
    for key, target in (("window_ms", 300), ("query_ms", 300), ("notice_ms", 5), ("query_chicago_ms", 300),
                        ("notice_chicago_ms", 5)):
        value = results[key]
        print(f"{key:<18}{value:>10.1f} ms  {value / results['floor_ms']:>8.0f}x  target ≤ {target} ms "
              f"{'ok' if value <= target else 'MISS'}")
    for message in results["notices"]:
        print("notice:", message)
    if args.json:
        Path(args.json).write_text(json.dumps({"build_seconds": build_seconds, **results}, indent=2))


if __name__ == "__main__":
    main()
