"""`repro verify --seed-runs N`: N runs here with new seeds against the baseline's stored
seed runs. The statistics on synthetic groups; one real verify of the smoke profile."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repro.baselines.recording import baseline_plan
from repro.cli import main
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
    # Every run alike on both sides: no spread, and the exact test of 3 against 4 cannot
    # reach the level, so no shift is resolvable: "inf" in the JSON, inf read back.
    flat = judge_seed_runs(
        here([0.37] * 3, [0.946] * 3),
        [{**s, "eval_loss": 0.38, "eval_accuracy": 0.9443} for s in STORED[:4]],
        alpha=ALPHA,
        resolution=RESOLUTION,
    )
    assert flat.metrics[1].stats.detectable == float("inf")
    assert '"detectable": "inf"' in dumps(flat.to_dict())
    assert SeedRuns.from_dict(json.loads(dumps(flat.to_dict()))) == flat


def test_the_report_says_what_the_seed_runs_found_and_can_resolve() -> None:
    from repro.report.markdown import render_markdown_blocks
    from repro.report.seed_runs_render import seed_runs_blocks

    result = judge(here([0.372, 0.360, 0.390], [0.9460, 0.9480, 0.9425]))
    text = render_markdown_blocks("verify", "EQUIVALENT", seed_runs_blocks(result))
    assert "**EQUIVALENT** 3 seed runs here (seeds 1000000-1000002)" in text
    assert "8 stored seeds, false-alarm rate 0.001" in text
    assert "eval_accuracy: no shift found" in text and "points or more (80 % power)" in text
    assert "No number of runs here resolves 0.5 points against 8 stored seeds" in text


@pytest.mark.parametrize("text", ["2", "0", "-3", "three", "3.5", ""])
def test_a_seed_run_count_below_three_or_not_whole_is_bad_input(text: str) -> None:
    with pytest.raises(UserError, match=r"--seed-runs .* must be a whole number of at least 3"):
        seed_run_count(text)


def test_a_seed_run_count_of_three_or_more_is_taken() -> None:
    assert seed_run_count("3") == 3 and seed_run_count("12") == 12


# -- end to end -----------------------------------------------------------------------------


def verify_args(tmp_path: Path, *more: str) -> list[str]:
    return [
        "verify",
        "--profile",
        "smoke",
        "--runs-dir",
        str(tmp_path / "runs"),
        "--quiet",
        "--no-preflight",
        *more,
    ]


@pytest.mark.slow
def test_verify_with_seed_runs_end_to_end(
    smoke_baseline: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    band = (smoke_baseline / "band.json").read_bytes()
    md = tmp_path / "verify.md"
    where = ("--baseline-dir", str(smoke_baseline.parent))
    code = main(verify_args(tmp_path, *where, "--seed-runs", "3", "--json", "--md", str(md)))
    data = json.loads(capsys.readouterr().out)
    (comparison,) = data["comparisons"]
    section = comparison["seed_runs"]
    # New seeds, none of them stored; compared with the 8 stored ones at the baseline's alpha.
    assert section["seeds"] == seed_run_seeds(0, 3)
    assert section["stored_seeds"] == list(range(8))
    assert section["alpha"] == 0.001 and section["applied"]
    assert [m["metric"] for m in section["metrics"]] == ["eval_loss", "eval_accuracy"]
    # The same machine: the primary run is IDENTICAL and the seed runs find no shift; the
    # verdict is the worse of the two by the one precedence.
    assert (section["verdict"], comparison["verdict"], code) == ("EQUIVALENT", "EQUIVALENT", 0)
    assert any("primary run alone: IDENTICAL" in n for n in comparison["notes"])
    kept = json.loads(next((tmp_path / "runs").glob("*/verdict.json")).read_text())
    assert kept["seed_runs"] == section
    report = md.read_text()
    assert "3 seed runs here against the baseline's stored seeds" in report  # the summary
    assert "3 seed runs here (seeds 1000000-1000002)" in report  # the section
    assert (smoke_baseline / "band.json").read_bytes() == band  # the band is never changed
    assert len(list((tmp_path / "runs").iterdir())) == 4  # the primary and 3 seed runs


@pytest.mark.parametrize("count", ["2", "three"])
def test_verify_refuses_a_bad_seed_run_count_before_training(
    count: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(verify_args(tmp_path, "--seed-runs", count))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert f"--seed-runs {count} must be a whole number of at least 3" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
