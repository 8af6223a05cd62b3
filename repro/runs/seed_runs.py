"""The runs of ``repro verify --seed-runs N``: N more samples of the same training, each
with a new master seed, planned into the verify's own launch, and read back for the judge
(``repro.judge.seed_runs``).

The seeds are the profile's seed plus ``SEED_RUN_OFFSET`` plus 0, 1, ... N - 1. A
baseline stores the seeds ``primary + 0 ... primary + K2 - 1`` (``baseline_plan``), so
with the baseline's primary seed no seed run can be one of them below a million stored
seeds: nothing pairs across machines, and the comparison is one of two independent groups.
The same N on the same profile always runs the same seeds (no clock, no random draw).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

from repro.errors import UserError
from repro.runs.prepare import PlanEntry, prepare_run
from repro.runs.runner import Outcome
from repro.runs.runview import FINAL_METRICS, RunView

SEED_RUN_OFFSET = 1_000_000
MIN_SEED_RUNS = 3  # fewer runs give a group test almost no power at a baseline's alpha
_SEED_LIMIT = 2**32  # the profile's seed range


class SeedRunResult(NamedTuple):
    """One seed run as the judge sees it."""

    seed: int
    final: dict[str, float]  # the final metrics that are finite numbers
    problem: str | None  # why the run cannot be counted (did not complete, a NaN metric)


def seed_run_count(text: str) -> int:
    """``--seed-runs N``'s value, checked before anything trains."""
    try:
        count = int(text)
    except ValueError:
        count = 0
    if str(count) != text.strip() or count < MIN_SEED_RUNS:
        raise UserError(
            f"--seed-runs {text} must be a whole number of at least {MIN_SEED_RUNS}: fewer "
            "runs cannot show a shift at the baseline's false-alarm rate."
        )
    return count


def seed_run_seeds(profile_seed: int, count: int) -> list[int]:
    """The master seeds of ``count`` seed runs of a profile whose seed is ``profile_seed``."""
    return [(profile_seed + SEED_RUN_OFFSET + i) % _SEED_LIMIT for i in range(count)]


def prepare_seed_runs(
    profile_name: str,
    set_pairs: list[str],
    seeds: list[int],
    *,
    runs_dir: Path,
    repo: str | None = None,
    env: dict[str, str] | None = None,
) -> list[PlanEntry]:
    """One quiet run per seed, to append to a launch's plan (they share world size,
    threads and device with the verify's own runs: only the seed differs)."""
    sets = [[*set_pairs, f"seed={s}"] for s in seeds]
    return [
        prepare_run(profile_name, pairs, runs_dir=runs_dir, repo=repo, quiet=True, env=env)
        for pairs in sets
    ]


def seed_run_results(outcomes: list[Outcome], seeds: list[int]) -> list[SeedRunResult]:
    """What each seed run left: its finite final metrics, or why it cannot count."""
    results = []
    for outcome, seed in zip(outcomes, seeds):
        if not outcome.ok:
            why = f"seed {seed} ended {outcome.status}: {outcome.reason or 'no reason recorded'}"
            results.append(SeedRunResult(seed, {}, why))
            continue
        final = RunView.from_run_dir(outcome.run_dir).final or {}
        values = {m: final.get(m) for m in FINAL_METRICS}
        bad = [
            f"{m} is {v}"
            for m, v in values.items()
            if not isinstance(v, (int, float)) or not math.isfinite(v)
        ]
        problem = f"seed {seed}'s final {', '.join(bad)}" if bad else None
        kept = {m: float(v) for m, v in values.items() if isinstance(v, (int, float))}
        results.append(SeedRunResult(seed, kept, problem))
    return results
