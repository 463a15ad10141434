"""Startup benchmark (issue 9/10 item 2): time to the main window's first paint, and to the order list.

Run: .venv/bin/python -m tests.bench.bench_startup [--runs N] [--json OUT]

Figures: ``python -m app`` with CSOS_EXIT_AFTER_FIRST_PAINT=1 on an order book with a few hundred orders prints
``first-paint-ms`` (from the entry point's first line to the first paint of the main window: menus, toolbar and the
"Opening the order book…" placeholder, usable) and ``order-book-ready-ms`` (to the first paint of the order list
showing the newest orders — every cell as the opened list shows it, read by a worker with sqlite3 before the order
book is opened, app.models.first_page; the list waits for the full opening when that read cannot be done, e.g.
PostgreSQL), then ``order-book-attached-ms`` (the order book opened and attached: search, filters and commands
enabled; printed for information, no target), then quits. Phase figure, for information: ``window-built-ms`` (to the
main window built, not yet shown: imports, QApplication, menus, toolbar, filters, placeholder); the first paint minus
it is showing and painting the window.
Floor: a bare PySide6 program (QApplication + QMainWindow, shown, quit after its first paint), timed the same way in
the same run. Targets (issue 6/7): first paint ≤ 1.8×, the order list shown ≤ 3.5× that same floor. Each is run several
times in fresh processes; the median counts. Both exclude the interpreter's own start, which is the same for both;
the total wall time of each process is printed too.

Python's bytecode cache: an installed program has its ``.pyc`` files, so the runs use a cache folder of their own
(filled by the warm-up run) even when the calling shell sets PYTHONDONTWRITEBYTECODE; otherwise every run would
compile every module of the program again (about 25 ms here) and the floor, which has no module of its own, none.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET = 1.8  # first paint vs the bare window (issue 6/7)
LIST_TARGET = 3.5  # the order list shown vs the same bare window (issue 6/7)

BARE_WINDOW = r"""
import time; START = time.perf_counter()
import sys
from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMainWindow

app = QApplication(sys.argv[:1])
window = QMainWindow()
window.setWindowTitle("bare")
window.resize(1180, 760)


class FirstPaint(QObject):
    done = False

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.Paint and not self.done:
            self.done = True
            QTimer.singleShot(0, report)
        return False


def report():
    print(f"first-paint-ms={(time.perf_counter() - START) * 1000:.1f}", flush=True)
    app.quit()


watcher = FirstPaint(window)
window.installEventFilter(watcher)
window.show()
app.exec()
"""


def _environment(bytecode_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["CSOS_EXIT_AFTER_FIRST_PAINT"] = "1"
    env.pop("CSOS_PROFILE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(bytecode_cache)
    return env


def _figures(command: list[str], env: dict[str, str], wanted: tuple[str, ...]) -> tuple[dict[str, float], float]:
    """Run once; the ``name=value`` figures it printed, and the process's wall time (ms)."""
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    wall = (time.perf_counter() - began) * 1000
    found = {}
    for line in done.stdout.splitlines():
        name, equals, value = line.partition("=")
        if equals and name in wanted:
            found[name] = float(value)
    missing = [name for name in wanted if name not in found]
    if missing or done.returncode != 0:
        raise RuntimeError(f"no {', '.join(missing) or 'clean exit'} from {command[:3]}: rc={done.returncode} "
                           f"{done.stderr[-800:]}")
    return found, wall


def _prepare_data(folder: Path, orders: int) -> None:
    """A training order book with ``orders`` orders, made once before timing (migrations already applied)."""
    from app.config import load_config
    from app.models.database import open_database
    from tests.ui.conftest import bulk_orders

    config = load_config(data_dir=folder, profile="training")
    db = open_database(config.database_url)
    try:
        bulk_orders(db, orders)
    finally:
        db.close()


APP_FIGURES = ("window-built-ms", "first-paint-ms", "order-book-ready-ms", "order-book-attached-ms")
BARE_FIGURES = ("first-paint-ms",)


def collect(*, runs: int, orders: int = 300) -> list[dict]:
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="csos-startup-") as folder:
        data = Path(folder) / "data"
        env = _environment(Path(folder) / "pycache")
        _prepare_data(data, orders)
        app_command = [python, "-m", "app", "--data-dir", str(data), "--profile", "training"]
        bare_command = [python, "-c", BARE_WINDOW]
        _figures(app_command, env, APP_FIGURES)  # warm the file and bytecode caches for both before timing
        _figures(bare_command, env, BARE_FIGURES)
        built, paint, ready, attached, bare, app_wall, bare_wall = [], [], [], [], [], [], []
        for _ in range(runs):  # interleaved, so a busy moment hurts both alike
            found, wall = _figures(app_command, env, APP_FIGURES)
            built.append(found["window-built-ms"])
            paint.append(found["first-paint-ms"])
            ready.append(found["order-book-ready-ms"])
            attached.append(found["order-book-attached-ms"])
            app_wall.append(wall)
            found, wall = _figures(bare_command, env, BARE_FIGURES)
            bare.append(found["first-paint-ms"])
            bare_wall.append(wall)
    value, floor, book = statistics.median(paint), statistics.median(bare), statistics.median(ready)
    ratio = value / floor
    shown = statistics.median(p - b for p, b in zip(paint, built))
    print(f"startup: CSOS Desk first paint {value:.0f} ms, order list {book:.0f} ms (process wall "
          f"{statistics.median(app_wall):.0f} ms), bare PySide6 window {floor:.0f} ms (wall "
          f"{statistics.median(bare_wall):.0f} ms), ratio {ratio:.2f}x; runs: first paint "
          f"{', '.join(f'{v:.0f}' for v in paint)}; order list {', '.join(f'{v:.0f}' for v in ready)}; order book "
          f"attached (commands enabled) {', '.join(f'{v:.0f}' for v in attached)}; bare "
          f"{', '.join(f'{v:.0f}' for v in bare)}; phases (median): window built {statistics.median(built):.0f} ms "
          f"(imports, QApplication, the frame), shown and painted {shown:.0f} ms", file=sys.stderr)
    return [{"figure": f"first paint of the main window ({orders} orders)", "value": round(value, 1), "unit": "ms",
             "floor": round(floor, 1), "floor_name": "bare PySide6 QMainWindow first paint", "ratio": round(ratio, 2),
             "target": f"≤ {TARGET}×", "ok": ratio <= TARGET,
             "phases_ms": {"window built (imports, QApplication, the frame)": round(statistics.median(built), 1),
                           "shown and painted": round(shown, 1)}},
            {"figure": f"order list shown after start ({orders} orders)", "value": round(book, 1), "unit": "ms",
             "floor": round(floor, 1), "floor_name": "bare PySide6 QMainWindow first paint",
             "ratio": round(book / floor, 2), "target": f"≤ {LIST_TARGET}×", "ok": book / floor <= LIST_TARGET}]


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    return collect(runs=3 if quick else 7)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = collect(runs=args.runs)
    for row in result:
        if row["ratio"] is not None:
            print(f"{row['figure']}: {row['value']:.0f} ms, floor {row['floor']:.0f} ms, {row['ratio']:.2f}x "
                  f"(target {row['target']}) {'ok' if row['ok'] else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
