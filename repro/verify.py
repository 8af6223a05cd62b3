"""``repro verify``: capture -> run the reference -> compare with a baseline -> verdict.

The exit code is the verdict's (``repro.verdict.Verdict``); bad input is 2.
A ``--set`` override of a semantic or precision field defines another training:
its workload hash matches no baseline of the unmodified profile, so the verdict
is NO_BASELINE with the command that records a baseline for that training.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import atomic
from repro.band_sizes import DEFAULT_NUMERICS, DEFAULT_SEEDS
from repro.baseline import (
    baseline_plan,
    find_baseline,
    record_baseline,
    search_dirs,
    select_baseline,
    write_dir,
)
from repro.errors import UserError
from repro.judge import Comparison, RunView, compare
from repro.profile import load_profile, parse_overrides
from repro.runner import launch, prepare_run
from repro.workload import workload_hash


@dataclass
class VerifyResult:
    comparison: Comparison
    run_dir: Path
    selection: str

    @property
    def exit_code(self) -> int:
        return self.comparison.verdict.exit_code


def verify(
    profile_name: str,
    set_pairs: list[str],
    *,
    runs_dir: Path,
    baseline_name: str | None = None,
    baseline_dir: str | None = None,
    repeat: int = 1,
    repo: str | None = None,
    quiet: bool = False,
    record_missing: bool = False,
    env: dict[str, str] | None = None,
    verbose: bool = False,
) -> VerifyResult:
    if repeat < 1:
        raise UserError(f"--repeat {repeat} must be at least 1.")
    profile = load_profile(profile_name, parse_overrides(set_pairs))
    workload = workload_hash(profile.to_dict())
    dirs = search_dirs(baseline_dir)
    # Bad input fails before any training: an unknown baseline, or overrides no baseline may hold.
    if baseline_name is not None:
        find_baseline(baseline_name, dirs)
    if record_missing:
        baseline_plan(profile_name, DEFAULT_NUMERICS, DEFAULT_SEEDS, set_pairs)
    entries = [
        prepare_run(
            profile_name, set_pairs, runs_dir=runs_dir, repo=repo, quiet=quiet or i > 0, env=env
        )
        for i in range(repeat)
    ]
    outcomes = launch(entries, env=env, verbose=verbose)
    views = [RunView.from_run_dir(o.run_dir) for o in outcomes]
    candidate, repeats = views[0], views[1:]
    selection = select_baseline(
        profile.name, workload, candidate.manifest, dirs, baseline_name, sets=set_pairs
    )
    message = selection.message
    if selection.baseline is None:
        if record_missing and candidate.status.get("status") == "COMPLETE":
            path, _ = record_baseline(
                profile_name,
                name=None,
                numerics=DEFAULT_NUMERICS,
                seeds=DEFAULT_SEEDS,
                root=write_dir(baseline_dir),
                runs_dir=runs_dir,
                force=False,
                repo=repo,
                env=env,
                sets=set_pairs,
            )
            message += (
                f" Recorded a new baseline at {path}; keep it (cache or artifact) for the next run."
            )
        comparison = compare(
            candidate, None, repeats=repeats, notes=[message], next_command=selection.record
        )
    else:
        base = selection.baseline
        if selection.differing_keys:
            shown = ", ".join(selection.differing_keys[:6])
            more = len(selection.differing_keys) - 6
            message += f": {shown}" + (f" and {more} more" if more > 0 else "")
        comparison = compare(
            candidate, base.primary(), bands=base.bands(), repeats=repeats, notes=[message]
        )
    _keep_verdict(Path(candidate.path), comparison)
    return VerifyResult(comparison, Path(candidate.path), message)


def _keep_verdict(run_dir: Path, comparison: Comparison) -> None:
    data: dict[str, Any] = comparison.to_dict()
    data.pop("curves", None)  # the record already holds them
    atomic.write_json(run_dir / "verdict.json", data)


def gpu_count() -> int:
    """GPUs NVML sees; 0 without a driver. Never initialises CUDA in this process."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return int(pynvml.nvmlDeviceGetCount())
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        return 0


def verify_per_device(profile_name: str, set_pairs: list[str], **kwargs: Any) -> list[VerifyResult]:
    """Run the profile once per GPU (CUDA_VISIBLE_DEVICES=i): the cheapest way to find a faulty card."""
    count = gpu_count()
    if count < 1:
        raise UserError("--per-device needs NVIDIA GPUs, and NVML sees none on this machine.")
    results = []
    for index in range(count):
        print(f"repro: GPU {index} of {count}", file=sys.stderr)
        results.append(
            verify(profile_name, set_pairs, env={"CUDA_VISIBLE_DEVICES": str(index)}, **kwargs)
        )
    return results
