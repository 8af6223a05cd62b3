"""`repro compare --group`, end to end on real tracked runs of the example script."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

import repro
from repro.cli import main
from repro.groups import load_group_run

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_tracked.py"


def _example(runs: Path, *args: str) -> Path:
    """One run of the example script, in this process (its runs are seconds long)."""
    before = set(runs.iterdir()) if runs.is_dir() else set()
    argv = sys.argv
    sys.argv = [str(EXAMPLE), "--runs-dir", str(runs), "--steps", "12", *args]
    try:
        runpy.run_path(str(EXAMPLE), run_name="__main__")
    finally:
        sys.argv = argv
    (new,) = [p for p in set(runs.iterdir()) - before if not p.name.startswith(".")]
    return new


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("groups")
    return {
        "base": [str(_example(root / "base", "--seed", str(s))) for s in range(3)],
        "lr3": [str(_example(root / "lr3", "--seed", str(s), "--lr", "0.009")) for s in range(3)],
        "other": [str(_example(root / "other", "--seed", str(s))) for s in range(3, 6)],
    }


def _compare(capsys, *args: str) -> tuple[int, dict]:
    code = main(["compare", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_three_times_learning_rate_is_different(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"], "--group", "lr3", *groups["lr3"]
    )
    assert code == 1 and data["verdict"] == "DIFFERENT" and data["exit_code"] == 1
    (comparison,) = data["comparisons"]
    assert comparison["paired"]  # the same seeds on both sides
    accuracy = next(m for m in comparison["metrics"] if m["metric"] == "eval_accuracy")
    assert accuracy["verdict"] == "DIFFERENT" and accuracy["interval"][0] > 0


def test_another_set_of_seeds_of_one_setting_is_not_different(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"], "--group", "other", *groups["other"]
    )
    assert data["verdict"] != "DIFFERENT" and code != 1
    assert not data["comparisons"][0]["paired"]


def test_two_runs_per_side_is_unresolved_and_says_how_many_would_resolve(groups, capsys):
    args = ["--group", "base", *groups["base"][:2], "--group", "other", *groups["other"][:2]]
    code = main(["compare", *args, "--margin", "eval_accuracy=1pp", "--metric", "eval_accuracy"])
    out = capsys.readouterr().out
    assert code == 3 and out.startswith("UNRESOLVED")
    assert "runs per side would resolve" in out and "so not SAME" in out


def test_a_wide_margin_with_enough_runs_is_same(groups, capsys):
    code, data = _compare(
        capsys,
        "--group", "base", *groups["base"], "--group", "other", *groups["other"],
        "--metric", "eval_accuracy", "--margin", "50pp",
    )  # fmt: skip
    assert code == 0 and data["verdict"] == "SAME"


def test_the_html_report_draws_curve_bands_and_final_points(groups, tmp_path, capsys):
    html = tmp_path / "groups.html"
    main(["compare", "--group", "base", *groups["base"], "--group", "lr3", *groups["lr3"], "--html", str(html)])  # fmt: skip
    text = html.read_text()
    assert 'data-kind="group_curve"' in text and 'data-kind="group_finals"' in text
    assert 'id="verdict"' in text and ">DIFFERENT<" in text


def test_a_run_that_did_not_complete_fails_the_comparison(groups, tmp_path, capsys):
    with (
        pytest.raises(RuntimeError),
        repro.track(config={"lr": 1}, seed=9, runs_dir=tmp_path) as run,
    ):
        run.log(0, loss=1.0)
        raise RuntimeError("diverged")
    (crashed,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    code = main(["compare", "--group", "base", *groups["base"], "--group", "b", *groups["lr3"][:2], str(crashed)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 4 and out.startswith("FAILED") and crashed.name in out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--group", "solo", "RUN0"], "has 1 run"),
        (["--group", "base", "RUN0", "RUN1"], "both groups are named"),
        (["--group", "b", "RUN0", "RUN1", "--margin", "abc"], "is not a margin"),
        (["--group", "b", "RUN0", "RUN1", "--margin", "0.3pp"], "eval_loss is not a share"),
        (["--group", "b", "RUN0", "RUN1", "--metric", "bleu"], "has no final bleu"),
        (["--group", "b", "RUN0", "RUN1", "--metric", "loss@999"], "no loss logged at step 999"),
        (["--group", "b", "RUN0", "RUN1", "--margin", "f1=1"], "--margin names f1"),
    ],
)
def test_bad_group_input_is_one_sentence_and_exit_2(groups, capsys, extra, words):
    runs = groups["base"]
    args = [runs[int(a[3:])] if a.startswith("RUN") else a for a in extra]
    code = main(["compare", "--group", "base", *runs, *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err


def test_a_run_outside_any_group_is_refused(groups, capsys):
    runs = groups["base"]
    code = main(["compare", runs[2], "--group", "a", *runs[:2], "--group", "b", *runs[:2]])
    assert code == 2 and "belongs to no group" in capsys.readouterr().err


def test_a_logged_scalar_at_a_step_is_a_metric(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"], "--group", "lr3", *groups["lr3"],
        "--metric", "loss@11",
    )  # fmt: skip
    assert [m["metric"] for m in data["comparisons"][0]["metrics"]] == ["loss@11"]
    assert code in (1, 3)


def test_reference_runs_load_as_group_members(smoke_runs):
    run = load_group_run(str(smoke_runs["primary"]))
    assert run.complete and set(run.final) >= {"eval_loss", "eval_accuracy"}
    assert run.seed is not None and len(run.scalars["loss"]) > 0
