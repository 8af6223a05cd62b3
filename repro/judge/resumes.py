"""A resumed run against an uninterrupted one: an exact check, and what a resume lost, ranked.

A run resumed with its full state must equal the run that never stopped, bit for bit
(``resume_check``). A weights-only resume's ``resume.json`` holds reruns restoring every
piece but one, and each piece alone (``repro.runs.resumes``): a piece whose absence parts
the run from the full resume was lost, and the pieces are ranked by that measurement,
the earliest part first and then the farthest end, never by a fixed order.
"""

from __future__ import annotations

from typing import Any

from repro.judge.causes import Cause
from repro.judge.exact import ExactCheck
from repro.runs.runview import RunView, first_list_difference, records_identical

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
