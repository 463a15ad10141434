"""`./bench`: every benchmark in one run, one table, the same table as JSON.

Each benchmark module offers ``rows(quick: bool) -> list[dict]`` with keys figure, value, unit, floor, floor_name,
ratio, target, ok. Floors are measured in the same run, so the ratios mean something on any machine; the targets come
from the issues. A benchmark that fails to run is reported as a row, and the others still run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

MODULES = (
    "tests.bench.bench_startup",
    "tests.bench.bench_signing",
    "tests.bench.bench_sign_send",
    "tests.bench.bench_orderbook",
    "tests.bench.bench_catalog_import",
    "tests.bench.bench_records_export",
    "tests.bench.bench_records_check",
    "tests.bench.bench_history",
    "tests.bench.bench_outbox_crash",
    "tests.bench.bench_fuzz",
)


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 10_000 else f"{value:,.0f}"
    return str(value)


def main() -> int:
    parser = argparse.ArgumentParser(prog="./bench")
    parser.add_argument("--quick", action="store_true", help="smaller data sets (a few minutes in all)")
    parser.add_argument("--json", default="bench-results/bench.json", help="where to write the JSON table")
    parser.add_argument("--only", action="append", help="run only modules whose name contains this")
    args = parser.parse_args()
    rows: list[dict] = []
    started = time.perf_counter()
    for name in MODULES:
        if args.only and not any(part in name for part in args.only):
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not written yet
            raise
        print(f"running {name} …", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            produced = module.rows(quick=args.quick)
        except Exception as exc:  # a broken benchmark is a row in the report, not the end of the run
            traceback.print_exc()
            produced = [{"figure": f"{name}: FAILED ({type(exc).__name__}: {exc})", "value": None, "unit": "",
                         "floor": None, "floor_name": "", "ratio": None, "target": "", "ok": False}]
        for row in produced:
            row.setdefault("module", name)
            row.setdefault("seconds", round(time.perf_counter() - began, 1))
        rows += produced
    print()
    header = f"{'figure':<58}{'value':>12} {'unit':<9}{'floor':>10} {'ratio':>9}  {'target':<12} verdict"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row['ratio']:.2f}x" if row.get("ratio") is not None else "-"
        verdict = "ok" if row.get("ok") else "MISS"
        print(f"{row['figure'][:57]:<58}{_format(row.get('value')):>12} {row.get('unit', ''):<9}"
              f"{_format(row.get('floor')):>10} {ratio:>9}  {row.get('target', ''):<12} {verdict}")
    print("\nfloors (measured in this run): " + "; ".join(sorted({r["floor_name"] for r in rows
                                                                 if r.get("floor_name")})))
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": platform.platform(), "python": platform.python_version(),
                               "quick": args.quick, "seconds": round(time.perf_counter() - started, 1),
                               "rows": rows}, indent=2, default=str))
    print(f"\nJSON: {out}")
    return 0 if all(row.get("ok") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
