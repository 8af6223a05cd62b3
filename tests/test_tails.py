"""The numerics band's tail check on synthetic bands: heavy tails get as many members
again, then are refused; a normal band passes, at the first look or after the second; the
shipped baseline carries its diagnostics."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable

import pytest
import yaml

from repro.baselines.band_build import BandRejected, checked_tails
from repro.baselines.baseline import shipped_dir, survey_baselines
from repro.baselines.recording import stored_tails
from repro.judge.tails import describe, null_limits
from repro.runs.runview import RunView

STEPS = 40  # 5 windows of 8 steps per scalar
SHIPPED = "quick-cpu-x86_64-avx2"


def _view(name: str, logs: list[float]) -> RunView:
    """A run whose loss and gradient norm deviate from the primary by exp(log) in each
    window (one log per window and scalar: 10 in all)."""
    steps = [
        {
            "step": i,
            "loss": 2.0 + math.exp(logs[i // 8]),
            "grad_norm": 1.0 + math.exp(logs[5 + i // 8]),
            "lr": 1e-3,
            "loss_scale": 1.0,
        }
        for i in range(STEPS)
    ]
    final = {"eval_loss": 2.0 + 1e-6 * (1 + logs[0] / 100), "eval_accuracy": 0.5}
    return RunView(name, name, {"status": "COMPLETE"}, {}, {}, {"steps": steps, "final": final})


PRIMARY = RunView(
    "primary",
    "primary",
    {"status": "COMPLETE"},
    {},
    {},
    {
        "steps": [
            {"step": i, "loss": 2.0, "grad_norm": 1.0, "lr": 1e-3, "loss_scale": 1.0}
            for i in range(STEPS)
        ],
        "final": {"eval_loss": 2.0, "eval_accuracy": 0.5},
    },
)


def _band(draw: Callable[[random.Random], float], count: int, seed: int) -> list[RunView]:
    rng = random.Random(seed)
    # log deviations around 1e-5 with a spread of 0.3 in log units
    return [
        _view(f"m{seed}-{i}", [math.log(1e-5) + 0.3 * draw(rng) for _ in range(10)])
        for i in range(count)
    ]


def normal(rng: random.Random) -> float:
    return rng.gauss(0, 1)


def student_t2(rng: random.Random) -> float:
    return rng.gauss(0, 1) / math.sqrt(rng.gammavariate(1.0, 1.0))  # chi2(2) / 2


def test_a_normal_band_passes_with_nothing_added() -> None:
    added: list[list[int]] = []
    members, tails = checked_tails(
        PRIMARY,
        _band(normal, 24, seed=5),
        first_spare=24,
        replace=lambda idx: added.append(idx) or [],  # type: ignore[func-returns-value]
        replaced=[],
    )
    assert len(members) == 24 and not added
    assert not tails["pooled"]["heavy"] and tails["added_for_tails"] == 0
    assert tails["pooled"]["look"] == "first" and len(tails["windows"]) == 10


def test_a_normal_band_past_the_first_look_gets_as_many_members_again_and_passes() -> None:
    # About 30 % of normal bands look heavier than the first look lets through.
    asked: list[list[int]] = []

    def replace(indices: list[int]) -> list[RunView]:
        asked.append(indices)
        return _band(normal, len(indices), seed=101)

    members, tails = checked_tails(
        PRIMARY, _band(normal, 24, seed=1), first_spare=24, replace=replace, replaced=[]
    )
    assert asked == [list(range(24, 48))] and len(members) == 48
    assert tails["added_for_tails"] == 24 and tails["members"] == 48
    assert tails["pooled"]["look"] == "second" and not tails["pooled"]["heavy"]
    assert tails["first_look"]["heavy"] and tails["first_look"]["look"] == "first"
    listed = describe(tails)  # what baseline list shows
    assert listed.startswith("tails: normal or lighter") and "second look" in listed
    assert "; 24 added" in listed


def test_a_heavy_tailed_band_gets_more_members_then_is_refused() -> None:
    asked: list[list[int]] = []

    def replace(indices: list[int]) -> list[RunView]:
        asked.append(indices)
        return _band(student_t2, len(indices), seed=3)

    with pytest.raises(BandRejected, match=r"48 members.*heavier-tailed than normal.*adding 24"):
        checked_tails(
            PRIMARY, _band(student_t2, 24, seed=2), first_spare=26, replace=replace, replaced=[]
        )
    assert asked == [list(range(26, 50))]  # spare indices after the replaced ones


def test_a_heavy_tailed_band_without_spares_is_refused_at_once() -> None:
    with pytest.raises(BandRejected, match=r"24 members.*none could be added.*nothing was written"):
        checked_tails(
            PRIMARY, _band(student_t2, 24, seed=2), first_spare=24, replace=None, replaced=[]
        )


def test_the_limits_are_the_same_on_every_host() -> None:
    # Seeded simulation: a baseline recorded anywhere faces the same rule.
    assert null_limits(24, 10, second_look=False) == pytest.approx((0.3621, -0.1426), abs=1e-4)
    assert null_limits(48, 10, second_look=True) == pytest.approx((0.2623, 0.3854), abs=1e-4)


def test_the_shipped_baseline_carries_its_tail_diagnostics_and_the_list_shows_them() -> None:
    path = shipped_dir() / SHIPPED
    meta = yaml.safe_load((path / "baseline.yaml").read_text())
    band = json.loads((path / "band.json").read_text())
    stored = {k: v for k, v in meta["tails"].items() if k != "replaced"}
    assert stored == json.loads(json.dumps(stored_tails(path, meta, band)))
    assert meta["tails"]["pooled"]["heavy"] is False and meta["tails"]["pooled"]["look"] == "first"
    assert meta["tails"]["pooled"]["excess_kurtosis"] == pytest.approx(-0.67, abs=0.01)
    (listed,) = [b for b in survey_baselines([shipped_dir()]) if b.name == SHIPPED]
    assert listed.tails.startswith("tails: normal or lighter") and "largest member z 2.27" in (
        listed.tails
    )
    assert "excess kurtosis -0.67 <= -0.14, first look" in listed.tails
