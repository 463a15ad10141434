"""Fuzzing at benchmark size: 100k hostile inputs across every parser (the test suite runs a quick profile).

Runs the fuzz tests of tests/unit/test_fuzz.py (CMS, verifier, .p12, certificates, CSRs) and the X12 fuzz properties
with hypothesis' example count raised, and reports cases per second and the number of failures (target: 0 — only
typed errors, never another exception). """

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGETS = [
    "tests/unit/test_fuzz.py::test_cms_parser", "tests/unit/test_fuzz.py::test_verifier_never_raises",
    "tests/unit/test_fuzz.py::test_p12_reader", "tests/unit/test_fuzz.py::test_certificate_parsing",
    "tests/unit/test_fuzz.py::test_pem_certificate_loading", "tests/unit/test_fuzz.py::test_csr_parsing_and_checks",
    "tests/unit/signing/test_x12_properties.py::test_arbitrary_bytes_raise_only_x12_error",
    "tests/unit/signing/test_x12_properties.py::test_bytes_after_a_valid_isa_raise_only_x12_error",
    "tests/unit/signing/test_x12_properties.py::test_mutated_documents_raise_only_x12_error",
    "tests/unit/models/test_values.py::test_dea_parse_only_raises_invalid_value",
    "tests/unit/models/test_values.py::test_ndc_parse_only_raises_invalid_value",
]


def rows(quick: bool = False) -> list[dict]:
    total = 5_000 if quick else 100_000
    counted = len(TARGETS) - 2  # the DEA/NDC value-parser tests keep their own example counts
    per_target = max(100, -(-total // counted))
    env = {**os.environ, "CSOS_FUZZ_EXAMPLES": str(per_target), "QT_QPA_PLATFORM": "offscreen"}
    started = time.perf_counter()
    seed = ["--hypothesis-seed=0"] if quick else []  # the quick run is repeatable; the full run explores
    # No per-test time limit here: 11,000 generated X12 documents take longer than the suite's 300 s guard.
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0", *seed,
                           *TARGETS], cwd=ROOT, env=env, capture_output=True, text=True)
    log = ROOT / "bench-results" / "fuzz.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(done.stdout + done.stderr)  # the failing inputs, when there are any
    seconds = time.perf_counter() - started
    failed = int(m.group(1)) if (m := re.search(r"(\d+) failed", done.stdout)) else 0
    passed = int(m.group(1)) if (m := re.search(r"(\d+) passed", done.stdout)) else 0
    # Value-parser tests keep their own (smaller) example counts; count what was asked of the others.
    cases = per_target * counted
    return [{"figure": f"fuzzing, {cases:,} mutated/arbitrary inputs over {len(TARGETS)} parsers",
             "value": cases / seconds, "unit": "cases/s", "floor": None, "floor_name": "", "ratio": None,
             "target": "0 untyped errors", "ok": done.returncode == 0 and failed == 0 and passed == len(TARGETS),
             "failures": failed, "seconds_total": round(seconds, 1),
             "log": str(log.relative_to(ROOT))}]
