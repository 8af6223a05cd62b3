"""The Lightning callback on real Lightning: a small Transformer trained in seconds."""

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

SCRIPT = Path(__file__).resolve().parent / "lightning_script.py"


def _fit(runs: Path, *, threads: int = 1, **kwargs: float) -> Path:
    """One training; Lightning's CSVLogger version folder is moved into the tracked run's
    folder as ``version_0/`` (its manifest one folder up)."""
    from lightning_script import fit

    torch.set_num_threads(threads)
    csv = runs / ".csv"
    callback = fit(str(runs), csv_dir=str(csv), **kwargs)  # type: ignore[arg-type]
    assert callback.path is not None
    (csv / "lightning_logs" / "version_0").rename(callback.path / "version_0")
    return callback.path


def _compare(a: Path, b: Path) -> Comparison:
    ((comparison, _curves),) = compare_runs([str(a), str(b)])
    return comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lightning")
    with restored_torch_state():
        return {
            "a": _fit(folder),
            "again": _fit(folder),
            "threads": _fit(folder, threads=2),
            "lr": _fit(folder, lr=4e-3),
        }


def test_the_run_records_hparams_trainer_settings_and_every_batch(runs: dict[str, Path]) -> None:
    config = yaml.safe_load((runs["a"] / "config.yaml").read_text())
    assert config["seed"] == 0  # seed_everything's, read back
    assert config["config"]["lr"] == 3e-3 and config["config"]["width"] == 32
    trainer = config["config"]["trainer"]
    assert trainer["deterministic"] is True and trainer["precision"] == "32-true"
    assert trainer["accumulate_grad_batches"] == 1 and trainer["devices"] == 1
    lines = (runs["a"] / "metrics-rank0.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[1:]]
    losses = [r for r in rows if "loss" in r]
    assert [r["step"] for r in losses] == list(range(12))  # 192 sequences / 16 a batch
    assert all(r["lr"] == 3e-3 for r in losses)
    assert set(rows[-2]["final"]) == {"train_loss", "val_loss"}
    status = yaml.safe_load((runs["a"] / "status.yaml").read_text())
    assert status["status"] == "COMPLETE"


def test_two_runs_of_one_setting_are_identical(runs: dict[str, Path]) -> None:
    assert _compare(runs["a"], runs["again"]).verdict == "IDENTICAL"


def test_another_thread_count_is_named_first(runs: dict[str, Path]) -> None:
    comparison = _compare(runs["a"], runs["threads"])
    assert comparison.verdict == "NO_BASELINE"  # no band: where and why, not "noise"
    assert comparison.first_difference is not None
    assert comparison.first_difference.where == "logged"
    assert comparison.causes[0].cause == "thread count"


def test_a_learning_rate_change_is_another_training(runs: dict[str, Path]) -> None:
    comparison = _compare(runs["a"], runs["lr"])
    assert comparison.verdict == "DRIFT"
    assert comparison.setting_differences == {"config": ["lr"]}


def test_an_exception_in_training_marks_the_run_failed(tmp_path: Path) -> None:
    with restored_torch_state(), pytest.raises(RuntimeError, match="training_step broke"):
        _fit(tmp_path, crash_at=3)
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    status = yaml.safe_load((run / "status.yaml").read_text())
    assert status["status"] == "FAILED" and "training_step broke" in status["reason"]
    rows = (run / "metrics-rank0.jsonl").read_text().splitlines()
    assert len(rows) == 1 + 3  # the header and the three batches before the crash


def test_a_two_rank_ddp_run_writes_one_folder(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-W", "error", str(SCRIPT), str(tmp_path), "--devices", "2"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert sorted(p.name for p in run.glob("metrics-rank*.jsonl")) == [
        "metrics-rank0.jsonl",
        "metrics-rank1.jsonl",
    ]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["world_size"] == 2 and config["config"]["trainer"]["strategy"] == "DDPStrategy"
    assert yaml.safe_load((run / "status.yaml").read_text())["status"] == "COMPLETE"
    assert _compare(run, run).verdict == "IDENTICAL"  # both ranks' records load


# -- the CSVLogger's own folders, read without the callback (repro.runs.readers) ----------


def test_csv_logger_versions_compare_like_tracked_runs(runs: dict[str, Path]) -> None:
    a, again = runs["a"] / "version_0", runs["again"] / "version_0"
    assert _compare(a, again).verdict == "IDENTICAL"
    comparison = _compare(a, runs["threads"] / "version_0")
    assert comparison.verdict == "NO_BASELINE"
    assert comparison.first_difference is not None
    assert comparison.first_difference.where == "logged"
    assert comparison.causes[0].cause == "thread count"  # the manifest one folder up
    comparison = _compare(a, runs["lr"] / "version_0")
    assert comparison.verdict == "DRIFT"  # hparams.yaml holds the learning rate
    assert comparison.setting_differences == {"config": ["lr"]}


def test_a_csv_logger_version_reads_back_the_callbacks_losses_exactly(
    runs: dict[str, Path],
) -> None:
    from repro.runs.readers import load_foreign

    csv = load_foreign(runs["a"] / "version_0")
    lines = (runs["a"] / "metrics-rank0.jsonl").read_text().splitlines()
    tracked = [json.loads(line) for line in lines[1:]]
    logged = [r["train_loss"] for r in csv.ranks[0] if "train_loss" in r]
    assert logged[:12] == [r["loss"] for r in tracked if "loss" in r]
    assert csv.final is not None and set(csv.final) == {"train_loss", "val_loss"}
