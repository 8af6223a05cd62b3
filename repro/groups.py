"""``repro compare --group A RUN... --group B RUN...``: do two settings give different results?

One run per side cannot say: identical trainings spread by up to a few accuracy points
from nondeterminism and seeds alone. This compares the two groups' distributions per
metric (``repro.group_stats``) and gives one verdict: DIFFERENT when any metric differs
(the false-DIFFERENT rate alpha is split over the metrics), SAME when every metric is
shown inside its margin, UNRESOLVED otherwise; FAILED when a run did not complete.

A run is a reference run folder, a tracked run (``repro.track``) or a TensorBoard log
folder. Metrics are the numeric final metrics every run has, or those named with
``--metric`` (``NAME`` for a final metric, ``NAME@STEP`` for a logged scalar at a step).
"""

from __future__ import annotations

import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.group_stats import SampleComparison, can_pair, compare_samples
from repro.verdict import Verdict

DEFAULT_ALPHA = 0.05
CURVES_SHOWN = 3  # logged scalars drawn per report, in the order the runs logged them
_AT_STEP = re.compile(r"^(?P<name>[^@]+)@(?P<step>\d+)$")
_MARGIN = re.compile(r"^(?:(?P<metric>[^=]+)=)?(?P<value>[0-9.eE+-]+)(?P<unit>pp|%)?$")


@dataclass(frozen=True)
class GroupRun:
    """What a group comparison needs of one run."""

    name: str
    path: str
    seed: Any
    complete: bool
    reason: str  # why it is not complete ("" when it is)
    final: dict[str, float]  # the numeric final metrics
    scalars: dict[str, dict[int, float]]  # logged scalar -> step -> value (rank 0's view)


@dataclass(frozen=True)
class Margin:
    """``--margin``: absolute (``0.002``), percentage points (``0.3pp`` = 0.003) or a
    fraction of group A's mean (``0.5%``), for one metric or (no name) all of them."""

    metric: str | None
    value: float
    unit: str  # "", "pp" or "%"

    def absolute(self, metric: str, values_a: list[float], values_b: list[float]) -> float:
        if self.unit == "%":
            margin = abs(statistics.fmean(values_a)) * self.value / 100
            if margin == 0:
                raise UserError(
                    f"--margin {self.describe()}: group A's mean {metric} is 0, so a percentage "
                    f"of it is no margin; give one in the metric's units (--margin {metric}=VALUE)."
                )
            return margin
        if self.unit == "pp":
            if not all(0 <= v <= 1 for v in values_a + values_b):
                raise UserError(
                    f"--margin {self.value:g}pp: {metric} is not a share between 0 and 1; give "
                    f"its margin in its own units (--margin {metric}=VALUE) or as a fraction (%)."
                )
            return self.value / 100
        return self.value

    def describe(self) -> str:
        return f"{self.value:g}{self.unit}"


def parse_margin(spec: str) -> Margin:
    m = _MARGIN.match(spec.strip())
    value = float(m.group("value")) if m and _is_number(m.group("value")) else math.nan
    if m is None or not value > 0 or not math.isfinite(value):
        raise UserError(
            f"--margin {spec!r} is not a margin: give a positive number, in the metric's units "
            "(0.002), percentage points (0.3pp) or percent of group A's mean (0.5%), "
            "optionally for one metric (eval_accuracy=0.3pp)."
        )
    return Margin(m.group("metric"), value, m.group("unit") or "")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class MetricResult:
    metric: str
    values_a: list[float]  # in the order the runs pair (by seed) or were given
    values_b: list[float]
    margin: str | None  # as given, e.g. "0.3pp"
    stats: SampleComparison

    @property
    def verdict(self) -> Verdict:
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
                name: [{"name": r.name, "path": r.path, "seed": r.seed} for r in runs]
                for name, runs in zip(self.names, self.runs)
            },
            "paired": self.paired,
            "alpha": self.alpha,
            "metrics": [
                {"metric": m.metric, "verdict": m.verdict, "margin": m.margin, **asdict(m.stats)}
                | {"values": {self.names[0]: m.values_a, self.names[1]: m.values_b}}
                for m in self.metrics
            ],
            "notes": list(self.notes),
        }


# -- loading --------------------------------------------------------------------------------


def load_group_run(argument: str) -> GroupRun:
    from repro.tensorboard_run import is_event_dir, load_event_dir
    from repro.tracked_compare import is_tracked, load_tracked

    path = Path(argument)
    if not path.is_dir():
        raise UserError(
            f"{argument} is not a run folder; pass run folders after each --group NAME."
        )
    if is_tracked(path) or is_event_dir(path):
        tracked = load_event_dir(path) if is_event_dir(path) else load_tracked(path)
        view, rows = tracked.view, tracked.ranks[0] if tracked.ranks else []
        scalars: dict[str, dict[int, float]] = {}
        for row in rows:
            for key, value in row.items():
                if key != "step" and _numeric(value):
                    scalars.setdefault(key, {})[int(row["step"])] = float(value)
    else:
        from repro.runview import RunView

        view = RunView.from_run_dir(path)
        scalars = {
            "loss": {s["step"]: float(s["loss"]) for s in view.steps if _numeric(s["loss"])},
            "grad_norm": {
                s["step"]: float(norm)
                for s in view.steps
                if (norm := s["grad_norm"]) is not None and _numeric(norm)
            },
        }
    status = str(view.status.get("status", "UNKNOWN"))
    final = {k: float(v) for k, v in (view.final or {}).items() if _numeric(v)}
    complete = status == "COMPLETE" and bool(final)
    reason = (
        "" if complete else str(view.status.get("reason") or f"status {status}, no final metrics")
    )
    seed = view.config.get("settings", {}).get("seed")
    return GroupRun(view.name, str(path), seed, complete, reason, final, scalars)


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# -- comparing ------------------------------------------------------------------------------


def _metric_values(runs: tuple[GroupRun, ...], metric: str) -> list[float]:
    at = _AT_STEP.match(metric)
    values = []
    for run in runs:
        if at:
            value = run.scalars.get(at.group("name"), {}).get(int(at.group("step")))
        else:
            value = run.final.get(metric)
        if value is None:
            where = (
                f"no {at.group('name')} logged at step {at.group('step')}"
                if at
                else f"no final {metric}"
            )
            raise UserError(f"{run.path} has {where}; compare a metric every run has (--metric).")
        values.append(value)
    return values


def _default_metrics(runs: list[GroupRun]) -> list[str]:
    common = [m for m in runs[0].final if all(m in r.final for r in runs)]
    if not common:
        raise UserError(
            "the runs share no numeric final metric; name one with --metric (NAME, or NAME@STEP "
            "for a logged scalar at a step)."
        )
    return common


def _pairing(a: list[GroupRun], b: list[GroupRun], unpaired: bool) -> tuple[bool, list[str]]:
    notes = []
    for side in (a, b):
        seeds = [r.seed for r in side if r.seed is not None]
        repeated = sorted({str(s) for s in seeds if seeds.count(s) > 1})
        if repeated:
            notes.append(
                f"seed {', '.join(repeated)} appears more than once in one group: such runs "
                "are not independent draws of seed noise unless the training is nondeterministic."
            )
    paired = not unpaired and can_pair([r.seed for r in a], [r.seed for r in b])
    if paired:
        notes.append(
            f"paired by seed: the same {len(a)} seeds on both sides, so each seed's runs are compared."
        )
    return paired, notes


def _band(runs: tuple[GroupRun, ...], scalar: str) -> dict[str, list[float]]:
    steps = sorted(set.intersection(*(set(r.scalars.get(scalar, {})) for r in runs)))
    per_step = [[r.scalars[scalar][s] for r in runs] for s in steps]
    return {
        "steps": [float(s) for s in steps],
        "median": [statistics.median(v) for v in per_step],
        "low": [min(v) for v in per_step],
        "high": [max(v) for v in per_step],
    }


def _curves(names: tuple[str, str], groups: tuple[tuple[GroupRun, ...], ...]) -> dict[str, Any]:
    everyone = [r for g in groups for r in g]
    shared = [s for s in everyone[0].scalars if all(r.scalars.get(s) for r in everyone)]
    shared.sort(key=lambda s: s != "loss")  # the loss first, then in the order logged
    return {
        scalar: {name: _band(runs, scalar) for name, runs in zip(names, groups)}
        for scalar in shared[:CURVES_SHOWN]
    }


def compare_groups(
    groups: list[tuple[str, list[GroupRun]]],
    *,
    metrics: list[str] | None = None,
    margins: list[Margin] | None = None,
    alpha: float = DEFAULT_ALPHA,
    unpaired: bool = False,
) -> GroupComparison:
    if len(groups) != 2:
        raise UserError(f"compare two groups (--group NAME RUN... twice), not {len(groups)}.")
    (name_a, a), (name_b, b) = groups
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
    failed = [r for r in a + b if not r.complete]
    paired, notes = _pairing(a, b, unpaired)
    if paired:  # the same order of seeds on both sides
        a = sorted(a, key=lambda r: str(r.seed))
        b = sorted(b, key=lambda r: str(r.seed))
    runs = (tuple(a), tuple(b))
    if failed:
        summary = "; ".join(f"{r.name} did not complete ({r.reason})" for r in failed)
        return GroupComparison(
            Verdict.FAILED, (name_a, name_b), runs, paired, alpha, (), summary, tuple(notes)
        )
    names = metrics or _default_metrics(a + b)
    by_metric = {m.metric: m for m in margins or []}
    results = []
    for metric in names:
        values_a, values_b = _metric_values(runs[0], metric), _metric_values(runs[1], metric)
        margin = by_metric.get(metric) or by_metric.get(None)
        stats = compare_samples(
            values_a,
            values_b,
            alpha=alpha / len(names),  # Bonferroni: DIFFERENT on any metric at rate alpha
            equivalence_alpha=alpha,  # SAME needs every metric: no split needed
            margin=margin.absolute(metric, values_a, values_b) if margin else None,
            paired=paired,
        )
        results.append(
            MetricResult(metric, values_a, values_b, margin.describe() if margin else None, stats)
        )
    unknown = set(by_metric) - {None} - set(names)
    if unknown:
        raise UserError(
            f"--margin names {', '.join(sorted(map(str, unknown)))}, which is not compared; "
            f"the metrics compared are {', '.join(names)}."
        )
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


def _summary(verdict: Verdict, a: str, b: str, results: list[MetricResult]) -> str:
    def gap(r: MetricResult) -> str:
        s = r.stats
        return f"{r.metric} {s.mean_b:.4g} vs {s.mean_a:.4g} ({s.difference:+.3g})"

    if verdict is Verdict.DIFFERENT:
        hits = [r for r in results if r.verdict is Verdict.DIFFERENT]
        return f"{b} differs from {a}: " + "; ".join(gap(r) for r in hits)
    if verdict is Verdict.SAME:
        return f"{b} and {a} agree within the margins: " + "; ".join(
            f"{r.metric} within +-{r.margin}" for r in results
        )
    open_ = [r for r in results if r.verdict is Verdict.UNRESOLVED]
    return f"{b} vs {a}: not resolved at these group sizes: " + "; ".join(gap(r) for r in open_)
