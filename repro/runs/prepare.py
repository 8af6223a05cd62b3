"""A run before it is launched: its folder and config, and what its ranks' environment needs.

``prepare_run`` resolves the profile, creates ``runs/<id>/`` with ``config.yaml`` and
status RUNNING, and returns the plan entry the ranks execute. ``repro run`` calls it in
the parent; under a direct torchrun rank 0 calls it. ``rank_env`` is what every rank's
environment needs from its profile, whoever launches it. Neither imports torch.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from repro import atomic
from repro.clock import utc_now
from repro.manifest.git_info import head_sha
from repro.manifest.redact import redact_argv
from repro.profile import Profile, load_profile, parse_overrides
from repro.runs.store import CONFIG_SCHEMA_VERSION, create_unique_run_dir, write_status
from repro.runs.workload import workload_hash

# Variables a user sets to steer kernels or communication; they pass through
# untouched, and the reproduce command repeats them.
STEERING_ENV_PREFIXES = (
    "ATEN_",
    "DNNL_",
    "ONEDNN_",
    "NCCL_",
    "TORCH_",
    "CUBLAS_",
    "CUDA_VISIBLE_DEVICES",
)
INTERNAL_KEYS = ("band_member",)


def steering_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in sorted(environ.items()) if k.startswith(STEERING_ENV_PREFIXES)}


def reproduce_command(profile: str, set_pairs: list[str], env: dict[str, str]) -> str:
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    words += ["repro", "run", "--profile", profile]
    for pair in set_pairs:
        words += ["--set", shlex.quote(pair)]
    return " ".join(words)


@dataclass(frozen=True)
class PlanEntry:
    """One prepared run as its ranks receive it; a launch's ``plan.json`` holds a list."""

    run_dir: str
    settings: dict[str, Any]  # the resolved profile
    quiet: bool = False  # no per-step progress
    repo: str | None = None  # whose git state the manifest records
    argv: list[str] | None = None  # the command line the manifest records
    stop_at: int | None = None  # stop after this step and write the full training state
    resume: dict[str, Any] | None = None  # a stopped run to resume and the pieces it restores

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlanEntry:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def prepare_run(
    profile_name: str,
    set_pairs: list[str] | None,
    *,
    runs_dir: Path,
    repo: str | None = None,
    argv: list[str] | None = None,
    quiet: bool = False,
    git_sha: str | None = None,
    env: dict[str, str] | None = None,
) -> PlanEntry:
    """Create and describe one run directory; returns its launch-plan entry."""
    set_pairs = list(set_pairs or [])
    overrides = parse_overrides(set_pairs)
    profile = load_profile(profile_name, overrides)
    internal = {k: overrides[k] for k in INTERNAL_KEYS if k in overrides}
    user_overrides = {k: v for k, v in overrides.items() if k not in INTERNAL_KEYS}
    if git_sha is None:
        git_sha = head_sha(repo)
    run_dir = create_unique_run_dir(runs_dir, git_sha)
    # A token on the command line (a URL with credentials, --token X) is never recorded.
    recorded_argv = redact_argv(list(argv if argv is not None else sys.argv))
    config = {
        "schema_version": CONFIG_SCHEMA_VERSION,
        "run_id": run_dir.name,
        "profile": profile.name,
        "settings": profile.to_dict(),
        "overrides": user_overrides,
        "internal": internal,
        "faults": profile.fault.active(),
        # Only an untouched profile run may ever become (the primary of) a baseline.
        "reference": not overrides,
        "workload_hash": workload_hash(profile.to_dict()),
        "argv": recorded_argv,
        "command": reproduce_command(
            profile_name, set_pairs, steering_env({**os.environ, **(env or {})})
        ),
        "created_utc": utc_now(),
    }
    atomic.write_yaml(run_dir / "config.yaml", config)
    write_status(run_dir, "RUNNING")
    return PlanEntry(str(run_dir), profile.to_dict(), quiet, repo, recorded_argv)


CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""The fixed cuBLAS workspace deterministic algorithms need (``:16:8`` would do too)."""


NCCL_DETERMINISTIC_ALGO = "^NVLS"
"""What torch sets NCCL_ALGO to under deterministic mode when a user has not set it."""


def rank_env(profile: Profile, environ: Mapping[str, str]) -> dict[str, str]:
    """What every rank's environment needs from its profile, whoever launches it.

    ``repro run`` puts it in the ranks' environment; under a direct torchrun each rank
    applies it to itself before any CUDA call (``repro.reference.train``).
    """
    threads = str(profile.threads_per_rank)
    env = {
        # Thread counts come from the profile, never from the machine.
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        # Deterministic cuBLAS needs a fixed workspace; a user's own setting wins.
        "CUBLAS_WORKSPACE_CONFIG": environ.get("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG),
    }
    if profile.device == "cuda":
        # NCCL's NVLS algorithm (NVSwitch reductions) is not deterministic. torch excludes it
        # only when deterministic mode is on before the process group exists; the rank turns
        # that mode on later, so the exclusion is set here, as torch would, and recorded.
        # A user's own NCCL_ALGO wins. No TORCH_NCCL_BLOCKING_WAIT: it removes NCCL's
        # watchdog, and a collective DDP awaits through a CUDA future then never times out;
        # the watchdog aborts a rank stuck past collective_timeout_s (``repro.runs.failures``
        # names the hang from its log line and the rank's progress file).
        env["NCCL_ALGO"] = environ.get("NCCL_ALGO", NCCL_DETERMINISTIC_ALGO)
    return env
