"""Startup benchmark (issue 9/10 item 2): time to the main window's first paint.

Run: .venv/bin/python -m tests.bench.bench_startup [--runs N] [--json OUT]

Figure: ``python -m app`` with CSOS_EXIT_AFTER_FIRST_PAINT=1 on an order book with a few hundred orders prints
``first-paint-ms`` (from the entry point's first line to the first paint of the main window) and quits.
Floor: a bare PySide6 program (QApplication + QMainWindow, shown, quit after its first paint), timed the same way in
the same run. Target ≤ 2.5×. Each is run several times in fresh processes; the median counts. Both exclude the
interpreter's own start, which is the same for both; the total wall time of each process is printed too.
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
TARGET = 2.5

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


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    env["CSOS_EXIT_AFTER_FIRST_PAINT"] = "1"
    env.pop("CSOS_PROFILE", None)
    return env


def _first_paint(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    wall = (time.perf_counter() - began) * 1000
    for line in done.stdout.splitlines():
        if line.startswith("first-paint-ms="):
            return float(line.split("=", 1)[1]), wall
    raise RuntimeError(f"no first-paint figure from {command[:3]}: rc={done.returncode} {done.stderr[-800:]}")


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


def collect(*, runs: int, orders: int = 300) -> list[dict]:
    env = _environment()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="csos-startup-") as folder:
        data = Path(folder) / "data"
        _prepare_data(data, orders)
        app_command = [python, "-m", "app", "--data-dir", str(data), "--profile", "training"]
        bare_command = [python, "-c", BARE_WINDOW]
        _first_paint(app_command, env)  # warm the file cache for both before timing
        _first_paint(bare_command, env)
        app_samples, bare_samples, app_wall, bare_wall = [], [], [], []
        for _ in range(runs):  # interleaved, so a busy moment hurts both alike
            value, wall = _first_paint(app_command, env)
            app_samples.append(value)
            app_wall.append(wall)
            value, wall = _first_paint(bare_command, env)
            bare_samples.append(value)
            bare_wall.append(wall)
    value, floor = statistics.median(app_samples), statistics.median(bare_samples)
    ratio = value / floor
    print(f"startup: CSOS Desk {value:.0f} ms (process wall {statistics.median(app_wall):.0f} ms), bare PySide6 "
          f"window {floor:.0f} ms (wall {statistics.median(bare_wall):.0f} ms), ratio {ratio:.2f}x", file=sys.stderr)
    return [{"figure": f"first paint of the main window ({orders} orders)", "value": round(value, 1), "unit": "ms",
             "floor": round(floor, 1), "floor_name": "bare PySide6 QMainWindow first paint", "ratio": round(ratio, 2),
             "target": f"≤ {TARGET}×", "ok": ratio <= TARGET}]


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
        print(f"{row['figure']}: {row['value']:.0f} ms, floor {row['floor']:.0f} ms, {row['ratio']:.2f}x "
              f"(target {row['target']}) {'ok' if row['ok'] else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
