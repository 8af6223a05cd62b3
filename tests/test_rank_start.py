"""CPU ranks forked from the launcher compute exactly what spawned ranks compute.

The launcher forks gloo ranks (they begin with torch and the training code loaded) and
spawns CUDA ranks as fresh interpreters; ``REPRO_SPAWN_RANKS=1`` spawns CPU ranks too. The
CUDA path is the spawned one, so this runs it on CPU and holds it to the forked runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import compare_runs
from repro.profile import load_profile
from repro.runs.runner import SPAWN_RANKS_ENV, _forks

_REPRO_RUN = [sys.executable, "-m", "repro", "run", "--profile", "smoke", "--quiet"]


def test_spawned_ranks_train_the_same_bits_as_forked_ones(
    smoke_runs: dict[str, Path], tmp_path: Path
) -> None:
    done = subprocess.run(
        [*_REPRO_RUN, "--runs-dir", str(tmp_path)],
        env={**os.environ, SPAWN_RANKS_ENV: "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (spawned,) = tmp_path.iterdir()
    comparison = compare_runs(spawned, smoke_runs["primary"])
    assert comparison.verdict == "IDENTICAL", comparison.summary


def test_cpu_ranks_fork_unless_told_to_spawn_and_cuda_ranks_always_spawn() -> None:
    cpu, cuda = load_profile("smoke"), load_profile("smoke", {"device": "cuda"})
    assert _forks(cpu, {}) and _forks(cpu, {SPAWN_RANKS_ENV: "0"})
    assert not _forks(cpu, {SPAWN_RANKS_ENV: "1"})
    assert not _forks(cuda, {}) and not _forks(cuda, {SPAWN_RANKS_ENV: "0"})
