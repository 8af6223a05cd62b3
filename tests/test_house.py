"""The shape of the package: modules a reader can hold, functions that fit a screen,
and a dependency order that only goes one way where it matters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "repro"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every ``repro.*`` module a file imports, at any depth (deferred imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("repro"))
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_a_module_is_short_and_so_are_its_functions(path):
    text = path.read_text()
    assert text.count("\n") <= MAX_MODULE_LINES, f"{path.name} has {text.count(chr(10))} lines"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_the_judge_and_the_cause_ranking_do_not_import_each_other():
    assert "repro.judge.comparison" not in _imports(PACKAGE / "causes.py")
    assert "repro.judge.causes" in _imports(PACKAGE / "judge.py")


def test_the_judge_reads_no_files_and_never_imports_torch():
    for module in ("judge", "bands", "divergence", "exact", "causes"):
        imported = _imports(PACKAGE / f"{module}.py")
        assert not {"repro.runs.store", "repro.atomic", "repro.runs.runner"} & imported, module
        assert "import torch" not in (PACKAGE / f"{module}.py").read_text(), module


def test_the_rank_entry_point_does_not_import_the_parent_side_launcher():
    for module in ("reference/train.py", "reference/loop.py"):
        assert "repro.runs.runner" not in _imports(PACKAGE / module), module
