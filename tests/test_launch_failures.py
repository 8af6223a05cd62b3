"""How a launch that ends badly is reported: which rank died by which signal, and what to try.

The launch tests start real ranks under torch's elastic launcher (gloo, smoke profile)
and kill one with a real signal; the rest build the reasons and hints from data.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shlex
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from repro import atomic
from repro.judge.causes import rank_causes, render_try, rules
from repro.manifest.diff import diff_manifests
from repro.runs.failures import LaunchEnd, RankExit, describe_signal, failure_reason
from repro.runs.local_launch import RANK_NAME
from repro.runs.prepare import prepare_run
from repro.runs.proctree import descendants, parent_pid
from repro.runs.runner import LAUNCHER_LOG, launch
from repro.runs.runview import RunView
from repro.runs.store import Run

SIGILL, SIGKILL, SIGTERM = int(signal.SIGILL), int(signal.SIGKILL), int(signal.SIGTERM)


def _end(tmp_path: Path, *exits: tuple[int, int], **fields: Any) -> LaunchEnd:
    fields.setdefault("returncode", 1)
    rank_exits = tuple(RankExit(rank, code) for rank, code in exits)
    return LaunchEnd(deadline=60.0, log=tmp_path / LAUNCHER_LOG, rank_exits=rank_exits, **fields)


# -- reasons, from data ------------------------------------------------------------------------


def test_sigill_names_the_capability_the_environment_selects() -> None:
    text = describe_signal(SIGILL, {"ATEN_CPU_CAPABILITY": "avx512"})
    assert text == (
        "SIGILL (illegal instruction): this CPU cannot run the kernels "
        "ATEN_CPU_CAPABILITY=avx512 selects"
    )
    assert describe_signal(SIGILL, {}) == (
        "SIGILL (illegal instruction): this CPU cannot run the selected kernels"
    )


@pytest.mark.parametrize(
    ("signum", "expected"),
    [
        (SIGKILL, "SIGKILL (killed): often by the out-of-memory killer"),
        (int(signal.SIGSEGV), "SIGSEGV (segmentation fault): "),
        (int(signal.SIGBUS), "SIGBUS (bus error): "),
        (int(signal.SIGABRT), "SIGABRT (aborted): "),
        (int(signal.SIGUSR1), "SIGUSR1 (user defined signal 1)"),  # by the C library's words
        (200, "signal 200"),
    ],
)
def test_each_signal_is_named_in_words(signum: int, expected: str) -> None:
    assert describe_signal(signum).startswith(expected)


def test_ranks_killed_by_one_signal_share_a_sentence(tmp_path: Path) -> None:
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    end = _end(tmp_path, (1, -SIGILL), (0, -SIGILL), env=env)
    reason, kind = failure_reason(tmp_path, end)
    assert reason.startswith("ranks 0 and 1 were killed by SIGILL (illegal instruction): ")
    assert kind == "crash"


def test_the_ranks_the_agent_stops_are_not_the_cause(tmp_path: Path) -> None:
    # Rank 1 died first; the agent then ended rank 0 with SIGTERM.
    end = _end(tmp_path, (0, -SIGTERM), (1, -SIGILL), env={"ATEN_CPU_CAPABILITY": "avx512"})
    (tmp_path / LAUNCHER_LOG).write_text("ChildFailedError\n")
    reason, _ = failure_reason(tmp_path, end)
    assert reason == (
        "rank 1 was killed by SIGILL (illegal instruction): this CPU cannot run the kernels "
        f"ATEN_CPU_CAPABILITY=avx512 selects; the launcher's output is in {end.log}"
    )


def test_a_killed_rank_comes_before_the_errors_it_caused(tmp_path: Path) -> None:
    atomic.write_json(
        tmp_path / "error-rank0.json",
        {"rank": 0, "error": "RuntimeError: Connection closed by peer", "traceback": ""},
    )
    reason, _ = failure_reason(tmp_path, _end(tmp_path, (0, 1), (1, -SIGKILL)))
    assert reason == (
        "rank 1 was killed by SIGKILL (killed): often by the out-of-memory killer (see `dmesg`); "
        "rank 0 raised RuntimeError: Connection closed by peer"
    )


@pytest.mark.parametrize(
    ("exits", "fields", "expected", "kind"),
    [
        ([(1, 3), (0, -SIGTERM)], {}, "rank 1 exited with code 3", "crash"),
        ([(0, -SIGTERM)], {}, "rank 0 was killed by SIGTERM (terminated)", "crash"),
        (
            [],
            {"launcher_error": "RendezvousError: no"},
            "the launcher failed: RendezvousError: no",
            "crash",
        ),
        ([], {"returncode": -SIGKILL}, "the launcher was killed by SIGKILL (killed)", "crash"),
        (
            [],
            {"returncode": 2},
            "the launcher exited with code 2 before this run completed",
            "crash",
        ),
        ([], {"returncode": None}, "the launch did not finish within 60 s and was stopped", "hang"),
        ([], {"returncode": 0}, "not run: an earlier run in the same launch failed", "crash"),
    ],
)
def test_what_the_launcher_says_when_no_rank_names_a_cause(
    tmp_path: Path, exits: list[tuple[int, int]], fields: dict[str, Any], expected: str, kind: str
) -> None:
    reason, got_kind = failure_reason(tmp_path, _end(tmp_path, *exits, **fields))
    assert reason.startswith(expected) and got_kind == kind


# -- real launches -----------------------------------------------------------------------------


def _rank_pid(rank: int, timeout: float = 90.0) -> int:
    """The process of ``rank`` among this test's own descendants: a child of the launcher."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in descendants(os.getpid()):
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                parent = Path(f"/proc/{parent_pid(pid)}/cmdline").read_bytes()
                parent_name = Path(f"/proc/{parent_pid(pid)}/comm").read_text()
            except (OSError, IndexError, ValueError):
                continue
            # A spawned rank has RANK in its environment from the start; a forked one (CPU)
            # sets it later, after /proc/PID/environ was fixed, and is named by its rank.
            # Data-loader workers inherit both; the rank's parent is the launcher.
            spawned = f"RANK={rank}".encode() in environ
            forked = name == f"{RANK_NAME}{rank}" and not parent_name.startswith(RANK_NAME)
            if (spawned or forked) and b"repro.runs.runner" in parent:
                return pid
        time.sleep(0.05)
    raise AssertionError(f"rank {rank} did not start within {timeout:.0f} s")


def _wait_for(path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout:.0f} s"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_a_rank_killed_by_a_signal_is_named(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], verbose: bool
) -> None:
    entries = [
        prepare_run("smoke", [], runs_dir=tmp_path, quiet=True, git_sha="0000000") for _ in range(2)
    ]
    first, second = (Path(e.run_dir) for e in entries)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(launch, entries, verbose=verbose)
        _wait_for(first / "manifest.yaml")  # rank 0 has begun the first run
        os.kill(_rank_pid(1), signal.SIGKILL)
        killed, not_run = running.result(timeout=180)

    assert not killed.ok and killed.run_dir == first
    assert killed.reason is not None
    assert killed.reason.startswith(
        "rank 1 was killed by SIGKILL (killed): often by the out-of-memory killer"
    ), killed.reason
    log = first / LAUNCHER_LOG
    assert f"the launcher's output is in {log}" in killed.reason
    assert Run(first).status["kind"] == "crash"
    assert "ChildFailedError" in log.read_text()
    # The run after it never started, and says so.
    assert not_run.run_dir == second
    assert not_run.reason == "not run: an earlier run in the same launch failed"
    # torchrun's log and traceback reach the terminal only with verbose.
    err = capfd.readouterr().err
    assert ("ChildFailedError" in err) == verbose
    assert ("torch/distributed/elastic" in err) == verbose


def _has_avx512() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True
    return any("avx512f" in line.split() for line in text.splitlines() if line.startswith("flags"))


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine() != "x86_64" or _has_avx512(),
    reason="needs an x86-64 CPU without AVX-512 (with it, avx512 kernels run and no rank dies)",
)
def test_avx512_kernels_on_a_cpu_without_them_end_in_sigill(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {"ATEN_CPU_CAPABILITY": "avx512"}
    entry = prepare_run("smoke", [], runs_dir=tmp_path, quiet=True, git_sha="0000000", env=env)
    (outcome,) = launch([entry], env=env)

    assert outcome.status == "FAILED" and outcome.reason is not None
    assert re.match(
        r"(rank \d was|ranks 0 and 1 were) killed by SIGILL \(illegal instruction\): this CPU "
        r"cannot run the kernels ATEN_CPU_CAPABILITY=avx512 selects; the launcher's output is in ",
        outcome.reason,
    ), outcome.reason
    err = capfd.readouterr().err
    assert "Traceback" not in err and "ChildFailedError" not in err


# -- what to try next: one paste-able command ----------------------------------------------------


def _view(name: str, manifest: dict[str, Any], settings: dict[str, Any], **config: Any) -> RunView:
    config = {"profile": "smoke", "settings": settings, **config}
    return RunView(name, f"/runs/{name}", {"status": "COMPLETE"}, config, manifest, None)


def _cpu(capability: str, flags: list[str]) -> dict[str, Any]:
    return {"hardware": {"cpu": {"torch_capability": capability, "isa_flags": flags}}}


def _commands(text: str) -> list[list[str]]:
    """Every `backticked` command of a hint, split as a shell would."""
    return [shlex.split(code) for code in re.findall(r"`([^`]+)`", text)]


def _kernel_cause(candidate: RunView, reference: RunView) -> str:
    differences = diff_manifests(candidate.manifest, reference.manifest)
    causes = rank_causes("DRIFT", None, differences, candidate, reference)
    (cause,) = [c for c in causes if c.cause == "CPU kernel capability"]
    return cause.try_next


def test_a_capability_difference_suggests_one_level() -> None:
    candidate = _view("here", _cpu("AVX2", ["avx", "avx2", "f16c", "fma"]), {"seed": 1})
    reference = _view("there", _cpu("AVX512", ["avx", "avx2", "avx512f"]), {"seed": 1})
    try_next = _kernel_cause(candidate, reference)

    (command,) = _commands(try_next)
    assignment, *rest = command
    assert assignment == "ATEN_CPU_CAPABILITY=avx2"
    assert rest == ["repro", "run", "--profile", "smoke"]


def test_one_capability_with_other_isa_flags_suggests_no_list() -> None:
    # As under `ATEN_CPU_CAPABILITY=avx512` on a CPU without AVX-512: both report AVX512, so
    # the ISA flags are the rule's first difference, which once rendered as
    # `ATEN_CPU_CAPABILITY=[avx, avx2, f16c, fma]`.
    candidate = _view("here", _cpu("AVX512", ["avx", "avx2", "f16c", "fma"]), {"seed": 1})
    reference = _view("there", _cpu("AVX512", ["avx", "avx2", "avx512f"]), {"seed": 1})
    try_next = _kernel_cause(candidate, reference)

    assert "[" not in try_next and "{" not in try_next
    for command in _commands(try_next):
        for word in command:
            if re.match(r"^[A-Z_]+=", word):
                assert re.fullmatch(r"[A-Z_]+=[A-Za-z0-9_]+", word), word


def test_values_are_quoted_into_one_word() -> None:
    rule = {"try": "`repro run --profile {profile} --set seed={reference[config.seed]}`"}
    candidate = _view("here", {}, {"seed": 1}, profile="my profiles/quick.yaml")
    reference = _view("there", {}, {"seed": 7})
    (command,) = _commands(render_try(rule, candidate, reference))
    assert command == ["repro", "run", "--profile", "my profiles/quick.yaml", "--set", "seed=7"]


@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["id"])
def test_every_rule_renders_whatever_is_unknown(rule: dict[str, Any]) -> None:
    empty = _view("empty", {}, {})
    lists = _view("lists", {"hardware": {"cpu": {"torch_capability": ["AVX2"]}}}, {"seed": [1]})
    known = _view(
        "known",
        _cpu("AVX512", ["avx2"]),
        {"seed": 7, "threads_per_rank": 2, "world_size": 1, "amp_dtype": "float16"},
    )
    for candidate, reference in [(empty, empty), (lists, known), (known, lists), (empty, known)]:
        text = render_try(rule, candidate, reference)
        assert not re.search(r"[{}]|\[.*\]", text), text
        for command in _commands(text):
            assert command and "<absent>" not in command


# -- a hung NCCL collective: the watchdog aborts the waiting rank (SIGABRT) ----------------------

# A rank as NCCL's watchdog leaves it: progress written after each step, then the watchdog's
# log line on its standard error (torch 2.13's wording) and an abort; the other rank hangs.
_WATCHDOG_RANK = """
import os, sys, time
from pathlib import Path
from repro.runs.rank_output import Progress, capture_output

rank = int(os.environ["RANK"])
capture_output(rank)
progress = Progress(Path(sys.argv[1]), rank)
for step in range(4 if rank == 0 else 7):
    progress.finished(step)
if rank == 0:
    print(
        "[rank0]:[E1206 01:02:03.000000000 ProcessGroupNCCL.cpp:685] [Rank 0] Watchdog caught "
        "collective operation timeout: WorkNCCL(SeqNum=9, OpType=ALLREDUCE, NumelIn=1024, "
        "NumelOut=1024, Timeout(ms)=30000) ran for 30012 milliseconds before timing out.",
        file=sys.stderr, flush=True,
    )
    os.abort()
time.sleep(120)  # rank 1: alive, never joining
"""


@pytest.mark.slow
def test_a_rank_the_nccl_watchdog_aborts_is_named_as_a_hang_with_its_step(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    from repro.runs.failures import read_report
    from repro.runs.rank_output import RANK_LOG_DIR_ENV

    script, report, log = tmp_path / "rank.py", tmp_path / "report.json", tmp_path / LAUNCHER_LOG
    script.write_text(_WATCHDOG_RANK)
    command = [
        sys.executable,
        "-m",
        "repro.runs.runner",
        "--report",
        str(report),
        "--log",
        str(log),
    ]
    command += ["--", "--standalone", "--nnodes", "1", "--nproc-per-node", "2"]
    command += ["--max-restarts", "0", "--monitor-interval", "0.2", str(script), str(tmp_path)]
    env = {**os.environ, RANK_LOG_DIR_ENV: str(tmp_path)}
    started = time.monotonic()
    code = subprocess.run(command, env=env, timeout=90).returncode
    assert time.monotonic() - started < 60  # rank 1 was torn down, not waited for

    end = read_report(report, code, 60.0, log, env, world_size=2)
    assert {(e.rank, e.exitcode) for e in end.rank_exits} >= {(0, -int(signal.SIGABRT))}
    reason, kind = failure_reason(tmp_path, end)
    assert kind == "hang"
    assert reason.startswith(
        "rank 1 did not join the collective after step 3 (allreduce): NCCL's watchdog aborted "
        "rank 0 after waiting 30.012 s (the profile's collective_timeout_s) for it"
    ), reason
    assert str(tmp_path / "rank*.log") in reason
    # The watchdog's line stayed in the rank's log, off the terminal.
    assert "Watchdog caught" not in capfd.readouterr().err


_REPRO_RUN = [sys.executable, "-m", "repro", "run", "--profile", "smoke", "--quiet"]


@pytest.fixture
def full_disk(tmpfs) -> Path:
    """Room for a run's config and manifest, not for its checkpoint."""
    return tmpfs("size=64k")


@pytest.mark.slow
def test_a_full_disk_fails_the_run_in_one_sentence_and_leaves_no_temp_file(full_disk: Path):
    import subprocess

    done = subprocess.run(
        [*_REPRO_RUN, "--runs-dir", str(full_disk)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 4, done.stderr
    assert "repro: FAILED: no space left on device writing the run folder" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (run_dir,) = full_disk.iterdir()
    assert Run(run_dir).status["status"] == "FAILED"  # rewritten in place: no room for a copy
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow
def test_kill_9_of_the_cli_ends_the_launcher_and_every_rank(tmp_path: Path):
    import subprocess
    import uuid

    marker = uuid.uuid4().hex
    cli = subprocess.Popen(
        [*_REPRO_RUN, "--set", "steps=2000", "--runs-dir", str(tmp_path)],
        env={**os.environ, "REPRO_TEST_MARKER": marker},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the CLI alone gets the signal, as `kill -9 PID` sends it
    )
    (run_dir,) = _wait_for_one(tmp_path)
    _wait_for(run_dir / "manifest.yaml")  # the ranks are training
    os.kill(cli.pid, signal.SIGKILL)
    cli.wait(timeout=10)

    deadline = time.monotonic() + 20
    while _tagged(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _tagged(marker) == []  # launcher, ranks and data workers: all gone
    status = Run(run_dir).status
    assert status["status"] == "INTERRUPTED", status
    assert "killed" in status["reason"]
    # This launch's scratch folder is gone (another launch on the machine may have its own).
    assert _scratch_folders_of(run_dir) == []


def _scratch_folders_of(run_dir: Path) -> list[Path]:
    """The launch scratch folders whose plan names ``run_dir``."""
    import tempfile

    found = []
    for plan in Path(tempfile.gettempdir()).glob("repro-launch-*/plan.json"):
        with contextlib.suppress(OSError):  # another launch's, removed meanwhile
            if str(run_dir) in plan.read_text(errors="replace"):
                found.append(plan.parent)
    return found


def _wait_for_one(folder: Path, timeout: float = 60.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while not any(folder.iterdir()):
        assert time.monotonic() < deadline, f"no run folder in {folder}"
        time.sleep(0.05)
    return list(folder.iterdir())


def _tagged(marker: str) -> list[int]:
    """Live processes whose environment carries the marker (the killed CLI's whole tree)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                environ = (entry / "environ").read_bytes()
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if f"REPRO_TEST_MARKER={marker}".encode() in environ and state != "Z":
                found.append(int(entry.name))
    return found
