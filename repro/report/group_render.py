"""The report of ``repro compare --group``: the same blocks and renderers as a comparison's.

Sections: the verdict with one row per metric and what each row means in words, the runs
of each group, and (HTML only) each group's curves as a band and the final metrics as
points per run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from repro.judge.group_power import MOST_RUNS, POWER
from repro.judge.groups import raw_value
from repro.report.blocks import (
    VERDICT_TONES,
    Block,
    Item,
    Items,
    Plot,
    Report,
    Section,
    Table,
    Text,
)
from repro.runs.group_runs import as_number
from repro.verdict import Verdict

if TYPE_CHECKING:
    from repro.judge.bands import SeedCheck
    from repro.judge.group_stats import SampleComparison
    from repro.judge.groups import GroupComparison, MetricResult


def _num(x: float) -> str:
    return f"{x:.4g}"


def _percent(level: float) -> str:
    return f"{100 * level:.4g} %"


def _metric_table(gc: GroupComparison) -> Table:
    """One row per metric, narrow enough for a terminal: the intervals are in the words below."""
    a, b = gc.names
    rows = []
    for m in gc.metrics:
        s = m.stats
        if s is None:  # a run's value is not a number: nothing to summarise
            rows.append((m.metric, "", "", "", "", m.verdict))
            continue
        rows.append(
            (
                m.metric,
                f"{_num(s.mean_a)} ± {s.sd_a:.2g}",
                f"{_num(s.mean_b)} ± {s.sd_b:.2g}",
                f"{s.difference:+.3g}",
                f"{s.superiority:.2f}",
                m.verdict,
            )
        )
    return Table(
        columns=("metric", a, b, "difference", "P(beats)", "verdict"),
        rows=tuple(rows),
        tones=tuple(VERDICT_TONES[m.verdict] for m in gc.metrics),
        numeric=(False, True, True, True, True, False),
    )


_TESTS = {
    "welch": "Welch's t-test",
    "paired t": "paired t-test",
    "exact permutation": "exact permutation test (every run of each group agreed)",
    "exact sign": "exact sign test (every pair moved alike)",
}


def _resolution(m: MetricResult, s: SampleComparison) -> str:
    if m.resolution_source == "given":
        return f"resolution {_num(s.resolution)} (--resolution)"
    if m.resolution_source == "inferred":
        return (
            f"resolution {_num(s.resolution)}, inferred: every value sits on a grid of "
            f"1/{round(1 / s.resolution)} (--resolution {m.metric}=STEP states it)"
        )
    if m.resolution_source == "unknown":
        return (
            "resolution unknown: every run gave the same number, which shows no grid; "
            f"--resolution {m.metric}=STEP states it"
        )
    return "no grid of values: a continuous metric"


def _explanation(m: MetricResult, gc: GroupComparison) -> Item:
    """What the row means, in words a reader can act on."""
    s = m.stats
    a, b = gc.names
    if s is None:
        return Item(
            f"{m.metric}: " + "; ".join(m.failures) + ": the groups cannot be compared on it",
            tag=str(m.verdict),
            tone=VERDICT_TONES[m.verdict],
        )
    gap, spread = abs(s.difference), max(s.sd_a, s.sd_b)
    low, high = s.interval
    sup_low, sup_high = s.superiority_interval
    details = (
        f"{b} - {a}: {s.difference:+.3g}, {_percent(1 - s.alpha)} interval [{low:+.3g}, {high:+.3g}]"
        + (" (mean of the pairs' differences)" if s.paired else ""),
        f"P(beats): a run of {b} beats a run of {a} with probability {s.superiority:.2f}, "
        f"[{sup_low:.2f}, {sup_high:.2f}] (score interval); p = {s.p_value:.3g} "
        f"({_TESTS[s.test]})",
        _resolution(m, s),
    )
    sizes = f"{s.n_a} pairs" if s.paired else f"{s.n_a} and {s.n_b} seeds"
    if s.no_spread:
        detect = (
            "every run agreed: no spread to judge by, so the exact test decides and the "
            "metric's resolution stands in for the spread"
            + (
                f"; it cannot reach p < {s.alpha:.3g} with {sizes}"
                if s.detectable == float("inf")
                else ""
            )
        )
    else:
        detect = (
            f"with {sizes} the smallest difference {_TESTS[s.test]} detects with "
            f"{_percent(POWER)} power is {_num(s.detectable)}"
        )
    if m.verdict is Verdict.DIFFERENT:
        text = (
            f"{m.metric}: {_num(gap)} apart, p = {s.p_value:.2g} below {s.alpha:.3g} "
            f"(alpha {gc.alpha:g} split over {len(gc.metrics)} metric(s))"
        )
    elif m.verdict is Verdict.SAME:
        low, high = s.equivalence_interval
        text = (
            f"{m.metric}: the {_percent(1 - 2 * s.equivalence_alpha)} interval of the difference, "
            f"[{low:+.3g}, {high:+.3g}], lies inside ±{_num(s.margin or 0)} ({m.margin})"
        )
        if s.detected:
            text += (
                f"; a difference of {s.difference:+.3g} is detected (p = {s.p_value:.2g}), "
                "real but inside your margin"
            )
    else:
        text = f"{m.metric}: {_num(gap)} apart, spread {_num(spread)}: {detect}"
        if s.runs_to_resolve is not None:
            need = (
                f"more than {MOST_RUNS:,}"
                if s.runs_to_resolve > MOST_RUNS
                else f"about {s.runs_to_resolve}"
            )
            text += f"; {need} seeds per side would resolve a {_num(gap)} difference" + (
                "" if s.no_spread else f" with {_percent(POWER)} power"
            )
        if s.margin is None:
            text += "; give --margin to test whether the settings are the same"
        elif s.no_spread and s.resolution == float("inf"):
            text += (
                f"; every run gave the same number, which shows no grid: give --resolution "
                f"{m.metric}=STEP to judge it against ±{_num(s.margin)} ({m.margin})"
            )
        else:
            eq_low, eq_high = s.equivalence_interval
            text += (
                f"; its {_percent(1 - 2 * s.equivalence_alpha)} interval [{eq_low:+.3g}, "
                f"{eq_high:+.3g}] is not inside ±{_num(s.margin)} ({m.margin}), so not SAME"
            )
    return Item(text, tag=str(m.verdict), tone=VERDICT_TONES[m.verdict], details=details)


def _cell(value: Any) -> str:
    number = as_number(value)
    return _num(number) if number is not None else repr(value)


def _runs_table(gc: GroupComparison) -> Table:
    """Every run with its own values, as recorded (a seed's runs before averaging)."""
    names = [m.metric for m in gc.metrics]
    rows = []
    for group, runs in zip(gc.names, gc.runs):
        for run in runs:
            values = [_cell(raw_value(run, name)) for name in names]
            seed = "" if run.seed is None else str(run.seed)
            status = "" if run.complete else f"did not complete: {run.reason}"
            rows.append((group, run.name, seed, *values, status))
    return Table(
        columns=("group", "run", "seed", *names, ""),
        rows=tuple(rows),
        tones=tuple(None if r[-1] == "" else "bad" for r in rows),
        numeric=(False, False, True, *(True for _ in names), False),
    )


def build_group_report(gc: GroupComparison) -> Report:
    a, b = gc.names
    verdict_blocks: list[Block] = []
    if gc.metrics:
        verdict_blocks += [_metric_table(gc), Items(tuple(_explanation(m, gc) for m in gc.metrics))]
    verdict_blocks += [Text(note, tone="muted") for note in gc.notes]
    plots: list[Block] = [
        Plot(
            "group_curve", f"{scalar} per step: each group's median, its runs' range shaded", scalar
        )
        for scalar in gc.curves
    ]
    plots += [
        Plot("group_finals", f"final {m.metric}: one point per seed, the bar at the mean", m.metric)
        for m in gc.metrics
        if m.stats is not None
    ]
    sections = [Section("Verdict", tuple(verdict_blocks))]
    if gc.metrics:  # the figures (HTML only) after the table of the runs they draw
        sections.append(Section("Runs", (_runs_table(gc), *plots)))
    finals = {m.metric: {a: m.values_a, b: m.values_b} for m in gc.metrics if m.stats is not None}
    return Report(
        verdict=gc.verdict,
        tone=VERDICT_TONES[gc.verdict],
        meaning=gc.verdict.meaning,
        title=f"{b} vs {a} ({len(gc.runs[1])} and {len(gc.runs[0])} runs)",
        summary=gc.summary,
        sections=tuple(sections),
        curves={"scalars": gc.curves, "finals": finals},
        first_step=None,
        first_outside=None,
    )


def seed_resolution_text(seed: SeedCheck) -> Text | None:
    """What the baseline's seed band can tell apart, for someone comparing two settings."""
    accuracy = seed.resolvable.get("eval_accuracy")
    if accuracy is None:
        return None
    return Text(
        f"The baseline's seed band resolves settings whose mean final accuracy differs by "
        f"{100 * accuracy:.2g} points or more (as many runs each as it has seeds, 80 % power, "
        "5 % false alarms; `repro compare --group` judges such groups). A smaller gap "
        "between two settings is not visible with this many runs."
    )
