"""Exact checks: recorded sequences two runs of one training must share bit for bit.

The learning-rate schedule always; the loss scale when no GradScaler runs. With one, a
skipped step halves the scale for the rest of the run, so where the scales part is
reported as a note and judged by nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from repro.runs.runview import RunView, first_list_difference, series


@dataclass(frozen=True)
class ExactCheck:
    """A recorded sequence that must be bit-equal between two runs of one training."""

    name: str
    ok: bool
    first_step: int | None = None
    detail: str = ""


def _exact(name: str, a: list[float], b: list[float]) -> ExactCheck:
    step = first_list_difference(a, b)
    if step is None:
        return ExactCheck(name, True)
    va = a[step] if step < len(a) else None
    vb = b[step] if step < len(b) else None
    return ExactCheck(name, False, step, f"{name} differs from step {step} ({va!r} vs {vb!r})")


def exact_checks(candidate: RunView, reference: RunView) -> tuple[list[ExactCheck], list[str]]:
    """Sequences that must match exactly between two runs of one training, and notes.

    The learning rate follows the schedule whatever the arithmetic does. Without a
    GradScaler the loss scale is 1 at every step; with one, a step skipped for
    overflowing gradients halves the scale for the rest of the run, so the scale is
    reported where it parts and judged by neither an exact check nor a band.
    """
    a, b = series(candidate.steps), series(reference.steps)
    checks = [_exact("learning-rate schedule", a["lr"], b["lr"])]
    notes = []
    if candidate.settings.get("amp_dtype") == "float16":
        step = first_list_difference(a["loss_scale"], b["loss_scale"])
        if step is not None:
            notes.append(
                f"The GradScaler's loss scale parts at step {step} "
                f"({a['loss_scale'][step]!r} vs {b['loss_scale'][step]!r}): a skipped step there "
                "halves it for the rest of the run; it is reported, not judged."
            )
    else:
        checks.append(_exact("loss scale", a["loss_scale"], b["loss_scale"]))
    return checks, notes
