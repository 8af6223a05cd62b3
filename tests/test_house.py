"""The shape of the package: modules a reader can hold, functions that fit a screen,
and a dependency order that only goes one way where it matters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from repro.runs.workload import HASHED_MODULES

PACKAGE = Path(__file__).resolve().parent.parent / "repro"
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 80
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every ``repro.*`` module a file imports, at any depth (deferred imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("repro"):
            # `from repro.manifest import cpu` imports the module repro.manifest.cpu
            names.update(
                f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module
                for a in node.names
            )
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("repro"))
    return names


def _is_module(dotted: str) -> bool:
    where = PACKAGE.parent.joinpath(*dotted.split("."))
    return where.with_suffix(".py").is_file() or (where / "__init__.py").is_file()


# The floor plan, top to bottom: a module imports its own floor or the floors below it. Read
# from the folders alone: the faces (CLI, repro.track, integrations) and the commands; the
# renderers; the judge, the baselines and the experiment that confirms a cause; runs and
# the reference workload; capture (manifest, preflight, the profile); base modules.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("repro.cli", "repro.__main__", "repro.tracking", "repro.commands", "repro.integrations",
     "repro.pytest_plugin"),
    ("repro.report", "repro.fleet", "repro.export"),
    ("repro.judge", "repro.baselines", "repro.explain"),
    ("repro.runs", "repro.reference", "repro.probing", "repro.checkpoint"),
    ("repro.manifest", "repro.preflight", "repro.profile", "repro.profiles"),
    ("repro", "repro.verdict", "repro.errors", "repro.documents", "repro.atomic", "repro.clock",
     "repro.gc_freeze", "repro.names", "repro.strict_json", "repro.outputs", "repro._manifests"),
)  # fmt: skip
# The imports against the order: the public names the package root exposes lazily
# (repro.track, repro.probe), each imported only when a user asks for it. A new one is a
# decision, made here.
AGAINST_THE_ORDER = {("repro", "repro.tracking"), ("repro", "repro.probing.probe")}


def _floor(module: str) -> int:
    """The floor of a dotted module name: the one of its longest listed prefix."""
    found = [
        (len(prefix), floor)
        for floor, prefixes in enumerate(LAYERS)
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    if not found:
        raise AssertionError(f"{module} is on no floor: add its package to LAYERS")
    return max(found)[1]


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_every_import_goes_down_the_floor_plan_or_along_a_floor():
    against = {
        (_module(path), name)
        for path in MODULES
        for name in _imports(path)
        if _floor(name) < _floor(_module(path))
    }
    assert against == AGAINST_THE_ORDER


def test_no_two_modules_import_each_other_round_a_circle():
    # The package's lazy repro.track is no circle: it is imported only when asked for.
    graph = {
        _module(path): {n for n in _imports(path) if (_module(path), n) not in AGAINST_THE_ORDER}
        for path in MODULES
    }
    done: set[str] = set()

    def visit(module: str, trail: tuple[str, ...]) -> None:
        if module in trail:
            raise AssertionError(" -> ".join([*trail[trail.index(module) :], module]))
        if module in done or module not in graph:
            return
        for name in sorted(graph[module]):
            visit(name, (*trail, module))
        done.add(module)

    for module in sorted(graph):
        visit(module, ())


def _deferred_repro_imports(tree: ast.Module) -> list[ast.stmt]:
    """The imports of ``repro`` modules inside a function of the module."""
    return [
        node
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if (isinstance(node, ast.ImportFrom) and (node.module or "").startswith("repro"))
        or (isinstance(node, ast.Import) and node.names[0].name.startswith("repro"))
    ]


def _has_reason(tree: ast.Module, lines: list[str], node: ast.stmt) -> bool:
    """A comment line sits directly above the import, or above the run of imports it ends."""
    import_lines = {
        line
        for other in ast.walk(tree)
        if isinstance(other, (ast.Import, ast.ImportFrom)) and other.end_lineno is not None
        for line in range(other.lineno, other.end_lineno + 1)
    }
    above = node.lineno - 1
    while above in import_lines:
        above -= 1
    return above >= 1 and lines[above - 1].lstrip().startswith("#")


# Below the faces and commands, repro's own imports sit at the top of each module, where a
# reader sees what the file depends on. One inside a function stays only where it keeps a
# heavy import (torch) out of a light command's start-up or breaks a cycle, and the comment
# right above it says which: the reason lives beside the import and goes with it, where a
# list kept here would outlive the line it excuses. The hashed workload modules are left
# exactly as recorded (moving an import there changes the workload hash).
@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_an_import_of_repro_inside_a_function_says_why(path):
    module = _module(path)
    if _floor(module) == 0 or module in HASHED_MODULES:
        return
    text = path.read_text()
    tree, lines = ast.parse(text), text.splitlines()
    unexplained = [
        f"line {node.lineno}: {lines[node.lineno - 1].strip()}"
        for node in _deferred_repro_imports(tree)
        if not _has_reason(tree, lines, node)
    ]
    assert unexplained == [], "move it to the top, or say why above it"


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
    assert "repro.judge.comparison" not in _imports(PACKAGE / "judge/causes.py")
    assert "repro.judge.causes" in _imports(PACKAGE / "judge/comparison.py")


def test_the_judge_reads_no_files_and_never_imports_torch():
    for module in ("comparison", "bands", "divergence", "exact", "causes"):
        imported = _imports(PACKAGE / "judge" / f"{module}.py")
        assert not {"repro.runs.store", "repro.atomic", "repro.runs.runner"} & imported, module
        assert "import torch" not in (PACKAGE / "judge" / f"{module}.py").read_text(), module


def test_the_rank_entry_point_does_not_import_the_parent_side_launcher():
    for module in ("reference/train.py", "reference/loop.py"):
        assert "repro.runs.runner" not in _imports(PACKAGE / module), module
