"""Relaunching a tracked torchrun script on the same fixed port: every rank of each launch
logs into that launch's own folder, never into the previous launch's."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import repro
from repro.runs.tracked import read_metrics, tracked_status

# ``track`` entered before or after the process group exists: the launch's store then
# comes from torchrun's agent or from the process group.
SCRIPT = textwrap.dedent(
    """
    import os, sys
    import torch.distributed as dist
    import repro

    launch, runs, init_first = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    tracked_runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if init_first:
        dist.init_process_group("gloo")
    for n in range(tracked_runs):  # numbered on from the launch's number
        with repro.track(config={"launch": launch}, seed=0, runs_dir=runs) as run:
            if not dist.is_initialized():
                dist.init_process_group("gloo")
            run.log(0, launch=launch + n)
    dist.destroy_process_group()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _launch(
    script: Path,
    where: list[str],
    launch: int,
    runs: Path,
    init_first: bool,
    *tracked_runs: str,
    **env: str,
) -> None:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", *where]
    command += [str(script), str(launch), str(runs), "1" if init_first else "0", *tracked_runs]
    env = {**os.environ, "OMP_NUM_THREADS": "1", **env}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.parametrize("init_first", [True, False], ids=["group-first", "track-first"])
def test_back_to_back_launches_on_one_port_each_log_every_rank_into_their_own_folder(
    tmp_path: Path, init_first: bool
) -> None:
    script, runs = tmp_path / "train.py", tmp_path / "runs"
    script.write_text(SCRIPT)
    # A fixed --master-port and no --rdzv-id: every launch shares torchrun's default
    # rendezvous id, address and port, as two launches of one command line do.
    where, launches = ["--nnodes", "1", "--master-port", str(_free_port())], 3
    for launch in range(launches):
        _launch(script, where, launch, runs, init_first)
    _assert_one_folder_per_tracked_run(runs, launches)
    assert not (runs / ".track").exists()  # the store named the folder, not a file


def test_without_the_agent_store_ranks_find_the_folder_through_files_named_by_the_launch(
    tmp_path: Path,
) -> None:
    script, runs = tmp_path / "train.py", tmp_path / "runs"
    script.write_text(SCRIPT)
    # torchrun then gives the ranks no store before the process group exists.
    no_store = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
    for launch in range(2):
        _launch(script, ["--standalone"], launch, runs, False, **no_store)
    _assert_one_folder_per_tracked_run(runs, 2)
    assert len(list((runs / ".track").iterdir())) == 2  # one folder of names per launch


def test_two_tracked_runs_in_one_launch_each_get_their_own_folder(tmp_path: Path) -> None:
    script, runs = tmp_path / "train.py", tmp_path / "runs"
    script.write_text(SCRIPT)
    _launch(script, ["--nnodes", "1", "--master-port", str(_free_port())], 0, runs, True, "2")
    _assert_one_folder_per_tracked_run(runs, 2)


def test_a_rank_with_no_way_to_learn_the_folder_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run = repro.track(runs_dir=tmp_path / "runs")
    with pytest.raises(RuntimeError, match=r"init_process_group before repro\.track"):
        run.__enter__()
    assert not (tmp_path / "runs").exists()


def _assert_one_folder_per_tracked_run(runs: Path, count: int) -> None:
    folders = sorted(p for p in runs.iterdir() if not p.name.startswith("."))
    assert len(folders) == count
    seen = set()
    for folder in folders:
        assert tracked_status(folder)["status"] == "COMPLETE"
        logged = {
            rank: [r["launch"] for r in read_metrics(folder, rank) if "step" in r]
            for rank in (0, 1)
        }
        (launch,) = logged[0]
        assert logged == {0: [launch], 1: [launch]}, folder.name
        seen.add(launch)
    assert seen == set(range(count))  # every run's ranks share its folder, and only it
