"""Why a launch's run failed, in one sentence: a signal, a rank's exception, a rank that
never joined a collective, or the launcher itself.

``repro.runs.runner`` reads how the launch ended (``LaunchEnd``: the launcher's report of each
failed rank, its log) and the ranks' ``error-rank{N}.json``. One line of native text is
read: NCCL's watchdog, which aborts a rank stuck in a collective (SIGABRT) before it can
write anything, says so in the rank's log; the step comes from its progress file.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repro.runs.rank_output import EXIT_NO_SPACE, last_finished_step, rank_log

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
    world_size: int = 0
    """Ranks the launch started (0 when unknown)."""


def read_report(
    path: Path,
    returncode: int | None,
    deadline: float,
    log: Path,
    env: Mapping[str, str],
    world_size: int = 0,
) -> LaunchEnd:
    """What the launcher wrote about its ranks; nothing when it wrote nothing (or was stopped)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        report = {}
    exits = tuple(
        RankExit(int(item["rank"]), int(item["exitcode"])) for item in report.get("rank_exits", [])
    )
    return LaunchEnd(
        returncode, deadline, log, env, exits, report.get("launcher_error"), world_size
    )


# ProcessGroupNCCL's watchdog, before it aborts the process: "Watchdog caught collective
# operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE, ..., Timeout(ms)=600000) ran for
# 600012 milliseconds before timing out."
_WATCHDOG_TIMEOUT = re.compile(
    r"Watchdog caught collective operation timeout:.*?OpType=(?P<op>\w+)"
    r".*?ran for (?P<ms>\d+) milliseconds"
)


@dataclass(frozen=True)
class _WatchdogTimeout:
    rank: int
    collective: str
    waited_s: float


def _watchdog_timeouts(end: LaunchEnd, signalled: list[RankExit]) -> list[_WatchdogTimeout]:
    """The aborted ranks whose log holds the watchdog's timeout line."""
    found = []
    for e in signalled:
        if -e.exitcode != signal.SIGABRT:
            continue
        try:
            text = rank_log(end.log.parent, e.rank).read_text(errors="replace")
        except OSError:
            continue
        match = _WATCHDOG_TIMEOUT.search(text)
        if match:
            found.append(_WatchdogTimeout(e.rank, match["op"].lower(), int(match["ms"]) / 1000))
    return found


def _watchdog_hang(run_dir: Path, end: LaunchEnd, timeouts: list[_WatchdogTimeout]) -> str:
    """``rank 1 did not join the collective after step 12 (allreduce): NCCL's watchdog
    aborted rank 0 after waiting 600 s (the profile's collective_timeout_s) for it``."""
    waiting = sorted(t.rank for t in timeouts)
    steps = [s for s in (last_finished_step(run_dir, r) for r in waiting) if s is not None]
    when = f"after step {min(steps)}" if steps else "before the first step finished"
    first = min(timeouts, key=lambda t: t.rank)
    silent = sorted(set(range(end.world_size)) - set(waiting))
    who = _rank_names(silent) if silent else "a rank"
    plural = "s" if len(waiting) > 1 else ""
    return (
        f"{who} did not join the collective {when} ({first.collective}): NCCL's watchdog "
        f"aborted rank{plural} {', '.join(map(str, waiting))} after waiting "
        f"{first.waited_s:g} s (the profile's collective_timeout_s) for it"
    )


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
            f"{_rank_names(silent)} did not join the collective at step {step} "
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


def _rank_names(ranks: list[int]) -> str:
    """``rank 1``, ``ranks 0 and 1``, ``ranks 0, 1 and 3``."""
    if len(ranks) == 1:
        return f"rank {ranks[0]}"
    listed = ", ".join(str(r) for r in ranks[:-1])
    return f"ranks {listed} and {ranks[-1]}"


def _ranks(ranks: list[int]) -> str:
    """``rank 1 was``, ``ranks 0 and 1 were``."""
    return f"{_rank_names(ranks)} {'was' if len(ranks) == 1 else 'were'}"


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
    full = sorted(e.rank for e in end.rank_exits if e.exitcode == EXIT_NO_SPACE)
    if full:
        return f"no space left on device writing the run folder ({_ranks(full)} stopped)", "crash"
    signalled = [e for e in end.rank_exits if e.exitcode < 0 and -e.exitcode != signal.SIGTERM]
    timeouts = _watchdog_timeouts(end, signalled)
    if timeouts:
        return _watchdog_hang(run_dir, end, timeouts) + _see_log(end), "hang"
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
    def written(path: Path) -> bool:
        try:
            return path.stat().st_size > 0
        except OSError:
            return False

    ranks = [p for p in sorted(end.log.parent.glob("rank*.log")) if written(p)]
    where = [f"the launcher's output is in {end.log}"] if written(end.log) else []
    if ranks:
        where.append(f"the ranks' in {end.log.parent / 'rank*.log'}")
    return "; " + ", ".join(where) if where else ""
