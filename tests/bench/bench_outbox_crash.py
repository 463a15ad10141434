"""Outbox crash benchmark: 200 SIGKILL trials of sign → commit → send → record the answer → receive (issue 9/10).

Run: .venv/bin/python -m tests.bench.bench_outbox_crash [--trials N] [--seed S] [--json OUT]
Not a test: it prints figures and ratios against a floor measured in the same run — an uninterrupted run of the same
work (sign two orders, queue, send over HTTPS, record the answers, receive the goods) — so a slower machine moves both
numbers together. Every trial checks the crash-safety properties (no order lost, one document per order number, each
delivery received once, records check clean); a trial that breaks one is counted as inconsistent.
Targets: all trials consistent; recovery after a kill (restart → everything sent and recorded) ≤ 2× the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path


def measure(trials: int, seed: int) -> dict:
    """Run ``trials`` SIGKILL trials; a trial that breaks a crash-safety property is counted, and the run goes on."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from tests.integration import test_outbox_crash as crash

    with tempfile.TemporaryDirectory(prefix="csos-bench-crash-") as folder:
        world = crash.build_world(Path(folder) / "world")
        trial_book = crash.TrialBook(Path(folder) / "trial", world.template)
        floor = crash.measure_full_run(world, trial_book)
        rng = random.Random(seed)
        durations, recoveries, killed, inconsistent, first_problem = [], [], 0, 0, ""
        for _ in range(trials):
            started = time.perf_counter()
            try:
                result = crash.run_trial(world, trial_book, rng, kill_window=floor)
            except AssertionError as exc:  # an order lost, doubled or received twice, or records check not clean
                inconsistent += 1
                first_problem = first_problem or f"{type(exc).__name__}: {str(exc)[:300]}"
                continue
            durations.append(time.perf_counter() - started)
            recoveries.append(result.recovery_seconds)
            killed += result.exit_code == -signal.SIGKILL
    figures = {
        "trials": trials, "killed_mid_run": killed, "inconsistent": inconsistent,
        "floor_full_run_s": round(floor, 4),
        "trial_median_s": round(statistics.median(durations), 4) if durations else None,
        "recovery_median_s": round(statistics.median(recoveries), 4) if recoveries else None,
        "recovery_p95_s": round(sorted(recoveries)[int(0.95 * (len(recoveries) - 1))], 4) if recoveries else None,
    }
    figures["recovery_p95_ratio_to_floor"] = (round(figures["recovery_p95_s"] / floor, 2)
                                              if figures["recovery_p95_s"] is not None else None)
    if first_problem:
        figures["first_problem"] = first_problem
    return figures


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    figures = measure(trials=30 if quick else 200, seed=20261130)
    ratio = figures["recovery_p95_ratio_to_floor"]
    return [{"figure": f"SIGKILL trials sign→send→receive: {figures['trials']} "
                       f"({figures['killed_mid_run']} killed mid-run), inconsistent",
             "value": figures["inconsistent"], "unit": "trials", "floor": None, "floor_name": "", "ratio": None,
             "target": "0", "ok": figures["inconsistent"] == 0, **{k: v for k, v in figures.items()
                                                                    if k == "first_problem"}},
            {"figure": "recovery after a kill (p95) vs an uninterrupted run", "value": figures["recovery_p95_s"],
             "unit": "s", "floor": figures["floor_full_run_s"], "floor_name": "uninterrupted sign→send→receive run",
             "ratio": ratio, "target": "≤ 2×", "ok": ratio is not None and ratio <= 2.0}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.trials, args.seed)
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    met = figures["inconsistent"] == 0 and (figures["recovery_p95_ratio_to_floor"] or 99) <= 2.0
    print("target: every trial consistent; recovery p95 ≤ 2.0× floor → " + ("MET" if met else "NOT MET"))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
