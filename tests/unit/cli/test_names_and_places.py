"""Names and places through the command line (issue 16 item 6): names unique under Unicode case folding and found by
the same rule, registration and supplier fields checked when typed (same words as the Settings screen), edit and
remove, a typed order number checked at `order new`, two add-line at once, a closed pipe, a malformed settings file.
Real data folder and SQLite file; `csos-desk` run in-process through ``app.cli.main`` or as real processes."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main

ROOT = Path(__file__).resolve().parents[3]
DEA = "BJ6125341"
REGISTRATION = ["--dea", DEA, "--name", "Main Street Pharmacy", "--address", "1 Main St", "--city", "Springfield",
                "--state", "IL", "--zip", "62701", "--schedules", "II,IIN,III,IIIN,IV,V"]
CATALOG = [str(ROOT / "resources/catalog/product.txt"), str(ROOT / "resources/catalog/package.txt")]


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    for name in [n for n in os.environ if n.startswith("CSOS_")]:
        monkeypatch.delenv(name)
    data = tmp_path / "data"

    def run(*args: str, expect: int = 0) -> tuple[str, str]:
        code = main(["--data-dir", str(data), "--profile", "training", *args])
        out, err = capsys.readouterr()
        assert code == expect, (args, out, err)
        assert "unexpected problem" not in err
        return out, err

    run.data = data
    run.database = data / "training" / "orderbook.sqlite3"
    return run


def _suppliers(cli) -> list[str]:
    return [s["name"] for s in json.loads(cli("supplier", "list", "--json")[0])]


# -- names ------------------------------------------------------------------------------------------------------------

def test_supplier_names_are_unique_and_found_under_unicode_case_folding(cli):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    _, err = cli("supplier", "add", "--name", "ACME DRUG", expect=1)
    assert "supplier.duplicate" in err and "Acme Drug" in err
    cli("supplier", "add", "--name", "Éclair Drug")
    _, err = cli("supplier", "add", "--name", "ÉCLAIR DRUG", expect=1)
    assert "supplier.duplicate" in err
    assert _suppliers(cli) == ["Acme Drug", "Éclair Drug"]
    made = json.loads(cli("order", "new", "--registration", DEA, "--supplier", "éclair drug", "--json")[0])
    assert made["supplier"] == "Éclair Drug"
    made = json.loads(cli("order", "new", "--registration", DEA, "--supplier", "ACME DRUG", "--json")[0])
    assert made["supplier"] == "Acme Drug"


def test_registration_names_are_unique_under_case_folding_and_found_by_name(cli):
    cli("registration", "add", *REGISTRATION)
    _, err = cli("registration", "add", "--dea", "AB1234563", "--name", "MAIN STREET PHARMACY", "--address",
                 "2 Elm St", "--city", "Springfield", "--state", "IL", "--zip", "62701", expect=1)
    assert "registration.duplicate" in err
    cli("supplier", "add", "--name", "Acme Drug")
    made = json.loads(cli("order", "new", "--registration", "main street pharmacy", "--supplier", "Acme Drug",
                          "--json")[0])
    assert made["registration"] == DEA


def test_rows_that_already_clash_are_reported_plainly_not_picked_silently(cli):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    with sqlite3.connect(cli.database) as connection:  # an order book from before the rule
        connection.execute("INSERT INTO suppliers (name, address_lines, connector, created_at) VALUES "
                           "('ACME DRUG', '[]', '{\"kind\": \"manual\"}', '2026-01-01 00:00:00')")
    _, err = cli("order", "new", "--registration", DEA, "--supplier", "acme drug", expect=1)
    assert "supplier.names_clash" in err and "“Acme Drug”" in err and "“ACME DRUG”" in err
    assert "supplier edit" in err


# -- fields checked when typed -------------------------------------------------------------------------------------

@pytest.mark.parametrize("option, value, code", [
    ("--name", "Main * Street", "name.characters"),
    ("--name", "Main ~ Street", "name.characters"),
    ("--name", "Main > Street", "name.characters"),
    ("--name", "Main\x01Street", "name.characters"),
    ("--name", "M" * 5000, "name.too_long"),
    ("--address", "1 Main St~", "address.characters"),
    ("--city", "C" * 31, "address.city_too_long"),
    ("--zip", "ABCDE", "address.zip"),
    ("--zip", "1234", "address.zip"),
    ("--state", "ZZ", "address.state"),
])
def test_registration_fields_are_checked_when_entered(cli, option, value, code):
    args = list(REGISTRATION)
    args[args.index(option) + 1] = value
    _, err = cli("registration", "add", *args, expect=1)
    assert f"[{code}]" in err
    assert json.loads(cli("registration", "list", "--json")[0]) == []


def test_good_values_pass_including_zip_plus_4_and_territories(cli):
    args = list(REGISTRATION)
    args[args.index("--zip") + 1] = "00901-1234"
    args[args.index("--state") + 1] = "pr"
    cli("registration", "add", *args)
    assert json.loads(cli("registration", "list", "--json")[0])[0]["state"] == "PR"


@pytest.mark.parametrize("extra, code", [
    (["--connector", "https", "--url", "http://supplier.example/orders"], "connector.url"),
    (["--url", "http://supplier.example/orders"], "connector.url"),
    (["--connector", "https", "--url", "https://user:secret@supplier.example/orders"], "connector.url"),
    (["--state", "ZZ"], "address.state"),
    (["--zip", "ABCDE"], "address.zip"),
    (["--address", "9 Depot Rd*"], "address.characters"),
])
def test_supplier_fields_are_checked_when_entered(cli, extra, code):
    _, err = cli("supplier", "add", "--name", "Acme Drug", *extra, expect=1)
    assert f"[{code}]" in err
    assert _suppliers(cli) == []


def test_the_cli_and_the_settings_screen_use_one_check_with_the_same_words(cli):
    from app.services import app_settings
    from app.services.orders import parties

    assert app_settings.check_supplier is parties.check_supplier
    assert app_settings.SupplierForm is parties.SupplierForm
    screen = app_settings.check_supplier(app_settings.SupplierForm(name="Acme Drug", kind="https",
                                                                   url="http://supplier.example/orders"))
    _, err = cli("supplier", "add", "--name", "Acme Drug", "--connector", "https", "--url",
                 "http://supplier.example/orders", expect=1)
    assert err.strip() == f"error [{screen[0].code}]: {screen[0].message}"
    assert screen[0].field == "url"


# -- edit and remove ------------------------------------------------------------------------------------------------

def test_registration_edit_and_remove(cli):
    cli("registration", "add", *REGISTRATION)
    cli("registration", "edit", DEA, "--name", "Main Street Pharmacy & Clinic", "--zip", "62701-0001")
    shown = json.loads(cli("registration", "list", "--json")[0])[0]
    assert (shown["name"], shown["postal_code"], shown["city"]) == ("Main Street Pharmacy & Clinic", "62701-0001",
                                                                    "Springfield")
    _, err = cli("registration", "edit", DEA, "--zip", "ABCDE", expect=1)
    assert "[address.zip]" in err
    cli("supplier", "add", "--name", "Acme Drug")
    number = json.loads(cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--json")[0])[
        "order_number"]
    _, err = cli("registration", "remove", DEA, expect=1)
    assert "registration.in_use" in err and number in err and "1 order" in err
    cli("registration", "add", "--dea", "AB1234563", "--name", "Old Town Pharmacy", "--address", "2 Elm St",
        "--city", "Springfield", "--state", "IL", "--zip", "62701")
    cli("registration", "remove", "AB1234563")
    assert [r["dea_number"] for r in json.loads(cli("registration", "list", "--json")[0])] == [DEA]


def test_supplier_edit_and_remove(cli, tmp_path):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    cli("supplier", "add", "--name", "Great Lakes Wholesale")
    cli("supplier", "edit", "acme drug", "--name", "Acme Drug Co", "--connector", "https", "--url",
        "https://acme.example/csos")
    edited = [s for s in json.loads(cli("supplier", "list", "--json")[0]) if s["name"] == "Acme Drug Co"][0]
    assert edited["connector"] == {"kind": "https", "url": "https://acme.example/csos"}
    _, err = cli("supplier", "edit", "Acme Drug Co", "--url", "http://acme.example/csos", expect=1)
    assert "[connector.url]" in err
    _, err = cli("supplier", "edit", "Acme Drug Co", "--name", "GREAT LAKES WHOLESALE", expect=1)
    assert "supplier.duplicate" in err
    number = json.loads(cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug Co", "--json")[0])[
        "order_number"]
    _, err = cli("supplier", "remove", "Acme Drug Co", expect=1)
    assert "supplier.in_use" in err and number in err
    cli("supplier", "remove", "great lakes wholesale")
    assert _suppliers(cli) == ["Acme Drug Co"]


# -- order numbers typed by hand -------------------------------------------------------------------------------------

def test_a_typed_order_number_is_checked_at_order_new(cli):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    _, err = cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--number", "99X000001",
                 expect=1)
    assert "[order_number.year]" in err
    _, err = cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--number", "26Y000001",
                 expect=1)
    assert "[order_number.format]" in err
    this_year = f"{dt.datetime.now().year % 100:02d}X00000A"
    cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--number", this_year.lower())
    _, err = cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--number", this_year, expect=1)
    assert "[order_number.duplicate]" in err
    assert [o["order_number"] for o in json.loads(cli("order", "list", "--json")[0])] == [this_year]


# -- two add-line at once ----------------------------------------------------------------------------------------------

def _add_lines(data: str, number: str, count: int, start, results) -> None:
    from app.cli import main as cli_main

    codes = []
    start.wait()
    with open(os.devnull, "w") as sink:
        sys.stdout = sys.stderr = sink
        for _ in range(count):
            codes.append(cli_main(["--data-dir", data, "--profile", "training", "order", "add-line", number,
                                   "--ndc", "0406-0552-01", "--packages", "1"]))
    results.put(codes)


def test_two_processes_adding_lines_to_one_draft_at_once_both_succeed(cli):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    cli("catalog", "import", *CATALOG)
    number = json.loads(cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug", "--json")[0])[
        "order_number"]
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    each = 25
    workers = [context.Process(target=_add_lines, args=(str(cli.data), number, each, start, results))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    codes = [code for _ in workers for code in results.get(timeout=300)]
    for worker in workers:
        worker.join(timeout=60)
    assert codes == [0] * (2 * each)
    lines = json.loads(cli("order", "show", number, "--json")[0])["lines"]
    assert [line["line_number"] for line in lines] == list(range(1, 2 * each + 1))


# -- the pipe and the settings file --------------------------------------------------------------------------------

def _environment(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOS_")}
    env.update(CSOS_DATA_DIR=str(data), CSOS_PROFILE="training")
    return env


def test_a_closed_pipe_ends_the_listing_quietly(cli):
    cli("registration", "add", *REGISTRATION)
    cli("supplier", "add", "--name", "Acme Drug")
    for _ in range(3):
        cli("order", "new", "--registration", DEA, "--supplier", "Acme Drug")
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` that has already gone: every write meets a closed pipe
    try:
        done = subprocess.run([sys.executable, "-m", "app", "order", "list"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, env=_environment(cli.data), cwd=ROOT, timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode in (0, 141), done.stderr
    assert done.stderr == ""


def test_a_setting_of_the_wrong_kind_is_named_with_its_file(cli):
    cli("registration", "list")
    settings = cli.data / "training" / "settings.json"
    settings.write_text(json.dumps({"database_url": 5, "reminder_days": [30]}))
    _, err = cli("order", "list", expect=2)
    assert "“database_url”" in err and str(settings) in err and "config.setting_type" in err
    settings.write_text(json.dumps({"reminder_days": "soon"}))
    _, err = cli("order", "list", expect=2)
    assert "“reminder_days”" in err and str(settings) in err
    settings.write_text(json.dumps({"reminder_days": [45, 7], "pkcs11_modules": [], "time_zones": {}}))
    cli("order", "list")
