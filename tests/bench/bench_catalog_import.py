"""Benchmark: import 100k FDA package rows into a fresh SQLite order book (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_catalog_import.py [packages]``

Prints the import time, rows/s, and two floors measured in the same run on the same files:
* ``csv floor``: reading both files and splitting them with the csv module (no parsing, no database);
* ``sqlite floor``: inserting the same number of 12-column rows with plain sqlite3 ``executemany`` into an
  unindexed table (no upsert, no SQLAlchemy) in one transaction.
and the ratio import / floor. Target (issue 1/10): 100k packages in <= 5 s.
"""

from __future__ import annotations

import csv
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.models.database import open_database, sqlite_url  # noqa: E402
from app.services.catalog import import_fda_catalog  # noqa: E402

PRODUCT_HEADER = [
    "PRODUCTID", "PRODUCTNDC", "PRODUCTTYPENAME", "PROPRIETARYNAME", "PROPRIETARYNAMESUFFIX", "NONPROPRIETARYNAME",
    "DOSAGEFORMNAME", "ROUTENAME", "STARTMARKETINGDATE", "ENDMARKETINGDATE", "MARKETINGCATEGORYNAME",
    "APPLICATIONNUMBER", "LABELERNAME", "SUBSTANCENAME", "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT",
    "PHARM_CLASSES", "DEASCHEDULE", "NDC_EXCLUDE_FLAG", "LISTING_RECORD_CERTIFIED_THROUGH",
]
PACKAGE_HEADER = ["PRODUCTID", "PRODUCTNDC", "NDCPACKAGECODE", "PACKAGEDESCRIPTION", "STARTMARKETINGDATE",
                  "ENDMARKETINGDATE", "NDC_EXCLUDE_FLAG", "SAMPLE_PACKAGE"]

# (name, generic/substance, form, strength, unit, DEASCHEDULE, package descriptions with {ndc})
KINDS = [
    ("Oxycodone Hydrochloride", "OXYCODONE HYDROCHLORIDE", "TABLET", "5", "mg/1", "CII",
     ["100 TABLET in 1 BOTTLE ({ndc})", "10 BLISTER PACK in 1 CARTON ({ndc})  > 10 TABLET in 1 BLISTER PACK"]),
    ("Amphetamine Mixed Salts", "DEXTROAMPHETAMINE SACCHARATE; AMPHETAMINE ASPARTATE MONOHYDRATE", "TABLET",
     "2.5; 2.5", "mg/1; mg/1", "CII", ["100 TABLET in 1 BOTTLE ({ndc})"]),
    ("Guaifenesin and Codeine", "GUAIFENESIN; CODEINE PHOSPHATE", "LIQUID", "100; 10", "mg/5mL; mg/5mL", "CV",
     ["473 mL in 1 BOTTLE ({ndc})"]),
    ("Fentanyl", "FENTANYL", "PATCH", "25", "ug/h", "CII",
     ["5 POUCH in 1 CARTON ({ndc})  > 1 PATCH in 1 POUCH > 72 h in 1 PATCH"]),
    ("Alprazolam", "ALPRAZOLAM", "TABLET", "1", "mg/1", "CIV", ["500 TABLET in 1 BOTTLE ({ndc})"]),
    ("Lisinopril", "LISINOPRIL", "TABLET", "10", "mg/1", "", ["90 TABLET in 1 BOTTLE ({ndc})"]),
    ("Amoxicillin", "AMOXICILLIN", "CAPSULE", "500", "mg/1", "", ["100 CAPSULE in 1 BOTTLE ({ndc})"]),
    ("Ketamine Hydrochloride", "KETAMINE HYDROCHLORIDE", "INJECTION, SOLUTION", "50", "mg/mL", "CIII",
     ["10 VIAL in 1 CARTON ({ndc})  > 10 mL in 1 VIAL"]),
]


def generate(directory: Path, packages: int, per_product: int = 4) -> tuple[Path, Path]:
    product_lines = ["\t".join(PRODUCT_HEADER)]
    package_lines = ["\t".join(PACKAGE_HEADER)]
    products = (packages + per_product - 1) // per_product
    written = 0
    for p in range(products):
        name, substance, form, strength, unit, dea, descriptions = KINDS[p % len(KINDS)]
        product_ndc = f"{70000 + p // 10000:05d}-{p % 10000:04d}"
        product_id = f"{product_ndc}_{p:08x}-0000-4000-8000-000000000000"
        product_lines.append("\t".join([
            product_id, product_ndc, "HUMAN PRESCRIPTION DRUG", f"{name} {p}", "", substance, form, "ORAL", "20200101",
            "", "ANDA", f"ANDA{200000 + p}", f"Benchmark Labeler {p % 97}", substance, strength, unit, "", dea, "N",
            "20261231"]))
        for k in range(per_product):
            if written == packages:
                break
            ndc = f"{product_ndc}-{k + 1:02d}"
            description = descriptions[k % len(descriptions)].format(ndc=ndc)
            package_lines.append("\t".join([product_id, product_ndc, ndc, description, "20200101", "", "N", "N"]))
            written += 1
    product_txt, package_txt = directory / "product.txt", directory / "package.txt"
    product_txt.write_text("\r\n".join(product_lines) + "\r\n", encoding="utf-8")
    package_txt.write_text("\r\n".join(package_lines) + "\r\n", encoding="utf-8")
    return product_txt, package_txt


def csv_floor(product_txt: Path, package_txt: Path) -> float:
    started = time.perf_counter()
    rows = 0
    for path in (product_txt, package_txt):
        with open(path, newline="", encoding="utf-8") as handle:
            for _ in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
                rows += 1
    return time.perf_counter() - started


def sqlite_floor(directory: Path, packages: int) -> float:
    connection = sqlite3.connect(directory / "floor.sqlite")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (ndc TEXT, product_ndc TEXT, name TEXT, generic_name TEXT, strength TEXT, "
                       "dosage_form TEXT, labeler TEXT, package_description TEXT, package_quantity NUMERIC, unit TEXT, "
                       "schedule TEXT, source TEXT)")
    rows = [(f"{i:011d}", f"{i // 4:09d}", f"Name {i}", "GENERIC NAME", "10 mg", "TABLET", "Labeler",
             f"100 TABLET in 1 BOTTLE ({i})", 100.0, "EA", "II", "fda") for i in range(packages)]
    started = time.perf_counter()
    with connection:
        connection.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def rows(quick: bool = False) -> list[dict]:
    """Rows for ./bench (tests/bench/runner.py)."""
    packages = 20_000 if quick else 100_000
    first, second, floor_csv, _floor_sql = measure(packages)
    target = 5.0 * packages / 100_000
    return [{"figure": f"FDA catalog import, {packages:,} packages", "value": first.seconds, "unit": "s",
             "floor": floor_csv, "floor_name": "read + split the files", "ratio": first.seconds / floor_csv,
             "target": f"≤ {target:.0f} s", "ok": first.seconds <= target},
            {"figure": "FDA catalog re-import (upsert)", "value": second.seconds, "unit": "s",
             "floor": floor_csv, "floor_name": "read + split the files", "ratio": second.seconds / floor_csv,
             "target": f"≤ {target:.0f} s", "ok": second.seconds <= target}]


def measure(packages: int):
    with tempfile.TemporaryDirectory(prefix="bench-catalog-") as tmp:
        directory = Path(tmp)
        product_txt, package_txt = generate(directory, packages)
        db = open_database(sqlite_url(directory / "orderbook.sqlite"))
        try:
            floor_csv = csv_floor(product_txt, package_txt)
            floor_sql = sqlite_floor(directory, packages)
            first = import_fda_catalog(db, product_txt, package_txt)
            second = import_fda_catalog(db, product_txt, package_txt)
        finally:
            db.close()
    assert first.packages == packages and first.inserted == packages, first
    assert second.updated == packages and second.inserted == 0, second
    return first, second, floor_csv, floor_sql


def main() -> None:
    packages = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    first, second, floor_csv, floor_sql = measure(packages)
    print(f"catalog import: {packages} packages / {first.products} products")
    print(f"  first import (insert)  {first.seconds:7.3f} s  {packages / first.seconds:10.0f} rows/s  "
          f"controlled={first.controlled}  by_schedule={first.by_schedule}")
    print(f"  re-import (upsert)     {second.seconds:7.3f} s  {packages / second.seconds:10.0f} rows/s")
    print(f"  csv floor (read+split) {floor_csv:7.3f} s  ratio import/floor = {first.seconds / floor_csv:5.1f}x")
    print(f"  sqlite3 executemany    {floor_sql:7.3f} s  ratio import/floor = {first.seconds / floor_sql:5.1f}x")
    target = 5.0 * packages / 100_000
    verdict = "OK" if max(first.seconds, second.seconds) <= target else "SLOWER THAN TARGET"
    print(f"  target <= {target:.1f} s: {verdict}")


if __name__ == "__main__":
    main()
