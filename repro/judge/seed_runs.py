"""``repro verify --seed-runs N``: is this machine's distribution of results the baseline's?

One run judged by the seed interval has almost no power for a shift of the mean (the
shipped baseline's 8 seeds give an interval about +-2 accuracy points wide). N runs here
with new master seeds (``repro.runs.seed_runs``) are compared, as one group, with the
baseline's stored seed runs as the other, by the group statistics of ``repro compare
--group`` (``group_stats.compare_samples``: Welch's t-test, unpaired because no seed is
shared), at the baseline's alpha split over the final metrics (Bonferroni, as groups do):

- **DRIFT**: some final metric's mean differs here (detected at the per-metric level).
- **EQUIVALENT**: no shift found. Not a proof of sameness: the section states the
  smallest shift these N runs resolve with 80 % power, and how many runs here would
  resolve a shift of ``TARGET_SHIFT`` (0.5 accuracy points) against the stored seeds.
- **FAILED**: a seed run did not complete or left a final metric that is not a number.

The recorded band is never changed: the stored seeds are read, the runs here are not
added to them. A pure function of numbers, like the other judges.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from repro.judge.group_power import MOST_RUNS, runs_per_side, welch_detectable
from repro.judge.group_stats import SampleComparison, compare_samples
from repro.runs.runview import FINAL_METRICS
from repro.runs.seed_runs import SeedRunResult
from repro.strict_json import NONFINITE, build
from repro.verdict import Verdict

# The accuracy shift the report says how many runs would resolve: half a point, the size
# of gap people ask about ("is 91.8 % vs 92.3 % meaningful?").
TARGET_METRIC = "eval_accuracy"
TARGET_SHIFT = 0.005


@dataclass(frozen=True)
class SeedRunMetric:
    """One final metric: the runs here against the baseline's stored seeds (here - stored)."""

    metric: str
    values: list[float]  # the runs here, in seed order
    stored: list[float]  # the baseline's stored seed runs
    stats: SampleComparison

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRunMetric:
        # strict JSON writes an unreachable shift (inf) as "inf": a float again here.
        stats = {
            k: float(v) if isinstance(v, str) and v in NONFINITE else v
            for k, v in data["stats"].items()
        }
        return cls(**{**data, "stats": SampleComparison.from_dict(stats)})


@dataclass(frozen=True)
class SeedRuns:
    """The seed-run section of a verify: its own verdict, folded into the verify's."""

    verdict: Verdict | None  # EQUIVALENT, DRIFT or FAILED; None when not applied
    applied: bool
    reason: str
    alpha: float  # family-wise over the metrics: the baseline's
    seeds: list[int]  # the master seeds run here
    stored_seeds: list[int]
    metrics: list[SeedRunMetric]
    problems: list[str]  # seed runs that could not be counted, and why
    target: float = TARGET_SHIFT  # in TARGET_METRIC's units
    # Runs here that would resolve ``target`` with 80 % power against the stored seeds;
    # None where no number of runs here would (too few stored seeds for that spread).
    runs_for_target: int | None = None
    # Runs per side (stored seeds and runs here alike) that would resolve ``target``: what
    # a baseline recorded with that many seeds would need, where the stored side limits.
    runs_per_side_for_target: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRuns:
        return build(
            cls,
            {
                **data,
                "verdict": Verdict(data["verdict"]) if data.get("verdict") else None,
                "metrics": [SeedRunMetric.from_dict(m) for m in data.get("metrics", [])],
            },
        )


def _spread(stats: SampleComparison) -> float | None:
    """The per-run spread the test ``stats`` ran measured (floored at the resolution)."""
    unit = welch_detectable(1.0, stats.n_a, stats.n_b, False, stats.alpha)
    if not (math.isfinite(stats.detectable) and math.isfinite(unit)) or stats.detectable == 0:
        return None
    return stats.detectable / unit  # welch_detectable is linear in the spread


def runs_to_resolve(shift: float, stats: SampleComparison) -> int | None:
    """The fewest runs here (the stored side fixed) at which ``shift`` is detected with 80 %
    power by the test ``stats`` ran, at its spread; None when no number of runs here would.

    Welch's power is not monotone in one side's size: past a point, more runs here pull
    its degrees of freedom down towards the stored side's, and the detectable shift grows
    again (at 8 stored seeds and alpha 0.0005 it is lowest near 23 runs). So: find the
    lowest point, then the first size at or below ``shift`` on the way down to it.
    """
    spread = _spread(stats)
    if spread is None:
        return None

    def detectable(n: int) -> float:
        return welch_detectable(spread, stats.n_a, n, False, stats.alpha)

    high = 2
    while 2 * high <= MOST_RUNS and detectable(2 * high) < detectable(high):
        high *= 2
    low, high = max(2, high // 2), min(2 * high, MOST_RUNS)
    while high - low > 2:  # the lowest point of a curve that falls, then rises
        third = (high - low) // 3
        if detectable(low + third) < detectable(high - third):
            high = high - third
        else:
            low = low + third
    lowest = min(range(low, high + 1), key=detectable)
    if detectable(lowest) > shift:
        return None
    low, high = 2, lowest
    while low < high:  # falling on [2, lowest]: the first size that resolves the shift
        mid = (low + high) // 2
        if detectable(mid) <= shift:
            high = mid
        else:
            low = mid + 1
    return low


def _not_applied(reason: str, seeds: list[int], alpha: float) -> SeedRuns:
    return SeedRuns(None, False, reason, alpha, seeds, [], [], [])


def judge_seed_runs(
    runs: list[SeedRunResult],
    stored: list[dict[str, Any]],
    *,
    alpha: float,
    resolution: dict[str, float],
) -> SeedRuns:
    """The runs here against a baseline's stored seed runs (``band.json``'s ``seeds``:
    ``{"seed", "eval_loss", "eval_accuracy"}``), at the baseline's family-wise ``alpha``."""
    seeds = [r.seed for r in runs]
    stored_seeds = [int(s["seed"]) for s in stored]
    metrics = [m for m in FINAL_METRICS if all(m in s for s in stored)]
    if len(stored) < 2 or not metrics:
        return _not_applied(
            f"the baseline stores {len(stored)} seed runs with final metrics; at least 2 "
            "are needed to compare with",
            seeds,
            alpha,
        )
    shared = sorted(set(seeds) & set(stored_seeds))
    if shared:
        return _not_applied(
            f"seed {shared[0]} is both run here and stored in the baseline: a shared seed is "
            "no independent draw; run with the baseline's primary seed",
            seeds,
            alpha,
        )
    problems = [r.problem for r in runs if r.problem]
    base = (alpha, seeds, stored_seeds)
    if problems:
        why = f"{len(problems)} of {len(runs)} seed runs cannot be counted"
        return SeedRuns(Verdict.FAILED, True, why, *base, [], problems)
    each = alpha / len(metrics)  # Bonferroni: DRIFT on any metric at rate alpha
    compared = []
    for m in metrics:
        values, reference = [r.final[m] for r in runs], [float(s[m]) for s in stored]
        stats = compare_samples(reference, values, alpha=each, resolution=resolution.get(m, 0.0))
        compared.append(SeedRunMetric(m, values, reference, stats))
    drifted = [c.metric for c in compared if c.stats.decision == "DIFFERENT"]
    target = next((c.stats for c in compared if c.metric == TARGET_METRIC), None)
    return SeedRuns(
        Verdict.DRIFT if drifted else Verdict.EQUIVALENT,
        True,
        f"{', '.join(drifted)} shifted" if drifted else "no shift found",
        *base,
        compared,
        [],
        runs_for_target=runs_to_resolve(TARGET_SHIFT, target) if target else None,
        runs_per_side_for_target=_per_side(TARGET_SHIFT, target) if target else None,
    )


def _per_side(shift: float, stats: SampleComparison) -> int | None:
    spread = _spread(stats)
    found = None if spread is None else runs_per_side(shift, spread, False, stats.alpha)
    return found if found is not None and found <= MOST_RUNS else None
