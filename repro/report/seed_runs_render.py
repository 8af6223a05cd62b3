"""What a report says about ``repro verify --seed-runs N``: the runs here against the
baseline's stored seed runs, its verdict, and what these runs can and cannot resolve."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.report.blocks import VERDICT_TONES, Block, Item, Items, Text, fmt_value

if TYPE_CHECKING:
    from repro.judge.group_stats import SampleComparison
    from repro.judge.seed_runs import SeedRunMetric, SeedRuns


def _shift(metric: str, value: float) -> str:
    """An accuracy in points, anything else as the metric is written."""
    if metric == "eval_accuracy":
        return f"{100 * value:.2g} points"
    return fmt_value(value)


def _metric_item(m: SeedRunMetric) -> Item:
    s: SampleComparison = m.stats
    found = "shifted" if s.detected else "no shift found"
    resolves = (
        f"these runs resolve a shift of {_shift(m.metric, s.detectable)} or more (80 % power)"
        if s.detectable < float("inf")
        else "these runs resolve no shift"
    )
    return Item(
        f"{m.metric}: {found}",
        tag="shifted" if s.detected else "no shift",
        tone="bad" if s.detected else "good",
        details=(
            f"mean {fmt_value(s.mean_b)} here, {fmt_value(s.mean_a)} stored "
            f"(difference {s.difference:+.3g}, p = {s.p_value:.2g} by {s.test}, "
            f"level {s.alpha:g})",
            resolves,
        ),
    )


def _target_text(seed_runs: SeedRuns) -> Text | None:
    if not seed_runs.metrics:
        return None
    target = _shift("eval_accuracy", seed_runs.target)
    stored = len(seed_runs.stored_seeds)
    if seed_runs.runs_for_target is not None:
        return Text(f"{seed_runs.runs_for_target} runs here would resolve {target}.")
    per_side = seed_runs.runs_per_side_for_target
    more = (
        f"; {per_side} runs per side would (a baseline recorded with "
        f"`--seeds {per_side}`, and as many runs here)"
        if per_side is not None
        else ""
    )
    return Text(f"No number of runs here resolves {target} against {stored} stored seeds{more}.")


def seed_runs_blocks(seed_runs: SeedRuns) -> list[Block]:
    """The seed-run part of a verify report's verdict section."""
    seeds = seed_runs.seeds
    named = f"seeds {seeds[0]}-{seeds[-1]}" if len(seeds) > 1 else f"seed {seeds[0]}"
    head = (
        f"{len(seeds)} seed runs here ({named}) against the baseline's "
        f"{len(seed_runs.stored_seeds)} stored seeds, false-alarm rate {seed_runs.alpha:g} "
        f"over the final metrics: {seed_runs.reason}"
    )
    verdict = seed_runs.verdict
    if verdict is None:
        top = Item(head, tag="not applied", tone="muted")
    else:
        top = Item(
            head, tag=str(verdict), tone=VERDICT_TONES[verdict], details=tuple(seed_runs.problems)
        )
    blocks: list[Block] = [Items((top, *(_metric_item(m) for m in seed_runs.metrics)))]
    target = _target_text(seed_runs)
    if target:
        blocks.append(target)
    return blocks
