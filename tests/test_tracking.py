"""Tracking a user's own training for real: a small model, torch, torchrun, signals."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import repro
from repro.runs.track_values import TrackingWarning
from repro.runs.tracked import read_metrics, tracked_status

# A training script of the kind users write, small enough to run in seconds.
SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import torch
    import torch.distributed as dist
    import repro

    steps, crash_at, wait_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    runs = sys.argv[4]
    distributed = "RANK" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 8), torch.randn(64, 1)
    with repro.track(config={"lr": 0.1, "api_token": "s3cret"}, seed=0, runs_dir=runs,
                     flush_every=4) as run:
        for step in range(steps):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            if distributed:
                for p in model.parameters():
                    dist.all_reduce(p.grad)
            opt.step()
            run.log(step, loss=loss, lr=0.1)
            if step == crash_at:
                raise RuntimeError("the user's loop broke")
            if step == wait_at:
                print("waiting", flush=True)
                time.sleep(60)
        run.final(eval_loss=loss)
        run.fingerprint(model)
    if distributed:
        dist.destroy_process_group()
    """
)


def _script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT)
    return path


def _run_dir(runs: Path) -> Path:
    (run_dir,) = [p for p in runs.iterdir() if not p.name.startswith(".")]
    return run_dir


def _python(script: Path, *args: object, runs: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *map(str, args), str(runs), "--api-key", "hunter2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_tracked_loop_records_every_step_and_changes_no_global_state(tmp_path):
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(123)
    random.seed(5)
    model = torch.nn.Linear(4, 1)
    rng_before, py_before = torch.get_rng_state(), random.getstate()
    logged = []
    with repro.track(
        config={"lr": 0.5, "nested": {"password": "x"}}, seed=7, runs_dir=tmp_path, flush_every=3
    ) as run:
        for step in range(7):
            loss = model(torch.ones(1, 4)).sum() * (step + 1)
            logged.append(loss.item())
            run.log(step, loss=loss.detach(), lr=0.5 / (step + 1))
        run.final(eval_accuracy=0.75)
        identity = run.fingerprint(model)
    assert torch.equal(torch.get_rng_state(), rng_before) and random.getstate() == py_before
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic

    run_dir = _run_dir(tmp_path)
    assert tracked_status(run_dir)["status"] == "COMPLETE"
    records = list(read_metrics(run_dir))
    steps = [r for r in records if "step" in r]
    assert [r["step"] for r in steps] == list(range(7))
    assert [r["loss"] for r in steps] == logged  # bit-exact: floats round-trip through JSON
    assert steps[3]["lr"] == 0.5 / 4
    assert {"final": {"eval_accuracy": 0.75}} in records
    assert {"fingerprint": identity, "after_step": 6} in records
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["config"] == {"lr": 0.5, "nested": {"password": "<redacted>"}}
    assert (config["seed"], config["kind"]) == (7, "tracked")
    manifest = yaml.safe_load((run_dir / "manifest.yaml").read_text())
    # Captured inside the training process: the threads as the loop saw them.
    assert manifest["numerics"]["threads"]["intra_op"] == threads
    assert (run_dir / "manifest-end.yaml").is_file()


def test_a_crash_is_failed_with_everything_logged_so_far(tmp_path):
    runs = tmp_path / "runs"
    proc = _python(_script(tmp_path), 20, 9, -1, runs=runs)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode != 0 and "the user's loop broke" in err
    run_dir = _run_dir(runs)
    status = tracked_status(run_dir)
    assert status["status"] == "FAILED" and "the user's loop broke" in status["reason"]
    assert [r["step"] for r in read_metrics(run_dir) if "step" in r] == list(range(10))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["config"]["api_token"] == "<redacted>"
    assert "hunter2" not in (run_dir / "config.yaml").read_text()
    assert "hunter2" not in (run_dir / "manifest.yaml").read_text()


@pytest.mark.parametrize(
    ("signum", "reason"), [(signal.SIGINT, "Ctrl-C"), (signal.SIGTERM, "SIGTERM")]
)
def test_an_interrupted_run_is_marked_interrupted(tmp_path, signum, reason):
    runs = tmp_path / "runs"
    proc = _python(_script(tmp_path), 20, -1, 5, runs=runs)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "waiting"
    proc.send_signal(signum)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    run_dir = _run_dir(runs)
    status = tracked_status(run_dir)
    assert status["status"] == "INTERRUPTED" and reason in status["reason"]
    assert [r["step"] for r in read_metrics(run_dir) if "step" in r] == list(range(6))


def test_a_running_run_whose_process_is_gone_reads_as_failed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import socket

    (tmp_path / "status.yaml").write_text(
        yaml.safe_dump({"status": "RUNNING", "pid": proc.pid, "host": socket.gethostname()})
    )
    assert tracked_status(tmp_path)["status"] == "FAILED"
    (tmp_path / "status.yaml").write_text(
        yaml.safe_dump({"status": "RUNNING", "pid": os.getpid(), "host": socket.gethostname()})
    )
    assert tracked_status(tmp_path)["status"] == "RUNNING"


def test_under_torchrun_each_rank_logs_to_its_own_file_in_one_folder(tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
    ]
    command += [str(_script(tmp_path)), "6", "-1", "-1", str(runs)]
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = _run_dir(runs)
    assert tracked_status(run_dir)["status"] == "COMPLETE"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["world_size"] == 2
    per_rank = [[r for r in read_metrics(run_dir, rank) if "step" in r] for rank in (0, 1)]
    assert [len(rows) for rows in per_rank] == [6, 6]
    # All-reduced gradients: both ranks train the same model and log the same losses.
    assert [r["loss"] for r in per_rank[0]] == [r["loss"] for r in per_rank[1]]
    assert time.monotonic() - start < 180


# -- comparing tracked runs ---------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_tracked.py"


def _example(runs: Path, *args: str, threads: int = 1, **env: str) -> Path:
    """One run of the example script; its folder."""
    before = set(runs.iterdir()) if runs.is_dir() else set()
    environ = {**os.environ, "OMP_NUM_THREADS": str(threads), **env}
    command = [sys.executable, str(EXAMPLE), "--runs-dir", str(runs), "--steps", "12", *args]
    done = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    (new,) = [p for p in set(runs.iterdir()) - before if not p.name.startswith(".")]
    return new


@pytest.fixture(scope="module")
def example_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    runs = tmp_path_factory.mktemp("tracked")
    return {
        "a": _example(runs),
        "again": _example(runs),
        "threads": _example(runs, threads=2),
        "lr": _example(runs, "--lr", "0.004"),
    }


def _compare(a: Path, b: Path):
    from repro.commands.compare import compare_runs

    ((comparison, _curves),) = compare_runs([str(a), str(b)])
    return comparison


def test_two_tracked_runs_of_one_setting_are_identical(example_runs):
    comparison = _compare(example_runs["a"], example_runs["again"])
    assert comparison.verdict == "IDENTICAL" and comparison.causes == []


def test_another_thread_count_is_named_first_and_not_judged_as_noise(example_runs):
    comparison = _compare(example_runs["a"], example_runs["threads"])
    assert comparison.verdict == "NO_BASELINE"  # no band: where and why, not "noise"
    assert comparison.first_difference is not None
    assert comparison.first_difference.where == "logged"
    assert comparison.causes[0].cause == "thread count"


def test_another_config_value_is_another_training(example_runs):
    comparison = _compare(example_runs["a"], example_runs["lr"])
    assert comparison.verdict == "DRIFT"
    assert comparison.causes[0].cause == "training settings"
    (evidence,) = comparison.causes[0].evidence
    assert evidence.startswith("config.lr: ") and " vs " in evidence  # both runs' values
    assert comparison.setting_differences == {"config": ["lr"]}


def test_a_tracked_run_is_not_compared_with_a_reference_run(example_runs, capsys):
    from repro.cli import main

    reference = example_runs["a"].parent / "not-tracked"
    reference.mkdir()
    assert main(["compare", str(example_runs["a"]), str(reference)]) == 2
    assert "not-tracked is not a tracked run" in capsys.readouterr().err


def test_a_tensorboard_log_written_by_the_example_is_compared(tmp_path):
    runs = tmp_path / "runs"
    a = _example(runs, "--tensorboard") / "tensorboard"
    b = _example(runs, "--tensorboard", threads=2) / "tensorboard"
    again = _example(runs, "--tensorboard") / "tensorboard"
    assert _compare(a, again).verdict == "IDENTICAL"
    comparison = _compare(a, b)
    assert comparison.verdict == "NO_BASELINE"
    assert comparison.first_difference is not None and comparison.first_difference.where == "logged"
    # The manifest beside the log (the tracked folder's) names the cause.
    assert comparison.causes[0].cause == "thread count"
    assert any("float32" in note for note in comparison.notes)


def test_repro_run_writes_its_record_as_tensorboard_events(tmp_path):
    from repro.cli import main
    from repro.runs.runview import RunView
    from repro.runs.tensorboard import load_event_dir

    assert (
        main(["run", "--profile", "smoke", "--quiet", "--tensorboard", "--runs-dir", str(tmp_path)])
        == 0
    )
    (run_dir,) = list(tmp_path.iterdir())
    record = RunView.from_run_dir(run_dir)
    events = load_event_dir(run_dir / "tensorboard")
    rows = events.ranks[0]
    assert [r["step"] for r in rows] == [s["step"] for s in record.steps]
    # float32 in TensorBoard: equal after rounding the record's values to float32.
    as_f32 = [float(torch.tensor(s["loss"], dtype=torch.float32)) for s in record.steps]
    assert [r["loss"] for r in rows] == as_f32
    assert events.final is not None and set(events.final) >= {"eval_loss", "eval_accuracy"}


# -- what track, log and final accept -------------------------------------------------------


class _Mode(enum.Enum):
    FAST = 1


@dataclasses.dataclass
class _Optim:
    betas: tuple[float, float] = (0.9, 0.99)
    name: str = "adamw"


def test_a_config_of_ordinary_python_values_is_recorded_in_readable_form(tmp_path):
    args = argparse.Namespace(
        out_dir=Path("out/run1"),
        lr=np.float32(0.5),
        steps=np.int64(7),
        device=torch.device("cpu"),
        dtype=torch.bfloat16,
        mode=_Mode.FAST,
        betas=(0.9, 0.95),
        optim=_Optim(),
        tags={"b", "a"},
        callback=object(),
    )
    with repro.track(config=vars(args), runs_dir=tmp_path) as run:
        run.log(0, loss=1.0)
    run_dir = _run_dir(tmp_path)
    assert tracked_status(run_dir)["status"] == "COMPLETE"
    recorded = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert recorded["config"] == {
        "out_dir": "out/run1",
        "lr": 0.5,
        "steps": 7,
        "device": "cpu",
        "dtype": "torch.bfloat16",
        "mode": "_Mode.FAST",
        "betas": [0.9, 0.95],
        "optim": {"betas": [0.9, 0.99], "name": "adamw"},
        "tags": ["a", "b"],
        "callback": "<object object>",  # no memory address: it would differ every run
    }
    assert recorded["config_converted"] == {
        "out_dir": "pathlib.PosixPath" if os.name == "posix" else "pathlib.WindowsPath",
        "lr": "numpy.float32",
        "steps": "numpy.int64",
        "device": "torch.device",
        "dtype": "torch.dtype",
        "mode": "test_tracking._Mode",
        "optim": "test_tracking._Optim",
        "tags": "set",
        "callback": "object",
    }


def test_a_config_that_refers_to_itself_is_still_recorded(tmp_path):
    config: dict[str, object] = {"lr": 0.1}
    config["self"] = config
    with repro.track(config=config, runs_dir=tmp_path):
        pass
    run_dir = _run_dir(tmp_path)
    assert tracked_status(run_dir)["status"] == "COMPLETE"
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["config"]["lr"] == 0.1


def test_a_value_log_cannot_record_is_left_out_with_a_warning_and_every_other_value_kept(
    tmp_path,
):
    with repro.track(runs_dir=tmp_path, flush_every=2) as run:
        run.log(0, loss=torch.tensor(1.5), note="warmup", flag=True, nothing=None)
        with pytest.warns(TrackingWarning, match=r"weird at step 1 is an object"):
            run.log(1, loss=torch.tensor(2.5), weird=object())
        with pytest.warns(TrackingWarning, match=r"tags at step 2 is a set"):
            run.log(2, loss=3.5, tags={"a"})
        with pytest.warns(TrackingWarning, match=r"per_class at step 3 is a tensor of 4 elements"):
            run.log(3, loss=np.float32(4.5), per_class=torch.ones(4))
        with pytest.warns(TrackingWarning, match=r"z at step 4 is a torch.complex64 tensor"):
            run.log(4, loss=torch.tensor([5.5]), z=torch.tensor(1j))
        run.log(5, loss=6.5, weird=object())  # warned once a name, not once a step
        run.log(6, loss=torch.tensor(7, dtype=torch.int32))
    run_dir = _run_dir(tmp_path)
    assert tracked_status(run_dir)["status"] == "COMPLETE"
    records = list(read_metrics(run_dir))
    rows = [r for r in records if "step" in r]
    assert [r["loss"] for r in rows] == [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7]
    assert rows[0] == {"step": 0, "loss": 1.5, "note": "warmup", "flag": True, "nothing": None}
    refused = {r["not_recorded"]: r for r in records if "not_recorded" in r}
    assert set(refused) == {"weird", "tags", "per_class", "z"}
    assert refused["per_class"]["at_step"] == 3


def test_a_logged_tensor_updated_in_place_afterwards_keeps_its_logged_value(tmp_path):
    running_loss = torch.zeros(())
    with repro.track(runs_dir=tmp_path, flush_every=100) as run:
        for step in range(3):
            running_loss += 1.0  # an accumulator the loop keeps updating in place
            run.log(step, loss=running_loss)
    rows = [r for r in read_metrics(_run_dir(tmp_path)) if "step" in r]
    assert [r["loss"] for r in rows] == [1.0, 2.0, 3.0]


def test_a_final_metric_that_is_not_a_number_is_left_out_and_compare_still_reports(
    tmp_path, capsys
):
    from repro.cli import main

    for accuracy in (0.5, "high"):
        with repro.track(config={"lr": 0.1}, runs_dir=tmp_path) as run:
            run.log(0, loss=1.0)
            if isinstance(accuracy, str):
                with pytest.warns(TrackingWarning, match="eval_accuracy is a str"):
                    run.final(eval_accuracy=accuracy, eval_loss=torch.tensor(0.25))
            else:
                run.final(eval_accuracy=accuracy, eval_loss=torch.tensor(0.25))
    a, b = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    finals = [next(r["final"] for r in read_metrics(d) if "final" in r) for d in (a, b)]
    assert sorted(finals, key=len) == [
        {"eval_loss": 0.25},
        {"eval_accuracy": 0.5, "eval_loss": 0.25},
    ]

    # A run written before final() checked its values: compare says so, no traceback.
    older = b if "eval_accuracy" in finals[1] else a
    metrics = older / "metrics-rank0.jsonl"
    metrics.write_text(
        metrics.read_text().replace('"eval_accuracy": 0.5', '"eval_accuracy": "high"')
    )
    # FAILED, as a NaN is on every path: a final that is no number is a broken run.
    assert main(["compare", str(a), str(b)]) == 4
    out = " ".join(capsys.readouterr().out.split())  # the report wraps its lines
    assert "final eval_accuracy is not a number and is not shown" in out
    assert f"{older.name} failed: its final eval_accuracy = high is not a finite number" in out


def test_a_nan_final_and_its_copy_are_failed_never_identical(example_runs, tmp_path):
    import shutil

    broken = tmp_path / "nan"
    shutil.copytree(example_runs["a"], broken)
    metrics = broken / "metrics-rank0.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"final"' in line)
    final = json.loads(lines[index])
    final["final"]["eval_loss"] = "nan"
    lines[index] = json.dumps(final) + "\n"
    metrics.write_text("".join(lines))
    copy = tmp_path / "nan-copy"
    shutil.copytree(broken, copy)
    comparison = _compare(broken, copy)
    assert comparison.verdict == "FAILED"
    assert "eval_loss = nan is not a finite number" in comparison.summary


def test_a_config_difference_is_another_training_even_when_every_value_agrees(
    example_runs, tmp_path
):
    import shutil

    import yaml

    renamed = tmp_path / "other-config"
    shutil.copytree(example_runs["a"], renamed)
    config = yaml.safe_load((renamed / "config.yaml").read_text())
    config["config"]["note"] = "another setting the script never read"
    (renamed / "config.yaml").write_text(yaml.safe_dump(config))
    comparison = _compare(renamed, example_runs["a"])
    assert comparison.verdict == "DRIFT"
    assert comparison.setting_differences == {"config": ["note"]}


def test_credentials_on_the_command_line_and_in_the_config_are_not_recorded(tmp_path):
    token = "ghp_" + "Q9w8E7r6" * 5
    script = tmp_path / "clone_and_train.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, repro
            config = {{"repo": sys.argv[1], "hosts": [{{"url": sys.argv[1], "token": "t"}}],
                      "headers": {{"Authorization": "Bearer {token}"}}}}
            with repro.track(config=config, runs_dir=sys.argv[2]) as run:
                run.log(0, loss=1.0)
            """
        )
    )
    runs = tmp_path / "runs"
    url = f"https://user:{token}@github.com/org/x.git"
    done = subprocess.run(
        [sys.executable, str(script), url, str(runs), "--hub", f"Authorization: Bearer {token}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = _run_dir(runs)
    for name in ("config.yaml", "manifest.yaml", "manifest-end.yaml"):
        text = (run_dir / name).read_text()
        assert token not in text and "user:" not in text, name
    manifest = yaml.safe_load((run_dir / "manifest.yaml").read_text())
    assert manifest["invocation"]["argv"][1] == "https://github.com/org/x.git"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())["config"]
    assert config["hosts"] == [{"url": "https://github.com/org/x.git", "token": "<redacted>"}]
    assert config["headers"] == {"Authorization": "<redacted>"}


_FILLS_THE_DISK = """
import sys
import repro

with repro.track(config={"lr": 0.1}, runs_dir=sys.argv[1], flush_every=100) as run:
    for step in range(3000):  # ~150 KB of rows: more than the disk holds
        run.log(step, loss=1.0 / (step + 1), note="a row long enough to fill a small disk")
    run.final(eval_loss=0.5)
print("the training finished")
"""


@pytest.mark.slow
def test_a_full_disk_stops_the_record_not_the_training_and_the_run_reads_failed(tmpfs, tmp_path):
    disk = tmpfs("size=64k")
    script = tmp_path / "train.py"
    script.write_text(_FILLS_THE_DISK)
    done = subprocess.run(
        [sys.executable, str(script), str(disk)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "the training finished" in done.stdout, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("repro:")]
    assert line.startswith("repro: FAILED: no space left on device writing ")
    (run_dir,) = [p for p in disk.iterdir() if not p.name.startswith(".")]
    status = yaml.safe_load((run_dir / "status.yaml").read_text())
    assert status["status"] == "FAILED" and "no space left on device" in status["reason"]


def _every_tenth_step(runs: Path, steps: int, accuracy: float) -> Path:
    """A tracked run that logs every tenth of ``steps`` steps, then its final metrics."""
    with repro.track(config={"lr": 0.1}, seed=0, runs_dir=runs) as run:
        for step in range(0, steps, 10):
            run.log(step, loss=1.0 / (step + 1))
        run.final(eval_accuracy=accuracy, eval_loss=0.5)
    (folder,) = (p for p in runs.iterdir() if not p.name.startswith("."))
    return folder


def test_where_tracked_runs_part_is_named_by_the_logged_step_numbers(tmp_path):
    # Logged every tenth step: the runs part after step 90 (final metrics), and where one
    # run logged fewer steps, at the first step the other has and it lacks: step 50, not
    # the row counts (10 and 5) the steps were once placed by.
    a = _every_tenth_step(tmp_path / "a", 100, 0.50)
    final = _compare(a, _every_tenth_step(tmp_path / "b", 100, 0.75)).first_difference
    assert (final.where, final.step) == ("final", 91)
    short = _compare(a, _every_tenth_step(tmp_path / "c", 50, 0.50)).first_difference
    assert (short.where, short.step) == ("record", 50)
