"""Product catalog: FDA NDC Directory import, schedules, quantities, rollback, search (real SQLite file)."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from app.errors import CatalogImportError, InvalidValue
from app.models.database import open_database, sqlite_url
from app.models.orderbook import Product
from app.models.values import PackageUnit, Schedule
from app.services.catalog import (
    CONTROLLED_SUBSTANCES_CSV,
    NarcoticIndex,
    bundled_catalog_paths,
    find_product,
    format_strength,
    import_fda_catalog,
    load_controlled_substances,
    parse_package_quantity,
    search_products,
)

PRODUCT_TXT, PACKAGE_TXT = bundled_catalog_paths()


# ------------------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture
def db(tmp_path):
    database = open_database(sqlite_url(tmp_path / "orderbook.sqlite"))
    yield database
    database.close()


@pytest.fixture
def imported(db):
    summary = import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT)
    return db, summary


def read_rows(path: Path) -> list[list[str]]:
    """A sample file as rows of fields (header first), independent of the code under test."""
    text = path.read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line]


def write_rows(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.write_bytes(("\r\n".join("\t".join(r) for r in rows) + "\r\n").encode(encoding))
    return path


def col(rows: list[list[str]], name: str) -> int:
    return rows[0].index(name)


def product_count(db) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(Product))


def snapshot(db) -> dict[str, tuple]:
    with db.session() as session:
        return {p.ndc: (p.id, p.name, p.schedule, p.package_quantity, p.unit, p.package_description)
                for p in session.scalars(select(Product))}


def get(db, ndc: str) -> Product:
    with db.session() as session:
        product = find_product(session, ndc)
        assert product is not None, ndc
        return product


# ------------------------------------------------------------------------------------------------------------------
# bundled sample


def test_tables_come_from_migrations(db):
    names = set(inspect(db.engine).get_table_names())
    assert {"products", "alembic_version"} <= names
    assert product_count(db) == 0


def test_bundled_sample_imports_with_counts_matching_the_files(imported):
    db, summary = imported
    products = read_rows(PRODUCT_TXT)
    packages = read_rows(PACKAGE_TXT)
    assert summary.products == len(products) - 1
    assert summary.packages == len(packages) - 1
    assert summary.inserted == summary.packages and summary.updated == 0
    assert summary.skipped == {} and summary.skipped_total == 0
    assert product_count(db) == len(packages) - 1
    i_dea = col(products, "DEASCHEDULE")
    controlled_ids = {r[0] for r in products[1:] if r[i_dea]}
    assert summary.controlled == sum(1 for r in packages[1:] if r[0] in controlled_ids)
    assert sum(summary.by_schedule.values()) == summary.packages
    assert summary.assumed_narcotic == 0, "every CII/CIII ingredient of the sample is in controlled_substances.csv"


def test_sample_files_have_the_fda_headers_and_no_comments():
    assert read_rows(PRODUCT_TXT)[0] == [
        "PRODUCTID", "PRODUCTNDC", "PRODUCTTYPENAME", "PROPRIETARYNAME", "PROPRIETARYNAMESUFFIX", "NONPROPRIETARYNAME",
        "DOSAGEFORMNAME", "ROUTENAME", "STARTMARKETINGDATE", "ENDMARKETINGDATE", "MARKETINGCATEGORYNAME",
        "APPLICATIONNUMBER", "LABELERNAME", "SUBSTANCENAME", "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT",
        "PHARM_CLASSES", "DEASCHEDULE", "NDC_EXCLUDE_FLAG", "LISTING_RECORD_CERTIFIED_THROUGH"]
    assert read_rows(PACKAGE_TXT)[0] == [
        "PRODUCTID", "PRODUCTNDC", "NDCPACKAGECODE", "PACKAGEDESCRIPTION", "STARTMARKETINGDATE", "ENDMARKETINGDATE",
        "NDC_EXCLUDE_FLAG", "SAMPLE_PACKAGE"]
    for path in (PRODUCT_TXT, PACKAGE_TXT):
        rows = read_rows(path)
        assert all(len(r) == len(rows[0]) for r in rows), path
        assert not any(r[0].startswith("#") for r in rows)


@pytest.mark.parametrize("ndc, schedule", [
    ("0406-0552-01", "II"),     # oxycodone CII, narcotic
    ("59011-410-10", "II"),     # OxyContin
    ("0406-0367-01", "II"),     # hydrocodone/APAP
    ("50458-091-05", "II"),     # fentanyl patch
    ("57844-120-01", "IIN"),    # amphetamine mixed salts CII, non-narcotic
    ("59417-103-10", "IIN"),    # lisdexamfetamine
    ("50458-585-01", "IIN"),    # methylphenidate
    ("12496-1208-3", "III"),    # buprenorphine/naloxone CIII, narcotic
    ("0093-0150-01", "III"),    # APAP/codeine CIII
    ("0009-0347-02", "IIIN"),   # testosterone cypionate
    ("42023-113-10", "IIIN"),   # ketamine
    ("0009-0055-01", "IV"),     # alprazolam
    ("65162-627-10", "IV"),     # tramadol
    ("0603-1075-58", "V"),      # codeine/guaifenesin syrup CV
    ("0131-2477-35", "V"),      # lacosamide
    ("65862-017-01", "NC"),     # amoxicillin
    ("0071-0805-24", "NC"),     # gabapentin (not federally controlled)
])
def test_schedules_from_deaschedule_and_narcotic_table(imported, ndc, schedule):
    db, _ = imported
    assert get(db, ndc).schedule == schedule


def test_product_fields(imported):
    db, _ = imported
    percocet = get(db, "63481-0623-70")
    assert percocet.ndc == "63481062370"
    assert percocet.product_ndc == "634810623"
    assert percocet.name == "Percocet"
    assert percocet.generic_name == "OXYCODONE HYDROCHLORIDE AND ACETAMINOPHEN"
    assert percocet.strength == "5 mg; 325 mg"
    assert percocet.dosage_form == "TABLET"
    assert percocet.labeler == "Endo USA, Inc."
    assert percocet.package_quantity == Decimal(100) and percocet.unit == "EA"
    assert percocet.package_description == "100 TABLET in 1 BOTTLE (63481-623-70)"
    assert percocet.source == "fda"
    morphine = get(db, "0406-8315-01")
    assert morphine.name == "Morphine Sulfate Extended-Release"  # PROPRIETARYNAMESUFFIX appended
    syrup = get(db, "0603-1075-58")
    assert (syrup.package_quantity, syrup.unit, syrup.strength) == (Decimal(473), "ML", "100 mg/5mL; 10 mg/5mL")
    blister = get(db, "0406-0552-62")
    assert (blister.package_quantity, blister.unit) == (Decimal(100), "EA")
    patch = get(db, "50458-091-05")
    assert (patch.package_quantity, patch.unit, patch.strength) == (Decimal(5), "EA", "25 ug/h")


def test_source_label_is_stored(db):
    import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT, source="fda-2026-01")
    assert get(db, "0406-0552-01").source == "fda-2026-01"


# ------------------------------------------------------------------------------------------------------------------
# package quantity and strength


@pytest.mark.parametrize("description, quantity, unit", [
    ("100 TABLET in 1 BOTTLE (0093-0150-01)", "100", "EA"),
    ("473 mL in 1 BOTTLE", "473", "ML"),
    ("473 mL in 1 BOTTLE (0603-1075-58)", "473", "ML"),
    ("10 BLISTER PACK in 1 CARTON > 10 TABLET in 1 BLISTER PACK", "100", "EA"),
    ("10 BLISTER PACK in 1 CARTON (0406-0552-62)  > 10 TABLET in 1 BLISTER PACK", "100", "EA"),
    ("1 BOTTLE in 1 CARTON (0054-0237-44)  > 30 mL in 1 BOTTLE", "30", "ML"),
    ("25 VIAL in 1 TRAY (0641-6044-25)  > 1 mL in 1 VIAL (0641-6044-01)", "25", "ML"),
    ("10 VIAL, MULTI-DOSE in 1 CARTON > 10 mL in 1 VIAL, MULTI-DOSE", "100", "ML"),
    ("5 POUCH in 1 CARTON (50458-091-05)  > 1 PATCH in 1 POUCH > 72 h in 1 PATCH", "5", "EA"),
    ("30 POUCH in 1 CARTON (12496-1208-3)  > 1 FILM, SOLUBLE in 1 POUCH (12496-1208-1)", "30", "EA"),
    ("100 TABLET, FILM COATED, EXTENDED RELEASE in 1 BOTTLE, PLASTIC (59011-410-10)", "100", "EA"),
    ("1 KIT in 1 KIT (0000-0000-00) * 2 mL in 1 VIAL * 1 SYRINGE in 1 POUCH", "1", "EA"),
    ("1 L in 1 BAG", "1000", "ML"),
    ("0.5 mL in 1 SYRINGE", "0.5", "ML"),
    ("30 g in 1 TUBE", "30", "GR"),
    ("1 kg in 1 JAR", "1000", "GR"),
    ("500 mg in 1 PACKET", "0.5", "GR"),
    ("4 CARTON in 1 CASE > 3 BOTTLE in 1 CARTON > 100 CAPSULE in 1 BOTTLE", "1200", "EA"),
    ("100 TABLET in 2 BOTTLE", "50", "EA"),
])
def test_package_quantity(description, quantity, unit):
    assert parse_package_quantity(description) == (Decimal(quantity), PackageUnit(unit))


@pytest.mark.parametrize("description", [
    "", "BOTTLE", "100 TABLETS", "1 [iU] in 1 VIAL", "72 h in 1 PATCH", "0 TABLET in 1 BOTTLE", "5 TABLET in 0 BOX",
    "100 TABLET in 1 BOTTLE > junk",
])
def test_package_quantity_rejects(description):
    with pytest.raises(InvalidValue) as err:
        parse_package_quantity(description)
    assert err.value.code == "package.description"


@pytest.mark.parametrize("numerators, units, expected", [
    ("10", "mg/1", "10 mg"),
    ("10; 325", "mg/1; mg/1", "10 mg; 325 mg"),
    ("100; 10", "mg/5mL; mg/5mL", "100 mg/5mL; 10 mg/5mL"),
    ("25", "ug/h", "25 ug/h"),
    ("", "", ""),
])
def test_format_strength(numerators, units, expected):
    assert format_strength(numerators, units) == expected


# ------------------------------------------------------------------------------------------------------------------
# controlled substances reference


def test_controlled_substances_table():
    table = {s.name: s for s in load_controlled_substances()}
    expected_codes = {
        "oxycodone": "9143", "hydrocodone": "9193", "morphine": "9300", "fentanyl": "9801", "methylphenidate": "1724",
        "amphetamine": "1100", "lisdexamfetamine": "1205", "buprenorphine": "9064", "testosterone": "4000",
        "ketamine": "7285", "alprazolam": "2882", "lorazepam": "2885", "diazepam": "2765", "zolpidem": "2783",
        "tramadol": "9752", "pregabalin": "2782", "codeine": "9050", "lacosamide": "2746",
    }
    for name, code in expected_codes.items():
        assert table[name].code_number == code, name
    assert table["oxycodone"].schedule is Schedule.II and table["oxycodone"].narcotic
    assert table["amphetamine"].schedule is Schedule.IIN and not table["amphetamine"].narcotic
    assert table["testosterone"].schedule is Schedule.IIIN
    assert table["buprenorphine"].schedule is Schedule.III and table["buprenorphine"].narcotic
    assert table["lacosamide"].schedule is Schedule.V
    with open(CONTROLLED_SUBSTANCES_CSV, newline="", encoding="utf-8") as handle:
        assert len(list(csv.DictReader(handle))) == len(table), "names are unique"


def test_narcotic_index_matches_salts_and_combinations():
    index = NarcoticIndex(load_controlled_substances())
    assert index.narcotic("OXYCODONE HYDROCHLORIDE") is True
    assert index.narcotic("HYDROCODONE BITARTRATE; ACETAMINOPHEN") is True
    assert index.narcotic("DEXTROAMPHETAMINE SACCHARATE; AMPHETAMINE ASPARTATE MONOHYDRATE") is False
    assert index.narcotic("TESTOSTERONE CYPIONATE") is False
    assert index.narcotic("AMOXICILLIN") is None
    assert index.match("METHYLPHENIDATE HYDROCHLORIDE").code_number == "1724"
    assert index.match("DEXMETHYLPHENIDATE HYDROCHLORIDE").name == "dexmethylphenidate"


# ------------------------------------------------------------------------------------------------------------------
# re-import


def test_reimport_updates_without_duplicating(imported, tmp_path):
    db, first = imported
    before = snapshot(db)
    second = import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT)
    assert (second.inserted, second.updated) == (0, first.packages)
    assert snapshot(db) == before

    products = read_rows(PRODUCT_TXT)
    i_name = col(products, "PROPRIETARYNAME")
    for row in products[1:]:
        if row[i_name] == "OxyContin":
            row[i_name] = "OxyContin Renamed"
    packages = read_rows(PACKAGE_TXT)
    oxy = next(r for r in packages if r[2] == "0406-0552-01")
    packages.append([oxy[0], oxy[1], "0406-0552-10", "1000 TABLET in 1 BOTTLE (0406-0552-10)", oxy[4], "", "N", "N"])
    third = import_fda_catalog(db, write_rows(tmp_path / "product.txt", products),
                               write_rows(tmp_path / "package.txt", packages))
    assert (third.inserted, third.updated) == (1, first.packages)
    assert product_count(db) == first.packages + 1
    renamed = get(db, "59011-410-10")
    assert renamed.name == "OxyContin Renamed"
    assert renamed.id == before["59011041010"][0], "upsert keeps the row id (order lines stay linked)"
    assert get(db, "0406-0552-10").package_quantity == Decimal(1000)


# ------------------------------------------------------------------------------------------------------------------
# malformed files: error names file, line and rule; nothing is written


MALFORMED = {
    "bad_package_ndc": ("package.txt", "catalog.package_ndc",
                        lambda prod, pack: pack[-1].__setitem__(2, "0406-05X2-01")),
    "ambiguous_package_ndc": ("package.txt", "catalog.package_ndc",
                              lambda prod, pack: pack[-1].__setitem__(2, "6954735302")),
    "package_of_other_product": ("package.txt", "catalog.package_product_mismatch",
                                 lambda prod, pack: pack[-1].__setitem__(2, "0093-0150-01")),
    "orphan_package": ("package.txt", "catalog.unknown_product",
                       lambda prod, pack: pack[-1].__setitem__(0, "9999-9999_no-such-product")),
    "short_package_row": ("package.txt", "catalog.column_count", lambda prod, pack: pack[-1].pop()),
    "long_package_row": ("package.txt", "catalog.column_count", lambda prod, pack: pack[-1].append("extra")),
    "unknown_deaschedule": ("product.txt", "catalog.deaschedule",
                            lambda prod, pack: prod[-1].__setitem__(col(prod, "DEASCHEDULE"), "C2")),
    "bad_product_ndc": ("product.txt", "catalog.product_ndc",
                        lambda prod, pack: prod[-1].__setitem__(1, "123-45")),
    "short_product_row": ("product.txt", "catalog.column_count", lambda prod, pack: prod[-1].pop()),
    "duplicate_product_id": ("product.txt", "catalog.duplicate_product",
                             lambda prod, pack: prod[-1].__setitem__(0, prod[1][0])),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_row_raises_with_line_number_and_rolls_back(imported, tmp_path, case):
    db, _ = imported
    before = snapshot(db)
    oxycontin_name = before["59011041010"][1]
    products, packages = read_rows(PRODUCT_TXT), read_rows(PACKAGE_TXT)
    # Changes that WOULD be written before the bad row is reached: a rename of every product and a new package.
    i_name = col(products, "PROPRIETARYNAME")
    for row in products[1:]:
        row[i_name] = "Changed " + row[i_name]
    oxy = next(r for r in packages if r[2] == "0406-0552-01")
    packages.insert(1, [oxy[0], oxy[1], "0406-0552-10", "1000 TABLET in 1 BOTTLE", oxy[4], "", "N", "N"])
    file_name, code, corrupt = MALFORMED[case]
    corrupt(products, packages)
    expected_line = len(products) if file_name == "product.txt" else len(packages)

    with pytest.raises(CatalogImportError) as err:
        import_fda_catalog(db, write_rows(tmp_path / "product.txt", products),
                           write_rows(tmp_path / "package.txt", packages), batch_size=5)
    assert err.value.code == code
    assert f"{file_name} line {expected_line}:" in err.value.message
    assert product_count(db) == len(before)
    assert get(db, "59011-410-10").name == oxycontin_name == "OxyContin"
    assert snapshot(db) == before


@pytest.mark.parametrize("file_name, column", [
    ("product.txt", "DEASCHEDULE"), ("product.txt", "PRODUCTNDC"), ("package.txt", "NDCPACKAGECODE"),
    ("package.txt", "PRODUCTID"),
])
def test_missing_required_header_raises_on_line_1(imported, tmp_path, file_name, column):
    db, _ = imported
    before = snapshot(db)
    rows = {"product.txt": read_rows(PRODUCT_TXT), "package.txt": read_rows(PACKAGE_TXT)}
    target = rows[file_name]
    index = col(target, column)
    for row in target:
        del row[index]
    with pytest.raises(CatalogImportError) as err:
        import_fda_catalog(db, write_rows(tmp_path / "product.txt", rows["product.txt"]),
                           write_rows(tmp_path / "package.txt", rows["package.txt"]))
    assert err.value.code == "catalog.header"
    assert f"{file_name} line 1:" in err.value.message and column in err.value.message
    assert snapshot(db) == before


def test_empty_file_raises(db, tmp_path):
    (tmp_path / "package.txt").write_bytes(b"")
    with pytest.raises(CatalogImportError) as err:
        import_fda_catalog(db, PRODUCT_TXT, tmp_path / "package.txt")
    assert err.value.code == "catalog.header" and "package.txt line 1" in err.value.message
    assert product_count(db) == 0


def test_missing_file_raises(db, tmp_path):
    with pytest.raises(CatalogImportError) as err:
        import_fda_catalog(db, PRODUCT_TXT, tmp_path / "nope.txt")
    assert err.value.code == "catalog.unreadable"


# ------------------------------------------------------------------------------------------------------------------
# tolerated variations and skipped rows


def test_columns_found_by_name_not_position(db, tmp_path):
    products, packages = read_rows(PRODUCT_TXT), read_rows(PACKAGE_TXT)
    products = [list(reversed(r)) for r in products]
    packages = [r[3:] + r[:3] for r in packages]
    summary = import_fda_catalog(db, write_rows(tmp_path / "product.txt", products),
                                 write_rows(tmp_path / "package.txt", packages))
    assert summary.packages == len(packages) - 1
    assert get(db, "57844-120-01").schedule == "IIN"
    assert get(db, "0603-1075-58").unit == "ML"


def test_latin1_and_bom_files(db, tmp_path):
    products, packages = read_rows(PRODUCT_TXT), read_rows(PACKAGE_TXT)
    i_labeler = col(products, "LABELERNAME")
    row = next(r for r in products if r[1] == "0024-5421")
    row[i_labeler] = "sanofi-aventis U.S. LLC (Québec)"
    product_txt = write_rows(tmp_path / "product.txt", products, encoding="latin-1")
    package_txt = tmp_path / "package.txt"
    package_txt.write_bytes(b"\xef\xbb\xbf" + PACKAGE_TXT.read_bytes())
    summary = import_fda_catalog(db, product_txt, package_txt)
    assert summary.encodings == {"product.txt": "cp1252", "package.txt": "utf-8"}
    assert get(db, "0024-5421-31").labeler == "sanofi-aventis U.S. LLC (Québec)"
    assert summary.packages == len(packages) - 1


def test_unorderable_rows_are_skipped_and_counted(db, tmp_path):
    products, packages = read_rows(PRODUCT_TXT), read_rows(PACKAGE_TXT)
    by_code = {r[2]: r for r in packages}
    by_code["0406-0552-05"][col(packages, "SAMPLE_PACKAGE")] = "Y"
    by_code["0591-0241-05"][col(packages, "NDC_EXCLUDE_FLAG")] = "E"
    by_code["65162-627-50"][3] = "a box of tablets"
    packages.append(list(by_code["0093-0150-01"]))  # same NDC again
    excluded = next(r for r in products if r[1] == "0087-6060")
    excluded[col(products, "NDC_EXCLUDE_FLAG")] = "D"
    summary = import_fda_catalog(db, write_rows(tmp_path / "product.txt", products),
                                 write_rows(tmp_path / "package.txt", packages))
    assert summary.skipped == {"sample_package": 1, "package_excluded": 1, "package_description": 1,
                               "duplicate_ndc": 1, "product_excluded": 2}  # product row + its package row
    assert summary.products == len(products) - 2
    assert summary.packages == len(packages) - 1 - 5
    assert product_count(db) == summary.packages
    lines = {(s.file, s.reason): s.line for s in summary.skipped_examples}
    assert lines[("package.txt", "duplicate_ndc")] == len(packages)
    with db.session() as session:
        for ndc in ("0406-0552-05", "0591-0241-05", "65162-627-50", "0087-6060-05"):
            assert find_product(session, ndc) is None, ndc
        assert find_product(session, "0093-0150-01") is not None


def test_cii_substance_missing_from_table_is_assumed_narcotic(db, tmp_path):
    products = read_rows(PRODUCT_TXT)
    row = next(r for r in products if r[1] == "57844-120")  # Adderall 20 mg
    row[col(products, "SUBSTANCENAME")] = "SOME NEW STIMULANT"
    summary = import_fda_catalog(db, write_rows(tmp_path / "product.txt", products), PACKAGE_TXT)
    assert summary.assumed_narcotic == 1
    assert get(db, "57844-120-01").schedule == "II"
    assert get(db, "57844-110-01").schedule == "IIN"


# ------------------------------------------------------------------------------------------------------------------
# progress


def test_progress_called_with_increasing_counts(db):
    calls: list[tuple[int, int]] = []
    summary = import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT, progress=lambda d, t: calls.append((d, t)),
                                 progress_every=10)
    total = (len(read_rows(PRODUCT_TXT)) - 1) + (len(read_rows(PACKAGE_TXT)) - 1)
    assert len(calls) == total // 10 + (1 if total % 10 else 0)
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[0] == 10 and done[-1] == total
    assert summary.packages == product_count(db)


def test_progress_callback_raising_cancels_and_rolls_back(db):
    class Cancelled(Exception):
        pass

    def cancel_late(done: int, total: int) -> None:
        if done > total - 10:
            raise Cancelled

    with pytest.raises(Cancelled):
        import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT, progress=cancel_late, progress_every=5, batch_size=5)
    assert product_count(db) == 0


# ------------------------------------------------------------------------------------------------------------------
# queries


def test_find_product_by_any_layout(imported):
    db, _ = imported
    with db.session() as session:
        assert find_product(session, "0093-0150-01").name == "Acetaminophen and Codeine Phosphate"
        assert find_product(session, "00093015001").ndc == "00093015001"
        assert find_product(session, "00093-0150-01").ndc == "00093015001"
        assert find_product(session, "12496-1208-3").ndc == "12496120803"  # 5-4-1
        assert find_product(session, "0093-0150-99") is None
        with pytest.raises(InvalidValue):
            find_product(session, "0093015001")  # 10 digits without hyphens: ambiguous


@pytest.mark.parametrize("text, expected", [
    ("oxyc", {"59011041010", "59011042010", "00406055201", "00406055205", "00406055262", "00406853001",
              "63481062370"}),
    ("OXYCONTIN", {"59011041010", "59011042010"}),
    ("vyv", {"59417010310"}),
    ("lacosamide", {"00131247735", "00131248035", "00131181067"}),          # generic name
    ("codeine", {"00093005001", "00093015001", "00603107558"}),              # word inside the generic name
    ("0093-0150", {"00093015001"}),                                          # as printed (4-4)
    ("00093-0150-01", {"00093015001"}),                                      # display form
    ("000930", {"00093005001", "00093015001", "00093083301", "00093007401"}),  # digits prefix
    ("59011-410", {"59011041010"}),                                          # 5-3 as printed
    ("12496-1208-3", {"12496120803"}),
    ("no such drug", set()),
    ("50%", set()),                                                          # LIKE wildcards are escaped
])
def test_search_products(imported, text, expected):
    db, _ = imported
    with db.session() as session:
        assert {p.ndc for p in search_products(session, text, limit=50)} == expected


def test_search_orders_name_prefix_first_and_respects_limit(imported):
    db, _ = imported
    with db.session() as session:
        results = search_products(session, "oxy", limit=3)
        assert len(results) == 3
        assert all(p.name.lower().startswith("oxy") for p in results)
        assert search_products(session, "", limit=10) == []
        # "amphet" matches only inside generic names (Adderall), not a name prefix
        assert {p.name for p in search_products(session, "amphet")} == {"Adderall", "Adderall XR"}


# ------------------------------------------------------------------------------------------------------------------
# the three write paths give the same result


@pytest.mark.parametrize("path", ["driver_executemany", "core_upsert", "portable_select_then_update"])
def test_write_paths_insert_then_update(db, tmp_path, monkeypatch, path):
    from app.services import catalog

    original = catalog._Writer.__init__

    def patched(self, connection, table):
        original(self, connection, table)
        if path == "driver_executemany":
            assert self.driver_sql is not None
            return
        self.driver_sql = None
        self.quantity = lambda value: value
        if path == "portable_select_then_update":
            self.upsert = None

    monkeypatch.setattr(catalog._Writer, "__init__", patched)
    first = import_fda_catalog(db, PRODUCT_TXT, PACKAGE_TXT, batch_size=7)
    ids = {ndc: row[0] for ndc, row in snapshot(db).items()}
    products = read_rows(PRODUCT_TXT)
    i_name = col(products, "PROPRIETARYNAME")
    for row in products[1:]:
        row[i_name] = row[i_name].upper()
    second = import_fda_catalog(db, write_rows(tmp_path / "product.txt", products), PACKAGE_TXT, batch_size=7)
    assert (first.inserted, second.inserted, second.updated) == (first.packages, 0, first.packages)
    after = snapshot(db)
    assert {ndc: row[0] for ndc, row in after.items()} == ids
    assert after["59011041010"][1] == "OXYCONTIN"
    assert get(db, "0603-1075-58").package_quantity == Decimal(473)
    assert get(db, "0603-1075-58").unit == "ML"


@pytest.mark.parametrize("description", [
    "1000000000000000000000000000 TABLET in 1 BOTTLE (70001-103-02)",  # 10^27: was "unexpected problem"
    "100000000 TABLET in 1 BOTTLE",  # 9 digits: no order can carry it (X12 PO402 has 8)
    "123456.789 mL in 1 JUG",  # 9 digits with the decimals
    "1" + "0" * 1_000_001 + " TABLET in 1 BOTTLE",  # past decimal's exponent range
])
def test_a_quantity_no_order_can_carry_is_a_typed_error(description):
    with pytest.raises(InvalidValue) as err:
        parse_package_quantity(description)
    assert err.value.code == "package.quantity_out_of_range"
    assert parse_package_quantity("99999999 TABLET in 1 BOTTLE") == (Decimal(99_999_999), PackageUnit.EACH)
