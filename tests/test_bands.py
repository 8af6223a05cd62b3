"""The band statistics on small synthetic series: no training run needed.

Every expected number below is computed here by hand from the published formula
(one-sided log-normal tolerance bound, Bonferroni over windows and final metrics), so a
change to the arithmetic in ``repro.judge.bands`` shows as a failure, not as a new number.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from scipy import stats

from repro.baselines.band_build import leave_one_out
from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_NUMERICS
from repro.judge.band_factor import TABLE_TESTS, family_factor, simulated_factor
from repro.judge.band_factor_table import FACTORS
from repro.judge.bands import (
    BAND_SCALARS,
    numerics_check,
    prediction_interval,
    tolerance_factor,
    window_bounds,
)
from repro.runs.runview import FINAL_METRICS, RunView

STEPS = 20
WINDOWS = 2


def _series(deviation: float, *, skip: int | None = None) -> dict[str, list[Any]]:
    """A run whose loss and gradient norm sit ``deviation`` above the primary's at every step."""
    loss = [2.0 + deviation for _ in range(STEPS)]
    grad: list[Any] = [1.0 + deviation for _ in range(STEPS)]
    if skip is not None:
        grad[skip] = None  # a GradScaler skip: no norm
    return {"loss": loss, "grad_norm": grad, "lr": [1e-3] * STEPS, "loss_scale": [1.0] * STEPS}


PRIMARY = _series(0.0)
# Members' deviations: one log-normal family with a known log mean and spread.
MEMBER_DEVS = [1e-6 * math.exp(0.3 * z) for z in (-1.5, -1.0, -0.5, -0.2, 0.0, 0.2, 0.5, 1.0, 1.5)]
MEMBERS = [
    {"series": _series(d), "final": {"eval_loss": 2.0 + d, "eval_accuracy": 0.5}}
    for d in MEMBER_DEVS
]


def _expected_threshold(alpha: float) -> float:
    logs = [math.log(d) for d in MEMBER_DEVS]
    k = len(logs)
    mean = sum(logs) / k
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (k - 1))
    a = alpha / (WINDOWS * len(BAND_SCALARS) + len(FINAL_METRICS))
    # The family factor: 4 windows and two two-sided final metrics, 8 one-sided tests.
    assert a > 0
    return math.exp(mean + family_factor(k, 8, alpha) * sd)


def test_the_tolerance_factor_is_the_published_one_and_wider_than_the_prediction_factor():
    # Published one-sided normal tolerance factors (content 0.99, confidence 0.95):
    # K = 10: 3.981, K = 20: 3.295.
    assert tolerance_factor(10, 0.01) == pytest.approx(3.981, abs=1e-3)
    assert tolerance_factor(20, 0.01) == pytest.approx(3.295, abs=1e-3)
    shipped = tolerance_factor(24, 0.001 / 12)
    assert shipped == pytest.approx(5.05, abs=0.01)
    assert shipped > stats.t.ppf(1 - 0.001 / 12, 23) * math.sqrt(1 + 1 / 24)


def test_the_family_factor_holds_alpha_for_95_percent_of_normal_baselines():
    # Baselines drawn here (another generator than the factor's own), 12 normal windows of
    # 24 members: the share whose own family rate exceeds alpha must be near 5 %
    # (binomial sd 0.7 % at 1000 baselines), and far above it with the prediction factor.
    import numpy as np

    rng = np.random.Generator(np.random.MT19937(5))
    logs = rng.standard_normal((1000, 12, 24))
    mean, sd = logs.mean(axis=2), logs.std(axis=2, ddof=1)

    def above(factor: float) -> float:
        rate = 1 - np.prod(stats.norm.cdf(mean + factor * sd), axis=1)
        return float(np.mean(rate > 0.001))

    assert 0.025 <= above(family_factor(24, 12, 0.001)) <= 0.075
    assert above(stats.t.ppf(1 - 0.001 / 12, 23) * math.sqrt(1 + 1 / 24)) > 0.2


def test_the_bound_is_the_one_sided_log_normal_tolerance_bound_with_bonferroni():
    bounds, a = window_bounds(PRIMARY, MEMBERS, alpha=0.001, windows=WINDOWS)
    assert a == pytest.approx(0.001 / 6)
    assert [(b.scalar, b.start, b.end) for b in bounds] == [
        ("loss", 0, 10),
        ("loss", 10, 20),
        ("grad_norm", 0, 10),
        ("grad_norm", 10, 20),
    ]
    for b in bounds:
        # The printout floor (1e-9 of the series' scale) shifts each log by a hair.
        assert b.threshold == pytest.approx(_expected_threshold(0.001), rel=1e-2)
        assert b.typical == pytest.approx(
            math.exp(sum(math.log(d) for d in MEMBER_DEVS) / 9), rel=1e-2
        )


def test_a_run_just_inside_passes_and_just_outside_fails_from_the_right_step():
    threshold = _expected_threshold(0.001)
    kwargs: dict[str, Any] = {"alpha": 0.001, "windows": WINDOWS, "resolution": {}}
    inside = numerics_check(_series(0.97 * threshold), None, PRIMARY, MEMBERS, **kwargs)
    assert inside.applied and inside.ok
    outside = numerics_check(_series(1.03 * threshold), None, PRIMARY, MEMBERS, **kwargs)
    assert not outside.ok and outside.first_step_outside == 0
    late = _series(0.0)
    late["loss"][15] = 2.0 + 10 * threshold  # one step far out, in the second window only
    check = numerics_check(late, None, PRIMARY, MEMBERS, **kwargs)
    assert not check.ok and check.first_step_outside == 15
    assert [w.ok for w in check.windows if w.scalar == "loss"] == [True, False]


def test_a_smaller_alpha_widens_the_bound():
    assert _expected_threshold(0.001) > _expected_threshold(0.01)
    wide = window_bounds(PRIMARY, MEMBERS, alpha=0.001, windows=WINDOWS)[0][0].threshold
    narrow = window_bounds(PRIMARY, MEMBERS, alpha=0.01, windows=WINDOWS)[0][0].threshold
    assert wide > narrow


def test_a_skipped_steps_norm_is_left_out_not_read_as_a_deviation():
    kwargs: dict[str, Any] = {"alpha": 0.001, "windows": WINDOWS, "resolution": {}}
    run = _series(0.5 * _expected_threshold(0.001), skip=3)
    check = numerics_check(run, None, PRIMARY, MEMBERS, **kwargs)
    assert check.ok
    grad_windows = [w for w in check.windows if w.scalar == "grad_norm"]
    assert grad_windows[0].value == pytest.approx(0.5 * _expected_threshold(0.001))


def test_the_prediction_interval_never_gets_narrower_than_the_resolution():
    mean, low, high = prediction_interval([0.5] * 8, 0.001, resolution=0.01)
    half = stats.t.ppf(1 - 0.0005, 7) * 0.01 * math.sqrt(1 + 1 / 8)
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - half, 0.5 + half))


def test_a_final_metric_every_member_agrees_on_is_reported_not_tested():
    # All nine members end at accuracy 0.5: no spread to scale a gap by, so a run 40 items
    # off is not outside by the accuracy (the windows and the evaluation loss judge it).
    kwargs: dict[str, Any] = {"alpha": 0.001, "windows": WINDOWS}
    final = {"eval_loss": 2.0 + 1e-6, "eval_accuracy": 0.5 + 40 / 1000}
    check = numerics_check(
        _series(0.0), final, PRIMARY, MEMBERS, resolution={"eval_accuracy": 1 / 1000}, **kwargs
    )
    accuracy = next(f for f in check.finals if f.metric == "eval_accuracy")
    assert not accuracy.tested and accuracy.ok and check.ok
    assert next(f for f in check.finals if f.metric == "eval_loss").tested


def test_a_final_metric_spread_below_one_item_counts_as_one_item():
    # Members one item apart at most: the spread is floored at one item, the interval is
    # the tolerance factor times that, and nothing inside one item is ever outside.
    members = [
        {**m, "final": {"eval_loss": 2.0 + d, "eval_accuracy": 0.5 + (i % 2) * 1e-6}}
        for i, (m, d) in enumerate(zip(MEMBERS, MEMBER_DEVS))
    ]
    step = 1 / 1000
    check = numerics_check(
        _series(0.0),
        {"eval_loss": 2.0 + 1e-6, "eval_accuracy": 0.5},
        PRIMARY,
        members,
        alpha=0.001,
        windows=WINDOWS,
        resolution={"eval_accuracy": step},
    )
    accuracy = next(f for f in check.finals if f.metric == "eval_accuracy")
    half = family_factor(9, 8, 0.001) * step
    assert accuracy.tested
    assert accuracy.high - accuracy.reference == pytest.approx(half)


def _view(name: str, series: dict[str, list[Any]], final: dict[str, float]) -> RunView:
    steps = [
        {
            "step": i,
            "loss": series["loss"][i],
            "grad_norm": series["grad_norm"][i],
            "lr": series["lr"][i],
            "loss_scale": series["loss_scale"][i],
        }
        for i in range(STEPS)
    ]
    return RunView(name, name, {"status": "COMPLETE"}, {}, {}, {"steps": steps, "final": final})


def test_leave_one_out_flags_the_broken_member_and_only_it():
    rng = random.Random(7)
    devs = [1e-6 * math.exp(0.3 * rng.gauss(0, 1)) for _ in range(16)]
    devs[5] = 1e-3  # a broken member: a thousand times the others
    members = [
        _view(
            f"m{i}", _series(d), {"eval_loss": 2.0 + 1e-6 * rng.gauss(0, 1), "eval_accuracy": 0.5}
        )
        for i, d in enumerate(devs)
    ]
    primary = _view("primary", PRIMARY, {"eval_loss": 2.0, "eval_accuracy": 0.5})
    flagged, allowed, messages = leave_one_out(
        primary, members, alpha=0.001, windows=WINDOWS, resolution={"eval_accuracy": 1e-4}
    )
    assert flagged == [5]
    assert allowed == 1  # chance explains none at this alpha; one broken run is replaceable
    assert "member 5 (m5)" in messages[0]


def test_the_tabled_family_factors_are_the_simulations_own() -> None:
    """A judge reads the usual bands' factors from a table (no SciPy, no simulation at
    start-up); the table must be what the simulation gives, or the bound silently moved."""
    for members in (8, DEFAULT_NUMERICS - 1, DEFAULT_NUMERICS, 64):
        for alpha in (DEFAULT_ALPHA, DEFAULT_ALPHA / 2):
            assert (members, TABLE_TESTS, alpha) in FACTORS
            assert FACTORS[members, TABLE_TESTS, alpha] == simulated_factor(
                members, TABLE_TESTS, alpha
            )
    # A band outside the table is simulated, not refused.
    assert family_factor(65, TABLE_TESTS, DEFAULT_ALPHA) == simulated_factor(
        65, TABLE_TESTS, DEFAULT_ALPHA
    )
