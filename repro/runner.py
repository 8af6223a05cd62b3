"""Parent side of a run: prepare run directories, launch the ranks, collect the outcome.

Data flows one way: resolve the profile -> create ``runs/<id>/`` (config,
status RUNNING) -> launch torch's elastic launcher with the children's
environment set (threads, cuBLAS workspace) -> rank 0 writes the record and
COMPLETE as its last act -> this module reads the statuses back. It never
imports torch, so it never initialises CUDA.

The launcher runs as ``python -m repro.runner --report R --log L -- <torchrun
arguments>``: torch's own ``torch.distributed.run`` in a process whose Python
output (torch's log, its failure traceback) goes to ``launcher.log`` in the
first run's folder, while the ranks keep the terminal; it writes how each
failed rank ended (``ProcessFailure.exitcode``, negative for a signal) to R, so
a rank killed by a signal is named without parsing torch's text.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from repro import atomic
from repro.errors import RunInterrupted, UserError
from repro.manifest.cpu import current_usable_cpus as usable_cpus
from repro.profile import Profile, load_profile, parse_overrides
from repro.store import CONFIG_SCHEMA_VERSION, Run, create_unique_run_dir, write_status
from repro.workload import workload_hash

# Variables a user sets to steer kernels or communication; they pass through
# untouched, and the reproduce command repeats them.
STEERING_ENV_PREFIXES = (
    "ATEN_",
    "DNNL_",
    "ONEDNN_",
    "NCCL_",
    "TORCH_",
    "CUBLAS_",
    "CUDA_VISIBLE_DEVICES",
)
INTERNAL_KEYS = ("band_member",)
LAUNCHER_LOG = "launcher.log"
"""What torch's elastic launcher printed (its log and failure summary), in a launch's first run."""

# What a process's death by a signal usually means: (the signal in words, what to suspect).
# Any other signal is named by the C library's description (``signal.strsignal``).
SIGNAL_MEANINGS: dict[int, tuple[str, str]] = {
    signal.SIGILL: ("illegal instruction", "this CPU cannot run the selected kernels"),
    signal.SIGKILL: ("killed", "often by the out-of-memory killer (see `dmesg`)"),
    signal.SIGSEGV: ("segmentation fault", "native code (torch, a BLAS, a driver) crashed"),
    signal.SIGBUS: ("bus error", "often shared memory (/dev/shm) ran out"),
    signal.SIGABRT: ("aborted", "native code stopped on a failed check"),
}


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    status: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETE"


def steering_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in sorted(environ.items()) if k.startswith(STEERING_ENV_PREFIXES)}


def reproduce_command(profile: str, set_pairs: list[str], env: dict[str, str]) -> str:
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    words += ["repro", "run", "--profile", profile]
    for pair in set_pairs:
        words += ["--set", shlex.quote(pair)]
    return " ".join(words)


def prepare_run(
    profile_name: str,
    set_pairs: list[str] | None,
    *,
    runs_dir: Path,
    repo: str | None = None,
    argv: list[str] | None = None,
    quiet: bool = False,
    git_sha: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create and describe one run directory; returns its launch-plan entry."""
    set_pairs = list(set_pairs or [])
    overrides = parse_overrides(set_pairs)
    profile = load_profile(profile_name, overrides)
    internal = {k: overrides[k] for k in INTERNAL_KEYS if k in overrides}
    user_overrides = {k: v for k, v in overrides.items() if k not in INTERNAL_KEYS}
    if git_sha is None:
        from repro.manifest.git_info import head_sha

        git_sha = head_sha(repo)
    run_dir = create_unique_run_dir(runs_dir, git_sha)
    config = {
        "schema_version": CONFIG_SCHEMA_VERSION,
        "run_id": run_dir.name,
        "profile": profile.name,
        "settings": profile.to_dict(),
        "overrides": user_overrides,
        "internal": internal,
        "faults": profile.fault.active(),
        # Only an untouched profile run may ever become (the primary of) a baseline.
        "reference": not overrides,
        "workload_hash": workload_hash(profile.to_dict()),
        "argv": list(argv if argv is not None else sys.argv),
        "command": reproduce_command(
            profile_name, set_pairs, steering_env({**os.environ, **(env or {})})
        ),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic.write_yaml(run_dir / "config.yaml", config)
    write_status(run_dir, "RUNNING")
    return {
        "run_dir": str(run_dir),
        "settings": profile.to_dict(),
        "quiet": quiet,
        "repo": repo,
        "argv": config["argv"],
    }


CUBLAS_WORKSPACE_CONFIG = ":4096:8"
"""The fixed cuBLAS workspace deterministic algorithms need (``:16:8`` would do too)."""


def rank_env(profile: Profile, environ: Mapping[str, str]) -> dict[str, str]:
    """What every rank's environment needs from its profile, whoever launches it.

    ``repro run`` puts it in the ranks' environment; under a direct torchrun each rank
    applies it to itself before any CUDA call (``repro.reference.train``).
    """
    threads = str(profile.threads_per_rank)
    env = {
        # Thread counts come from the profile, never from the machine.
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        # Deterministic cuBLAS needs a fixed workspace; a user's own setting wins.
        "CUBLAS_WORKSPACE_CONFIG": environ.get("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG),
    }
    if profile.device == "cuda":
        # A collective that times out raises in the rank's own thread (and so gets its
        # error file and the step it hung at) instead of NCCL's watchdog aborting the
        # process with SIGABRT before anything is written. A user's own setting wins.
        env["TORCH_NCCL_BLOCKING_WAIT"] = environ.get("TORCH_NCCL_BLOCKING_WAIT", "1")
    return env


def _child_env(profile: Profile, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(rank_env(profile, env))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _launch_timeout(profiles: list[Profile]) -> float:
    """A last-resort deadline: collective timeouts end hangs long before it in practice."""
    return sum(60.0 + 2.0 * p.steps for p in profiles) + 3 * profiles[0].collective_timeout_s


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc): the ranks run in sessions of their own."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid follows its closing ')'.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Ask the launcher to stop its ranks (SIGTERM), then kill whatever is left of the tree."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for pid in [proc.pid, *tree, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def launch(
    entries: list[dict[str, Any]],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    verbose: bool = False,
) -> list[Outcome]:
    """Run prepared entries one after another in a single launch of torch's elastic launcher.

    The launcher's own output goes to ``launcher.log`` in the first entry's folder (removed
    when empty), and also to the terminal with ``verbose``; the ranks' output (rank 0's
    progress) always reaches it.
    """
    from repro.profile import build_profile

    profiles = [build_profile(e["settings"], e["run_dir"]) for e in entries]
    first = profiles[0]
    for p in profiles[1:]:
        shared = (p.world_size, p.threads_per_rank, p.device, p.collective_timeout_s)
        if shared != (
            first.world_size,
            first.threads_per_rank,
            first.device,
            first.collective_timeout_s,
        ):
            raise ValueError(
                "runs in one launch must share world size, threads, device and timeout"
            )
    needed = first.world_size * first.threads_per_rank
    usable = usable_cpus()
    if first.device == "cpu" and usable < needed:
        print(
            f"repro: warning: {usable} usable CPUs for {first.world_size} ranks x "
            f"{first.threads_per_rank} threads; the run will be slow (the numbers are unaffected).",
            file=sys.stderr,
        )
    child_env = _child_env(first, env)
    log = Path(entries[0]["run_dir"]) / LAUNCHER_LOG
    deadline = timeout if timeout is not None else _launch_timeout(profiles)
    with tempfile.TemporaryDirectory(prefix="repro-launch-") as scratch:
        plan_path, report_path = Path(scratch) / "plan.json", Path(scratch) / "report.json"
        plan_path.write_text(json.dumps(entries))
        command = [
            sys.executable,
            "-m",
            "repro.runner",
            "--report",
            str(report_path),
            "--log",
            str(log),
            *(["--verbose"] if verbose else []),
            "--",
            "--standalone",
            "--nnodes",
            "1",
            "--nproc-per-node",
            str(first.world_size),
            "--max-restarts",
            "0",
            "--monitor-interval",
            "0.2",
            "-m",
            "repro.reference.train",
            "--plan",
            str(plan_path),
        ]
        # A session of its own, so a timeout or Ctrl-C can end every rank and data worker at once.
        proc = subprocess.Popen(command, env=child_env, start_new_session=True)
        try:
            returncode: int | None = proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            _stop(proc)
            returncode = None
        except KeyboardInterrupt:
            _stop(proc, grace=5.0)
            for entry in entries:
                if _status(Path(entry["run_dir"])) == "RUNNING":
                    write_status(
                        Path(entry["run_dir"]),
                        "INTERRUPTED",
                        reason="interrupted by the user (Ctrl-C)",
                    )
            raise RunInterrupted() from None
        end = _read_report(report_path, returncode, deadline, log, child_env)
    outcomes, ended = [], False
    for entry in entries:
        run_dir = Path(entry["run_dir"])
        # Runs go in plan order: the first still RUNNING is the one the launch ended in.
        running = _status(run_dir) == "RUNNING"
        outcomes.append(_settle(run_dir, end, not_run=ended))
        ended = ended or running
    # A launcher that had nothing to say leaves no empty file in the run folder.
    with contextlib.suppress(OSError):
        if log.stat().st_size == 0:
            log.unlink()
    return outcomes


@dataclass(frozen=True)
class RankExit:
    """How one failed rank ended, as torch's elastic agent saw it (its ``ProcessFailure``)."""

    rank: int
    """The global rank."""
    exitcode: int
    """The process's exit status; negative when a signal killed it (``-signum``)."""


@dataclass(frozen=True)
class LaunchEnd:
    """How one launch of torch's elastic launcher ended, as ``_settle`` needs it."""

    returncode: int | None
    """The launcher's exit status; None when it was stopped at the deadline."""
    deadline: float
    """Seconds the launch was allowed."""
    log: Path
    """The launcher's output (``launcher.log``)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The ranks' environment (to name ``ATEN_CPU_CAPABILITY`` behind a SIGILL)."""
    rank_exits: tuple[RankExit, ...] = ()
    """The failed ranks, from torch's ``ChildFailedError.failures``; empty when none failed."""
    launcher_error: str | None = None
    """The launcher's own exception (``RendezvousError: ...``) when it failed otherwise."""


def _read_report(
    path: Path, returncode: int | None, deadline: float, log: Path, env: Mapping[str, str]
) -> LaunchEnd:
    """What the launcher wrote about its ranks; nothing when it wrote nothing (or was stopped)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        report = {}
    exits = tuple(
        RankExit(int(item["rank"]), int(item["exitcode"])) for item in report.get("rank_exits", [])
    )
    return LaunchEnd(returncode, deadline, log, env, exits, report.get("launcher_error"))


def _status(run_dir: Path) -> str:
    try:
        return str(Run(run_dir).status["status"])
    except UserError:
        return "RUNNING"


def _rank_errors(run_dir: Path, signalled: list[RankExit]) -> tuple[list[str], bool]:
    """One sentence per rank that raised, led by the ranks that never joined a collective,
    and whether such ranks were found (the run hung rather than crashed).

    A rank that raised after waiting out the collective timeout (``timed_out_in``) was
    waiting for another; the ranks that neither raised nor died of a signal of their own
    are the ones it waited for (the agent ended them with SIGTERM afterwards).
    """
    errors, waits, raised, world = [], [], set(), 0
    for path in sorted(run_dir.glob("error-rank*.json")):
        try:
            data = json.loads(path.read_text())
            errors.append(f"rank {data['rank']} raised {data['error']}")
        except (OSError, ValueError, KeyError):
            errors.append(f"{path.name} is unreadable")
            continue
        raised.add(data["rank"])
        world = max(world, int(data.get("world_size", 0)))
        if data.get("timed_out_in"):
            waits.append((data["rank"], data["timed_out_in"]))
    silent = sorted(set(range(world)) - raised - {e.rank for e in signalled})
    hung = bool(waits and silent)
    if hung:
        step = min(w["step"] for _, w in waits)
        first = min(waits, key=lambda rw: rw[1]["step"])[1]
        waiting = ", ".join(str(rank) for rank, _ in waits)
        plural = "s" if len(waits) > 1 else ""
        errors.insert(
            0,
            f"{_ranks(silent).rsplit(' ', 1)[0]} did not join the collective at step {step} "
            f"({first['collective']}): rank{plural} {waiting} waited {first['waited_s']:g} s "
            "(the profile's collective_timeout_s) for it",
        )
    return errors, hung


def describe_signal(signum: int, env: Mapping[str, str] | None = None) -> str:
    """``SIGILL (illegal instruction): this CPU cannot run ...``: a signal and what it suggests.

    A SIGILL names ``ATEN_CPU_CAPABILITY`` when ``env`` (the process's environment) sets it:
    torch then runs the kernels of that level whether or not the CPU has the instructions.
    """
    try:
        name = signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
    words, suspect = SIGNAL_MEANINGS.get(signum, ((signal.strsignal(signum) or "").lower(), ""))
    level = (env or {}).get("ATEN_CPU_CAPABILITY")
    if signum == signal.SIGILL and level:
        suspect = (
            f"this CPU cannot run the kernels ATEN_CPU_CAPABILITY={shlex.quote(level)} selects"
        )
    text = f"{name} ({words})" if words else name
    return f"{text}: {suspect}" if suspect else text


def _ranks(ranks: list[int]) -> str:
    """``rank 1 was``, ``ranks 0 and 1 were``, ``ranks 0, 1 and 3 were``."""
    if len(ranks) == 1:
        return f"rank {ranks[0]} was"
    listed = ", ".join(str(r) for r in ranks[:-1])
    return f"ranks {listed} and {ranks[-1]} were"


def _killed(exits: list[RankExit], env: Mapping[str, str]) -> list[str]:
    """One sentence per signal: ``ranks 0 and 1 were killed by SIGILL (...)``."""
    by_signal: dict[int, list[int]] = {}
    for e in sorted(exits, key=lambda e: e.rank):
        by_signal.setdefault(-e.exitcode, []).append(e.rank)
    return [
        f"{_ranks(ranks)} killed by {describe_signal(signum, env)}"
        for signum, ranks in by_signal.items()
    ]


def failure_reason(run_dir: Path, end: LaunchEnd) -> tuple[str, str]:
    """Why the run the launch ended in failed, and its kind (crash or hang).

    A rank killed by a signal comes first: it is the usual root cause, and the ranks left
    waiting in a collective then raise errors of their own. SIGTERM comes last, since the
    agent ends the surviving ranks with it once one has failed.
    """
    signalled = [e for e in end.rank_exits if e.exitcode < 0 and -e.exitcode != signal.SIGTERM]
    errors, hung = _rank_errors(run_dir, signalled)
    causes = _killed(signalled, end.env) + errors
    if hung and not signalled:
        return "; ".join(causes) + _see_log(end), "hang"
    if not causes and end.returncode is None:
        stopped = f"the launch did not finish within {end.deadline:.0f} s and was stopped"
        return stopped + _see_log(end), "hang"
    causes = causes or _launcher_causes(end)
    if not causes:
        return "not run: an earlier run in the same launch failed", "crash"
    return "; ".join(causes) + _see_log(end), "crash"


def _launcher_causes(end: LaunchEnd) -> list[str]:
    """What the launcher itself says when no rank was killed by a signal or raised."""
    if end.rank_exits:
        exited = [
            f"rank {e.rank} exited with code {e.exitcode}" for e in end.rank_exits if e.exitcode > 0
        ]
        return exited + _killed([e for e in end.rank_exits if e.exitcode < 0], end.env)
    if end.launcher_error:
        return [f"the launcher failed: {end.launcher_error}"]
    if end.returncode is not None and end.returncode < 0:
        return [f"the launcher was killed by {describe_signal(-end.returncode, end.env)}"]
    if end.returncode:
        return [f"the launcher exited with code {end.returncode} before this run completed"]
    return []


def _see_log(end: LaunchEnd) -> str:
    try:
        written = end.log.stat().st_size > 0
    except OSError:
        written = False
    return f"; the launcher's output is in {end.log}" if written else ""


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


def _launcher_main(argv: list[str]) -> int:
    """Run torch's elastic launcher (``torch.distributed.run``) and report its ranks' ends.

    ``argv``: ``--report R --log L [--verbose] -- <torchrun arguments>``. The ranks inherit
    this process's file descriptors and so keep the terminal (rank 0's progress line needs
    it); only the launcher's own Python output -- torch's log lines and the traceback of
    its ChildFailedError -- goes to L, and with ``--verbose`` to the terminal as well.
    """
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="python -m repro.runner")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv[:split])
    log = open(args.log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 -- lives as long as the process
    # Before torch is imported: its log handlers bind to sys.stderr when they are created.
    sys.stdout = sys.stderr = _Tee(log, sys.stderr) if args.verbose else log

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv[split + 1 :])
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
    sys.exit(_launcher_main(sys.argv[1:]))
