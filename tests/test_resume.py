"""Stop and resume: a run resumed with its full state equals the run that never stopped, and
a weights-only resume is DRIFT with what it lost ranked by reruns.

Real torch and torchrun on the CPU: 2 ranks, 2 data-loader workers each, fp16 with a
GradScaler whose scale a skipped step (``fault.overflow_step``, before the stop) halved, so
the scale the resume must restore is not a fresh scaler's.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from repro.checkpoint.state import load_state, restore_rng_states, rng_states, save_atomic
from repro.cli import main
from repro.errors import UserError
from repro.judge.comparison import compare
from repro.judge.resumes import WORDS
from repro.runs.prepare import prepare_run
from repro.runs.resumes import RESUME_FILE, prepare_stop
from repro.runs.runner import launch
from repro.runs.runview import RunView
from repro.runs.store import Run
from repro.verdict import Verdict

SETS = ["amp_dtype=float16", "fault.overflow_step=12", "num_workers=2"]
STOP = 19  # mid-epoch: the smoke profile's epoch is 16 steps


def _draws() -> tuple[list[int], list[float], float]:
    return torch.randint(0, 2**30, (4,)).tolist(), np.random.rand(3).tolist(), random.random()


def test_every_rng_state_round_trips_through_a_weights_only_load(tmp_path: Path) -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in numpy's state
    save_atomic({"rng": rng_states()}, tmp_path / "state.pt")
    expected = _draws()
    restore_rng_states(load_state(tmp_path / "state.pt")["rng"])  # weights_only=True inside
    assert _draws() == expected


class _Interrupt:
    """Pickled after the tensors before it are written: Ctrl-C in the middle of a save."""

    def __reduce_ex__(self, protocol: object) -> str:
        raise KeyboardInterrupt


def test_ctrl_c_during_a_checkpoint_write_leaves_the_previous_one_intact(tmp_path: Path) -> None:
    path = tmp_path / "training_state.pt"
    save_atomic({"step": 1, "w": torch.ones(1000)}, path)
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"step": 2, "w": torch.zeros(100_000), "x": _Interrupt()}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert load_state(path)["step"] == 1


def test_a_file_that_is_not_a_checkpoint_is_one_sentence(tmp_path: Path) -> None:
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_state(text)
    truncated = tmp_path / "cut.pt"
    save_atomic({"w": torch.ones(1000)}, tmp_path / "whole.pt")
    truncated.write_bytes((tmp_path / "whole.pt").read_bytes()[:2000])
    with pytest.raises(UserError, match="is not a readable checkpoint"):
        load_state(truncated)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One launch: the run stopped after STOP, and the same run uninterrupted."""
    root = tmp_path_factory.mktemp("resume")
    stop = prepare_stop("smoke", SETS, STOP, runs_dir=root / "stopped", quiet=True)
    plain = prepare_run("smoke", SETS, runs_dir=root / "plain", quiet=True)
    outcomes = launch([stop, plain])
    assert [o.status for o in outcomes] == ["STOPPED", "COMPLETE"], outcomes
    return {"root": root, "stopped": outcomes[0].run_dir, "plain": outcomes[1].run_dir}


def _resume(stopped: dict[str, Path], name: str, *extra: str) -> Path:
    runs = stopped["root"] / name
    argv = ["run", "--resume", str(stopped["stopped"]), *extra, "--runs-dir", str(runs)]
    assert main([*argv, "--quiet"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


@pytest.mark.slow
def test_a_stopped_run_is_never_complete(stopped: dict[str, Path]) -> None:
    run = Run(stopped["stopped"])
    assert run.status["status"] == "STOPPED" and run.status["step"] == STOP
    assert len(run.record["steps"]) == STOP + 1
    assert any(s.get("skipped") for s in run.record["steps"])  # the scaler skipped a step
    state = load_state(stopped["stopped"] / "training_state.pt")
    assert state["scaler"]["scale"] == 2.0**15  # halved by the skip: not a fresh scaler's
    verdict = compare(
        RunView.from_run_dir(stopped["stopped"]), RunView.from_run_dir(stopped["plain"])
    )
    assert verdict.verdict is Verdict.FAILED
    assert verdict.failure is not None and "--stop-at" in verdict.failure.message


@pytest.mark.slow
def test_a_full_resume_is_bit_identical_to_the_run_that_never_stopped(
    stopped: dict[str, Path],
) -> None:
    resumed = _resume(stopped, "full")
    # The whole record, steps STOP+1.. included (traces, fingerprints, loss scale, final
    # metrics and checkpoint identity), byte for byte.
    assert (resumed / "record.json").read_bytes() == (stopped["plain"] / "record.json").read_bytes()
    comparison = compare(RunView.from_run_dir(resumed), RunView.from_run_dir(stopped["plain"]))
    assert comparison.verdict is Verdict.IDENTICAL
    assert any(f"resumed at step {STOP}" in note for note in comparison.notes)


@pytest.mark.slow
def test_a_weights_only_resume_is_drift_with_the_lost_pieces_ranked_by_reruns(
    stopped: dict[str, Path],
) -> None:
    resumed = _resume(stopped, "weights", "--weights-only")
    comparison = compare(RunView.from_run_dir(resumed), RunView.from_run_dir(stopped["plain"]))
    assert comparison.verdict is Verdict.DRIFT
    row = next(e for e in comparison.exact if e.name == f"resume at step {STOP}")
    assert not row.ok and row.first_step == STOP + 1
    lost = [c for c in comparison.causes if c.cause.startswith("lost on resume")]
    measured = RunView.from_run_dir(resumed).resume["measured"]  # type: ignore[index]
    # Ranked by how far the run ends from the full resume without that piece.
    order = [next(p for p, words in WORDS.items() if words in c.cause) for c in lost]
    deltas = [measured[f"without:{piece}"]["eval_loss_delta"] for piece in order]
    assert deltas == sorted(deltas, reverse=True) and {"optimizer", "schedule", "sampler"} <= set(
        order
    )
    # The reruns are evidence: restoring every piece in the same launch is bit-equal to the
    # uninterrupted run, and a piece nothing here draws on is named as not needed.
    full = Path(resumed, RunView.from_run_dir(resumed).resume["reruns"]["full"])  # type: ignore[index]
    assert (full / "record.json").read_bytes() == (stopped["plain"] / "record.json").read_bytes()
    assert measured["without:rng"]["first_difference"] is None
    assert (resumed / RESUME_FILE).is_file()
