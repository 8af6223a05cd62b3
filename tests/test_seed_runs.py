"""`repro verify --seed-runs N`: N runs here with new seeds against the baseline's stored
seed runs. The statistics on synthetic groups; one real verify of the smoke profile."""

from __future__ import annotations

import json

import pytest

from repro.baselines.recording import baseline_plan
from repro.errors import UserError
from repro.judge.group_power import welch_detectable
from repro.judge.seed_runs import TARGET_SHIFT, SeedRuns, judge_seed_runs, runs_to_resolve
from repro.runs.seed_runs import SeedRunResult, seed_run_count, seed_run_seeds
from repro.strict_json import dumps
from repro.verdict import Verdict

ALPHA = 0.001  # the shipped baseline's
# Eight stored seeds, spread like the shipped quick baseline's (accuracy sd ~0.35 points).
STORED_LOSS = [0.379, 0.366, 0.356, 0.353, 0.396, 0.350, 0.398, 0.401]
STORED_ACC = [0.9443, 0.9471, 0.9479, 0.9492, 0.9419, 0.9490, 0.9412, 0.9417]
STORED = [
    {"seed": i, "eval_loss": loss, "eval_accuracy": acc}
    for i, (loss, acc) in enumerate(zip(STORED_LOSS, STORED_ACC))
]
RESOLUTION = {"eval_accuracy": 1 / 8192, "eval_loss": 0.0}


def here(losses: list[float], accuracies: list[float]) -> list[SeedRunResult]:
    seeds = seed_run_seeds(0, len(losses))
    return [
        SeedRunResult(s, {"eval_loss": loss, "eval_accuracy": acc}, None)
        for s, loss, acc in zip(seeds, losses, accuracies)
    ]


def judge(runs: list[SeedRunResult]) -> SeedRuns:
    return judge_seed_runs(runs, STORED, alpha=ALPHA, resolution=RESOLUTION)


def test_runs_from_the_same_distribution_are_equivalent() -> None:
    result = judge(here([0.372, 0.360, 0.390, 0.365], [0.9460, 0.9480, 0.9425, 0.9470]))
    assert (result.verdict, result.applied) == (Verdict.EQUIVALENT, True)
    assert [m.metric for m in result.metrics] == ["eval_loss", "eval_accuracy"]
    assert all(m.stats.decision == "UNRESOLVED" for m in result.metrics)


def test_a_shifted_distribution_is_drift() -> None:
    # Every run here 3 accuracy points lower and its loss 0.1 higher: far outside seed noise.
    result = judge(here([0.472, 0.460, 0.490, 0.465], [0.9160, 0.9180, 0.9125, 0.9170]))
    assert result.verdict == Verdict.DRIFT
    assert "eval_loss" in result.reason and "eval_accuracy" in result.reason
    assert all(m.stats.difference < 0 or m.metric == "eval_loss" for m in result.metrics)


def test_judged_at_the_baselines_alpha_not_at_five_percent() -> None:
    # A loss 0.02 higher (one seed sd): Welch's p lies between 0.0005 and 0.05, so a
    # group comparison at 0.05 calls it DIFFERENT, the baseline's alpha does not.
    runs = here([0.398, 0.399, 0.400, 0.401, 0.402, 0.403], [0.946] * 6)
    result = judge(runs)
    loss = result.metrics[0].stats
    assert 0.0005 < loss.p_value < 0.05
    assert loss.alpha == ALPHA / 2  # Bonferroni over the two final metrics
    assert result.verdict == Verdict.EQUIVALENT


def test_the_power_statement() -> None:
    result = judge(here([0.372, 0.360, 0.390], [0.9460, 0.9480, 0.9425]))
    accuracy = result.metrics[1].stats
    # The smallest shift these 3 runs resolve at 80 % power is the Welch test's own.
    spread = accuracy.detectable / welch_detectable(1.0, 8, 3, False, ALPHA / 2)
    assert accuracy.detectable == pytest.approx(welch_detectable(spread, 8, 3, False, ALPHA / 2))
    assert accuracy.detectable > TARGET_SHIFT  # 3 runs cannot see half a point
    # Half a point at this spread is beyond 8 stored seeds whatever runs here: said as None,
    # with the runs per side (stored seeds too) that would resolve it.
    assert result.runs_for_target is None
    per_side = result.runs_per_side_for_target
    assert per_side is not None
    assert welch_detectable(spread, per_side, per_side, False, ALPHA / 2) <= TARGET_SHIFT
    assert welch_detectable(spread, per_side - 1, per_side - 1, False, ALPHA / 2) > TARGET_SHIFT


def test_runs_to_resolve_is_the_fewest_runs_here_that_do() -> None:
    result = judge(here([0.372, 0.360, 0.390], [0.9460, 0.9480, 0.9425]))
    accuracy = result.metrics[1].stats
    spread = accuracy.detectable / welch_detectable(1.0, 8, 3, False, ALPHA / 2)
    shift = 4 * spread  # reachable with 8 stored seeds (Welch: 7 dof on their side)
    n = runs_to_resolve(shift, accuracy)
    assert n is not None and n > 3
    assert welch_detectable(spread, 8, n, False, ALPHA / 2) <= shift
    assert welch_detectable(spread, 8, n - 1, False, ALPHA / 2) > shift


def test_a_failed_seed_run_fails_the_section() -> None:
    runs = here([0.372, 0.360, 0.390], [0.9460, 0.9480, 0.9425])
    runs[1] = SeedRunResult(runs[1].seed, {}, f"seed {runs[1].seed} ended FAILED: nan loss")
    result = judge(runs)
    assert result.verdict == Verdict.FAILED and result.metrics == []
    assert result.problems == [f"seed {runs[1].seed} ended FAILED: nan loss"]


def test_the_seeds_never_meet_a_baselines_stored_seeds() -> None:
    _, stored = baseline_plan("smoke", 24, 8)
    assert not set(seed_run_seeds(0, 50)) & set(stored)
    assert seed_run_seeds(0, 3) == seed_run_seeds(0, 3)  # the same seeds every time
    assert seed_run_seeds(2**32 - 1, 1)[0] < 2**32  # inside the profile's seed range
    # A seed shared anyway (a baseline recorded at another seed) is not compared.
    shared = [SeedRunResult(3, {"eval_loss": 0.37, "eval_accuracy": 0.946}, None)] * 3
    result = judge(shared)
    assert (result.applied, result.verdict) == (False, None)
    assert "seed 3" in result.reason


def test_the_section_is_strict_json_and_reads_back() -> None:
    result = judge(here([0.372, 0.360, 0.390], [0.9460, 0.9480, 0.9425]))
    text = dumps(result.to_dict())
    assert "Infinity" not in text and "NaN" not in text
    assert SeedRuns.from_dict(json.loads(text)) == result


@pytest.mark.parametrize("text", ["2", "0", "-3", "three", "3.5", ""])
def test_a_seed_run_count_below_three_or_not_whole_is_bad_input(text: str) -> None:
    with pytest.raises(UserError, match=r"--seed-runs .* must be a whole number of at least 3"):
        seed_run_count(text)


def test_a_seed_run_count_of_three_or_more_is_taken() -> None:
    assert seed_run_count("3") == 3 and seed_run_count("12") == 12
