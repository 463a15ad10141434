"""docs/compliance.md stays true: every duty of DESIGN.md §1 is mapped, every file, function and test it names exists.

Whether a named test really fails without the code is a reviewer's question; this keeps the names from going stale.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "compliance.md").read_text(encoding="utf-8")
DUTIES = ("O1", "O2", "O3", "O4", "O5", "O6", "O7", "O8", "O9", "K1", "K2", "K3", "K4", "K5", "K6",
          "S1", "S2", "S3", "S4")
ROOTS = ("app", "tests", "docs", "resources", "installer", "packaging")
# A backticked repository path, optionally followed by ::test_name.
PATH = re.compile(rf"`((?:{'|'.join(ROOTS)})/[\w./-]*)(?:::(\w+))?`")
# A backticked product file followed by the backticked function, class or constant it names (maybe in brackets).
PATH_THEN_NAME = re.compile(r"`(app/[\w/]+\.py)` \(?`([A-Za-z_]\w*)")
ROWS = re.findall(r"^\| ([OKS]\d) \|(.*)$", DOC, flags=re.M)


def defines(path: str, name: str) -> bool:
    text = (ROOT / path).read_text(encoding="utf-8")
    return re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^\s*{name}\s*(?::[^=\n]+)?=", text, flags=re.M) \
        is not None


def named_tests() -> list[tuple[str, str, str]]:
    """(duty, test file, test name) for every `tests/x.py::name` and every bare `::name`, which means the last test
    file named before it in the same row."""
    found = []
    for duty, row in ROWS:
        last = None
        for match in re.finditer(rf"{PATH.pattern}|`::(\w+)`", row):
            path, name, short = match.group(1), match.group(2), match.group(3)
            if path and path.startswith("tests/") and path.endswith(".py"):
                last = path
                if name:
                    found.append((duty, path, name))
            elif short:
                assert last, f"{duty}: `::{short}` follows no test file"
                found.append((duty, last, short))
    return found


def test_every_duty_has_a_row():
    design = ROOT.parent / "shared" / "DESIGN.md"
    ids = DUTIES
    if design.exists():  # the development checkout has the design beside it: take the IDs from there
        ids = tuple(re.findall(r"^\| ([OKS]\d) \|", design.read_text(encoding="utf-8"), flags=re.M)) or DUTIES
    rows = {duty for duty, _ in ROWS}
    assert set(ids) <= rows, sorted(set(ids) - rows)


def test_every_backticked_path_exists():
    paths = {match.group(1) for match in PATH.finditer(DOC)}
    assert len(paths) >= 40, "the map names too few files"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, missing


def test_every_function_named_after_its_file_is_defined_there():
    pairs = PATH_THEN_NAME.findall(DOC)
    assert len(pairs) >= 15
    missing = [f"{path} {name}" for path, name in pairs if not defines(path, name)]
    assert not missing, missing


def test_every_named_test_exists():
    named = named_tests()
    assert len(named) >= 60
    missing = [f"{duty}: {path}::{name}" for duty, path, name in named
               if not (ROOT / path).exists() or not re.search(rf"^(?:async )?def {name}\(",
                                                              (ROOT / path).read_text(encoding="utf-8"), flags=re.M)]
    assert not missing, missing


def test_every_duty_names_at_least_one_test_function():
    """A row that names only whole test files gives no test to run when someone doubts the claim."""
    with_tests = {duty for duty, _, _ in named_tests()}
    assert {duty for duty, _ in ROWS} <= with_tests, sorted({duty for duty, _ in ROWS} - with_tests)
