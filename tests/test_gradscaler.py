"""fp16 with a GradScaler: an overflowing step is skipped, recorded and judged, never fatal.

Real runs on the CPU: ``torch.autocast("cpu", dtype=torch.float16)`` and
``torch.amp.GradScaler("cpu")`` are what the reference uses for ``amp_dtype=float16``
on any device. ``fault.overflow_step`` makes one step's gradients Inf on one rank before
the all-reduce, as an fp16 backward overflows; the loss stays finite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import compare_runs
from repro.runs.runner import run_many
from repro.runs.runview import series
from repro.runs.store import Run
from repro.verdict import Verdict

OVERFLOW = 3


@pytest.fixture(scope="module")
def fp16_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three smoke runs in one launch: fp16 plain, fp16 overflowing once, bf16 overflowing."""
    sets = {
        "plain": ["amp_dtype=float16"],
        "skip": ["amp_dtype=float16", f"fault.overflow_step={OVERFLOW}"],
        "bf16": [f"fault.overflow_step={OVERFLOW}"],
    }
    outcomes = run_many("smoke", list(sets.values()), runs_dir=tmp_path_factory.mktemp("fp16"))
    return {name: o.run_dir for name, o in zip(sets, outcomes)}


def test_a_skipped_step_completes_the_run_and_is_recorded(fp16_runs):
    run = Run(fp16_runs["skip"])
    assert run.status["status"] == "COMPLETE", run.status
    steps = run.record["steps"]
    assert [s["step"] for s in steps if s.get("skipped")] == [OVERFLOW]
    assert steps[OVERFLOW]["grad_norm"] is None  # Inf has no JSON form; the skip says why
    # The scale used at the overflowing step, then halved by update() for the next.
    assert steps[OVERFLOW + 1]["loss_scale"] == steps[OVERFLOW]["loss_scale"] / 2
    plain = Run(fp16_runs["plain"]).record["steps"]
    assert not any(s.get("skipped") for s in plain)
    # Up to the overflow the two runs are one training, bit for bit.
    assert steps[:OVERFLOW] == plain[:OVERFLOW]
    # The schedule is a function of the step: the skip does not shift it.
    assert [s["lr"] for s in steps] == [s["lr"] for s in plain]


def test_a_skipped_step_is_judged_not_failed(fp16_runs):
    comparison = compare_runs(fp16_runs["skip"], fp16_runs["plain"])
    assert comparison.verdict is not Verdict.FAILED
    # Two single runs, no band: where they part is reported, noise is not judged.
    assert comparison.verdict is Verdict.NO_BASELINE
    exact = {c.name: c for c in comparison.exact}
    assert exact["learning-rate schedule"].ok
    assert "loss scale" not in exact  # with a scaler the scale is reported, not judged
    assert any(f"parts at step {OVERFLOW + 1}" in note for note in comparison.notes)
    assert comparison.first_difference is not None and comparison.first_difference.step == OVERFLOW


def test_without_a_scaler_an_overflow_fails_the_run(fp16_runs):
    status = Run(fp16_runs["bf16"]).status
    assert (status["status"], status["kind"], status["step"]) == ("FAILED", "nonfinite", OVERFLOW)
    assert "no GradScaler" in status["reason"]


def test_a_skipped_norm_is_left_out_of_the_band_not_counted_as_a_deviation(fp16_runs):
    from repro.runs.runview import deviations

    skip = series(Run(fp16_runs["skip"]).record["steps"])["grad_norm"]
    plain = series(Run(fp16_runs["plain"]).record["steps"])["grad_norm"]
    devs = deviations(skip, plain, 0, len(plain))
    assert devs[OVERFLOW] is None
    assert devs[:OVERFLOW] == [0.0] * OVERFLOW
    assert all(d is not None for d in devs[OVERFLOW + 1 :])
