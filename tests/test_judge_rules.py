"""The judge's rules on hand-made runs: which verdict wins when several apply, and what
each one needs. No training run: the records, manifests and bands are built here."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from repro.judge.bands import Bands
from repro.judge.comparison import compare
from repro.runs.runview import RunView
from repro.verdict import Verdict

STEPS = 12
HASH = "w0"
MANIFEST = {"hardware": {"cpu": {"torch_capability": "AVX2"}}, "libraries": {"torch": "2.13"}}
MEMBER_DEVS = (1e-6, 1.5e-6, 2e-6, 0.8e-6, 1.2e-6, 1.8e-6, 0.9e-6, 1.1e-6)


def _record(offset: float = 0.0, final_offset: float = 0.0) -> dict[str, Any]:
    """Loss and gradient norm ``offset`` above the primary's at every step."""
    return {
        "param_names": ["w"],
        "initial_params": ["aa"],
        "steps": [
            {
                "step": k,
                "loss": 2.0 - 0.05 * k + offset,
                "grad_norm": 1.0 + offset,
                "lr": 1e-3,
                "loss_scale": 1.0,
                "global_batch": f"g{k}",
                "rank_batches": [f"r{k}"],
                "params": [f"p{k}" if offset == 0 else f"q{k}"],
            }
            for k in range(STEPS)
        ],
        "final": {"eval_loss": 1.5 + final_offset, "eval_accuracy": 0.5},
    }


def _view(
    record: dict[str, Any] | None = None,
    *,
    name: str = "run",
    status: str = "COMPLETE",
    settings: dict[str, Any] | None = None,
    manifest: dict[str, Any] | None = None,
    workload: str = HASH,
) -> RunView:
    config = {
        "profile": "synthetic",
        "workload_hash": workload,
        "settings": {"seed": 0, "steps": STEPS, "lr": 1e-3, **(settings or {})},
    }
    return RunView(
        name,
        name,
        {"status": status},
        config,
        copy.deepcopy(manifest or MANIFEST),
        record if record is not None else _record(),
    )


def _series(offset: float) -> dict[str, list[float]]:
    steps = _record(offset)["steps"]
    return {
        s: [float(step[s]) for step in steps] for s in ("loss", "grad_norm", "lr", "loss_scale")
    }


BANDS = Bands(
    name="synthetic",
    alpha=0.001,
    windows=2,
    primary_seed=0,
    primary=_series(0.0),
    workload_hash=HASH,
    members=[
        {"series": _series(d), "final": {"eval_loss": 1.5 + d, "eval_accuracy": 0.5}}
        for d in MEMBER_DEVS
    ],
    seeds=[{"seed": s, "eval_loss": 1.5 + 0.01 * s, "eval_accuracy": 0.5} for s in range(8)],
    resolution={},
)
OTHER_MACHINE = {
    "hardware": {"cpu": {"torch_capability": "AVX512"}},
    "libraries": {"torch": "2.13"},
}


def test_identical_records_are_identical_with_or_without_bands():
    assert compare(_view(), _view(name="ref")).verdict is Verdict.IDENTICAL
    assert compare(_view(), _view(name="ref"), bands=BANDS).verdict is Verdict.IDENTICAL


def test_a_failed_run_is_failed_even_when_its_record_matches():
    failed = _view(status="FAILED")
    assert compare(failed, _view(name="ref"), bands=BANDS).verdict is Verdict.FAILED


def test_repeats_that_differ_outrank_a_drift():
    far = _view(_record(offset=0.5), manifest=OTHER_MACHINE)
    repeat = _view(_record(offset=0.4), name="again", manifest=OTHER_MACHINE)
    comparison = compare(far, _view(name="ref"), bands=BANDS, repeats=[repeat])
    assert comparison.verdict is Verdict.NONDETERMINISTIC
    assert comparison.nondeterminism is not None
    assert comparison.nondeterminism.differing == "again"


def test_inside_the_band_on_another_machine_is_equivalent():
    near = _view(_record(offset=1e-6), manifest=OTHER_MACHINE)
    comparison = compare(near, _view(name="ref"), bands=BANDS)
    assert comparison.verdict is Verdict.EQUIVALENT
    assert comparison.numerics.applied and comparison.numerics.ok


def test_far_outside_the_band_is_drift_from_the_first_step():
    far = _view(_record(offset=1e-3), manifest=OTHER_MACHINE)
    comparison = compare(far, _view(name="ref"), bands=BANDS)
    assert comparison.verdict is Verdict.DRIFT
    assert comparison.numerics.first_step_outside == 0


def test_inside_the_band_where_bit_identity_is_expected_is_drift():
    """Same machine, same settings: a difference the band would forgive is still one."""
    near = _view(_record(offset=1e-6))
    comparison = compare(near, _view(name="ref"), bands=BANDS)
    assert comparison.bitwise_expected and comparison.numerics.ok
    assert comparison.verdict is Verdict.DRIFT
    assert comparison.summary.startswith("not bit-identical where bit-identity is expected")


def test_another_training_is_drift_whatever_the_numbers_do():
    other = _view(_record(offset=1e-6), settings={"lr": 2e-3}, manifest=OTHER_MACHINE)
    comparison = compare(other, _view(name="ref"), bands=BANDS)
    assert comparison.verdict is Verdict.DRIFT
    assert not comparison.numerics.applied
    assert comparison.causes[0].cause == "training settings"
    assert any("lr" in line for line in comparison.causes[0].evidence)


@pytest.mark.parametrize(
    ("bands", "workload", "reason"),
    [
        (None, HASH, "no baseline bands"),
        (BANDS, "w1", "recorded for workload w0"),
    ],
)
def test_without_a_band_that_applies_there_is_no_baseline(bands, workload, reason):
    near = _view(_record(offset=1e-6), manifest=OTHER_MACHINE, workload=workload)
    reference = _view(name="ref", workload=workload)
    comparison = compare(near, reference, bands=bands)
    assert comparison.verdict is Verdict.NO_BASELINE
    assert reason in comparison.numerics.reason


def test_another_seed_is_judged_by_the_seed_interval_alone():
    seeded = _view(
        _record(offset=0.3, final_offset=0.02), settings={"seed": 5}, manifest=OTHER_MACHINE
    )
    comparison = compare(seeded, _view(name="ref"), bands=BANDS)
    assert not comparison.numerics.applied and comparison.seed.applied
    assert comparison.verdict is Verdict.EQUIVALENT  # eval_loss 1.52 lies among the seeds'
    outside = _view(
        _record(offset=0.3, final_offset=0.5), settings={"seed": 5}, manifest=OTHER_MACHINE
    )
    assert compare(outside, _view(name="ref"), bands=BANDS).verdict is Verdict.DRIFT
