"""Layering rules of DESIGN.md §2, checked on the source so a violation fails the build."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _sources(folder: str = "") -> list[Path]:
    return sorted((APP / folder).rglob("*.py"))


def test_sources_exist():
    assert len(_sources("models")) >= 4 and len(_sources("services")) >= 1


@pytest.mark.parametrize("path", [p for p in _sources() if "ui" not in p.relative_to(APP).parts[:1]],
                         ids=lambda p: str(p.relative_to(APP)))
def test_no_qt_outside_ui(path):
    offending = {name for name in _imports(path) if name.split(".")[0] in {"PySide6", "shiboken6", "PyQt5", "PyQt6"}}
    assert not offending, f"{path} imports {offending}: Qt belongs in app/ui only"


@pytest.mark.parametrize("path", _sources("services") + _sources("models"), ids=lambda p: str(p.relative_to(APP)))
def test_services_and_models_do_not_import_ui_or_sandbox(path):
    offending = {name for name in _imports(path) if name.startswith(("app.ui", "app.sandbox"))}
    assert not offending, f"{path} imports {offending}"


@pytest.mark.parametrize("path", _sources("models"), ids=lambda p: str(p.relative_to(APP)))
def test_models_do_not_import_services(path):
    offending = {name for name in _imports(path) if name.startswith("app.services")}
    assert not offending, f"{path} imports {offending}: models are the bottom layer"


def test_the_checker_catches_a_violation(tmp_path):
    sample = tmp_path / "bad.py"
    sample.write_text("from PySide6.QtWidgets import QWidget\nimport app.ui.main_window\n")
    assert {"PySide6.QtWidgets", "app.ui.main_window"} <= _imports(sample)


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(APP)))
def test_no_bare_except_and_no_tls_verification_switched_off(path):
    source = path.read_text(encoding="utf-8")
    tree = ast.parse(source)
    bare = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ExceptHandler) and node.type is None]
    assert not bare, f"bare except at {path}:{bare}"
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "verify" and isinstance(node.value, ast.Constant):
            assert node.value.value is not False, f"verify=False in {path}:{node.value.lineno}"


SANDBOX_USERS = {"training.py", "demo.py"}  # plus the CLI modules (cli*.py) and the sandbox itself


@pytest.mark.parametrize("path", [p for p in _sources() if p.relative_to(APP).parts[0] != "sandbox"
                                  and not p.name.startswith("cli") and p.name not in SANDBOX_USERS],
                         ids=lambda p: str(p.relative_to(APP)))
def test_only_the_cli_and_the_training_starter_import_the_sandbox(path):
    offending = {name for name in _imports(path) if name.startswith("app.sandbox")}
    if path.parent.name == "app" or path.relative_to(APP).parts[0] in ("services", "models", "ui"):
        assert not offending, f"{path} imports {offending}: only the CLI and app/training.py start the sandbox"
