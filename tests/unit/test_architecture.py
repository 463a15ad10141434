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


SANDBOX_USERS = {"training.py", "demo.py"}  # plus the CLI package (app/cli/) and the sandbox itself


@pytest.mark.parametrize("path", [p for p in _sources() if p.relative_to(APP).parts[0] not in ("sandbox", "cli")
                                  and p.name not in SANDBOX_USERS],
                         ids=lambda p: str(p.relative_to(APP)))
def test_only_the_cli_and_the_training_starter_import_the_sandbox(path):
    offending = {name for name in _imports(path) if name.startswith("app.sandbox")}
    if path.parent.name == "app" or path.relative_to(APP).parts[0] in ("services", "models", "ui"):
        assert not offending, f"{path} imports {offending}: only the CLI and app/training.py start the sandbox"


# ---------------------------------------------------------------------------------------------------------------------
# One room per concern (issue 15): the layout a newcomer relies on.

MAX_LINES = 900
DOMAIN_PACKAGES = ("orders", "certificates", "enrollment", "signing", "transport", "keys")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _import_graph() -> dict[str, set[str]]:
    """Module → product modules it imports at module level or inside functions (both can close a cycle at run time
    only in the first case, but a lazy import that papers over a cycle is still a cycle in the design)."""
    modules = {_module_name(p): p for p in _sources() if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = name.split(".")[: -node.level + (1 if path.name == "__init__.py" else 0) or None]
                candidates = [".".join(base + ([node.module] if node.module else []))]
                candidates += [f"{candidates[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                candidates = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            targets.update(c for c in candidates if c in modules and c != name)
        graph[name] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), as sorted lists."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _is_package_parent(a: str, b: str) -> bool:
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_no_import_cycle_between_product_modules():
    graph = _import_graph()
    # A package's __init__ that names its own submodules is not a cycle of design; drop parent↔child edges.
    graph = {k: {v for v in vs if not _is_package_parent(k, v)} for k, vs in graph.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("path", [p for p in _sources() if "migrations" not in p.parts],
                         ids=lambda p: str(p.relative_to(APP)))
def test_no_product_file_is_over_900_lines(path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(APP)} has {lines} lines: split it by what it does"


def test_services_are_grouped_by_domain():
    services = APP / "services"
    loose = sorted(p.name for p in services.glob("*.py") if p.name != "__init__.py")
    packages = sorted(p.name for p in services.iterdir() if (p / "__init__.py").exists())
    assert len(loose) <= 8, loose
    assert set(DOMAIN_PACKAGES) <= set(packages)
    for name in packages:
        doc = ast.get_docstring(ast.parse((services / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"app/services/{name}/__init__.py needs a docstring saying what it owns"


def test_the_command_line_is_one_package():
    assert (APP / "cli" / "__init__.py").exists()
    assert not list(APP.glob("cli*.py")), "command modules live in app/cli/"
    common = _imports(APP / "cli" / "common.py")
    assert not {n for n in common if n.startswith("app.cli")}, "app/cli/common.py imports no command module"
