"""One session-scoped cache of real smoke-profile runs and one small test baseline.

The cache is the self-test's own session (``repro.selftest.run_session``): the
rows of ``repro/selftest.yaml`` plus the baseline recorded in their shared
launch. Tests of every capability draw from it instead of launching their own,
so CI stays inside its budget.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from repro.baselines.selftest import Session, load_cases, run_session

# Test-facing names for the self-test rows' first runs.
ALIASES = {
    "rerun": "rerun",
    "threads": "threads",
    "avx2": "cpu-isa",
    "seed": "seed",
    "lr": "lr",
    "world1": "world",
    "amp": "amp",
    "sampler": "sampler",
    "skip_set_epoch": "set-epoch",
    "nan": "nan",
    "desync": "desync",
    "ulp": "ulp",
    "weight_decay": "semantic",
}


def pytest_configure(config: pytest.Config) -> None:
    # The ranks' thread counts come from the profile; keep a developer's setting out of the tests.
    os.environ.pop("OMP_NUM_THREADS", None)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run with `nox -s gpu` on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cpu_capability() -> str:
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


@pytest.fixture(scope="session")
def smoke_session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    """Every self-test row and the test baseline, launched once per test session."""
    return run_session("smoke", load_cases(), workdir=tmp_path_factory.mktemp("smoke"))


@pytest.fixture(scope="session")
def smoke_runs(smoke_session: Session) -> dict[str, Path]:
    runs = {"primary": smoke_session.baseline_runs[0], "band0": smoke_session.baseline_runs[1]}
    for alias, case in ALIASES.items():
        if case in smoke_session.runs:
            runs[alias] = smoke_session.runs[case][0]
    runs["nondet_a"], runs["nondet_b"] = smoke_session.runs["nondet"]
    return runs


@pytest.fixture(scope="session")
def smoke_baseline(smoke_session: Session) -> Path:
    return smoke_session.baseline.path


@pytest.fixture
def tmpfs(tmp_path: Path):
    """``tmpfs(options)``: a fresh tmpfs mounted with ``options`` (a full disk is
    ``size=64k``, an unwritable folder ``ro``); skipped where mounting is not allowed."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
        )
        if made.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
