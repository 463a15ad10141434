"""Product catalog: import of the FDA NDC Directory and the look-ups the order editor, CLI and verifier use.

DESIGN.md §6: the schedule of an order line comes from this catalog, never from the order. The catalog is filled from
FDA's NDC Directory text files (``product.txt`` + ``package.txt``, tab-separated, one header line). One ``products``
row per *package* NDC (NDC-11), carrying the product's name, strength, form, labeler and schedule.

Import rules (each failure is a :class:`CatalogImportError` naming file, line and rule; nothing is half-imported):

* Columns are found by header name; the required ones are listed in ``PRODUCT_REQUIRED`` / ``PACKAGE_REQUIRED``.
  Every data line has exactly as many tab-separated fields as the header (``catalog.column_count``).
* Files are read as UTF-8 (with or without BOM), else Windows-1252, else latin-1.
* ``PRODUCTNDC`` and ``NDCPACKAGECODE`` must be valid hyphenated NDCs (``catalog.product_ndc`` /
  ``catalog.package_ndc``); the package NDC must start with its product's labeler+product code
  (``catalog.package_product_mismatch``); ``DEASCHEDULE`` is CI..CV or empty (``catalog.deaschedule``); a package's
  ``PRODUCTID`` must exist in product.txt (``catalog.unknown_product``); ``PRODUCTID`` is unique
  (``catalog.duplicate_product``).
* Rows that are well formed but not orderable are *skipped* and counted by reason in the summary: products/packages
  whose ``NDC_EXCLUDE_FLAG`` is set (anything but ``N``/empty), sample packages (``SAMPLE_PACKAGE`` = ``Y``), a package
  NDC listed twice (the first wins), a ``PACKAGEDESCRIPTION`` whose quantity cannot be read.
* A ``PACKAGEDESCRIPTION`` that is readable but whose quantity no order can carry (over 8 digits, X12 PO402) is an
  error (``catalog.package_quantity``), not a skip: the file is wrong, and the person should know.

Quantity in one package (``package_quantity`` + ``unit``) from ``PACKAGEDESCRIPTION``, see
:func:`parse_package_quantity`:

* The description is a chain of levels, outermost first, separated by ``>``: ``<q> <UNIT> in <n> <CONTAINER> (NDC)``.
  For kits FDA lists several parts separated by ``*``: only the first part (the outer package) is read.
* Quantity per outermost package = product over the levels of ``q / n`` (``n`` is 1 in practice):
  ``10 BLISTER PACK in 1 CARTON > 10 TABLET in 1 BLISTER PACK`` -> 100 EA;
  ``25 VIAL in 1 CARTON > 2 mL in 1 VIAL`` -> 50 ML (the whole carton's content).
* Unit = the innermost level's: ``mL``/``L`` -> ML, ``g``/``kg``/``mg`` -> GR (converted), any count form written in
  capitals (TABLET, CAPSULE, PATCH, FILM, KIT, SPRAY...) -> EA. A level measured in time (``72 h in 1 PATCH``) is the
  release duration, not a quantity, and is ignored. Any other unit makes the package skipped.

Schedule: :meth:`Schedule.from_fda` of ``DEASCHEDULE`` with the narcotic flag looked up in
``resources/controlled_substances.csv`` by ``SUBSTANCENAME`` (each ``;``-separated ingredient matched by its longest
leading words, so ``AMPHETAMINE ASPARTATE MONOHYDRATE`` matches ``amphetamine``): any listed narcotic ingredient ->
narcotic; only listed non-narcotic ingredients -> non-narcotic (CII -> IIN, CIII -> IIIN); none listed -> narcotic
assumed (the conservative choice, counted in ``ImportSummary.assumed_narcotic``).

Re-import upserts by NDC-11 (``ON CONFLICT (ndc) DO UPDATE`` on SQLite and PostgreSQL): the row keeps its id, so order
lines pointing at it stay linked. Products missing from a newer file are kept (orders may reference them). A product
with the same NDC entered by hand is overwritten by the catalog's values.
"""

from __future__ import annotations

import csv
import functools
import operator
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from sqlalchemy import Connection, Table, bindparam, case, func, insert, or_, select, update
from sqlalchemy.orm import Session

from app.errors import CatalogImportError, InvalidValue
from app.models.orderbook import Product
from app.models.values import Ndc, PackageUnit, Schedule

RESOURCES_DIR = Path(__file__).resolve().parents[2] / "resources"
CATALOG_DIR = RESOURCES_DIR / "catalog"
CONTROLLED_SUBSTANCES_CSV = RESOURCES_DIR / "controlled_substances.csv"

PRODUCT_REQUIRED = (
    "PRODUCTID", "PRODUCTNDC", "PROPRIETARYNAME", "NONPROPRIETARYNAME", "DOSAGEFORMNAME", "LABELERNAME",
    "SUBSTANCENAME", "ACTIVE_NUMERATOR_STRENGTH", "ACTIVE_INGRED_UNIT", "DEASCHEDULE",
)
# Used when present: PROPRIETARYNAMESUFFIX, NDC_EXCLUDE_FLAG (product.txt); NDC_EXCLUDE_FLAG, SAMPLE_PACKAGE
# (package.txt).
PACKAGE_REQUIRED = ("PRODUCTID", "NDCPACKAGECODE", "PACKAGEDESCRIPTION")

DEFAULT_BATCH_SIZE = 5000
MAX_SKIPPED_EXAMPLES = 50

ProgressCallback = Callable[[int, int], None]


# --------------------------------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class SkippedRow:
    file: str
    line: int
    reason: str
    detail: str = ""


@dataclass
class ImportSummary:
    """What an import did. ``packages`` = rows written (inserted + updated)."""

    products: int = 0
    packages: int = 0
    inserted: int = 0
    updated: int = 0
    controlled: int = 0
    by_schedule: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: list[SkippedRow] = field(default_factory=list)
    # CII/CIII products none of whose ingredients is in controlled_substances.csv (schedule assumed narcotic).
    assumed_narcotic: int = 0
    encodings: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def _skip(self, file: str, line: int, reason: str, detail: str = "") -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if len(self.skipped_examples) < MAX_SKIPPED_EXAMPLES:
            self.skipped_examples.append(SkippedRow(file, line, reason, detail))


@dataclass(frozen=True)
class ControlledSubstance:
    name: str  # lower case base name, e.g. "oxycodone"
    code_number: str  # DEA Controlled Substances Code Number (4 digits)
    schedule: Schedule
    narcotic: bool


# --------------------------------------------------------------------------------------------------------------------
# Reference data


@functools.lru_cache(maxsize=4)
def _load_controlled(path: Path) -> tuple[ControlledSubstance, ...]:
    substances: list[ControlledSubstance] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"name", "code_number", "schedule", "narcotic"} - set(reader.fieldnames or ())
        if missing:
            raise CatalogImportError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}.",
                                     code="catalog.controlled_header")
        for row in reader:
            line = reader.line_num
            name = (row["name"] or "").strip().lower()
            code = (row["code_number"] or "").strip()
            narcotic_text = (row["narcotic"] or "").strip().upper()
            try:
                schedule = Schedule.parse(row["schedule"] or "")
            except InvalidValue as exc:
                raise CatalogImportError(f"{path.name} line {line}: {exc.message}",
                                         code="catalog.controlled_row") from None
            if not name or not re.fullmatch(r"[0-9]{4}", code) or narcotic_text not in ("Y", "N") \
                    or not schedule.is_controlled:
                raise CatalogImportError(
                    f"{path.name} line {line}: each row needs a name, a 4-digit DEA code number, a schedule "
                    "(I, II, IIN, III, IIIN, IV, V) and narcotic Y or N.", code="catalog.controlled_row")
            narcotic = narcotic_text == "Y"
            if (schedule in (Schedule.II, Schedule.III) and not narcotic) or \
                    (schedule in (Schedule.IIN, Schedule.IIIN) and narcotic):
                raise CatalogImportError(
                    f"{path.name} line {line}: schedule {schedule.value} contradicts narcotic={narcotic_text}.",
                    code="catalog.controlled_row")
            substances.append(ControlledSubstance(name, code, schedule, narcotic))
    return tuple(substances)


def load_controlled_substances(path: Path | None = None) -> list[ControlledSubstance]:
    """The reference table ``resources/controlled_substances.csv`` (name, DEA code number, schedule, narcotic)."""
    return list(_load_controlled(Path(path or CONTROLLED_SUBSTANCES_CSV)))


class NarcoticIndex:
    """Answers "is this product's controlled ingredient a narcotic?" from FDA's ``SUBSTANCENAME``."""

    def __init__(self, substances: Iterable[ControlledSubstance]) -> None:
        self._by_name = {s.name.upper(): s for s in substances}
        self._cache: dict[str, bool | None] = {}

    def match(self, ingredient: str) -> ControlledSubstance | None:
        words = ingredient.strip().upper().split()
        for length in range(len(words), 0, -1):
            found = self._by_name.get(" ".join(words[:length]))
            if found is not None:
                return found
        return None

    def narcotic(self, substance_name: str) -> bool | None:
        """True if any ingredient is a listed narcotic, False if all listed ones are non-narcotic, None if none is
        listed (caller then assumes narcotic)."""
        cached = self._cache.get(substance_name, ...)
        if cached is not ...:
            return cached  # type: ignore[return-value]
        matches = [m for m in (self.match(part) for part in substance_name.split(";")) if m is not None]
        result: bool | None = None
        if matches:
            result = any(m.narcotic for m in matches)
        self._cache[substance_name] = result
        return result


def bundled_catalog_paths() -> tuple[Path, Path]:
    """The training sample shipped in ``resources/catalog`` (FDA layout): ``(product.txt, package.txt)``."""
    return CATALOG_DIR / "product.txt", CATALOG_DIR / "package.txt"


# --------------------------------------------------------------------------------------------------------------------
# Package description -> quantity in one package


_LEVEL = re.compile(
    r"^\s*(?P<q>[0-9]+(?:\.[0-9]+)?)\s+(?P<unit>.+?)\s+in\s+(?P<n>[0-9]+(?:\.[0-9]+)?)\s+(?P<container>[^()]+?)"
    r"\s*(?:\([^)]*\))?\s*$"
)
_MEASURE_UNITS: dict[str, tuple[PackageUnit, Decimal]] = {
    "ml": (PackageUnit.MILLILITER, Decimal(1)),
    "l": (PackageUnit.MILLILITER, Decimal(1000)),
    "g": (PackageUnit.GRAM, Decimal(1)),
    "kg": (PackageUnit.GRAM, Decimal(1000)),
    "mg": (PackageUnit.GRAM, Decimal("0.001")),
}
_DURATION_UNITS = frozenset({"h", "d", "min", "wk", "mo"})
_THOUSANDTH = Decimal("0.001")
# An order carries the quantity in one package as at most 8 digits (X12 PO402); the catalog column holds less than
# 10^9. A description beyond that is an error in the file, not a package to skip silently.
MAX_PACKAGE_QUANTITY = Decimal(99_999_999)
PACKAGE_QUANTITY_DIGITS = 8


class _OutOfRange(ValueError):
    """The description is readable but its quantity cannot be stored or ordered."""


def parse_package_quantity(description: str) -> tuple[Decimal, PackageUnit]:
    """Total quantity in one outermost package and its unit, from FDA's ``PACKAGEDESCRIPTION`` (rule: module doc).

    Raises ``InvalidValue`` (code ``package.description``) when the text does not follow FDA's pattern.
    """
    # Only the outer package of a kit ("*" separates its parts). The NDCs in parentheses make every description
    # unique; without them the few shapes repeat, so the parse is cached on the stripped text.
    text = _PARENTHESES.sub("", (description or "").split("*", 1)[0])
    try:
        return _parse_levels(text)
    except _OutOfRange as exc:
        raise InvalidValue(f"'{description}' {exc}", code="package.quantity_out_of_range") from None
    except ArithmeticError:  # decimal.Overflow and friends: a number with a million digits
        raise InvalidValue(f"'{description[:80]}…' has a number too large for any package.",
                           code="package.quantity_out_of_range") from None
    except ValueError as exc:
        raise InvalidValue(f"'{description}' {exc}", code="package.description") from None


_PARENTHESES = re.compile(r"\([^)]*\)")


@functools.lru_cache(maxsize=4096)
def _parse_levels(text: str) -> tuple[Decimal, PackageUnit]:
    total = Decimal(1)
    unit: PackageUnit | None = None
    levels = 0
    for part in text.split(">"):
        match = _LEVEL.match(part)
        if match is None:
            raise ValueError("is not an FDA package description "
                             "('<quantity> <unit> in <n> <container>', levels separated by '>').")
        unit_text = match["unit"].strip()
        key = unit_text.lower()
        if key in _DURATION_UNITS:
            continue  # "72 h in 1 PATCH": release duration, not an amount
        q, n = Decimal(match["q"]), Decimal(match["n"])
        if n == 0:
            raise ValueError("has a level 'in 0' containers.")
        if key in _MEASURE_UNITS:
            unit, factor = _MEASURE_UNITS[key]
            q *= factor
        elif unit_text.upper() == unit_text and any(c.isalpha() for c in unit_text):
            unit = PackageUnit.EACH
        else:
            raise ValueError(f"has unit '{unit_text}', which is neither a count, a volume nor a mass.")
        total = total * q / n
        levels += 1
    if levels == 0 or unit is None:
        raise ValueError("has no quantity.")
    if total > MAX_PACKAGE_QUANTITY:
        raise _OutOfRange(f"says {total:,.0f} in one package; an order can carry at most "
                          f"{MAX_PACKAGE_QUANTITY:,.0f}.")
    total = total.quantize(_THOUSANDTH)
    if total <= 0:
        raise ValueError("has a quantity that rounds to zero.")
    total = total.quantize(Decimal(1)) if total == total.to_integral_value() else total.normalize()
    if sum(c.isdigit() for c in format(total, "f")) > PACKAGE_QUANTITY_DIGITS:
        raise _OutOfRange(f"says {total:f} in one package; an order can carry at most {PACKAGE_QUANTITY_DIGITS} "
                          "digits.")
    return total, unit


def format_strength(numerators: str, units: str) -> str:
    """``"10; 325"`` + ``"mg/1; mg/1"`` -> ``"10 mg; 325 mg"``; ``"/1"`` (per unit) dropped, ``mg/5mL`` kept."""
    nums = [p.strip() for p in (numerators or "").split(";")]
    unit_list = [p.strip() for p in (units or "").split(";")]
    if len(unit_list) == 1 and len(nums) > 1:
        unit_list *= len(nums)
    if len(nums) != len(unit_list):
        return " ".join(x for x in (numerators.strip(), units.strip()) if x)
    parts = []
    for num, unit in zip(nums, unit_list):
        if unit.endswith("/1"):
            unit = unit[:-2]
        piece = f"{num} {unit}".strip()
        if piece:
            parts.append(piece)
    return "; ".join(parts)


# --------------------------------------------------------------------------------------------------------------------
# Reading FDA text files


@dataclass
class _TextFile:
    path: Path
    name: str
    encoding: str
    header: list[str]
    columns: dict[str, int]
    lines: list[str]  # lines[0] is the header

    @property
    def data_lines(self) -> int:
        return max(len(self.lines) - 1, 0)


def _read_text(path: Path) -> tuple[str, str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise CatalogImportError(f"{Path(path).name} cannot be read ({exc.strerror or exc}).",
                                 code="catalog.unreadable") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1"), "latin-1"


def _open_fda_file(path: Path, required: Sequence[str]) -> _TextFile:
    path = Path(path)
    text, encoding = _read_text(path)
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise CatalogImportError(f"{path.name} line 1: the header line is missing (file is empty).",
                                 code="catalog.header")
    header = [h.strip().strip('"').upper() for h in lines[0].rstrip("\r").split("\t")]
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        columns.setdefault(name, index)
    missing = [name for name in required if name not in columns]
    if missing:
        raise CatalogImportError(
            f"{path.name} line 1: required column(s) {', '.join(missing)} missing from the header. Is this the FDA "
            f"NDC Directory {'product' if 'PRODUCTNDC' in required else 'package'}.txt (tab-separated)?",
            code="catalog.header")
    return _TextFile(path, path.name, encoding, header, columns, lines)


def _fail(file: _TextFile, line: int, rule: str, message: str) -> CatalogImportError:
    return CatalogImportError(f"{file.name} line {line}: {message}", code=f"catalog.{rule}")


def _fields(file: _TextFile, line_no: int, line: str) -> list[str] | None:
    line = line.rstrip("\r")
    if not line.strip():
        return None
    fields = line.split("\t")
    if len(fields) != len(file.header):
        raise _fail(file, line_no, "column_count",
                    f"{len(fields)} tab-separated fields, the header has {len(file.header)}.")
    return fields


_PRODUCT_NDC = re.compile(r"^([0-9]+)-([0-9]+)$")
_PRODUCT_NDC_LAYOUTS = {(4, 4), (5, 3), (5, 4)}


def _parse_product_ndc(text: str) -> str | None:
    match = _PRODUCT_NDC.match(text.strip())
    if not match:
        return None
    labeler, product = match.groups()
    if (len(labeler), len(product)) not in _PRODUCT_NDC_LAYOUTS:
        return None
    return labeler.zfill(5) + product.zfill(4)


@dataclass(frozen=True, slots=True)
class _ProductInfo:
    product_ndc: str
    name: str
    generic_name: str
    strength: str
    dosage_form: str
    labeler: str
    schedule: str
    excluded: bool


# --------------------------------------------------------------------------------------------------------------------
# Import


def _column_limits(table: Table) -> dict[str, int]:
    return {c.name: c.type.length for c in table.columns if getattr(c.type, "length", None)}  # type: ignore


def _read_products(file: _TextFile, narcotics: NarcoticIndex, summary: ImportSummary, limits: dict[str, int],
                   tick: Callable[[], None]) -> dict[str, _ProductInfo]:
    col = file.columns
    i_id, i_ndc, i_name = col["PRODUCTID"], col["PRODUCTNDC"], col["PROPRIETARYNAME"]
    i_suffix, i_generic = col.get("PROPRIETARYNAMESUFFIX"), col["NONPROPRIETARYNAME"]
    i_form, i_labeler, i_subst = col["DOSAGEFORMNAME"], col["LABELERNAME"], col["SUBSTANCENAME"]
    i_num, i_unit, i_dea = col["ACTIVE_NUMERATOR_STRENGTH"], col["ACTIVE_INGRED_UNIT"], col["DEASCHEDULE"]
    i_excl = col.get("NDC_EXCLUDE_FLAG")
    lim_name, lim_generic, lim_strength = limits["name"], limits["generic_name"], limits["strength"]
    lim_form, lim_labeler = limits["dosage_form"], limits["labeler"]

    products: dict[str, _ProductInfo] = {}
    for line_no in range(2, len(file.lines) + 1):
        tick()
        fields = _fields(file, line_no, file.lines[line_no - 1])
        if fields is None:
            continue
        product_id = fields[i_id].strip()
        if not product_id:
            raise _fail(file, line_no, "product_id", "PRODUCTID is empty.")
        if product_id in products:
            raise _fail(file, line_no, "duplicate_product", f"PRODUCTID {product_id} appears twice.")
        product_ndc = _parse_product_ndc(fields[i_ndc])
        if product_ndc is None:
            raise _fail(file, line_no, "product_ndc",
                        f"PRODUCTNDC '{fields[i_ndc].strip()}' is not a labeler-product code (4-4, 5-3 or 5-4).")
        dea = fields[i_dea].strip()
        schedule = Schedule.NON_CONTROLLED
        if dea:
            narcotic = narcotics.narcotic(fields[i_subst])
            try:
                schedule = Schedule.from_fda(dea, narcotic=narcotic)
            except InvalidValue:
                raise _fail(file, line_no, "deaschedule",
                            f"DEASCHEDULE '{dea}' is not CI, CII, CIII, CIV, CV or empty.") from None
            if narcotic is None and schedule in (Schedule.II, Schedule.III):
                summary.assumed_narcotic += 1
        excluded = i_excl is not None and fields[i_excl].strip().upper() not in ("", "N")
        name = fields[i_name].strip()
        if i_suffix is not None and fields[i_suffix].strip():
            name = f"{name} {fields[i_suffix].strip()}"
        generic = fields[i_generic].strip()
        products[product_id] = _ProductInfo(
            product_ndc=product_ndc,
            name=(name or generic)[:lim_name],
            generic_name=generic[:lim_generic],
            strength=format_strength(fields[i_num], fields[i_unit])[:lim_strength],
            dosage_form=fields[i_form].strip()[:lim_form],
            labeler=fields[i_labeler].strip()[:lim_labeler],
            schedule=schedule.value,
            excluded=excluded,
        )
        if excluded:
            summary._skip(file.name, line_no, "product_excluded", f"NDC_EXCLUDE_FLAG={fields[i_excl].strip()}")
        else:
            summary.products += 1
    return products


class _Writer:
    """Batched upsert of product rows (tuples in ``COLUMNS`` order) into ``products`` by NDC, on one connection (one
    transaction). On SQLite the Core upsert statement is compiled once and run with the driver's ``executemany``,
    skipping SQLAlchemy's per-row parameter processing (the one type needing it, Numeric, is converted by
    :meth:`quantity` with the type's own bind processor)."""

    COLUMNS = ("ndc", "product_ndc", "name", "generic_name", "strength", "dosage_form", "labeler",
               "package_description", "package_quantity", "unit", "schedule", "source")

    def __init__(self, connection: Connection, table: Table) -> None:
        self.connection = connection
        self.table = table
        self.quantity: Callable[[Decimal], Any] = lambda value: value
        self.driver_sql: str | None = None
        self.reorder: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None
        dialect = connection.dialect
        self.upsert: Any = None
        if dialect.name in ("sqlite", "postgresql"):
            if dialect.name == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as dialect_insert
            else:
                from sqlalchemy.dialects.postgresql import insert as dialect_insert
            stmt = dialect_insert(table)
            self.upsert = stmt.on_conflict_do_update(
                index_elements=[table.c.ndc],
                set_={name: stmt.excluded[name] for name in self.COLUMNS if name != "ndc"},
            )
        if dialect.name == "sqlite" and dialect.paramstyle == "qmark":
            compiled = self.upsert.compile(dialect=dialect, column_keys=list(self.COLUMNS))
            order = list(compiled.positiontup or ())
            if sorted(order) == sorted(self.COLUMNS):
                self.driver_sql = str(compiled)
                if order != list(self.COLUMNS):
                    getter = operator.itemgetter(*(self.COLUMNS.index(name) for name in order))
                    self.reorder = getter  # type: ignore[assignment]
                processor = table.c.package_quantity.type.bind_processor(dialect)
                if processor is not None:
                    self.quantity = processor

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.driver_sql is not None:
            if self.reorder is not None:
                rows = [self.reorder(row) for row in rows]
            self.connection.exec_driver_sql(self.driver_sql, rows)
            return
        dicts = [dict(zip(self.COLUMNS, row)) for row in rows]
        if self.upsert is not None:
            self.connection.execute(self.upsert, dicts)
            return
        # Portable fallback for other databases: split into existing / new by NDC.
        ndcs = [r["ndc"] for r in dicts]
        existing = set(self.connection.scalars(select(self.table.c.ndc).where(self.table.c.ndc.in_(ndcs))))
        new_rows = [r for r in dicts if r["ndc"] not in existing]
        old_rows = [{**r, "b_ndc": r["ndc"]} for r in dicts if r["ndc"] in existing]
        if new_rows:
            self.connection.execute(insert(self.table), new_rows)
        if old_rows:
            stmt = update(self.table).where(self.table.c.ndc == bindparam("b_ndc")).values(
                {name: bindparam(name) for name in self.COLUMNS if name != "ndc"})
            self.connection.execute(stmt, old_rows)


def import_fda_catalog(
    db: Any,
    product_txt: Path,
    package_txt: Path,
    *,
    progress: ProgressCallback | None = None,
    source: str = "fda",
    progress_every: int = DEFAULT_BATCH_SIZE,
    batch_size: int = DEFAULT_BATCH_SIZE,
    controlled_substances: Iterable[ControlledSubstance] | None = None,
) -> ImportSummary:
    """Import (upsert) the FDA NDC Directory's product.txt + package.txt into ``products``, in one transaction.

    ``db`` is an opened :class:`app.models.database.Database`. ``progress(done, total)`` is called every
    ``progress_every`` data lines (products then packages) and once at the end with ``done == total``; if it raises,
    the import is rolled back and the exception propagates (a way to cancel). Raises :class:`CatalogImportError` for a
    malformed file, with nothing written.
    """
    started = time.perf_counter()
    summary = ImportSummary()
    table: Table = Product.__table__  # type: ignore[assignment]
    limits = _column_limits(table)
    narcotics = NarcoticIndex(controlled_substances if controlled_substances is not None
                              else load_controlled_substances())

    products_file = _open_fda_file(Path(product_txt), PRODUCT_REQUIRED)
    packages_file = _open_fda_file(Path(package_txt), PACKAGE_REQUIRED)
    summary.encodings = {products_file.name: products_file.encoding, packages_file.name: packages_file.encoding}
    total = products_file.data_lines + packages_file.data_lines
    every = max(int(progress_every), 1)
    done = 0
    reported = -1

    def tick() -> None:
        nonlocal done, reported
        done += 1
        if progress is not None and done % every == 0:
            reported = done
            progress(done, total)

    products = _read_products(products_file, narcotics, summary, limits, tick)

    col = packages_file.columns
    i_id, i_code, i_desc = col["PRODUCTID"], col["NDCPACKAGECODE"], col["PACKAGEDESCRIPTION"]
    i_excl, i_sample = col.get("NDC_EXCLUDE_FLAG"), col.get("SAMPLE_PACKAGE")
    lim_desc = limits["package_description"]
    seen: set[str] = set()
    by_schedule: Counter[str] = Counter()
    batch_size = max(int(batch_size), 1)
    name = packages_file.name
    lines = packages_file.lines

    with db.engine.begin() as connection:
        before = connection.scalar(select(func.count()).select_from(table)) or 0
        writer = _Writer(connection, table)
        batch: list[tuple[Any, ...]] = []
        for line_no in range(2, len(lines) + 1):
            tick()
            fields = _fields(packages_file, line_no, lines[line_no - 1])
            if fields is None:
                continue
            product_id = fields[i_id].strip()
            product = products.get(product_id)
            if product is None:
                raise _fail(packages_file, line_no, "unknown_product",
                            f"PRODUCTID {product_id or '(empty)'} is not in {products_file.name}.")
            code = fields[i_code].strip()
            try:
                ndc = Ndc.parse(code)
            except InvalidValue as exc:
                raise _fail(packages_file, line_no, "package_ndc", f"NDCPACKAGECODE: {exc.message}") from None
            if "-" not in code:
                raise _fail(packages_file, line_no, "package_ndc",
                            f"NDCPACKAGECODE '{code}' must be hyphenated as FDA prints it (e.g. 0093-0150-01).")
            if ndc.product_ndc != product.product_ndc:
                raise _fail(packages_file, line_no, "package_product_mismatch",
                            f"NDCPACKAGECODE {code} does not belong to product {product_id}.")
            if product.excluded:
                summary._skip(name, line_no, "product_excluded", code)
                continue
            if i_excl is not None and fields[i_excl].strip().upper() not in ("", "N"):
                summary._skip(name, line_no, "package_excluded", code)
                continue
            if i_sample is not None and fields[i_sample].strip().upper() == "Y":
                summary._skip(name, line_no, "sample_package", code)
                continue
            digits = ndc.digits
            if digits in seen:
                summary._skip(name, line_no, "duplicate_ndc", code)
                continue
            description = fields[i_desc].strip()
            try:
                quantity, unit = parse_package_quantity(description)
            except InvalidValue as exc:
                if exc.code == "package.quantity_out_of_range":
                    raise _fail(packages_file, line_no, "package_quantity",
                                f"the package description {exc.message} Nothing was imported: correct the file "
                                "(or download it again from FDA) and import it again.") from None
                summary._skip(name, line_no, "package_description", exc.message)
                continue
            seen.add(digits)
            by_schedule[product.schedule] += 1
            batch.append((
                digits, product.product_ndc, product.name, product.generic_name, product.strength,
                product.dosage_form, product.labeler, description[:lim_desc], writer.quantity(quantity),
                unit.value, product.schedule, source,
            ))
            if len(batch) >= batch_size:
                writer.write(batch)
                batch = []
        writer.write(batch)
        after = connection.scalar(select(func.count()).select_from(table)) or 0
        if progress is not None and reported != total:
            progress(total, total)

    summary.packages = len(seen)
    summary.inserted = after - before
    summary.updated = summary.packages - summary.inserted
    summary.by_schedule = dict(sorted(by_schedule.items()))
    summary.controlled = sum(n for s, n in by_schedule.items() if s != Schedule.NON_CONTROLLED.value)
    summary.seconds = time.perf_counter() - started
    return summary


# --------------------------------------------------------------------------------------------------------------------
# Queries


def find_product(session: Session, ndc: str | Ndc) -> Product | None:
    """The catalog entry for a package NDC (any FDA layout or 11 digits). Invalid text raises ``InvalidValue``."""
    digits = ndc.digits if isinstance(ndc, Ndc) else Ndc.parse(ndc).digits
    return session.scalars(select(Product).where(Product.ndc == digits)).one_or_none()


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _ndc_prefixes(text: str) -> list[str]:
    """Digit prefixes of an NDC-11 for what the user typed: 11 digits or a full hyphenated NDC (exact), a run of
    digits (as the 11-digit form starts), or a hyphenated beginning read both as printed (FDA layout: ``0093-0150``,
    ``59011-410``) and as the 5-4-2 display form (``00093-01``)."""
    candidate = text.replace(" ", "")
    if not re.fullmatch(r"[0-9]+(?:-[0-9]*){0,2}", candidate):
        return []
    try:
        return [Ndc.parse(candidate).digits]
    except InvalidValue:
        pass
    parts = candidate.split("-")
    if len(parts) == 1:
        return [parts[0]]
    labeler, product = parts[0], parts[1]
    package = parts[2] if len(parts) == 3 else ""
    prefixes: list[str] = []
    if len(labeler) == 5:
        prefixes.append(labeler + product + (package if len(product) == 4 else ""))
    if (len(labeler), len(product)) in _PRODUCT_NDC_LAYOUTS:
        prefixes.append(labeler.zfill(5) + product.zfill(4) + package)
    elif len(labeler) == 4 and not product:
        prefixes.append(labeler.zfill(5))
    return list(dict.fromkeys(prefixes))


def search_products(session: Session, text: str, limit: int = 20) -> list[Product]:
    """Products whose name or generic name starts with ``text`` (or has a word starting with it), or whose NDC starts
    with the typed digits / hyphenated prefix. Case-insensitive; name-prefix matches first, then by name and NDC."""
    needle = (text or "").strip()
    if not needle:
        return []
    lowered = _like_escape(needle.lower())
    starts = f"{lowered}%"
    word = f"% {lowered}%"
    name_col, generic_col = func.lower(Product.name), func.lower(Product.generic_name)
    conditions = [
        name_col.like(starts, escape="\\"), generic_col.like(starts, escape="\\"),
        name_col.like(word, escape="\\"), generic_col.like(word, escape="\\"),
    ]
    conditions += [Product.ndc.like(f"{prefix}%") for prefix in _ndc_prefixes(needle)]
    rank = case((name_col.like(starts, escape="\\"), 0), else_=1)
    stmt = (select(Product).where(or_(*conditions))
            .order_by(rank, Product.name, Product.ndc).limit(max(int(limit), 0)))
    return list(session.scalars(stmt))


# --------------------------------------------------------------------------------------------------------------------
# What a person downloads from FDA: the NDC Directory zip, or its two text files

#: the zip members can be no larger than this (FDA's package.txt is ~30 MB); a bigger member is not the FDA file
MAX_MEMBER_BYTES = 400 * 1024 * 1024
FDA_DOWNLOAD_HINT = ("On FDA's web site, open the page \"National Drug Code Directory\" and download the NDC database "
                     "file in text format: a .zip holding product.txt and package.txt.")


def import_fda_download(db: Any, source: Path, *, progress: ProgressCallback | None = None,
                        source_name: str = "fda") -> ImportSummary:
    """Import FDA's download as the person has it: the NDC Directory ``.zip``, its ``product.txt`` (``package.txt``
    beside it), or the folder they were unpacked into. The zip's two members are read without unpacking anything
    else; a member too large to be FDA's is refused."""
    import tempfile
    import zipfile

    source = Path(source)
    if source.is_dir():
        return import_fda_catalog(db, source / "product.txt", source / "package.txt", progress=progress,
                                  source=source_name)
    if source.suffix.lower() == ".txt":
        folder = source.parent
        return import_fda_catalog(db, folder / "product.txt", folder / "package.txt", progress=progress,
                                  source=source_name)
    try:
        archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile) as exc:
        raise CatalogImportError(f"{source.name} is not FDA's NDC Directory zip ({exc}). Choose the .zip you "
                                 "downloaded, or its product.txt.", code="catalog.not_a_zip") from None
    with archive, tempfile.TemporaryDirectory(prefix="csos-fda-") as folder:
        members = {Path(info.filename).name.lower(): info for info in archive.infolist() if not info.is_dir()}
        for wanted in ("product.txt", "package.txt"):
            info = members.get(wanted)
            if info is None:
                raise CatalogImportError(f"{source.name} has no {wanted}: it is not FDA's NDC Directory in text "
                                         "format. " + FDA_DOWNLOAD_HINT, code="catalog.zip_member_missing")
            if info.file_size > MAX_MEMBER_BYTES:
                raise CatalogImportError(f"{wanted} in {source.name} is far larger than FDA's; not imported.",
                                         code="catalog.zip_member_too_large")
            with archive.open(info) as member, open(Path(folder) / wanted, "wb") as out:
                copied = 0
                while chunk := member.read(1 << 20):
                    copied += len(chunk)
                    if copied > MAX_MEMBER_BYTES:
                        raise CatalogImportError(f"{wanted} in {source.name} is far larger than FDA's; not "
                                                 "imported.", code="catalog.zip_member_too_large")
                    out.write(chunk)
        return import_fda_catalog(db, Path(folder) / "product.txt", Path(folder) / "package.txt", progress=progress,
                                  source=source_name)


def catalog_is_empty(db: Any) -> bool:
    """True before any product list was imported: a search then says so, rather than "check the spelling"."""
    with db.session() as session:
        return session.scalar(select(Product.ndc).limit(1)) is None
