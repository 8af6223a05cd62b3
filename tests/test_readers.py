"""Logs other tools keep, read as tracked runs: TensorBoard events under torchtitan's tag
names (written by torch's SummaryWriter, as torchtitan writes them) and the files a
reader must refuse in one sentence. The Hugging Face and Lightning folders, which need a
real training to write, are tested beside their callbacks' runs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from repro.cli import main


def _torchtitan_log(folder: Path, seed: int, *, scale: float = 1.0) -> Path:
    """Scalars under torchtitan's tags, 20 steps of a loss falling with seed noise."""
    from torch.utils.tensorboard import SummaryWriter

    rng = random.Random(seed)
    writer = SummaryWriter(str(folder))
    try:
        for step in range(1, 21):
            loss = scale * (3.0 / step**0.5) + rng.gauss(0, 0.01)
            writer.add_scalar("loss_metrics/global_avg_loss", loss, step)
            writer.add_scalar("loss_metrics/global_max_loss", loss * 1.1, step)
            writer.add_scalar("grad_norm", 1.0 / step, step)
            writer.add_scalar("lr", 8e-4, step)
    finally:
        writer.close()
    return folder


def test_torchtitan_tags_name_the_loss_and_the_last_loss_is_final(tmp_path: Path) -> None:
    from repro.runs.tensorboard import load_event_dir

    run = load_event_dir(_torchtitan_log(tmp_path / "a", seed=0))
    rows = run.ranks[0]
    assert [r["step"] for r in rows] == list(range(1, 21))
    assert "loss" in rows[0] and "loss_metrics/global_max_loss" in rows[0]
    assert run.final == {"loss": rows[-1]["loss"]}


def test_torchtitan_logs_compare_as_pairs_and_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _torchtitan_log(tmp_path / "a", seed=0)
    again = _torchtitan_log(tmp_path / "again", seed=0)
    assert main(["compare", str(a), str(again), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "IDENTICAL"
    base = [str(_torchtitan_log(tmp_path / f"base{s}", seed=s)) for s in range(4)]
    high = [str(_torchtitan_log(tmp_path / f"high{s}", seed=s, scale=1.5)) for s in range(4)]
    code = main(["compare", "--group", "base", *base, "--group", "high", *high, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1 and data["verdict"] == "DIFFERENT"
    (comparison,) = data["comparisons"]
    assert [m["metric"] for m in comparison["metrics"]] == ["loss"]


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("trainer_state.json", '{"log_history": [{"step": 1, "loss": 3.2', "not a complete"),
        ("trainer_state.json", '{"log_history": [{"epoch": 1}]}', "unknown trainer_state"),
        ("metrics.csv", "epoch,step,train_loss\n0,0,3.5\n0,1", "truncated or foreign"),
        ("metrics.csv", "epoch,step,train_loss\n0,0,many\n", "not a number"),
    ],
)
def test_a_truncated_or_foreign_file_is_one_sentence_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, says: str
) -> None:
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / name).write_text(text)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert says in err and str(tmp_path / "a") in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_hparams_holding_python_objects_are_refused_not_constructed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        (tmp_path / run / "metrics.csv").write_text("epoch,step,train_loss\n0,0,3.5\n")
        (tmp_path / run / "hparams.yaml").write_text("size: !!python/tuple [1, 2]\n")
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    assert "is not plain YAML" in capsys.readouterr().err


# -- MLflow: stores written by mlflow-skinny 3.18.0 (tests/data/mlflow/write_stores.py) ----

MLFLOW_DATA = Path(__file__).resolve().parent / "data" / "mlflow"


@pytest.fixture
def mlflow_stores(tmp_path: Path) -> Path:
    import gzip
    import tarfile

    (tmp_path / "mlflow.db").write_bytes(
        gzip.decompress((MLFLOW_DATA / "mlflow.db.gz").read_bytes())
    )
    with tarfile.open(MLFLOW_DATA / "mlruns.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path


def _file_store_run(stores: Path, name: str) -> Path:
    (meta,) = [
        m for m in stores.glob("mlruns/*/*/meta.yaml") if f"run_name: {name}\n" in m.read_text()
    ]
    return meta.parent


def _report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["compare", *args])
    return code, capsys.readouterr().out


def test_mlflow_runs_compare_from_either_store(
    mlflow_stores: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = mlflow_stores / "mlflow.db"
    code, out = _report(capsys, f"{db}#base-0", f"{db}#base-0-again")
    assert code == 0 and out.startswith("IDENTICAL")
    # One run logged to both stores reads the same from each.
    code, out = _report(capsys, f"{db}#base-0", str(_file_store_run(mlflow_stores, "base-0")))
    assert code == 0 and out.startswith("IDENTICAL")
    code, out = _report(capsys, f"{db}#base-0", f"{db}#high-0")
    assert out.startswith("DRIFT") and "the configs differ (lr)" in out
    assert "no environment facts" in out and "environments cannot be compared" in out
    assert "s3cret-value" not in out  # the api_token param is redacted before any report


def test_mlflow_runs_compare_as_groups(
    mlflow_stores: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = mlflow_stores / "mlflow.db"
    base = [f"{db}#base-{seed}" for seed in range(4)]
    high = [str(_file_store_run(mlflow_stores, f"high-{seed}")) for seed in range(4)]
    code = main(["compare", "--group", "base", *base, "--group", "high", *high, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code != 2 and data["verdict"] in ("DIFFERENT", "UNRESOLVED")
    (comparison,) = data["comparisons"]
    assert {m["metric"] for m in comparison["metrics"]} >= {"eval_loss", "loss"}


def test_mlflow_stores_of_another_schema_or_truncated_are_one_sentence(
    mlflow_stores: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    db = mlflow_stores / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("ALTER TABLE metrics RENAME COLUMN step TO position")
    assert main(["compare", f"{db}#base-0", f"{db}#high-0"]) == 2
    err = capsys.readouterr().err
    assert "schema repro reads" in err and "lacks step" in err and "Traceback" not in err
    run = _file_store_run(mlflow_stores, "base-1")
    loss = run / "metrics" / "loss"
    loss.write_text(loss.read_text()[:-9])  # cut inside the last line
    assert main(["compare", str(run), str(_file_store_run(mlflow_stores, "base-2"))]) == 2
    assert "truncated or foreign" in capsys.readouterr().err


def test_a_training_args_pickle_is_read_without_running_it(tmp_path: Path) -> None:
    import pickle
    import zipfile

    from repro.runs.readers.huggingface import read_training_arguments

    class Payload:  # what a hostile training_args.bin could hold
        def __reduce__(self) -> tuple[object, tuple[str, str]]:
            return (open, (str(tmp_path / "ran"), "w"))

    path = tmp_path / "training_args.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"learning_rate": Payload()}))
    assert read_training_arguments(path) is None  # not a TrainingArguments: nothing read
    assert not (tmp_path / "ran").exists()  # and nothing it names was called
