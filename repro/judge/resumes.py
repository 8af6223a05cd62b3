"""A resumed run against an uninterrupted one: an exact check, and what a resume lost, ranked.

A run resumed with its full state must equal the run that never stopped, bit for bit
(``resume_check``). A weights-only resume's ``resume.json`` holds reruns restoring every
piece but one, and each piece alone (``repro.runs.resumes``): a piece whose absence parts
the run from the full resume was lost, and the pieces are ranked by that measurement,
the earliest part first and then the farthest end, never by a fixed order.

A tracked run (``repro.track``) that recorded a resume is set against the other run from
the step after it (``tracked_resume``): equal there, it is IDENTICAL; else the report
names the step it resumed at and where the two parted, counted from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from repro.judge.causes import Cause
from repro.judge.divergence import Divergence
from repro.judge.exact import ExactCheck
from repro.runs.runview import RunView, first_list_difference, records_identical
from repro.runs.tracked import Tracked

WORDS = {
    "optimizer": "the optimizer state (AdamW's moments and step counts)",
    "loss_scale": "the GradScaler's loss scale and growth tracker",
    "schedule": "the learning-rate schedule's position",
    "rng": "the random-number generators",
    "sampler": "the sampler's epoch and position in it",
}
SAVE = {
    "optimizer": "optimizer.state_dict()",
    "loss_scale": "scaler.state_dict()",
    "schedule": "scheduler.state_dict()",
    "rng": "torch/numpy/random RNG states per rank",
    "sampler": "the epoch and the step within it (skip that many batches on resume)",
}


def resume_check_name(step: int) -> str:
    return f"resume at step {step}"


def is_resume_check(check: ExactCheck) -> bool:
    """A resume's row: its own JUnit testcase, apart from the recorded sequences'."""
    return check.name.startswith("resume at step ")


def resumed(view: RunView) -> dict[str, Any] | None:
    return view.resume if view.resume else None


def _ranked(doc: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(piece, without-it, alone) for the pieces whose absence parts the run, ranked."""
    measured = doc.get("measured") or {}
    rows = []
    for piece in doc.get("lost", []):
        without, alone = measured.get(f"without:{piece}"), measured.get(f"alone:{piece}", {})
        if without is None or (
            without.get("first_difference") is None and not without.get("failed")
        ):
            continue
        rows.append((piece, without, alone))

    def key(row: tuple[str, dict[str, Any], dict[str, Any]]) -> tuple[float, float]:
        without = row[1]
        first = without.get("first_difference")
        return (float("inf") if first is None else first, -(without.get("eval_loss_delta") or 0.0))

    return sorted(rows, key=key)


def _part(result: dict[str, Any], last: int) -> str:
    if result.get("failed"):
        return "the rerun failed"
    first = result.get("first_difference")
    if first is None:
        return f"steps up to {last} are bit-equal"
    delta = result.get("eval_loss_delta")
    return f"parts at step {first}" + (
        f", ends {delta:.3g} apart in eval loss" if delta is not None else ""
    )


def lost_pieces(doc: dict[str, Any], last: int | None = None) -> list[str]:
    """One line per lost piece, ranked by measurement, and a line for the unneeded ones."""
    k = int(doc["step"])
    last_step = last if last is not None else -1
    whole = doc.get("measured", {}).get("weights_only", {})
    lines = [f"resumed at step {k} from weights only: {_part(whole, last_step)}"]
    ranked = _ranked(doc)
    for i, (piece, without, alone) in enumerate(ranked, start=1):
        lines.append(
            f"{i}. lost {WORDS[piece]}: without it {_part(without, last_step)}; "
            f"restored alone, {_part(alone, last_step)}"
        )
    needed = {piece for piece, _, _ in ranked}
    unneeded = [
        p
        for p in doc.get("lost", [])
        if p not in needed and f"without:{p}" in doc.get("measured", {})
    ]
    if unneeded:
        lines.append(
            "not needed here (without it the resume is still bit-equal): "
            + ", ".join(WORDS[p] for p in unneeded)
        )
    return lines


def resume_causes(candidate: RunView, reference: RunView) -> list[Cause]:
    """Each measured lost piece as a cause, the most costly first."""
    for view in (candidate, reference):
        doc = resumed(view)
        if not doc or not doc.get("measured"):
            continue
        ranked = _ranked(doc)
        last = len(view.steps) - 1
        return [
            Cause(
                f"lost on resume at step {doc['step']}: {WORDS[piece]}",
                float(1000 - i),
                [
                    f"resumed from {doc['from_run']} with every other piece restored: {_part(without, last)}",
                    f"with only this piece restored: {_part(alone, last)}",
                ],
                f"save {SAVE[piece]} with the weights and restore it, or resume with "
                f"`repro run --resume {doc['from']}` (the full state)",
            )
            for i, (piece, without, alone) in enumerate(ranked)
        ]
    return []


def resume_check(candidate: RunView, reference: RunView) -> tuple[list[ExactCheck], list[str]]:
    """The exact row for a resumed run, and a note saying where it resumed from."""
    for view, other in ((candidate, reference), (reference, candidate)):
        doc = resumed(view)
        if not doc:
            continue
        k, restored = int(doc["step"]), doc.get("restored", [])
        how = (
            "weights only"
            if not restored
            else "its full training state"
            if not doc.get("lost")
            else "a partial state"
        )
        note = f"{view.name} resumed at step {k} from {doc['from_run']} with {how}."
        if records_identical(view.record, other.record):
            return [ExactCheck(resume_check_name(k), True)], [note]
        at = first_list_difference(view.steps, other.steps)
        detail = (
            f"the run resumed at step {k} from {how} parts from the uninterrupted run at step {at}"
        )
        return [ExactCheck(resume_check_name(k), False, at, detail)], [note]
    return [], []


# -- tracked runs (repro.track): a run resumed from a checkpoint against one that never stopped


@dataclass(frozen=True)
class TrackedResume:
    """Tracked runs set side by side from the step a resume began: ``after`` holds both
    (candidate, reference) with only the steps after ``step``, where they must be equal."""

    step: int  # the last step the checkpoint had taken: the resumed run goes on at step + 1
    # (how each resumed run resumed, the other run's name, what it restored when that was
    # less than its full state, else None)
    resumes: list[tuple[str, str, str | None]]
    after: tuple[Tracked, Tracked]
    # Both runs' losses by step number: NaN where a run logged none (before its resume).
    losses: tuple[tuple[float, ...], tuple[float, ...]]

    def judged(
        self, divergence: Divergence | None, bitwise_expected: bool
    ) -> tuple[list[ExactCheck], list[str]]:
        """The "resume at step k" row (where nothing else may move the numbers: one
        environment, one config) and the note naming where the runs part, relative to k."""
        k = self.step
        notes = [f"{how}: {_parted(k, divergence, other)}." for how, other, _ in self.resumes]
        if not bitwise_expected:
            notes.append(
                "The environments or the configs differ, so the resume itself is not judged "
                "bit for bit."
            )
            return [], notes
        verb = "is " if divergence is None else ""
        detail = (
            f"the run resumed at step {k} {verb}{_parted(k, divergence, 'the uninterrupted run')}"
        )
        at = divergence.step if divergence is not None else None
        return [ExactCheck(resume_check_name(k), divergence is None, at, detail)], notes

    def causes(self, divergence: Divergence | None) -> list[Cause]:
        """A resume that parted the runs and did not restore the full state, as the first
        probable cause: what it restored, and how to save what a resume needs."""
        if divergence is None:
            return []
        return [
            Cause(
                f"resumed at step {self.step} without the full state ({partial})",
                1000.0,
                [f"{how}: {_parted(self.step, divergence, other)}"],
                "save every piece with repro.checkpoint.save(path, model=..., optimizer=..., "
                "scaler=..., scheduler=..., sampler=...) and resume with repro.checkpoint.load",
            )
            for how, other, partial in self.resumes
            if partial is not None
        ]


def _parted(k: int, divergence: Divergence | None, other: str) -> str:
    """Where a run resumed after step ``k`` parts from ``other``, counted from ``k``."""
    if divergence is None:
        return f"bit-identical to {other} from step {k + 1} on"
    if divergence.where == "logged":  # the values are in "where they parted"
        after = divergence.step - k
        return (
            f"parts from {other} at step {divergence.step}, {after} step"
            + ("" if after == 1 else "s")
            + " after the resume"
        )
    return f"the steps after the resume at step {k} agree with {other}, but {divergence.detail}"


def _how(resume: dict[str, Any]) -> str:
    """What the resume restored, from its record."""
    held, restored = resume.get("held"), resume.get("restored")
    if resume.get("full_state"):
        return "its full state"
    if held is not None and restored is not None:
        lost = [piece for piece in held if piece not in restored]
        return f"{', '.join(restored)} only (not the {', '.join(lost)} it held)"
    if held is not None:
        return f"a checkpoint holding only {', '.join(held)}"
    if resume.get("full_state") is False:
        return "part of its state"
    return "a state not recorded"


def _resumed_at(run: Tracked) -> int:
    step = (run.resumed or {}).get("step")
    if isinstance(step, int):
        return step
    logged = [int(r["step"]) for r in run.ranks[0]] if run.ranks else []
    return min(logged) - 1 if logged else -1  # not recorded: the run begins after it


def tracked_resume(candidate: Tracked, reference: Tracked) -> TrackedResume | None:
    """The resumed run(s) of the pair and both runs from the resume on; None if neither."""
    resumed = [run for run in (candidate, reference) if run.resumed]
    if not resumed:
        return None
    k = max(_resumed_at(run) for run in resumed)

    def after(run: Tracked) -> Tracked:
        ranks = [[r for r in rows if int(r.get("step", 0)) > k] for rows in run.ranks]
        return replace(run, ranks=ranks)

    resumes = [
        (
            f"{run.view.name} resumed at step {_resumed_at(run)} from "
            f"{(run.resumed or {}).get('checkpoint')} with {_how(run.resumed or {})}",
            (reference if run is candidate else candidate).view.name,
            None if (run.resumed or {}).get("full_state") else _how(run.resumed or {}),
        )
        for run in resumed
    ]
    losses = (_losses_by_step(candidate), _losses_by_step(reference))
    return TrackedResume(k, resumes, (after(candidate), after(reference)), losses)


def _losses_by_step(run: Tracked) -> tuple[float, ...]:
    """Rank 0's loss at steps 0, 1, ...: a resumed run has none before its resume, so its
    curve lines up with the uninterrupted one's by step, not by position."""
    logged = {
        int(r["step"]): float(r["loss"])
        for r in (run.ranks[0] if run.ranks else [])
        if isinstance(r.get("loss"), int | float)
    }
    return tuple(logged.get(step, math.nan) for step in range(max(logged, default=-1) + 1))
