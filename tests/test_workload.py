"""The workload hash covers the code and settings that decide the numbers, and nothing else."""

from __future__ import annotations

import ast
import pkgutil
import sys
from pathlib import Path

import pytest

import repro.reference
from repro.profile import Profile, load_profile, parse_overrides
from repro.reference import band, step
from repro.runs.prepare import prepare_run
from repro.runs.store import Run
from repro.runs.workload import (
    HASHED_MODULES,
    hash_workload,
    hashed_sources,
    module_source,
    workload_hash,
)

ENTRY_POINT = "repro.reference.train"
# The progress line ``repro run`` prints on rank 0.
PROGRESS = 'f"  step {step + 1:>5}/{self.profile.steps}  loss {loss:.4f}  {rate:8.1f} samples/s"'


def _smoke() -> dict:
    return load_profile("smoke").to_dict()


def _with(sources: dict[str, str], module: str, old: str, new: str) -> dict[str, str]:
    assert old in sources[module], f"{old!r} is no longer in {module}; update this test"
    return {**sources, module: sources[module].replace(old, new)}


# -- which code --------------------------------------------------------------------------------


def _runtime_imports(tree: ast.Module) -> list[tuple[ast.ImportFrom | ast.Import, int]]:
    """Import statements that run at import or call time (not under ``if TYPE_CHECKING:``)."""
    found: list[tuple[ast.ImportFrom | ast.Import, int]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append((node, node.lineno))
        if isinstance(node, ast.If) and ast.unparse(node.test) in (
            "TYPE_CHECKING",
            "typing.TYPE_CHECKING",
        ):
            for branch in node.orelse:
                visit(branch)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _outside_library(module: str) -> bool:
    top = module.split(".")[0]
    return top not in sys.stdlib_module_names and top not in ("__future__", "torch", "numpy")


def _import_escapes(sources: dict[str, str]) -> list[str]:
    """Runtime imports of hashed modules that leave the hashed set and the libraries."""
    escapes = []
    for name in HASHED_MODULES:
        for node, line in _runtime_imports(ast.parse(sources[name])):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif node.level:
                targets = [f"relative import from {'.' * node.level}{node.module or ''}"]
            else:
                base = node.module or ""
                # ``from repro.reference import band`` imports the module repro.reference.band.
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in HASHED_MODULES else base
                    for alias in node.names
                ]
            escapes += [
                f"{name}:{line} imports {t}"
                for t in targets
                if _outside_library(t) and t not in HASHED_MODULES
            ]
    return escapes


def test_hashed_modules_import_only_each_other_stdlib_torch_and_numpy():
    escapes = _import_escapes(hashed_sources())
    assert escapes == [], "the hashed set must be closed under imports: " + "; ".join(escapes)


@pytest.mark.parametrize(
    "statement",
    [
        "from repro.profile import Profile",
        "import repro.runs.store",
        "from repro.reference import train",
        "from . import train",
        "import yaml",
    ],
)
def test_the_import_check_sees_an_escape(statement):
    sources = _with(
        hashed_sources(),
        "repro.reference.band",
        "import torch\n",
        f"import torch\n\n\ndef f():\n    {statement}\n",
    )
    assert len(_import_escapes(sources)) == 1


def test_the_packages_above_the_hashed_modules_run_no_code():
    """Importing a hashed module runs its packages' __init__: they must import nothing.

    One exception: a module ``__getattr__`` (``repro.track``) imports on first use of a
    public name, never when a hashed module is imported, and never a hashed module.
    """
    for package in ("repro", "repro.reference"):
        tree = ast.parse(module_source(package))
        lazy = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "__getattr__"]
        for node in lazy:
            tree.body.remove(node)
            for imported, _ in _runtime_imports(ast.Module(body=node.body, type_ignores=[])):
                assert isinstance(imported, ast.ImportFrom) and imported.module
                assert imported.module not in HASHED_MODULES
        assert _runtime_imports(tree) == []


def test_every_reference_module_but_the_entry_point_is_hashed():
    modules = {f"repro.reference.{m.name}" for m in pkgutil.iter_modules(repro.reference.__path__)}
    # A new module under repro/reference/ is numerics (add it to HASHED_MODULES) unless it
    # cannot change record.json's bytes. The stop/resume plumbing is the harness's: it runs
    # the hashed step unchanged, and a resumed run is judged against the uninterrupted one.
    assert modules - set(HASHED_MODULES) == {ENTRY_POINT, "repro.reference.resume"}
    assert set(HASHED_MODULES) <= modules


def test_the_lr_schedule_and_band_sizes_are_hashed():
    assert step.lr_schedule.__module__ in HASHED_MODULES
    assert band.perturbation_size.__module__ in HASHED_MODULES
    assert not hasattr(Profile, "band_perturbation")


def test_a_progress_print_does_not_change_the_hash():
    sources = {**hashed_sources(), ENTRY_POINT: module_source(ENTRY_POINT)}
    assert not any(PROGRESS in sources[m] for m in HASHED_MODULES)
    reworded = _with(sources, ENTRY_POINT, PROGRESS, 'f"step {step + 1} of {self.profile.steps}"')
    assert hash_workload(_smoke(), reworded) == hash_workload(_smoke(), sources)


def test_comments_and_docstrings_do_not_change_the_hash():
    sources = hashed_sources()
    edited = _with(
        sources,
        "repro.reference.loop",
        "# A NaN is found at the gather",
        "# A comment changed.\n                # A NaN is found at the gather",
    )
    edited = _with(edited, "repro.reference.model", '"""A small pre-norm', '"""A tiny pre-norm')
    assert hash_workload(_smoke(), edited) == hash_workload(_smoke(), sources)


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [
        (
            "repro.reference.step",
            "clip_grad_norm_(t.params, p.grad_clip)",
            "clip_grad_norm_(t.params, 2 * p.grad_clip)",
        ),
        ("repro.reference.step", "cosine = 0.5 * (1.0 + ", "cosine = 0.4 * (1.0 + "),
        ("repro.reference.loop", "_GATHER_EVERY = 10", "_GATHER_EVERY = 5"),
        ("repro.reference.band", "_PER_STEP_DIVISOR = 32", "_PER_STEP_DIVISOR = 16"),
        ("repro.reference.determinism", "BAND_STEP = 9", "BAND_STEP = 10"),
        ("repro.reference.model", "std=0.02", "std=0.03"),
    ],
)
def test_a_changed_operation_changes_the_hash(module, old, new):
    sources = hashed_sources()
    assert hash_workload(_smoke(), _with(sources, module, old, new)) != hash_workload(
        _smoke(), sources
    )


# -- which settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair",
    [
        "threads_per_rank=2",
        "world_size=1",
        "eval_batch=32",
        "seed=7",
        "trace_steps=3",
        "fault.lr_factor=1.5",
        "band_member=0",
        "name=renamed",
    ],
)
def test_seed_execution_and_harness_settings_keep_the_hash(pair):
    changed = load_profile("smoke", parse_overrides([pair])).to_dict()
    assert workload_hash(changed) == workload_hash(_smoke())


@pytest.mark.parametrize(
    "pair", ["weight_decay=0.02", "amp_dtype=float32", "tf32=true", "model.dropout=0.2"]
)
def test_semantic_and_precision_settings_change_the_hash(pair):
    changed = load_profile("smoke", parse_overrides([pair])).to_dict()
    assert workload_hash(changed) != workload_hash(_smoke())


def test_an_unknown_setting_is_hashed():
    assert workload_hash({**_smoke(), "colour": "blue"}) != workload_hash(_smoke())


def test_a_prepared_run_hashes_its_resolved_settings(tmp_path):
    entry = prepare_run("smoke", ["weight_decay=0.02"], runs_dir=tmp_path, git_sha="0" * 40)
    config = Run(Path(entry.run_dir)).config
    assert config["workload_hash"] == workload_hash(config["settings"])
    assert config["workload_hash"] != workload_hash(_smoke())
