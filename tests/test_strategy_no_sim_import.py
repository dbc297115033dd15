"""strategy/ is a client: it reaches perpsim only over the wire (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

STRATEGY = Path(__file__).resolve().parent.parent / "strategy"
FORBIDDEN = ("perpsim.sim", "perpsim.api")


def imported_modules(path: Path) -> list[str]:
    """Every module a file imports (absolute names; relative imports resolved in strategy)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # from . import x → inside strategy
                names.append("perpsim.strategy" + (f".{node.module}" if node.module else ""))
            elif node.module:  # from perpsim import sim → perpsim.sim
                names.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and _dynamic_import(node.func):
            names.extend(arg.value for arg in node.args[:1]
                         if isinstance(arg, ast.Constant) and isinstance(arg.value, str))
    return names


def _dynamic_import(func: ast.expr) -> bool:
    """``__import__(...)`` or ``importlib.import_module(...)``."""
    return (isinstance(func, ast.Name) and func.id == "__import__") or (
        isinstance(func, ast.Attribute) and func.attr == "import_module")


def forbidden(module: str) -> bool:
    """The engine or the server, by their one installed name (perpsim.sim, perpsim.api)."""
    return any(module == name or module.startswith(name + ".") for name in FORBIDDEN)


FILES = sorted(STRATEGY.glob("*.py"))


def test_there_is_a_strategy_package() -> None:
    assert (STRATEGY / "__init__.py").exists()
    assert len(FILES) > 3


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_strategy_module_imports_the_engine_or_the_server(path: Path) -> None:
    bad = [name for name in imported_modules(path) if forbidden(name)]
    assert not bad, f"{path.name} imports {bad}: strategy/ must talk to perpsim through ccxt"


def test_the_checker_sees_the_forms_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import perpsim.sim.exchange\nfrom perpsim.api import app\n"
                      "m = __import__('perpsim.sim')\nimport importlib\n"
                      "importlib.import_module('perpsim.api')\nfrom perpsim import numbers, sim\n")
    names = imported_modules(sample)
    assert names == ["perpsim.sim.exchange", "perpsim.api.app", "importlib",
                     "perpsim.numbers", "perpsim.sim", "perpsim.sim", "perpsim.api"]
    assert [forbidden(name) for name in names] == [True, True, False, False, True, True, True]
