"""`csos-desk demo` start to finish on a fresh data folder: the headless proof that every part fits (issue 5/10)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from tests.private_files import not_private, posix

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_life_of_an_order(tmp_path):
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CSOS_", "PKCS11_"))}
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run([sys.executable, "-m", "app", "demo", "--out", str(out)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "received" and summary["records_check_clean"] is True
    # Two real shipments, then a second ship notice claiming 5 more packages of line 1: linked as a claim, flagged
    # as a discrepancy, never applied (the order stays received with 2 packages of line 1).
    assert summary["linked_records"].count("shipment") == 3 and "acknowledgement" in summary["linked_records"]
    assert summary["receipts"][0] == {"line": 1, "packages": [1, 1]}
    [discrepancy] = summary["discrepancies"]
    assert "7 packages shipped in all, but 2 packages were ordered" in discrepancy
    # The records export says it in plain words, on the order's line 1 row of the CSV.
    with (out / "records" / "orders.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["line"] for row in rows if discrepancy in row["discrepancies"]][:1] == ["1"]
    assert "_" not in discrepancy  # no codes
    signed = out / summary["signed_document"]
    verified = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signed),
                               "-CAfile", str(out / "csos-trust.pem"), "-purpose", "any", "-out", os.devnull],
                              capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    for name in ("records/records.pdf", "records/orders.csv", "records/archive/manifest.json", "records/archive.zip"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "records/records.pdf").read_bytes().startswith(b"%PDF")
    steps = [step["title"] for step in summary["steps"]]
    assert len(steps) == 12 and "coordinator approves" in steps[2] and "claiming more than was ordered" in steps[9]
    # The demo says what it does, step by step.
    assert " 1. Start the training sandbox" in done.stdout and "Done." in done.stdout
    # Issue 22: how to open its data in the window, with the practice passwords it used (training only), and the
    # certificate named by the same short ID as everywhere else (16 hex digits of its SHA-256 fingerprint).
    from app.demo import COORDINATOR, DEMO_KEY_PASSWORD, DEMO_PORTAL_PASSWORD

    assert f"--data-dir {out / 'data'} --profile training" in done.stdout
    for secret in (DEMO_PORTAL_PASSWORD, DEMO_KEY_PASSWORD, COORDINATOR[1]):
        assert secret in done.stdout
    assert summary["certificate_id"] == summary["signer_fingerprint"][:16]
    assert f"certificate {summary['certificate_id']}, schedules" in done.stdout
    # Private files: the demo's order book (+ -wal/-shm), logs, settings, caches, keys and outputs are the user's
    # alone (umask 077 at the entry point).
    if posix():
        assert not_private(out) == []
        assert {"orderbook.sqlite3", "csos-desk.log"} <= {p.name for p in out.rglob("*")}
    # Empty --out only: nothing is overwritten.
    again = subprocess.run([sys.executable, "-m", "app", "demo", "--out", str(out)], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=120)
    assert again.returncode == 2 and "not empty" in again.stderr
