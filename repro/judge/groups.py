"""``repro compare --group A RUN... --group B RUN...``: do two settings give different results?

One run per side cannot say: identical trainings spread by up to a few accuracy points
from nondeterminism and seeds alone. This compares the two groups' distributions per
metric (``repro.judge.group_stats``) and gives one verdict: DIFFERENT when any metric differs
(the false-DIFFERENT rate alpha is split over the metrics), SAME when every metric is
shown inside its margin, UNRESOLVED otherwise; FAILED when a run did not complete or a
compared metric of a run is not a finite number (NaN, Inf, a string).

A run is a reference run folder, a tracked run (``repro.track``) or a TensorBoard log
folder, never a mix of reference and tracked runs. Metrics are the final metrics every
run has, or those named with ``--metric`` (``NAME`` for a final metric, ``NAME@STEP``
for a logged scalar at a step).

The unit is the seed: runs of one seed in one group are averaged into one value (with
deterministic training they are copies, and counting them as independent draws makes
false DIFFERENT verdicts several times as likely as alpha). A run is identified by the
run id it recorded (by its record's digest where it recorded none), not by its folder: a
run named twice, copied, or in both groups is bad input.
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.judge.group_inputs import Margin, infer_resolution
from repro.judge.group_stats import SampleComparison, can_pair, compare_samples
from repro.runs.group_runs import GroupRun, as_number
from repro.verdict import Verdict

DEFAULT_ALPHA = 0.05
CURVES_SHOWN = 3  # logged scalars drawn per report, in the order the runs logged them
_AT_STEP = re.compile(r"^(?P<name>[^@]+)@(?P<step>\d+)$")


@dataclass(frozen=True)
class MetricResult:
    metric: str
    values_a: list[float]  # one per seed, in the order the seeds pair or were given
    values_b: list[float]
    margin: str | None  # as given, e.g. "0.3pp"
    stats: SampleComparison | None  # None when a run's value is not a finite number
    resolution_source: str = "continuous"  # "given", "inferred", "continuous" or "unknown"
    failures: tuple[str, ...] = ()  # "RUN's final METRIC is nan" for each such run

    @property
    def verdict(self) -> Verdict:
        if self.stats is None:
            return Verdict.FAILED
        return Verdict(self.stats.decision)


@dataclass(frozen=True)
class GroupComparison:
    verdict: Verdict
    names: tuple[str, str]  # group A, group B; differences are B - A
    runs: tuple[tuple[GroupRun, ...], tuple[GroupRun, ...]]  # in the order compared
    paired: bool
    alpha: float  # family-wise false-DIFFERENT rate, over every metric
    metrics: tuple[MetricResult, ...]
    summary: str
    notes: tuple[str, ...] = ()
    curves: dict[str, Any] = field(default_factory=dict)  # scalar -> group -> band per step

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "groups",
            "verdict": self.verdict,
            "summary": self.summary,
            "groups": {
                name: [
                    {"name": r.name, "path": r.path, "seed": r.seed, "run_id": r.run_id}
                    for r in runs
                ]
                for name, runs in zip(self.names, self.runs)
            },
            "paired": self.paired,
            "alpha": self.alpha,
            "metrics": [
                {"metric": m.metric, "verdict": m.verdict, "margin": m.margin}
                | (asdict(m.stats) if m.stats is not None else {})
                | {"resolution_source": m.resolution_source, "failures": list(m.failures)}
                | {"values": {self.names[0]: m.values_a, self.names[1]: m.values_b}}
                for m in self.metrics
            ],
            "notes": list(self.notes),
        }


# -- loading --------------------------------------------------------------------------------


def _check_distinct(groups: list[tuple[str, list[GroupRun]]]) -> None:
    """Each run once: a repeat, a copy (same run id, or the same record where no id was
    recorded) or a run in both groups would count one draw of seed noise twice."""
    kinds = {r.kind == "reference": r for _, runs in groups for r in runs}
    if len(kinds) == 2:
        raise UserError(
            f"{kinds[True].path} is a reference run and {kinds[False].path} a tracked run: "
            "compare tracked runs (repro.track, TensorBoard logs) with tracked runs and "
            "reference runs with reference runs."
        )
    seen: dict[Any, tuple[str, GroupRun]] = {}
    for group, runs in groups:
        for run in runs:
            keys = [("path", str(Path(run.path).resolve()))]
            keys.append(("id", run.run_id) if run.run_id else ("digest", run.digest))
            for key in keys:
                if key not in seen:
                    continue
                other_group, other = seen[key]
                where = (
                    f"twice in group {group!r}"
                    if other_group == group
                    else f"in groups {other_group!r} and {group!r}"
                )
                what = {
                    "path": f"{run.path} is named {where}",
                    "id": f"{other.path} and {run.path} are one run (run id {run.run_id}) {where}",
                    "digest": f"{other.path} and {run.path} hold the same record {where}",
                }[key[0]]
                raise UserError(
                    f"{what}: a copy of a run is no new draw of seed noise, so name each run once."
                )
            for key in keys:
                seen[key] = (group, run)


def _numeric(value: Any) -> bool:
    number = as_number(value)
    return number is not None and math.isfinite(number)


# -- comparing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unit:
    """One seed of one group: the runs of that seed (one, unless it was repeated)."""

    seed: Any
    runs: tuple[GroupRun, ...]


def _units(runs: list[GroupRun]) -> list[_Unit]:
    by_seed: dict[str, list[GroupRun]] = {}
    alone: list[_Unit] = []
    for run in runs:
        if run.seed is None:  # no seed recorded: each run counts as its own draw
            alone.append(_Unit(None, (run,)))
        else:
            by_seed.setdefault(str(run.seed), []).append(run)
    return [_Unit(rs[0].seed, tuple(rs)) for rs in by_seed.values()] + alone


def raw_value(run: GroupRun, metric: str) -> Any:
    """The run's value of a metric as recorded; a UserError when it has none."""
    at = _AT_STEP.match(metric)
    if at:
        value = run.scalars.get(at.group("name"), {}).get(int(at.group("step")))
        missing = f"no {at.group('name')} logged at step {at.group('step')}"
    else:
        value = run.final.get(metric)
        missing = f"no final {metric}"
    if value is None:
        raise UserError(f"{run.path} has {missing}; compare a metric every run has (--metric).")
    return value


def _default_metrics(runs: list[GroupRun]) -> list[str]:
    """The final metrics every run has and at least one run holds a number for (a NaN
    in every run is still a metric: it fails; a label in every run is none)."""
    common = [
        m
        for m in runs[0].final
        if all(m in r.final for r in runs) and any(as_number(r.final[m]) is not None for r in runs)
    ]
    if not common:
        raise UserError(
            "the runs share no numeric final metric; name one with --metric (NAME, or NAME@STEP "
            "for a logged scalar at a step)."
        )
    return common


def _band(runs: tuple[GroupRun, ...], scalar: str) -> dict[str, list[float]]:
    steps = sorted(set.intersection(*(set(r.scalars.get(scalar, {})) for r in runs)))
    per_step = [[v for r in runs if math.isfinite(v := r.scalars[scalar][s])] for s in steps]
    kept = [(s, v) for s, v in zip(steps, per_step) if v]  # a step every run left NaN: no band
    return {
        "steps": [float(s) for s, _ in kept],
        "median": [statistics.median(v) for _, v in kept],
        "low": [min(v) for _, v in kept],
        "high": [max(v) for _, v in kept],
    }


def _curves(names: tuple[str, str], groups: tuple[tuple[GroupRun, ...], ...]) -> dict[str, Any]:
    everyone = [r for g in groups for r in g]
    shared = [s for s in everyone[0].scalars if all(r.scalars.get(s) for r in everyone)]
    shared.sort(key=lambda s: s != "loss")  # the loss first, then in the order logged
    return {
        scalar: {name: _band(runs, scalar) for name, runs in zip(names, groups)}
        for scalar in shared[:CURVES_SHOWN]
    }


def _check_groups(groups: list[tuple[str, list[GroupRun]]], alpha: float) -> None:
    """Two named groups of at least two runs each, each run once, a sane alpha."""
    if len(groups) != 2:
        raise UserError(f"compare two groups (--group NAME RUN... twice), not {len(groups)}.")
    (name_a, _), (name_b, _) = groups
    if name_a == name_b:
        raise UserError(f"both groups are named {name_a!r}; give each --group its own name.")
    for name, members in groups:
        if len(members) < 2:
            raise UserError(
                f"group {name!r} has {len(members)} run; a group needs at least 2 (one run against "
                "another is `repro compare A B`)."
            )
    if not 0 < alpha < 0.5:
        raise UserError(f"--alpha {alpha:g} must lie between 0 and 0.5 (0.05 is usual).")
    _check_distinct(groups)


def _check_named(names: list[str], margins: set[Any], resolutions: set[str]) -> None:
    """--margin and --resolution name only metrics that are compared."""
    for option, named in (("--margin", margins), ("--resolution", resolutions)):
        unknown = named - set(names)
        if unknown:
            raise UserError(
                f"{option} names {', '.join(sorted(map(str, unknown)))}, which is not compared; "
                f"the metrics compared are {', '.join(names)}."
            )


def compare_groups(
    groups: list[tuple[str, list[GroupRun]]],
    *,
    metrics: list[str] | None = None,
    margins: list[Margin] | None = None,
    resolutions: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    unpaired: bool = False,
) -> GroupComparison:
    _check_groups(groups, alpha)
    (name_a, a), (name_b, b) = groups
    units_a, units_b = _units(a), _units(b)
    notes = []
    for name, members, seeds in ((name_a, a, units_a), (name_b, b, units_b)):
        if len(seeds) < 2:
            raise UserError(
                f"group {name!r} holds {len(members)} runs of one seed ({seeds[0].seed}); the "
                "unit is the seed, so give each group runs of at least 2 seeds."
            )
        repeated = [u for u in seeds if len(u.runs) > 1]
        if repeated:
            times = ", ".join(f"seed {u.seed} {len(u.runs)} times" for u in repeated)
            notes.append(
                f"group {name} ran {times}: the unit is the seed, so each seed's runs are "
                f"averaged into one value ({len(members)} runs, {len(seeds)} seeds compared)."
            )
    paired = not unpaired and can_pair([u.seed for u in units_a], [u.seed for u in units_b])
    if paired:  # the same order of seeds on both sides
        units_a.sort(key=lambda u: str(u.seed))
        units_b.sort(key=lambda u: str(u.seed))
        notes.append(
            f"paired by seed: the same {len(units_a)} seeds on both sides, so each seed's "
            "runs are compared."
        )
    units = (units_a, units_b)
    runs = (tuple(r for u in units_a for r in u.runs), tuple(r for u in units_b for r in u.runs))
    failed = [r for r in runs[0] + runs[1] if not r.complete]
    if failed:
        summary = "; ".join(f"{r.name} did not complete ({r.reason})" for r in failed)
        return GroupComparison(
            Verdict.FAILED, (name_a, name_b), runs, paired, alpha, (), summary, tuple(notes)
        )
    names = metrics or _default_metrics(list(runs[0] + runs[1]))
    by_metric = {m.metric: m for m in margins or []}
    _check_named(names, set(by_metric) - {None}, set(resolutions or {}))
    if len(names) > 1:
        notes.append(
            f"alpha {alpha:g} is split over {len(names)} metrics (Bonferroni) so that the whole "
            "verdict keeps it; metrics that move together (a loss and an accuracy) make this "
            "conservative: fewer false DIFFERENT verdicts than alpha, and a real difference "
            "needs a little more evidence."
        )
    results = [
        _compare_metric(
            metric,
            units,
            by_metric.get(metric) or by_metric.get(None),
            (resolutions or {}).get(metric),
            alpha=alpha,
            metric_count=len(names),
            paired=paired,
        )
        for metric in names
    ]
    verdict = Verdict.worst([r.verdict for r in results])
    return GroupComparison(
        verdict,
        (name_a, name_b),
        runs,
        paired,
        alpha,
        tuple(results),
        _summary(verdict, name_a, name_b, results),
        tuple(notes),
        _curves((name_a, name_b), runs),
    )


def _compare_metric(
    metric: str,
    units: tuple[list[_Unit], list[_Unit]],
    margin: Margin | None,
    resolution: float | None,
    *,
    alpha: float,
    metric_count: int,
    paired: bool,
) -> MetricResult:
    raw = [[[raw_value(r, metric) for r in u.runs] for u in side] for side in units]
    failures = tuple(
        f"{r.name}'s {_what(metric)} is {value!r}, not a finite number"
        for side, side_raw in zip(units, raw)
        for u, values in zip(side, side_raw)
        for r, value in zip(u.runs, values)
        if not _numeric(value)
    )
    if failures:  # never SAME, EQUIVALENT or IDENTICAL on a metric a run did not produce
        return MetricResult(
            metric, [], [], margin.describe() if margin else None, None, failures=failures
        )
    per_run = [float(v) for side in raw for values in side for v in values]
    if resolution is None:
        resolution = infer_resolution(per_run)
        source = {0.0: "continuous", math.inf: "unknown"}.get(resolution, "inferred")
    else:
        source = "given"
    values_a, values_b = (
        [math.fsum(map(float, values)) / len(values) for values in side] for side in raw
    )
    stats = compare_samples(
        values_a,
        values_b,
        alpha=alpha / metric_count,  # Bonferroni: DIFFERENT on any metric at rate alpha
        equivalence_alpha=alpha,  # SAME needs every metric: no split needed
        margin=margin.absolute(metric, values_a, values_b) if margin else None,
        paired=paired,
        resolution=resolution,
    )
    return MetricResult(
        metric, values_a, values_b, margin.describe() if margin else None, stats, source
    )


def _what(metric: str) -> str:
    at = _AT_STEP.match(metric)
    return f"{at.group('name')} at step {at.group('step')}" if at else f"final {metric}"


def _summary(verdict: Verdict, a: str, b: str, results: list[MetricResult]) -> str:
    def gap(r: MetricResult) -> str:
        s = r.stats
        assert s is not None
        return f"{r.metric} {s.mean_b:.4g} vs {s.mean_a:.4g} ({s.difference:+.3g})"

    if verdict is Verdict.FAILED:
        return "; ".join(f for r in results for f in r.failures)
    if verdict is Verdict.DIFFERENT:
        hits = [r for r in results if r.verdict is Verdict.DIFFERENT]
        return f"{b} differs from {a}: " + "; ".join(gap(r) for r in hits)
    if verdict is Verdict.SAME:
        return f"{b} and {a} agree within the margins: " + "; ".join(
            f"{r.metric} within +-{r.margin}" for r in results
        )
    open_ = [r for r in results if r.verdict is Verdict.UNRESOLVED]
    return f"{b} vs {a}: not resolved at these group sizes: " + "; ".join(gap(r) for r in open_)
