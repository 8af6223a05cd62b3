"""`repro explain`: causes confirmed by real reruns on this machine (smoke profile)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.cli import main
from repro.explain.knobs import read_differences
from repro.explain.search import smallest_cause
from repro.manifest.cpu import this_cpu_highest_kernel_level
from repro.runs.runview import RunView


def _run(runs: Path, *sets: str, **env: str) -> str:
    """One smoke run in its own process (a kernel level must be set before torch starts)."""
    before = set(runs.iterdir()) if runs.is_dir() else set()
    command = [
        sys.executable,
        "-m",
        "repro",
        "run",
        "--profile",
        "smoke",
        "--runs-dir",
        str(runs),
        "--quiet",
    ]
    for pair in sets:
        command += ["--set", pair]
    done = subprocess.run(
        command, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (new,) = set(runs.iterdir()) - before
    return str(new)


@pytest.fixture(scope="module")
def machines(tmp_path_factory: pytest.TempPathFactory, cpu_capability: str) -> dict[str, str]:
    if cpu_capability.lower() not in ("avx2", "avx512"):
        pytest.skip("needs a CPU kernel level with one below it")
    root = tmp_path_factory.mktemp("explain")
    return {
        "here": _run(root / "here"),
        # "The other machine": one kernel level down and two threads per rank.
        "two": _run(root / "two", "threads_per_rank=2", ATEN_CPU_CAPABILITY="default"),
        "one": _run(root / "one", ATEN_CPU_CAPABILITY="default"),
    }


def _explain(capsys, *args: str) -> tuple[int, dict]:
    code = main(["explain", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_two_knobs_at_once_are_confirmed_as_exactly_that_pair(machines, tmp_path, capsys):
    code, data = _explain(
        capsys, machines["two"], "--here", machines["here"], "--runs-dir", str(tmp_path)
    )
    assert code == 0, data["conclusion"]
    assert data["search"]["outcome"] == "confirmed"
    assert sorted(data["search"]["knobs"]) == ["ATEN_CPU_CAPABILITY", "threads_per_rank"]
    trials = data["search"]["trials"]
    # Each knob alone was tried and failed: no smaller set reproduces the other run.
    singles = [t for t in trials if len(t["knobs"]) == 1]
    assert singles and not any(t["identical"] for t in singles)
    assert trials[-1]["identical"]  # the confirming rerun
    runs = [yaml.safe_load((Path(r["run"]) / "config.yaml").read_text()) for r in data["runs"]]
    assert all(c["argv"][:2] == ["repro", "explain"] for c in runs)  # marked as explain runs


def test_one_knob_is_confirmed_in_at_most_three_reruns_and_here_is_made_when_absent(
    machines, tmp_path, capsys
):
    code, data = _explain(capsys, machines["one"], "--runs-dir", str(tmp_path))
    assert code == 0 and data["search"]["knobs"] == ["ATEN_CPU_CAPABILITY"]
    assert len(data["search"]["trials"]) <= 3
    assert len(data["runs"]) == len(data["search"]["trials"]) + 1  # + the run made for "here"


def test_a_semantic_difference_is_named_without_a_rerun(smoke_runs, tmp_path, capsys):
    runs, md, page = tmp_path / "runs", tmp_path / "explain.md", tmp_path / "explain.html"
    code, data = _explain(
        capsys, str(smoke_runs["lr"]), "--here", str(smoke_runs["primary"]),
        "--runs-dir", str(runs), "--md", str(md), "--html", str(page),
    )  # fmt: skip
    assert code == 0 and data["runs"] == [] and data["search"] is None
    assert any("another training" in c or "fault" in c for c in data["causes"]), data["causes"]
    assert not runs.exists() or not any(runs.iterdir())
    assert data["conclusion"] in md.read_text() and "<h1>repro explain" in page.read_text()


def test_a_level_this_cpu_lacks_cannot_be_tried_and_the_other_machine_gets_a_command(
    machines, tmp_path, capsys
):
    # This CPU's ceiling, from the CPU itself: machines["here"] ran at the default level.
    if this_cpu_highest_kernel_level() != "avx2":
        pytest.skip("needs a CPU whose highest x86 kernel level is AVX2")
    other = _with_level(machines["one"], tmp_path / "avx512-machine", "AVX512")
    code, data = _explain(
        capsys, str(other), "--here", machines["here"], "--runs-dir", str(tmp_path / "runs")
    )
    assert code == 3 and data["runs"] == []
    (knob,) = data["knobs"]
    assert knob["name"] == "ATEN_CPU_CAPABILITY" and "SIGILL" in knob["cannot"]
    assert data["other_machine"].startswith("ATEN_CPU_CAPABILITY=")
    assert "repro run --profile smoke" in data["other_machine"]


def _with_level(run: str, copy: Path, level: str) -> Path:
    shutil.copytree(run, copy)
    manifest = yaml.safe_load((copy / "manifest.yaml").read_text())
    manifest["hardware"]["cpu"]["torch_capability"] = level
    (copy / "manifest.yaml").write_text(yaml.safe_dump(manifest))
    return copy


def test_a_here_run_made_at_a_lowered_level_does_not_lower_what_this_cpu_can_try(
    machines, tmp_path
):
    # machines["one"] ran under ATEN_CPU_CAPABILITY=default; this CPU can still run its own
    # highest level, so the other run's level is a knob to try, not "cannot be tried".
    ceiling = this_cpu_highest_kernel_level()
    assert ceiling in ("avx2", "avx512")
    other = _with_level(machines["here"], tmp_path / "other", ceiling.upper())
    found = read_differences(RunView.from_run_dir(other), RunView.from_run_dir(machines["one"]))
    (knob,) = [k for k in found.knobs if k.name == "ATEN_CPU_CAPABILITY"]
    assert (knob.here, knob.other, knob.cannot) == ("default", ceiling, "")


def test_the_search_tries_everything_first_and_stops_when_nothing_reproduces():
    calls = []

    def reproduces(subset):
        calls.append(subset)
        return set(subset) >= {"b", "c"}, ""

    found = smallest_cause(["a", "b", "c"], reproduces, max_runs=8)
    assert found.outcome == "confirmed" and found.knobs == ("b", "c")
    assert calls[0] == ("a", "b", "c") and calls[-1] == ("b", "c")
    none = smallest_cause(["a", "b"], lambda s: (False, ""), max_runs=8)
    assert none.outcome == "not explained" and len(none.trials) == 1
    short = smallest_cause(["a", "b", "c"], reproduces, max_runs=2)
    assert short.outcome == "out of runs" and len(short.trials) == 2


def _gpu_view(name: str, gpus: int, world_size: int, env: dict[str, str]) -> RunView:
    from repro.profile import load_profile

    settings = load_profile("full", {"world_size": world_size}).to_dict()
    manifest = {
        "hardware": {"cuda": {"available": True}, "gpus": [{"name": "H100"}] * gpus, "cpu": {}},
        "run": {"world_size": world_size},
        "env": env,
    }
    config = {"profile": "full", "settings": settings}
    return RunView(name, f"/runs/{name}", {"status": "COMPLETE"}, config, manifest, None)


def test_nccl_knobs_are_offered_only_where_nccl_moves_data_and_ranks_only_up_to_the_gpus():
    other_env = {"NCCL_ALGO": "Ring", "NCCL_NVLS_ENABLE": "1"}
    # One GPU here, one rank there and here: NCCL moves nothing, so neither knob can matter.
    alone = read_differences(_gpu_view("o", 8, 1, other_env), _gpu_view("h", 1, 1, {}))
    cannot = {k.name: k.cannot for k in alone.knobs}
    assert set(cannot) == {"NCCL_ALGO", "NCCL_NVLS_ENABLE"}
    assert all("world size 1" in why for why in cannot.values())
    # Two GPUs here, two ranks: the NCCL knobs can be tried; eight ranks cannot.
    two = read_differences(_gpu_view("o", 8, 8, other_env), _gpu_view("h", 2, 2, {}))
    cannot = {k.name: k.cannot for k in two.knobs}
    assert cannot["NCCL_ALGO"] == cannot["NCCL_NVLS_ENABLE"] == ""
    assert cannot["world_size"] == "this machine has 2 GPUs; 8 ranks need one each"


def test_a_tracked_run_is_refused_with_what_explain_needs(tmp_path, capsys):
    """explain reruns the reference training; a script's own training cannot be rerun."""
    import repro
    from repro.baselines.baseline import shipped_dir

    with repro.track(config={"lr": 0.1}, seed=0, runs_dir=tmp_path / "runs") as run:
        for step in range(3):
            run.log(step, loss=1.0 / (step + 1))
        run.final(eval_loss=0.25)
    (tracked,) = (tmp_path / "runs").iterdir()
    baseline = next(p for p in shipped_dir().iterdir() if (p / "baseline.yaml").is_file())
    # As OTHER, and as --here beside a complete OTHER (nothing is rerun either way).
    for argv in ([str(tracked)], [str(baseline), "--here", str(tracked)]):
        code = main(["explain", *argv, "--runs-dir", str(tmp_path / "reruns")])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"{tracked} is a tracked run (repro.track): explain reruns the reference" in err
        assert "record.json" not in err and err.count("\n") == 1, err
    assert not (tmp_path / "reruns").exists()
