"""Parent side of a run: prepare run directories, launch the ranks, collect the outcome.

Data flows one way: resolve the profile -> create ``runs/<id>/`` (config,
status RUNNING) -> launch torch's elastic launcher with the children's
environment set (threads, cuBLAS workspace) -> rank 0 writes the record and
COMPLETE as its last act -> this module reads the statuses back. It never
imports torch, so it never initialises CUDA.

The launcher runs as ``python -m repro.runs.runner --report R --log L -- <torchrun
arguments>``: torch's elastic agent, as ``torchrun --standalone`` runs it
(``runs.local_launch``), in a process whose Python output (torch's log, its failure
traceback) goes to ``launcher.log`` in the first run's folder, while the ranks keep
the terminal; it writes how each failed rank ended (``ProcessFailure.exitcode``,
negative for a signal) to R, so a rank killed by a signal is named without parsing
torch's text. It imports torch while repro runs the preflight, and starts the ranks
when repro opens its gate: forked from itself on CPU, spawned on CUDA.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from repro import atomic, strict_json
from repro.clock import process_started_at, stamp_phase
from repro.errors import RunInterrupted, UserError, stopped_by
from repro.gc_freeze import frozen_imports
from repro.manifest.cpu import current_usable_cpus as usable_cpus
from repro.profile import Profile, build_profile
from repro.runs.failures import LaunchEnd, failure_reason, read_report
from repro.runs.prepare import PlanEntry, prepare_run, rank_env
from repro.runs.proctree import descendants
from repro.runs.rank_output import RANK_LOG_DIR_ENV, rank_log
from repro.runs.rank_start import training_entry
from repro.runs.store import Run, write_status

_GO = b"1"  # the launcher's gate: start the ranks

LAUNCHER_LOG = "launcher.log"
"""What torch's elastic launcher printed (its log and failure summary), in a launch's first run."""


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    status: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETE"


def _child_env(profile: Profile, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(rank_env(profile, env))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _launch_timeout(profiles: list[Profile]) -> float:
    """A last-resort deadline: collective timeouts end hangs long before it in practice."""
    return sum(60.0 + 2.0 * p.steps for p in profiles) + 3 * profiles[0].collective_timeout_s


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Ask the launcher to stop its ranks (SIGTERM), then kill whatever is left of the tree."""
    tree = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for pid in [proc.pid, *tree, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def launch(
    entries: list[PlanEntry],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    verbose: bool = False,
    before_ranks: Callable[[], None] | None = None,
) -> list[Outcome]:
    """Run prepared entries one after another in a single launch of torch's elastic launcher.

    The launcher's own output goes to ``launcher.log`` in the first entry's folder (removed
    when empty), and also to the terminal with ``verbose``; the ranks' output (rank 0's
    progress) always reaches it.

    ``before_ranks`` runs here while the launcher starts (its torch import, a second or
    two), and the ranks start only once it has returned: ``repro verify``'s preflight. If it
    raises, the launch is called off and the entries' run folders are removed, as if the
    launch had never begun.
    """
    stamp_phase("launch: start")
    profiles = _launch_profiles(entries)
    first = profiles[0]
    child_env = _child_env(first, env)
    log = Path(entries[0].run_dir) / LAUNCHER_LOG
    # Each rank's output (native code's too) goes to rank{N}.log beside the launcher's log:
    # a rank that NCCL's watchdog aborts leaves its reason there and nowhere else.
    child_env[RANK_LOG_DIR_ENV] = str(log.parent)
    deadline = timeout if timeout is not None else _launch_timeout(profiles)
    with tempfile.TemporaryDirectory(prefix="repro-launch-") as scratch:
        plan_path, report_path = Path(scratch) / "plan.json", Path(scratch) / "report.json"
        plan_path.write_text(strict_json.dumps([e.to_dict() for e in entries]))
        command = [sys.executable, "-m", "repro.runs.runner", "--report", str(report_path)]
        command += ["--log", str(log), "--plan", str(plan_path)]
        command += [
            *(["--verbose"] if verbose else []),
            *(["--fork"] if _forks(first, child_env) else []),
        ]
        command += ["--"]
        command += ["--standalone", "--nnodes", "1", "--nproc-per-node", str(first.world_size)]
        command += ["--max-restarts", "0", "--monitor-interval", "0.05"]
        command += ["-m", "repro.runs.rank_start", "--plan", str(plan_path)]
        returncode = _wait(command, child_env, deadline, entries, before_ranks)
        stamp_phase("launch: launcher exited")
        end = read_report(report_path, returncode, deadline, log, child_env, first.world_size)
    outcomes, ended = [], False
    for entry in entries:
        run_dir = Path(entry.run_dir)
        # Runs go in plan order: the first still RUNNING is the one the launch ended in.
        running = _status(run_dir) == "RUNNING"
        outcomes.append(_settle(run_dir, end, not_run=ended))
        ended = ended or running
    _tidy_logs(log, first.world_size, verbose)
    stamp_phase("launch: done")
    return outcomes


def _tidy_logs(log: Path, world_size: int, verbose: bool) -> None:
    """Empty logs leave the run folder; with ``verbose`` the ranks' logs reach the terminal."""
    for path in [log, *(rank_log(log.parent, rank) for rank in range(world_size))]:
        with contextlib.suppress(OSError):
            if path.stat().st_size == 0:
                path.unlink()
            elif verbose and path != log:  # the launcher's own output was teed as it came
                print(f"--- {path}", file=sys.stderr)
                sys.stderr.write(path.read_text(errors="replace"))


SPAWN_RANKS_ENV = "REPRO_SPAWN_RANKS"
"""Set to 1, CPU ranks are spawned as CUDA ranks are: fresh interpreters, a slower start."""


def _forks(profile: Profile, env: dict[str, str]) -> bool:
    """Whether the ranks fork from the launcher (``repro.runs.local_launch``): gloo ranks do;
    CUDA ranks spawn, as CUDA cannot be used in a child forked after it was loaded."""
    return profile.device == "cpu" and env.get(SPAWN_RANKS_ENV) != "1"


def _launch_profiles(entries: list[PlanEntry]) -> list[Profile]:
    """The entries' profiles, which must share what one launch fixes; warns when the CPUs
    are fewer than ranks x threads."""
    profiles = [build_profile(e.settings, e.run_dir) for e in entries]
    first = profiles[0]

    def shared(p: Profile) -> tuple[Any, ...]:
        return (p.world_size, p.threads_per_rank, p.device, p.collective_timeout_s)

    if any(shared(p) != shared(first) for p in profiles[1:]):
        raise ValueError("runs in one launch must share world size, threads, device and timeout")
    needed = first.world_size * first.threads_per_rank
    usable = usable_cpus()
    if first.device == "cpu" and usable < needed:
        print(
            f"repro: warning: {usable} usable CPUs for {first.world_size} ranks x "
            f"{first.threads_per_rank} threads; the run will be slow (the numbers are unaffected).",
            file=sys.stderr,
        )
    return profiles


def _wait(
    command: list[str],
    env: dict[str, str],
    deadline: float,
    entries: list[PlanEntry],
    before_ranks: Callable[[], None] | None,
) -> int | None:
    """The launcher's exit status; None when stopped at the deadline. Ctrl-C ends every rank,
    marks the runs still RUNNING as INTERRUPTED and raises ``RunInterrupted``."""
    # The launcher holds the read end of a pipe whose write end only this process has: when
    # this process dies in any way (kill -9 too), the kernel closes it, and the launcher
    # ends every rank and marks the runs (``_watch_parent``). A second pipe is the gate:
    # the launcher starts the ranks when it reads GO from it, and gives up on anything else.
    alive, held = os.pipe()
    gate, opener = os.pipe()
    command = [*command[:3], "--watch-fd", str(alive), "--gate-fd", str(gate), *command[3:]]
    # A session of its own, so a timeout or Ctrl-C can end every rank and data worker at once.
    try:
        proc = subprocess.Popen(command, env=env, start_new_session=True, pass_fds=(alive, gate))
    finally:
        os.close(alive)
        os.close(gate)
    try:
        _open_gate(proc, opener, entries, before_ranks)
        return _wait_for(proc, deadline, entries)
    finally:
        os.close(held)


def _open_gate(
    proc: subprocess.Popen[bytes],
    opener: int,
    entries: list[PlanEntry],
    before_ranks: Callable[[], None] | None,
) -> None:
    """Run ``before_ranks`` while the launcher starts, then let it start the ranks; if
    ``before_ranks`` raises (an unfit host, Ctrl-C), stop the launcher before any rank has
    started and remove the runs' folders: nothing was run."""
    try:
        if before_ranks is not None:
            before_ranks()
        os.write(opener, _GO)
        stamp_phase("launch: ranks released")
    except BaseException:
        os.close(opener)  # end of file: the launcher exits without starting a rank
        _stop(proc, grace=30.0)
        for entry in entries:
            shutil.rmtree(entry.run_dir, ignore_errors=True)
        raise
    os.close(opener)


def _wait_for(
    proc: subprocess.Popen[bytes], deadline: float, entries: list[PlanEntry]
) -> int | None:
    try:
        return _wait_exited(proc, deadline)
    except subprocess.TimeoutExpired:
        _stop(proc)
        return None
    except KeyboardInterrupt:
        _stop(proc, grace=5.0)
        for entry in entries:
            if _status(Path(entry.run_dir)) == "RUNNING":
                write_status(
                    Path(entry.run_dir), "INTERRUPTED", reason=f"interrupted ({stopped_by()})"
                )
        raise RunInterrupted() from None


def _wait_exited(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """``proc.wait(timeout)``, woken the moment the process ends: Popen's wait with a timeout
    polls, and ended up to 50 ms after the launcher, in every launch."""
    try:
        fd = os.pidfd_open(proc.pid)  # the launcher is not reaped before this wait: no reuse
    except (AttributeError, OSError):  # not Linux 5.3 or later
        return proc.wait(timeout=timeout)
    try:
        ended, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ended:
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return proc.wait()


def _status(run_dir: Path) -> str:
    try:
        return str(Run(run_dir).status["status"])
    except UserError:
        return "RUNNING"


def _settle(run_dir: Path, end: LaunchEnd, *, not_run: bool = False) -> Outcome:
    """Read back a run's final status, turning a run that never finished into FAILED.

    ``not_run``: an earlier run of the launch is the one it ended in, so this one never began.
    """
    status = _status(run_dir)
    if status != "RUNNING":
        reason = Run(run_dir).status.get("reason")
        return Outcome(run_dir, status, reason)
    if not_run:
        reason, kind = "not run: an earlier run in the same launch failed", "crash"
    else:
        reason, kind = failure_reason(run_dir, end)
    write_status(run_dir, "FAILED", reason=reason, kind=kind)
    return Outcome(run_dir, "FAILED", reason)


def run_many(
    profile_name: str,
    set_lists: list[list[str]],
    *,
    runs_dir: Path,
    repo: str | None = None,
    quiet: bool = True,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> list[Outcome]:
    """Prepare one run per ``--set`` list and execute them all in one launch."""
    entries = [
        prepare_run(
            profile_name, sets, runs_dir=runs_dir, repo=repo, quiet=quiet, argv=argv, env=env
        )
        for sets in set_lists
    ]
    return launch(entries, env=env)


# -- the launcher process ---------------------------------------------------------------------


class _Tee(io.TextIOBase):
    """A text stream that writes to several; its ``fileno`` is the first one's (faulthandler)."""

    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def fileno(self) -> int:
        return self.streams[0].fileno()


_TIDYING = threading.Lock()
"""Held by ``_watch_parent`` once repro is gone, until it has tidied up and ended the process."""


def _watch_parent(fd: int, plan: Path | None, scratch: Path) -> None:
    """Block until the repro process that started this launch is gone (its end of the pipe
    closes: exit, crash or SIGKILL); if it went first, end every rank and data worker, mark
    the runs still RUNNING as INTERRUPTED, remove the launch's scratch folder, and exit."""
    while os.read(fd, 1):
        pass
    _TIDYING.acquire()  # held to the end: the main thread must not exit before this one
    entries = json.loads(plan.read_text()) if plan is not None and plan.exists() else []
    for pid in reversed(descendants(os.getpid())):  # the deepest first
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    for entry in entries:
        run_dir = Path(entry["run_dir"])
        with contextlib.suppress(OSError, UserError):
            if _status(run_dir) == "RUNNING":
                write_status(
                    run_dir, "INTERRUPTED", reason="the repro command running it was killed"
                )
    shutil.rmtree(scratch, ignore_errors=True)
    os._exit(137)  # 128 + SIGKILL: what ended the launch


def _launcher_main(argv: list[str]) -> int:
    """Run torch's elastic launcher (``torch.distributed.run``) and report its ranks' ends.

    ``argv``: ``--report R --log L [--verbose] -- <torchrun arguments>``. The ranks inherit
    this process's file descriptors and so keep the terminal (rank 0's progress line needs
    it); only the launcher's own Python output -- torch's log lines and the traceback of
    its ChildFailedError -- goes to L, and with ``--verbose`` to the terminal as well.
    """
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m repro.runs.runner")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--plan", type=Path, help="the runs this launch executes")
    parser.add_argument("--fork", action="store_true", help="fork the ranks from this process")
    parser.add_argument("--watch-fd", type=int, help="a pipe that closes when repro dies")
    parser.add_argument("--gate-fd", type=int, help="a pipe: start the ranks on GO, else exit")
    args = parser.parse_args(argv[:split])
    if args.watch_fd is not None:
        threading.Thread(
            target=_watch_parent, args=(args.watch_fd, args.plan, args.report.parent), daemon=True
        ).start()
    log = open(args.log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- lives as long as the process
    # Before torch is imported: its log handlers bind to sys.stderr when they are created.
    sys.stdout = sys.stderr = _Tee(log, sys.stderr) if args.verbose else log

    stamp_phase("launcher: started", at=process_started_at())
    with frozen_imports():
        from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

        # Imported here, with torch, in the launcher process alone.
        from repro.runs.local_launch import launch_local

        if args.fork:
            # Imported before the fork, so that forked ranks begin with torch and the
            # training code loaded (a spawned rank imports them itself).
            training_entry()
    stamp_phase("launcher: imported torch")
    if args.gate_fd is not None and os.read(args.gate_fd, 1) != _GO:
        return 0  # called off before any rank started; repro removes the runs' folders

    try:
        launch_local(argv[split + 1 :], fork=args.fork)
    except ChildFailedError as failed:
        exits = [
            {"rank": rank, "exitcode": failure.exitcode}
            for rank, failure in sorted(failed.failures.items())
        ]
        atomic.write_json(args.report, {"rank_exits": exits})
        traceback.print_exc()
        return 1
    except Exception as exc:
        first_line = (str(exc).strip().splitlines() or [""])[0]
        atomic.write_json(args.report, {"launcher_error": f"{type(exc).__name__}: {first_line}"})
        raise
    return 0


if __name__ == "__main__":
    try:
        code = _launcher_main(sys.argv[1:])
    except Exception:
        traceback.print_exc()  # to launcher.log; the report says what failed
        code = 1
    # Its ranks are gone and its report written: the interpreter's teardown of torch's
    # modules (about a tenth of a second) would only delay repro's verdict. Unless repro
    # died: then the watcher tidies up and ends the process (_watch_parent).
    sys.stdout.flush()
    sys.stderr.flush()
    with _TIDYING:
        os._exit(code)
