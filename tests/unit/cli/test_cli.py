"""The command line as a person uses it: a real process, a real data folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, "CSOS_DATA_DIR": str(tmp_path / "data"), "CSOS_PROFILE": "training"}
    env.pop("CSOS_DATABASE_URL", None)

    def run(*args: str, expect: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=120)
        assert done.returncode == expect, (done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        return done

    run.data_dir = tmp_path / "data"
    return run


@pytest.mark.parametrize("kind, value, out", [("dea", "bj6125341", "BJ6125341"),
                                              ("ndc", "0406-0552-62", "00406-0552-62 (00406055262)"),
                                              ("order-number", "26x00000a", "26X00000A")])
def test_check_prints_the_normalised_value(cli, kind, value, out):
    assert cli("check", kind, value).stdout.strip() == out


@pytest.mark.parametrize("kind, value, code", [("dea", "BJ6125342", "dea.check_digit"),
                                               ("ndc", "0406055262", "ndc.ambiguous"),
                                               ("order-number", "26Y000001", "order_number.format")])
def test_check_explains_the_failed_rule(cli, kind, value, code):
    assert cli("check", kind, value, expect=1).stdout.startswith(code + ":")


def test_registration_supplier_order_round_trip(cli):
    cli("registration", "add", "--dea", "BJ6125341", "--name", "Main Street Pharmacy", "--address", "1 Main St",
        "--city", "Springfield", "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IV,V",
        "--expires", "2028-06-30")
    registrations = json.loads(cli("registration", "list", "--json").stdout)
    assert registrations[0]["dea_number"] == "BJ6125341"
    assert registrations[0]["schedules"] == ["II", "IIN", "III", "IV", "V"]
    cli("supplier", "add", "--name", "Acme Drug", "--dea", "RA1234563", "--city", "Memphis", "--state", "TN")
    assert json.loads(cli("supplier", "list", "--json").stdout)[0]["name"] == "Acme Drug"
    created = json.loads(cli("order", "new", "--registration", "BJ6125341", "--supplier", "Acme Drug",
                             "--json").stdout)
    assert created["order_number"] == f"{__import__('datetime').date.today():%y}X000001"
    listed = json.loads(cli("order", "list", "--json").stdout)
    assert [o["order_number"] for o in listed] == [created["order_number"]]
    shown = json.loads(cli("order", "show", created["order_number"], "--json").stdout)
    assert shown["status"] == "draft" and shown["supplier"] == "Acme Drug" and shown["lines"] == []
    imported = json.loads(cli("catalog", "import", str(ROOT / "resources/catalog/product.txt"),
                              str(ROOT / "resources/catalog/package.txt"), "--json").stdout)
    assert imported["packages"] >= 40 and imported["controlled"] >= 20
    cli("order", "add-line", created["order_number"], "--ndc", "0406-0552-01", "--packages", "2")
    line = json.loads(cli("order", "show", created["order_number"], "--json").stdout)["lines"][0]
    assert (line["ndc"], line["packages"], line["schedule"], line["unit"]) == ("00406055201", 2, "II", "EA")
    assert "Oxycodone" in line["description"]
    found = json.loads(cli("order", "list", "--search", "oxycodone", "--json").stdout)
    assert [o["order_number"] for o in found] == [created["order_number"]]
    # Problems are explained with their code and nothing is changed.
    failed = cli("order", "add-line", created["order_number"], "--ndc", "12345-6789-01", "--packages", "1", expect=1)
    assert "catalog.unknown_ndc" in failed.stderr
    failed = cli("registration", "add", "--dea", "BJ6125342", "--name", "x", "--city", "c", "--state", "IL",
                 "--zip", "1", expect=1)
    assert "dea.check_digit" in failed.stderr
    assert len(json.loads(cli("registration", "list", "--json").stdout)) == 1


def test_demo_summary_and_a_damaged_database(cli):
    out = cli("demo", "--summary").stdout
    assert "TRAINING" in out and "orders 0" in out
    database = cli.data_dir / "training" / "orderbook.sqlite3"
    database.write_bytes(b"garbage" * 1000)
    failed = cli("demo", "--summary", expect=2)
    assert "storage.corrupt" in failed.stderr
