"""`repro compare --group`, end to end on real tracked runs of the example script.

Where a verdict depends on the numbers (NaN, constant groups, a gap inside the margin), a
copy of a real run has its final line edited, as a user's run would have written it.
"""

from __future__ import annotations

import json
import runpy
import shutil
import sys
from pathlib import Path

import pytest

import repro
from repro.cli import main
from repro.runs.group_runs import load_group_run

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
        "base": [str(_example(root / "base", "--seed", str(s))) for s in range(4)],
        "lr3": [str(_example(root / "lr3", "--seed", str(s), "--lr", "0.009")) for s in range(3)],
        "other": [str(_example(root / "other", "--seed", str(s))) for s in range(4, 8)],
        # Seeds 0 and 1 of the base setting run again: deterministic, so the same numbers.
        "again": [str(_example(root / "again", "--seed", str(s))) for s in range(2)],
    }


def _edited(run: str, into: Path, **final: object) -> str:
    """A copy of a run whose final line holds ``final`` instead (raw JSON values: "nan"
    is how repro.track writes a NaN)."""
    copy = into / f"{Path(run).name}-edited-{len(list(into.iterdir()))}"
    shutil.copytree(run, copy)
    metrics = copy / "metrics-rank0.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        record = json.loads(line)
        if "final" in record:
            lines[i] = json.dumps({"final": {**record["final"], **final}}) + "\n"
    metrics.write_text("".join(lines))
    return str(copy)


def _compare(capsys, *args: str) -> tuple[int, dict]:
    code = main(["compare", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_three_times_learning_rate_is_different(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"][:3], "--group", "lr3", *groups["lr3"]
    )
    assert code == 1 and data["verdict"] == "DIFFERENT" and data["exit_code"] == 1
    (comparison,) = data["comparisons"]
    assert comparison["paired"]  # the same seeds on both sides
    accuracy = next(m for m in comparison["metrics"] if m["metric"] == "eval_accuracy")
    assert accuracy["verdict"] == "DIFFERENT" and accuracy["interval"][0] > 0


def test_another_set_of_seeds_of_one_setting_is_not_different(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"][:3], "--group", "other", *groups["other"][:3]
    )
    assert data["verdict"] != "DIFFERENT" and code != 1
    assert not data["comparisons"][0]["paired"]


def test_two_runs_per_side_is_unresolved_and_says_how_many_would_resolve(groups, capsys):
    args = ["--group", "base", *groups["base"][:2], "--group", "other", *groups["other"][:2]]
    code = main(["compare", *args, "--margin", "eval_accuracy=1pp", "--metric", "eval_accuracy"])
    out = capsys.readouterr().out
    assert code == 3 and out.startswith("UNRESOLVED")
    assert "seeds per side would resolve" in out and "so not SAME" in out


def test_a_wide_margin_with_enough_runs_is_same(groups, capsys):
    code, data = _compare(
        capsys,
        "--group", "base", *groups["base"][:3], "--group", "other", *groups["other"][:3],
        "--metric", "eval_accuracy", "--margin", "50pp",
    )  # fmt: skip
    assert code == 0 and data["verdict"] == "SAME"


def test_the_html_report_draws_curve_bands_and_final_points(groups, tmp_path, capsys):
    html = tmp_path / "groups.html"
    main(["compare", "--group", "base", *groups["base"][:3], "--group", "lr3", *groups["lr3"], "--html", str(html)])  # fmt: skip
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
        (["--group", "b", "RUN0", "RUN1", "--resolution", "f1=1/50"], "--resolution names f1"),
        (["--group", "b", "RUN0", "RUN1", "--resolution", "eval_loss=0"], "is not a resolution"),
    ],
)
def test_bad_group_input_is_one_sentence_and_exit_2(groups, capsys, extra, words):
    runs, others = groups["base"][:3], groups["other"]
    args = [others[int(a[3:])] if a.startswith("RUN") else a for a in extra]
    code = main(["compare", "--group", "base", *runs, *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err, err


def test_a_run_outside_any_group_is_refused(groups, capsys):
    runs = groups["base"]
    code = main(["compare", runs[2], "--group", "a", *runs[:2], "--group", "b", *runs[3:]])
    assert code == 2 and "belongs to no group" in capsys.readouterr().err


def test_a_logged_scalar_at_a_step_is_a_metric(groups, capsys):
    code, data = _compare(
        capsys, "--group", "base", *groups["base"][:3], "--group", "lr3", *groups["lr3"],
        "--metric", "loss@11",
    )  # fmt: skip
    assert [m["metric"] for m in data["comparisons"][0]["metrics"]] == ["loss@11"]
    assert code in (1, 3)


def test_reference_runs_load_as_group_members(smoke_runs):
    run = load_group_run(str(smoke_runs["primary"]))
    assert run.complete and set(run.final) >= {"eval_loss", "eval_accuracy"}
    assert run.seed is not None and len(run.scalars["loss"]) > 0


# -- inputs real runs produce: NaN, strings, repeated seeds, copies, ties ----------------------


@pytest.mark.parametrize(
    "value, metric_args",
    [
        ("nan", []),
        ("inf", ["--metric", "eval_loss"]),
        ("abc", []),
        ("abc", ["--metric", "eval_loss"]),
    ],
)
def test_a_final_that_is_not_a_finite_number_fails_the_comparison_and_names_the_run(
    groups, tmp_path, capsys, value, metric_args
):
    bad = _edited(groups["other"][2], tmp_path, eval_loss=value)
    a, b = groups["base"][:3], [*groups["other"][:2], bad]
    # A margin so wide that SAME was certain, had the value been a number.
    wide = ["--margin", "eval_loss=100"]
    code = main(["compare", "--group", "a", *a, "--group", "b", *b, *metric_args, *wide])
    out = capsys.readouterr().out
    assert code == 4 and out.startswith("FAILED"), out
    assert Path(bad).name in out and "final eval_loss" in out and repr(value) in out


def test_a_metric_every_run_left_nan_fails(groups, tmp_path, capsys):
    a = [_edited(r, tmp_path, eval_loss="nan") for r in groups["base"][:2]]
    b = [_edited(r, tmp_path, eval_loss="nan") for r in groups["other"][:2]]
    code, data = _compare(capsys, "--group", "a", *a, "--group", "b", *b, "--metric", "eval_loss")
    assert code == 4 and data["verdict"] == "FAILED"
    (metric,) = data["comparisons"][0]["metrics"]
    assert len(metric["failures"]) == 4


def test_runs_of_one_seed_are_one_unit(groups, capsys):
    base, again = groups["base"], groups["again"]
    _, data = _compare(
        capsys,
        "--group", "base", base[0], again[0], base[1], again[1], base[2],
        "--group", "lr3", *groups["lr3"],
    )  # fmt: skip
    (comparison,) = data["comparisons"]
    assert comparison["paired"]  # seeds 0, 1, 2 on both sides, once each after folding
    accuracy = next(m for m in comparison["metrics"] if m["metric"] == "eval_accuracy")
    assert accuracy["n_a"] == 3 and len(accuracy["values"]["base"]) == 3
    assert any("seed 0 2 times" in n and "averaged" in n for n in comparison["notes"])


def test_a_group_of_one_seed_run_twice_is_refused(groups, capsys):
    a, b = [groups["base"][0], groups["again"][0]], groups["lr3"][:2]
    code = main(["compare", "--group", "a", *a, "--group", "b", *b])
    assert code == 2 and "runs of one seed" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["twice in a group", "in both groups", "copy", "copies each side"])
def test_a_run_counted_twice_is_refused(groups, tmp_path, capsys, case):
    base, other = groups["base"], groups["other"]

    def copy(run: str) -> str:
        return shutil.copytree(run, tmp_path / f"copy-{len(list(tmp_path.iterdir()))}")

    a, b = [base[0], base[1]], [other[0], other[1]]
    if case == "twice in a group":
        a.append(base[0])
    elif case == "in both groups":
        b.append(base[1])
    elif case == "copy":
        a.append(str(copy(base[0])))
    else:
        a, b = [base[0], copy(base[0]), copy(base[0])], [other[0], copy(other[0])]
    code = main(["compare", "--group", "a", *map(str, a), "--group", "b", *map(str, b)])
    err = capsys.readouterr().err
    assert code == 2 and "name each run once" in err and err.count("\n") == 1, err


def test_a_reference_run_and_tracked_runs_are_refused(groups, smoke_runs, capsys):
    a, b = [*groups["base"][:2], str(smoke_runs["primary"])], groups["other"][:2]
    code = main(["compare", "--group", "a", *a, "--group", "b", *b])
    assert code == 2 and "reference runs with reference runs" in capsys.readouterr().err


def _constant(groups, tmp_path, a: float, b: float, n: int) -> list[str]:
    """Copies of real runs whose final accuracy is ``a`` in group A and ``b`` in group B."""
    runs_a = [_edited(r, tmp_path, eval_accuracy=a) for r in groups["base"][:n]]
    runs_b = [_edited(r, tmp_path, eval_accuracy=b) for r in groups["other"][:n]]
    return ["--group", "a", *runs_a, "--group", "b", *runs_b, "--metric", "eval_accuracy"]


def test_constant_groups_a_hair_apart_are_never_different(groups, tmp_path, capsys):
    args = _constant(groups, tmp_path, 0.9, 0.9 + 1e-9, 4)
    code, data = _compare(capsys, *args)
    assert code == 3 and data["verdict"] == "UNRESOLVED"  # no spread, no resolution: no claim
    code, data = _compare(capsys, *args, "--margin", "1pp")
    assert code == 3  # every run gave the same number: the grid, and so SAME, is unknown
    code = main(["compare", *args, "--margin", "1pp", "--resolution", "eval_accuracy=1/8192"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("SAME") and "resolution 0.0001221 (--resolution)" in out


def test_constant_groups_use_the_exact_test(groups, tmp_path, capsys):
    """0.90 against 0.95 in every run: 3 vs 3 cannot reach 5 % (p = 0.1), 4 vs 4 can."""
    code = main(["compare", *_constant(groups, tmp_path, 0.9, 0.95, 3)])
    out = capsys.readouterr().out
    assert code == 3 and "every run agreed" in out and "p = 0.1 (exact permutation" in out
    code = main(["compare", *_constant(groups, tmp_path, 0.9, 0.95, 4)])
    out = capsys.readouterr().out
    assert code == 1 and "p = 0.0286 (exact permutation" in out
    assert "grid of 1/20" in out  # the resolution it inferred, and says so


def test_two_pairs_that_moved_alike_are_not_different(groups, tmp_path, capsys):
    """Paired n = 2 on a 20-item accuracy: both seeds gained exactly one item. A t-test
    sees no spread and says p = 0; the sign test says p = 0.5."""
    base, again = groups["base"], groups["again"]
    a = [
        _edited(base[0], tmp_path, eval_accuracy=0.90),
        _edited(base[1], tmp_path, eval_accuracy=0.85),
    ]
    b = [
        _edited(again[0], tmp_path, eval_accuracy=0.95),
        _edited(again[1], tmp_path, eval_accuracy=0.90),
    ]
    code, data = _compare(
        capsys, "--group", "a", *a, "--group", "b", *b, "--metric", "eval_accuracy"
    )
    (metric,) = data["comparisons"][0]["metrics"]
    assert code == 3 and metric["test"] == "exact sign" and metric["p_value"] == 0.5


def test_a_detected_difference_inside_the_margin_is_same(groups, tmp_path, capsys):
    a = [
        _edited(r, tmp_path, eval_accuracy=v)
        for r, v in zip(groups["base"], (0.90, 0.92, 0.91, 0.93))
    ]
    b = [
        _edited(r, tmp_path, eval_accuracy=v)
        for r, v in zip(groups["other"], (0.94, 0.96, 0.95, 0.97))
    ]
    args = ["--group", "a", *a, "--group", "b", *b, "--metric", "eval_accuracy"]
    code = main(["compare", *args])
    assert code == 1 and capsys.readouterr().out.startswith("DIFFERENT")
    code = main(["compare", *args, "--margin", "10pp"])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("SAME")
    assert "+0.04 is detected" in out and "inside your margin" in out


def test_a_percent_margin_of_a_mean_near_zero_is_refused(groups, tmp_path, capsys):
    a = [_edited(r, tmp_path, gain=v) for r, v in zip(groups["base"], (0.01, -0.01, 0.02, -0.02))]
    b = [_edited(r, tmp_path, gain=v) for r, v in zip(groups["other"], (0.0, 0.01, -0.01, 0.0))]
    code = main(
        ["compare", "--group", "a", *a, "--group", "b", *b, "--metric", "gain", "--margin", "5%"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "within 3 standard errors of 0" in err and err.count("\n") == 1


def test_several_metrics_say_the_split_is_conservative(groups, capsys):
    _, data = _compare(
        capsys, "--group", "base", *groups["base"][:3], "--group", "lr3", *groups["lr3"]
    )
    assert any("Bonferroni" in n and "conservative" in n for n in data["comparisons"][0]["notes"])
