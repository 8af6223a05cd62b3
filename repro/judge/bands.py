"""The statistics of the bands: tolerance bounds over band members, and the checks of one run.

With K band members and a family-wise false-alarm rate alpha:

* numerics band (same seed as the baseline's primary): for each band scalar and each of
  W step windows, the RMS deviation from the primary run is log-normal across members;
  the run's log-RMS must stay below a one-sided normal tolerance bound
  ``mean + f * sd``, f the family factor (``band_factor``): the whole family of windows
  and final metrics holds alpha for 95 % of the baselines one could record. A prediction
  bound (t quantile) holds alpha only on average over baselines; this one holds it for
  the baseline one has, in 95 % of recordings, bought with a bound 1.13x wider in log
  units (5.19 instead of 4.58 standard deviations at K = 24). ``a`` (alpha over the
  tests) is each test's share, used by the leave-one-out check.
* seed band: the final evaluation loss and accuracy must fall inside the two-sided
  prediction interval of the K2 seeds (again corrected per metric).

Final metrics sit on a grid (an accuracy moves by whole evaluation items): a spread
below one step counts as one step, and when every member agrees there is no spread to
scale by, so the metric is not tested (``_metric_check``): no count of items is outside
at level ``a`` by K equal members alone (their exact test cannot reach it), and the
trajectory windows and the evaluation loss carry the test.

A run faces one of the two, never both, so the verdict's false-alarm rate is alpha.
Pure functions of numbers: no files, no torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from repro.judge.band_factor import family_factor
from repro.judge.group_power import detectable_difference, t_quantile
from repro.judge.group_stats import AGREE, mean_sd
from repro.runs.runview import FINAL_METRICS, RunView, deviations, series
from repro.strict_json import build

# Judged by the numerics band. The learning rate follows a schedule and the loss scale is
# 1 without a GradScaler: both are exact, so they get exact checks, not bands.
BAND_SCALARS = ("loss", "grad_norm")


@dataclass(frozen=True)
class Bands:
    """A baseline's numerics and seed bands; their parameters live in the baseline."""

    name: str
    alpha: float
    windows: int
    primary_seed: int
    primary: dict[str, list[float]]  # the primary run's series: every deviation is measured from it
    workload_hash: str
    members: list[dict[str, Any]]  # {"series": {scalar: [...]}, "final": {...}}
    seeds: list[dict[str, Any]]  # {"seed": s, "eval_loss": x, "eval_accuracy": y}
    resolution: dict[str, float]  # smallest meaningful step of a final metric


@dataclass(frozen=True)
class WindowCheck:
    scalar: str
    start: int
    end: int  # exclusive
    value: float
    threshold: float
    ok: bool


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    value: float
    reference: float
    low: float
    high: float
    ok: bool
    # False when every member agrees on the metric: nothing to scale a gap by (see
    # ``_metric_check``); the check is reported, never failed.
    tested: bool = True


@dataclass(frozen=True)
class BandCheck:
    applied: bool
    reason: str
    ok: bool = True
    alpha: float = 0.0
    windows: list[WindowCheck] = field(default_factory=list)
    finals: list[MetricCheck] = field(default_factory=list)
    first_step_outside: int | None = None
    largest: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BandCheck:
        return build(
            cls,
            {
                **data,
                "windows": [build(WindowCheck, w) for w in data.get("windows", [])],
                "finals": [build(MetricCheck, m) for m in data.get("finals", [])],
            },
        )


@dataclass(frozen=True)
class SeedCheck:
    applied: bool
    reason: str
    ok: bool = True
    alpha: float = 0.0
    metrics: list[MetricCheck] = field(default_factory=list)
    # Per final metric: the gap in mean between two settings, K runs each (K = the seed
    # band's size), that `repro compare --group` detects with 80 % power at alpha 0.05.
    resolvable: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedCheck:
        return build(
            cls, {**data, "metrics": [build(MetricCheck, m) for m in data.get("metrics", [])]}
        )


def seed_resolution(seeds: list[dict[str, Any]]) -> dict[str, float]:
    if len(seeds) < 2:
        return {}
    return {
        metric: detectable_difference(mean_sd([float(s[metric]) for s in seeds])[1], len(seeds))
        for metric in FINAL_METRICS
        if all(metric in s for s in seeds)
    }


def window_edges(n: int, count: int) -> list[tuple[int, int]]:
    """The [start, end) steps of `count` windows over `n` steps, as even as whole steps allow."""
    count = max(1, min(count, n))
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count) if edges[i + 1] > edges[i]]


def _rms(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return math.sqrt(math.fsum(v * v for v in present) / len(present)) if present else 0.0


# The confidence that a baseline's bound holds its per-test level ``a``: of the baselines
# one could record, 95 % have a false-alarm rate at or below alpha.
CONFIDENCE = 0.95


def tolerance_factor(k: int, a: float, confidence: float = CONFIDENCE) -> float:
    """One-sided normal tolerance factor: ``mean + factor * sd`` of K draws exceeds the
    (1 - a) quantile of their distribution with probability ``confidence``.

    Exact (not Howe's approximation): the noncentral t quantile with K - 1 degrees of
    freedom and noncentrality z(1 - a) * sqrt(K), over sqrt(K). 5.05 at K = 24 and
    a = 0.001 / 12, where the prediction factor is 4.58.
    """
    from scipy.special import nctdtrit, ndtri

    root = math.sqrt(k)
    return float(nctdtrit(k - 1, float(ndtri(1 - a)) * root, confidence)) / root


def prediction_interval(
    values: list[float], alpha: float, resolution: float = 0.0
) -> tuple[float, float, float]:
    """Two-sided (1 - alpha) prediction interval for one new draw: (mean, low, high)."""
    k = len(values)
    mean, sd = mean_sd(values)
    sd = max(sd, resolution)
    half = t_quantile(1 - alpha / 2, k - 1) * sd * math.sqrt(1 + 1 / k)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class WindowBound:
    """The numerics band's bound on one scalar's RMS deviation over one step window."""

    scalar: str
    start: int
    end: int  # exclusive
    typical: float  # the members' geometric-mean RMS deviation
    threshold: float  # a run's RMS deviation above this is outside
    log_bound: float
    floor: float  # below this a deviation is float noise of the printout

    @property
    def tolerance(self) -> float:
        """How many times the typical member a run may deviate: the band's real width."""
        return self.threshold / self.typical if self.typical > 0 else math.inf


Window = tuple[str, int, int, float]  # scalar, start, end (exclusive), floor


def member_logs(
    primary: dict[str, list[float]], members: list[dict[str, Any]], *, windows: int, alpha: float
) -> tuple[list[tuple[Window, list[float]]], float]:
    """Each window's members' log RMS deviations from the primary, and the per-test level.

    ``a`` is alpha Bonferroni-divided over every window of every band scalar and the
    final metrics, so the whole band is one test at level alpha.
    """
    n = min(len(primary["loss"]), *(len(m["series"]["loss"]) for m in members))
    spans = window_edges(n, windows)
    a = alpha / (len(spans) * len(BAND_SCALARS) + len(FINAL_METRICS))
    found = []
    for scalar in BAND_SCALARS:
        p = primary[scalar]
        for start, end in spans:
            scale = math.fsum(abs(v) for v in p[start:end] if v is not None) / (end - start)
            floor = 1e-9 * scale + 1e-30
            logs = [
                math.log(_rms(deviations(m["series"][scalar], p, start, end)) + floor)
                for m in members
            ]
            found.append(((scalar, start, end, floor), logs))
    return found, a


def band_factor(members: int, windows: int, alpha: float) -> float:
    """The bound's factor for the whole family: every window one-sided, each final metric
    two one-sided tests (``repro.judge.band_factor``)."""
    return family_factor(members, windows + 2 * len(FINAL_METRICS), alpha)


def window_bounds(
    primary: dict[str, list[float]], members: list[dict[str, Any]], *, alpha: float, windows: int
) -> tuple[list[WindowBound], float]:
    """Each window's one-sided log-normal tolerance bound, and the per-test level ``a``."""
    logs_by_window, a = member_logs(primary, members, windows=windows, alpha=alpha)
    t = band_factor(len(members), len(logs_by_window), alpha)
    bounds = []
    for (scalar, start, end, floor), logs in logs_by_window:
        mean, sd = mean_sd(logs)
        bound = mean + t * sd
        # Clamped: with a tiny band t is huge and exp would overflow; never below 0.
        threshold = max(0.0, math.exp(min(bound, 700.0)) - floor)
        typical = max(0.0, math.exp(mean) - floor)
        bounds.append(WindowBound(scalar, start, end, typical, threshold, bound, floor))
    return bounds, a


def numerics_check(
    run: dict[str, list[float]],
    run_final: dict[str, Any] | None,
    primary: dict[str, list[float]],
    members: list[dict[str, Any]],
    *,
    alpha: float,
    windows: int,
    resolution: dict[str, float],
) -> BandCheck:
    k = len(members)
    if k < 2:
        return BandCheck(False, f"the numerics band has {k} members; at least 2 are needed")
    bounds, a = window_bounds(primary, members, alpha=alpha, windows=windows)
    n = bounds[-1].end
    checked: list[WindowCheck] = []
    failing_steps: list[int] = []
    for w in bounds:
        p = primary[w.scalar]
        value = _rms(deviations(run[w.scalar], p, w.start, w.end))
        ok = math.log(value + w.floor) <= w.log_bound
        checked.append(WindowCheck(w.scalar, w.start, w.end, value, w.threshold, ok))
        if not ok:
            dev_run = [d or 0.0 for d in deviations(run[w.scalar], p, w.start, w.end)]
            outside = [w.start + i for i, d in enumerate(dev_run) if d > w.threshold]
            failing_steps.append((outside or [w.start])[0])
    finals = (
        [
            _metric_check(
                metric,
                run_final,
                [m["final"] for m in members],
                a,
                resolution,
                factor=band_factor(k, len(bounds), alpha),
            )
            for metric in FINAL_METRICS
        ]
        if run_final
        else []
    )
    return BandCheck(
        True,
        f"same seed as the baseline's primary run; {k} rounding-perturbed members",
        ok=all(w.ok for w in checked) and all(f.ok for f in finals),
        alpha=alpha,
        windows=checked,
        finals=finals,
        first_step_outside=min(failing_steps) if failing_steps else None,
        largest=_largest_deviation(run, primary, members, n),
    )


def _largest_deviation(
    run: dict[str, list[float]],
    primary: dict[str, list[float]],
    members: list[dict[str, Any]],
    n: int,
) -> dict[str, Any] | None:
    """The step where the run deviates most from the primary relative to the band's widest
    member; a deviation where no member deviates at all outranks any finite ratio."""
    largest: dict[str, Any] | None = None
    for scalar in BAND_SCALARS:
        p = primary[scalar]
        dev_run = [d or 0.0 for d in deviations(run[scalar], p, 0, n)]
        dev_members = [
            [d or 0.0 for d in deviations(m["series"][scalar], p, 0, n)] for m in members
        ]
        for i in range(n):
            band_max = max(d[i] for d in dev_members)
            rank = dev_run[i] / band_max if band_max > 0 else (1e300 if dev_run[i] > 0 else 0.0)
            if dev_run[i] > 0 and (largest is None or rank > largest["rank"]):
                largest = {
                    "scalar": scalar,
                    "step": i,
                    "deviation": dev_run[i],
                    "band_max": band_max,
                    "ratio": rank if band_max > 0 else None,
                    "rank": rank,
                }
    return largest


def _metric_check(
    metric: str,
    run_final: dict[str, Any],
    sample: list[dict[str, Any]],
    alpha: float,
    resolution: dict[str, float],
    *,
    factor: float | None = None,
) -> MetricCheck:
    """The run's final ``metric`` against the interval of ``sample``'s: a prediction
    interval, or with ``factor`` mean +- factor * sd (the numerics band's family factor).

    The group verdicts' resolution rule: a spread below one step of the metric's grid
    counts as one step, and a run is never outside by less than one step. When every
    value in the sample agrees there is no spread at all: a run exchangeable with K equal
    members differs from them with probability up to 1 / (K + 1) by their exact test
    alone, far above any per-test level, so the metric is reported and not tested.
    """
    values = [float(s[metric]) for s in sample]
    value = float(run_final[metric])
    step = resolution.get(metric, 0.0)
    mean, sd = mean_sd(values)
    if sd <= AGREE * max(abs(mean), 1e-300) and len(values) > 1:
        return MetricCheck(metric, value, mean, mean, mean, True, tested=False)
    if factor is None:
        mean, low, high = prediction_interval(values, alpha, step)
    else:
        half = factor * max(sd, step)
        low, high = mean - half, mean + half
    # Never outside by less than one step of the grid (one evaluation item).
    low, high = min(low, mean - step), max(high, mean + step)
    return MetricCheck(metric, value, mean, low, high, low <= value <= high)


def seed_check(
    run_final: dict[str, Any] | None,
    seeds: list[dict[str, Any]],
    *,
    alpha: float,
    resolution: dict[str, float],
    resolvable: dict[str, float] | None = None,
) -> SeedCheck:
    resolvable = resolvable or {}
    if len(seeds) < 2:
        return SeedCheck(
            False,
            f"the seed band has {len(seeds)} seeds; at least 2 are needed",
            resolvable=resolvable,
        )
    if not run_final:
        return SeedCheck(False, "the run has no final evaluation", resolvable=resolvable)
    a = alpha / len(FINAL_METRICS)
    metrics = [_metric_check(m, run_final, seeds, a, resolution) for m in FINAL_METRICS]
    return SeedCheck(
        True,
        f"final metrics of {len(seeds)} master seeds",
        ok=all(m.ok for m in metrics),
        alpha=alpha,
        metrics=metrics,
        resolvable=resolvable,
    )


def same_as_primary(view: RunView, bands: Bands) -> bool:
    return view.seed == bands.primary_seed and series(view.steps) == bands.primary


def judge_by_bands(view: RunView, bands: Bands) -> tuple[BandCheck, SeedCheck]:
    """The numerics band (same master seed as the primary) or the seed interval (another seed).

    Never both: each run faces one test, so the verdict's false-alarm rate is the stated alpha.
    """
    if view.seed != bands.primary_seed:
        numerics = BandCheck(
            False,
            f"the run's master seed ({view.seed}) differs from the baseline's "
            f"primary seed ({bands.primary_seed}), so only the seed interval applies",
        )
        seeds = seed_check(
            view.final,
            bands.seeds,
            alpha=bands.alpha,
            resolution=bands.resolution,
            resolvable=seed_resolution(bands.seeds),
        )
    else:
        seeds = SeedCheck(
            False,
            "the run has the primary's seed, so the numerics band judges it "
            "(final metrics included); one test per run keeps one false-alarm rate",
            resolvable=seed_resolution(bands.seeds),
        )
        numerics = numerics_check(
            series(view.steps),
            view.final,
            bands.primary,
            bands.members,
            alpha=bands.alpha,
            windows=bands.windows,
            resolution=bands.resolution,
        )
    return numerics, seeds
