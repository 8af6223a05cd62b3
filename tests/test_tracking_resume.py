"""Resumed tracked runs for real: the example stopped with ``--stop-at``, resumed with
``--resume`` (its full state, or its weights alone), and compared with the run that never
stopped; and a resume recorded by hand with ``run.resumed``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_tracking import _compare, _example

import repro
import repro.checkpoint
from repro.checkpoint.full import RESUME_HOOKS
from repro.cli import main
from repro.runs.tracked import load_tracked, read_metrics

STOP = 5  # of the example's 12 steps


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("resumed")
    stopped = _example(runs, "--stop-at", str(STOP))
    checkpoint = str(stopped / "checkpoint.pt")
    return {
        "uninterrupted": _example(runs),
        "stopped": stopped,
        "full": _example(runs, "--resume", checkpoint),
        "weights": _example(runs, "--resume", checkpoint, "--weights-only"),
    }


def _resumed_record(run: Path) -> dict[str, object]:
    (record,) = [r["resumed"] for r in read_metrics(run) if "resumed" in r]
    return record  # type: ignore[no-any-return]


def test_the_record_says_where_the_run_resumed_and_what_it_restored(
    resumed_runs: dict[str, Path],
) -> None:
    checkpoint = resumed_runs["stopped"] / "checkpoint.pt"
    assert _resumed_record(resumed_runs["full"]) == {
        "step": STOP,
        "checkpoint": str(checkpoint),
        "full_state": True,
        "held": ["model", "optimizer", "rng"],
        "restored": ["model", "optimizer", "rng"],
    }
    weights = _resumed_record(resumed_runs["weights"])
    assert weights["full_state"] is False and weights["restored"] == ["model", "rng"]
    rows = [r["step"] for r in read_metrics(resumed_runs["full"]) if "step" in r]
    assert rows == list(range(STOP + 1, 12))  # the resumed run logs only what it trains


def test_a_full_state_resume_is_identical_to_the_uninterrupted_run(
    resumed_runs: dict[str, Path],
) -> None:
    comparison = _compare(resumed_runs["full"], resumed_runs["uninterrupted"])
    assert comparison.verdict == "IDENTICAL"
    assert [(e.name, e.ok) for e in comparison.exact] == [(f"resume at step {STOP}", True)]
    name, other = resumed_runs["full"].name, resumed_runs["uninterrupted"].name
    assert f"{name} resumed at step {STOP} from " in comparison.notes[0]
    assert comparison.notes[0].endswith(
        f"with its full state: bit-identical to {other} from step {STOP + 1} on."
    )
    assert not comparison.causes


def test_a_weights_only_resume_is_named_with_where_it_parted(
    resumed_runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    comparison = _compare(resumed_runs["weights"], resumed_runs["uninterrupted"])
    assert comparison.verdict == "DRIFT"
    (check,) = comparison.exact
    # The first step after the resume logs its loss before the fresh optimizer's update.
    assert not check.ok and check.first_step == STOP + 2
    assert check.detail == (
        f"the run resumed at step {STOP} parts from the uninterrupted run at step {STOP + 2}, "
        "2 steps after the resume"
    )
    assert "with model, rng only (not the optimizer it held)" in comparison.notes[0]
    # The first probable cause is the resume and what it lacked, with what to save.
    first = comparison.causes[0]
    assert first.cause == (
        f"resumed at step {STOP} without the full state "
        "(model, rng only (not the optimizer it held))"
    )
    assert "repro.checkpoint.save" in first.try_next
    runs = [str(resumed_runs["uninterrupted"]), str(resumed_runs["weights"])]
    assert main(["compare", *runs]) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert f"resumed at step {STOP}" in out and f"at step {STOP + 2}, 2 steps after" in out


def test_a_resume_recorded_by_hand_says_whether_the_file_held_the_full_state(
    tmp_path: Path,
) -> None:
    model = torch.nn.Linear(2, 1)
    weights = tmp_path / "model.pt"
    torch.save(model.state_dict(), weights)
    runs = tmp_path / "runs"
    for full_state in (None, True):
        with repro.track(runs_dir=runs) as run:
            run.resumed(3, weights, full_state=full_state)
            run.log(4, loss=0.5)
        assert run.path is not None
        resumed = load_tracked(run.path).resumed
        assert resumed is not None and resumed["step"] == 3
        if full_state is None:  # inspected: a bare state_dict holds the weights alone
            assert resumed["held"] == ["model"] and resumed["full_state"] is False
        else:
            assert resumed["held"] is None and resumed["full_state"] is True
    assert RESUME_HOOKS == []  # a closed run records no later load
