"""Outbox crash benchmark: 200 SIGKILL trials of sign → commit → send → record the answer → receive (issue 9/10).

Run: .venv/bin/python -m tests.bench.bench_outbox_crash [--trials N] [--seed S] [--json OUT]
Not a test: it prints figures and ratios against a floor measured in the same run — an uninterrupted run of the same
work (sign two orders, queue, send over HTTPS, record the answers) — so a slower machine moves both numbers together.
Every trial asserts the crash-safety properties (no order lost, one document per order number, records check
clean); the bench fails loudly if any trial breaks them.
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


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=20261130)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)

    from tests.integration import test_outbox_crash as crash

    with tempfile.TemporaryDirectory(prefix="csos-bench-crash-") as folder:
        world = crash.build_world(Path(folder) / "world")
        trial_book = crash.TrialBook(Path(folder) / "trial", world.template)
        floor = crash.measure_full_run(world, trial_book)
        rng = random.Random(args.seed)
        durations, recoveries, killed = [], [], 0
        for _ in range(args.trials):
            started = time.perf_counter()
            result = crash.run_trial(world, trial_book, rng, kill_window=floor)
            durations.append(time.perf_counter() - started)
            recoveries.append(result.recovery_seconds)
            killed += result.exit_code == -signal.SIGKILL
    figures = {
        "trials": args.trials, "killed_mid_run": killed, "inconsistent": 0,
        "floor_full_run_s": round(floor, 4),
        "trial_median_s": round(statistics.median(durations), 4),
        "recovery_median_s": round(statistics.median(recoveries), 4),
        "recovery_p95_s": round(sorted(recoveries)[int(0.95 * (len(recoveries) - 1))], 4),
    }
    figures["recovery_p95_ratio_to_floor"] = round(figures["recovery_p95_s"] / floor, 2)
    for key, value in figures.items():
        print(f"{key:<28} {value}")
    print("target: every trial consistent (asserted per trial); recovery p95 ≤ 2.0× floor → "
          + ("MET" if figures["recovery_p95_ratio_to_floor"] <= 2.0 else "NOT MET"))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
