"""The Hugging Face Trainer callback on real transformers: a one-layer GPT-2 built from a
config (no download), eight steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from framework_state import restored_torch_state

from repro.commands.compare import compare_runs
from repro.judge.comparison import Comparison

SCRIPT = Path(__file__).resolve().parent / "transformers_script.py"


def _train(runs: Path, *, threads: int = 1, lr: float = 3e-3) -> Path:
    """One training; the Trainer's own output folder (checkpoints at steps 4 and 8) is
    ``output/`` inside the tracked run's folder."""
    from transformers_script import train

    torch.set_num_threads(threads)
    output = runs / ".output"
    callback = train(str(runs), str(output), lr=lr, save=True)
    assert callback.path is not None
    output.rename(callback.path / "output")
    return callback.path


def _compare(a: Path, b: Path) -> Comparison:
    ((comparison, _curves),) = compare_runs([str(a), str(b)])
    return comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("transformers")
    with restored_torch_state():
        return {
            "a": _train(folder),
            "again": _train(folder),
            "threads": _train(folder, threads=2),
            "lr": _train(folder, lr=4e-3),
        }


def test_the_run_records_training_arguments_steps_and_evaluations(runs: dict[str, Path]) -> None:
    config = yaml.safe_load((runs["a"] / "config.yaml").read_text())
    arguments = config["config"]["training_arguments"]
    assert config["seed"] == 0 and arguments["full_determinism"] is True
    assert arguments["learning_rate"] == 3e-3 and arguments["gradient_accumulation_steps"] == 1
    assert arguments["lr_scheduler_type"] == "linear"  # the enum's value, not its repr
    assert "output_dir" not in arguments  # differs run to run without changing the training
    assert config["config"]["model"]["n_layer"] == 1
    lines = (runs["a"] / "metrics-rank0.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))
    assert [r["step"] for r in rows if "eval_loss" in r] == [4, 8]
    assert not any(k.endswith(("_runtime", "_per_second")) for r in rows for k in r)
    assert set(rows[-2]["final"]) == {"eval_loss", "train_loss"}
    assert yaml.safe_load((runs["a"] / "status.yaml").read_text())["status"] == "COMPLETE"


def test_two_runs_of_one_setting_are_identical(runs: dict[str, Path]) -> None:
    assert _compare(runs["a"], runs["again"]).verdict == "IDENTICAL"


def test_another_thread_count_is_named_first(runs: dict[str, Path]) -> None:
    comparison = _compare(runs["a"], runs["threads"])
    assert comparison.verdict == "NO_BASELINE"
    assert comparison.first_difference is not None
    assert comparison.first_difference.where == "logged"
    assert comparison.causes[0].cause == "thread count"


def test_a_learning_rate_change_is_another_training(runs: dict[str, Path]) -> None:
    comparison = _compare(runs["a"], runs["lr"])
    assert comparison.verdict == "DRIFT"
    assert comparison.setting_differences == {"config": ["training_arguments.learning_rate"]}


def test_an_exception_in_training_marks_the_run_failed(tmp_path: Path) -> None:
    # The Trainer calls no callback when training raises: the run is closed as the
    # process ends, with the exception that ended it.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(SCRIPT), str(tmp_path), str(tmp_path / ".output")]
    done = subprocess.run(
        [*command, "--crash-at", "40"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1 and "dataset broke at item 40" in done.stderr
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    status = yaml.safe_load((run / "status.yaml").read_text())
    assert status["status"] == "FAILED"
    assert "RuntimeError: the user's dataset broke at item 40" in status["reason"]


# -- the Trainer's own folders, read without the callback (repro.runs.readers.huggingface) --


def test_the_trainers_output_folders_compare_like_tracked_runs(runs: dict[str, Path]) -> None:
    a, again = runs["a"] / "output", runs["again"] / "output"
    assert _compare(a, again).verdict == "IDENTICAL"
    comparison = _compare(a, runs["threads"] / "output")
    assert comparison.verdict == "NO_BASELINE"
    assert comparison.first_difference is not None
    assert comparison.first_difference.where == "logged"
    # The tracked run's manifest one folder up is the environment: the cause is named.
    assert comparison.causes[0].cause == "thread count"
    # training_args.bin, read without executing it, is the config: another training.
    comparison = _compare(a, runs["lr"] / "output")
    assert comparison.verdict == "DRIFT"
    assert comparison.setting_differences == {"config": ["training_arguments.learning_rate"]}


def test_a_checkpoint_folder_is_read_up_to_its_step(runs: dict[str, Path]) -> None:
    from repro.runs.readers import load_foreign

    checkpoint = load_foreign(runs["a"] / "output" / "checkpoint-4")
    assert [r["step"] for r in checkpoint.ranks[0] if "loss" in r] == [1, 2, 3, 4]
    assert checkpoint.view.settings["config"]["model"]["n_layer"] == 1
    # The same arguments the callback recorded, read back from the Trainer's own pickle.
    recorded = yaml.safe_load((runs["a"] / "config.yaml").read_text())["config"]
    assert checkpoint.view.settings["config"]["training_arguments"] == {
        k: v for k, v in recorded["training_arguments"].items() if k != "group_by_length"
    }
    assert checkpoint.view.settings["seed"] == 0
    lines = (runs["a"] / "metrics-rank0.jsonl").read_text().splitlines()
    tracked = [json.loads(line) for line in lines]
    losses = [r["loss"] for r in tracked if "loss" in r][:4]
    assert [r["loss"] for r in checkpoint.ranks[0] if "loss" in r] == losses  # exact floats


def test_without_a_manifest_the_report_says_what_cannot_be_compared(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    import shutil

    a = shutil.copytree(runs["a"] / "output" / "checkpoint-8", tmp_path / "a" / "checkpoint-8")
    b = shutil.copytree(runs["threads"] / "output" / "checkpoint-8", tmp_path / "b" / "c8")
    comparison = _compare(a, b)
    assert comparison.verdict == "NO_BASELINE"
    assert any("no environment facts" in note for note in comparison.notes)
    assert comparison.env_differences == []
