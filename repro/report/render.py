"""One model of a compare report, shared by the terminal, Markdown and HTML renderers.

``build_report`` decides what is said and in which order; a renderer decides only how a
block looks. Text may hold `backtick` code spans (the keys table's hints use them);
renderers show them as code where they can.

Order of the sections: verdict, environment differences, where the runs parted, how far
apart they are, probable causes, how to reproduce.
"""

from __future__ import annotations

import math
import shlex
from collections.abc import Sequence
from itertools import groupby
from typing import TYPE_CHECKING, Any

from repro.judge.causes import explainable
from repro.manifest.diff import Difference, render_change
from repro.report.blocks import (
    VERDICT_TONES,
    Block,
    Commands,
    Folded,
    Item,
    Items,
    Plot,
    Report,
    Section,
    Table,
    Text,
    Tone,
    fmt_interval,
    fmt_small,
    fmt_value,
)
from repro.report.group_render import seed_resolution_text
from repro.report.preflight_render import preflight_findings
from repro.report.seed_runs_render import seed_runs_blocks

if TYPE_CHECKING:
    from repro.judge.bands import BandCheck, MetricCheck, SeedCheck, WindowCheck
    from repro.judge.comparison import Comparison
    from repro.judge.curves import Judged, LossCurves
    from repro.judge.exact import ExactCheck

SECTION_TITLES = (
    "Verdict",
    "Environment differences",
    "Where they parted",
    "How far apart",
    "Probable causes",
    "Reproduce",
)
WHERE_LABELS = {
    "global_batch": "the global batch (data or sampler)",
    "batch_split": "the split of the batch across ranks",
    "initial": "the initial parameters",
    "forward": "the forward pass",
    "loss": "the loss",
    "grad_local": "the local gradients, before the all-reduce",
    "grad_reduced": "the gradients after the all-reduce",
    "grad_norm": "the gradient norm",
    "update": "the optimizer update",
    "record": "the number of recorded steps",
    "final": "the final evaluation or checkpoint",
    "logged": "a logged value (a tracked run)",
}
SHOWN_CAUSES = 3  # the rest are folded: past three, a ranking is rarely read
_FOLDED_WINDOW_SCALARS = ("grad_norm",)  # loss windows are always shown
_IMPACT_TONES: dict[str, Tone] = {"high": "bad", "medium": "warn", "low": "muted"}


# -- sections -------------------------------------------------------------------------------


def _band_item(name: str, check: BandCheck | SeedCheck) -> Item:
    if not check.applied:
        return Item(f"{name}: {check.reason}", tag="not applied", tone="muted")
    alpha = f" (false-alarm rate {check.alpha:g})" if check.alpha else ""
    if check.ok:
        return Item(f"{name}{alpha}: {check.reason}", tag="inside", tone="good")
    return Item(f"{name}{alpha}: {check.reason}", tag="outside", tone="bad")


def _exact_item(check: ExactCheck) -> Item:
    if check.ok:
        return Item(f"{check.name}: bit-equal at every step", tag="exact", tone="good")
    return Item(check.detail, tag="differs", tone="bad")


def _failure_text(comparison: Comparison) -> Text | None:
    failure = comparison.failure
    if not failure:
        return None
    who = "candidate" if failure.run == comparison.candidate.name else "reference"
    where = []
    if failure.step is not None:
        where.append(f"at step {failure.step}")
    if failure.rank is not None:
        where.append(f"on rank {failure.rank}")
    place = " ".join(where)
    return Text(
        f"The {who} run {str(failure.status).lower()} "
        f"({failure.kind}){' ' + place if place else ''}: {failure.message}",
        tone="bad",
    )


def _verdict_section(comparison: Comparison) -> Section:
    c, r = comparison.candidate, comparison.reference
    runs = [Item(f"{c.name} ({c.path})", tag="candidate")]
    if r:
        runs.append(Item(f"{r.name} ({r.path})", tag="reference"))
    blocks: list[Block] = [Items(tuple(runs))]
    if comparison.next_command:
        blocks.append(Commands((("next", comparison.next_command),)))
    failure = _failure_text(comparison)
    if failure:
        blocks.append(failure)
    if comparison.baseline:
        blocks.append(Text(f"Judged against the bands of baseline `{comparison.baseline}`:"))
    else:
        blocks.append(Text("No baseline bands applied:"))
    blocks.append(
        Items(
            (
                *(_exact_item(e) for e in comparison.exact),
                _band_item("numerics band", comparison.numerics),
                _band_item("seed interval", comparison.seed),
            )
        )
    )
    if comparison.seed_runs is not None:
        blocks += seed_runs_blocks(comparison.seed_runs)
    return Section(SECTION_TITLES[0], tuple(blocks))


def _difference_item(d: Difference) -> Item:
    tone = _IMPACT_TONES.get(d.impact, "muted")
    details = (f"try: {d.hint}",) if d.impact == "high" and d.hint else ()
    key = f"`{d.key}`" + (" (environment key)" if d.env_key else "")
    return Item(f"{key}: {render_change(d)}", tag=d.impact, tone=tone, details=details)


def _grouped(differences: list[Difference]) -> tuple[Items, ...]:
    # diff_manifests sorts by section already; groupby keeps that order.
    return tuple(
        Items(tuple(_difference_item(d) for d in group), title=section)
        for section, group in groupby(differences, key=lambda d: d.section)
    )


def _env_section(comparison: Comparison) -> Section:
    blocks: list[Block] = [Text(note, tone="warn", strong=True) for note in comparison.notes]
    blocks += preflight_findings(comparison.candidate, comparison.reference)
    if not comparison.reference:
        blocks.append(Text("No reference run: there is no environment to compare with."))
        return Section(SECTION_TITLES[1], tuple(blocks))
    blocks += [Text(m, tone="bad") for m in comparison.mismatches]
    unknown = [
        str(side.name)
        for side in (comparison.candidate, comparison.reference)
        if side.environment is False
    ]
    if unknown:  # no manifest: neither "the keys match" nor "they differ" would be true
        blocks.append(
            Text(
                f"No environment facts for {', '.join(unknown)}: the environments cannot be compared."
            )
        )
        return Section(SECTION_TITLES[1], tuple(blocks))
    differences = comparison.env_differences
    in_key = sum(d.env_key for d in differences)
    if comparison.env_key_match:
        blocks.append(
            Text("The environment keys match: bit-identical results are expected.", tone="good")
        )
    else:
        blocks.append(
            Text(
                f"The environment keys differ ({in_key} key{'s' if in_key != 1 else ''}): "
                "bit-identical results are not expected.",
                tone="warn",
            )
        )
    if not differences:
        blocks.append(Text("The manifests do not differ."))
        return Section(SECTION_TITLES[1], tuple(blocks))
    shown = [d for d in differences if d.impact != "low"]
    low = [d for d in differences if d.impact == "low"]
    blocks.append(Text("Each difference reads candidate -> reference."))
    blocks += _grouped(shown)
    if low:
        sections = ", ".join(dict.fromkeys(d.section for d in low))
        noun = "difference" if len(low) == 1 else "differences"
        summary = f"and {len(low)} low-impact {noun} ({sections})"
        blocks.append(Folded(summary, _grouped(low)))
    return Section(SECTION_TITLES[1], tuple(blocks))


def _parted_section(comparison: Comparison) -> Section:
    blocks: list[Block] = []
    d = comparison.first_difference
    if d is None:
        if comparison.identical:
            blocks.append(
                Text("Nowhere: every step's record and the checkpoint identity are bit-identical.")
            )
        else:
            blocks.append(
                Text("The runs could not be compared step by step (a record is missing).")
            )
    else:
        label = WHERE_LABELS.get(d.where, d.where)
        blocks.append(Text(f"Step {d.step}, first in {label}.", strong=True))
        blocks.append(Text(d.detail))
        if d.module and d.module not in d.detail:
            blocks.append(Text(f"Module or parameter: {d.module}"))
        # Tracked runs ("logged") have no traces to go beyond: only reference runs do.
        if not d.traced and d.where not in ("record", "final", "logged"):
            blocks.append(
                Text(
                    f"Step {d.step} lies beyond the traced steps: forward outputs and gradients "
                    "were not fingerprinted there, so the loss, the gradient norm and the "
                    "parameter fingerprints located it. The divergence may have started earlier "
                    "inside that step.",
                    tone="muted",
                )
            )
        if d.also:
            items = tuple(Item(text) for text in d.also)
            blocks.append(Items(items, title="Also different at that step"))
    nd = comparison.nondeterminism
    if nd:
        blocks.append(
            Text(
                f"Between repeats on this machine ({nd.repeats} runs): "
                f"{nd.differing} first differs at {nd.where()}",
                tone="bad",
            )
        )
    return Section(SECTION_TITLES[2], tuple(blocks))


def _window_row(w: WindowCheck) -> tuple[str, ...]:
    steps = f"{w.start}–{w.end - 1}" if w.end - 1 > w.start else str(w.start)
    return (w.scalar, steps, fmt_small(w.value), fmt_small(w.threshold), "yes" if w.ok else "NO")


def _windows_table(windows: list[WindowCheck]) -> Table:
    return Table(
        columns=("scalar", "steps", "RMS deviation", "bound", "inside"),
        rows=tuple(_window_row(w) for w in windows),
        tones=tuple(None if w.ok else "bad" for w in windows),
        numeric=(False, True, True, True, False),
    )


def _numerics_blocks(check: BandCheck) -> list[Block]:
    if not check.applied:
        return [Text(f"Numerics band not applied: {check.reason}.", tone="muted")]
    blocks: list[Block] = []
    if check.first_step_outside is not None:
        blocks.append(
            Text(f"First step outside the numerics band: {check.first_step_outside}.", tone="bad")
        )
    else:
        blocks.append(Text("Every window is inside the numerics band.", tone="good"))
    big = check.largest
    if big:
        where = f"{big['scalar']} at step {big['step']}, {fmt_small(big['deviation'])}"
        if big["band_max"] > 0:
            against = f"{big['ratio']:.3g}x the largest deviation of any band member there"
            against += f" ({fmt_small(big['band_max'])})"
        else:
            against = "where no band member deviates at all"
        blocks.append(Text(f"Largest deviation relative to the band: {where}, {against}."))
    shown = [w for w in check.windows if not w.ok or w.scalar not in _FOLDED_WINDOW_SCALARS]
    folded = [w for w in check.windows if w.ok and w.scalar in _FOLDED_WINDOW_SCALARS]
    if shown:
        blocks.append(_windows_table(shown))
    if folded:
        scalars = ", ".join(dict.fromkeys(w.scalar for w in folded))
        blocks.append(
            Folded(
                f"and {len(folded)} windows inside the band ({scalars})", (_windows_table(folded),)
            )
        )
    return blocks


def _finals_table(comparison: Comparison) -> Table | None:
    candidate = comparison.candidate.final or {}
    reference = (comparison.reference.final if comparison.reference else None) or {}
    seeds: dict[str, MetricCheck] = {m.metric: m for m in comparison.seed.metrics}
    bands: dict[str, MetricCheck] = {m.metric: m for m in comparison.numerics.finals}
    metrics = [m for m in ("eval_loss", "eval_accuracy") if m in candidate or m in reference]
    if not metrics:
        return None

    def cell(check: MetricCheck | None) -> str:
        if check is None:
            return "n/a"
        if not check.tested:  # no spread to scale a gap by: reported, never failed
            return "every member agrees: not tested"
        return f"{fmt_interval(check.low, check.high)} {'ok' if check.ok else 'OUT'}"

    def value(final: dict[str, Any], metric: str) -> str:
        return fmt_value(float(final[metric])) if metric in final else "n/a"

    rows: list[tuple[str, ...]] = []
    tones: list[Tone] = []
    for metric in metrics:
        s, b = seeds.get(metric), bands.get(metric)
        rows.append((metric, value(candidate, metric), value(reference, metric), cell(s), cell(b)))
        bad = (s is not None and not s.ok) or (b is not None and not b.ok)
        tones.append("bad" if bad else None)
    return Table(
        columns=("metric", "candidate", "reference", "seed interval", "numerics band"),
        rows=tuple(rows),
        tones=tuple(tones),
        numeric=(False, True, True, True, True),
    )


def _largest_loss_deviation(deviation: tuple[float, ...]) -> Text | None:
    finite = [(v, i) for i, v in enumerate(deviation) if math.isfinite(v)]
    if not finite or max(finite)[0] == 0:
        return None
    value, step = max(finite)
    return Text(f"Largest loss deviation: {fmt_small(value)} at step {step}.")


def _distance_section(comparison: Comparison, curves: LossCurves) -> Section:
    blocks: list[Block] = []
    if curves.candidate or curves.reference:
        blocks.append(Plot("loss", "Training loss per step, candidate against reference."))
    deviation = curves.deviation
    if any(v > 0 or not math.isfinite(v) for v in deviation):
        caption = "Loss deviation |candidate - reference| per step (log scale)"
        if curves.band_threshold is not None:
            caption += ", against the numerics band's largest member and its bound"
        blocks.append(Plot("deviation", caption + "."))
        largest = _largest_loss_deviation(deviation)
        if largest:
            blocks.append(largest)
    elif deviation:
        blocks.append(Text("The loss curves are identical at every step."))
    else:
        blocks.append(Text("No steps were recorded to compare."))
    blocks += _numerics_blocks(comparison.numerics)
    table = _finals_table(comparison)
    if table:
        blocks.append(Text("Final evaluation, beside the prediction intervals:"))
        blocks.append(table)
        resolution = seed_resolution_text(comparison.seed)
        if resolution:
            blocks.append(resolution)
    else:
        blocks.append(Text("No final evaluation to compare."))
    return Section(SECTION_TITLES[3], tuple(blocks))


def _causes_section(comparison: Comparison) -> Section:
    if not comparison.causes:
        text = (
            "None: the runs are identical."
            if comparison.identical
            else "No rule matched; read the environment differences above."
        )
        return Section(SECTION_TITLES[4], (Text(text),))
    items = [
        Item(
            cause.cause,
            tag=f"score {cause.score:g}",
            tone="bad" if rank == 0 else None,
            details=(*cause.evidence, f"try next: {cause.try_next}"),
        )
        for rank, cause in enumerate(comparison.causes)
    ]
    blocks: list[Block] = [Items(tuple(items[:SHOWN_CAUSES]), numbered=True)]
    rest = items[SHOWN_CAUSES:]
    if rest:
        noun = "cause" if len(rest) == 1 else "causes"
        blocks.append(Folded(f"and {len(rest)} less likely {noun}", (Items(tuple(rest)),)))
    return Section(SECTION_TITLES[4], tuple(blocks))


def _reproduce_section(comparison: Comparison) -> Section:
    c, r = comparison.candidate, comparison.reference
    commands = [("candidate", str(c.command or "# not recorded"))]
    if r:
        commands.append(("reference", str(r.command or "# not recorded")))
    if comparison.next_command:
        commands.append(("next", comparison.next_command))
    if r and c.path and r.path:
        again = f"repro compare {shlex.quote(str(r.path))} {shlex.quote(str(c.path))}"
        commands.append(("this comparison", again))
        if comparison.causes and explainable(comparison.causes[0].cause):
            prove = f"repro explain {shlex.quote(str(r.path))} --here {shlex.quote(str(c.path))}"
            commands.append(("prove the cause by rerunning with the reference's knobs", prove))
    return Section(SECTION_TITLES[5], (Commands(tuple(commands)),))


def build_report(judged: Judged) -> Report:
    """Everything a reader is told about one comparison, in reading order."""
    comparison, curves = judged
    d = comparison.first_difference
    return Report(
        verdict=comparison.verdict,
        tone=VERDICT_TONES[comparison.verdict],
        meaning=comparison.verdict.meaning,
        title=f"{comparison.candidate.name}"
        + (f" vs {comparison.reference.name}" if comparison.reference else ""),
        summary=comparison.summary,
        sections=(
            _verdict_section(comparison),
            _env_section(comparison),
            _parted_section(comparison),
            _distance_section(comparison, curves),
            _causes_section(comparison),
            _reproduce_section(comparison),
        ),
        curves=curves.to_dict(),
        first_step=d.step if d is not None else None,
        first_outside=comparison.numerics.first_step_outside,
        candidate=str(comparison.candidate.name),
        reference=comparison.reference.name if comparison.reference else None,
    )


def build_reports(judged: Sequence[Judged]) -> list[Report]:
    """One report per comparison, built once for every renderer a command asked for."""
    return [build_report(one) for one in judged]
