"""One node's launch: torch's elastic agent with a rendezvous of its own, and CPU ranks
forked from the launcher, which has imported torch already, instead of spawned.

``launch_local`` does what ``torchrun --standalone`` does, met on ``LocalRendezvous``
(torch's static rendezvous on a port the bind picks) instead of the c10d rendezvous, which
spends 0.2-0.5 s of every start meeting a single node.

torch's elastic launcher starts a command entry point (``-m repro.runs.rank_start``) in a
fresh interpreter per rank, each importing torch again; a function entry point it can
start in ranks forked from its own process (``LaunchConfig.start_method="fork"``). The
launcher imports torch and the training code before the fork, so a rank begins with them
loaded. Only gloo ranks fork: CUDA cannot be used in a child forked after CUDA was loaded,
so a CUDA profile keeps spawning (and so does any launch with ``REPRO_SPAWN_RANKS=1``).

What a forked rank must undo of its parent (``forked_rank``): the launcher's Python
output (``sys.stdout`` goes to ``launcher.log``) and torch's signal handlers (SIGTERM
raises in the agent; in a rank it must end it as in a spawned one). The environment
needs nothing: the launcher runs with the ranks' environment (``runner._child_env``) and
torch sets each rank's variables in the child before the entry point runs, before any
operator has read ``ATEN_CPU_CAPABILITY`` or ``ONEDNN_MAX_CPU_ISA``.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import uuid
from pathlib import Path

from torch.distributed import TCPStore  # type: ignore[attr-defined]  # not in __all__
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure
from torch.distributed.elastic.rendezvous import (
    RendezvousInfo,
    RendezvousParameters,
    rendezvous_handler_registry,
)
from torch.distributed.elastic.rendezvous.static_tcp_rendezvous import StaticTCPRendezvous
from torch.distributed.launcher.api import elastic_launch
from torch.distributed.run import config_from_args, parse_args

from repro.runs.proctree import descendants, parent_pid
from repro.runs.rank_start import training_entry

RANK_MODULE = "repro.runs.rank_start"
RANK_NAME = "repro-rank-"
"""A forked rank's process name (``/proc/PID/comm``), followed by its rank."""


def forked_rank(*argv: str) -> None:
    """One rank, in a child of the launcher: as ``python -m repro.runs.rank_start ARGV``."""
    gc.disable()  # as in a spawned rank (rank_start): train.main freezes and re-enables it
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    # A forked rank shares the launcher's command line; its name tells it apart (ps, top).
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(f"{RANK_NAME}{os.environ['RANK']}")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGCHLD):
        signal.signal(sig, signal.SIG_DFL)
    # Imported by the launcher before the fork (runner._launcher_main): look-ups only.
    code = training_entry()(list(argv))
    if code:
        # torch's worker wrapper drops a function's return value; an exit status carries it.
        raise SystemExit(code)


class RankExits:
    """Every forked rank's exit status, taken as it ends (SIGCHLD), before torch reaps it.

    torch's agent reports one failed rank of a forked launch (the first its wait lists),
    where a spawned launch reports every rank that had ended; a rank killed by a signal
    is then often hidden behind the peer that raised when its connection dropped. The
    handler runs on the main thread, the one that reaps, so it sees each status first;
    ``WNOWAIT`` leaves the child for torch to reap. A rank is known by its name.
    """

    def __init__(self) -> None:
        self.by_rank: dict[int, tuple[int, int]] = {}  # rank -> (pid, exit code)

    def install(self) -> None:
        signal.signal(signal.SIGCHLD, self._on_child)

    def _on_child(self, signum: int, frame: object) -> None:
        for pid in descendants(os.getpid()):
            with contextlib.suppress(OSError, ValueError):
                name = Path(f"/proc/{pid}/comm").read_text().strip()
                if parent_pid(pid) != os.getpid() or not name.startswith(RANK_NAME):
                    continue
                ended = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
                if ended is not None:
                    signalled = ended.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
                    code = -ended.si_status if signalled else ended.si_status
                    self.by_rank[int(name.removeprefix(RANK_NAME))] = (pid, code)

    def complete(self, failed: ChildFailedError) -> None:
        """Add the failed ranks torch did not report to ``failed``."""
        for rank, (pid, code) in sorted(self.by_rank.items()):
            if code != 0 and rank not in failed.failures:
                failed.failures[rank] = ProcessFailure(rank, pid, code, "<N/A>")


class LocalRendezvous(StaticTCPRendezvous):
    """torch's static rendezvous for one node, its store on a port the bind itself picks.

    ``--standalone``'s c10d rendezvous, with one node to meet, waits a random 0-0.3 s before
    joining (a guard against many nodes joining at once) and records each of its steps with
    ``inspect.stack()``, slow with torch's modules loaded: 0.2-0.5 s of every launch's start,
    and more at its end. The store is the same TCPStore, which the ranks reach as the
    launch's store (``TORCHELASTIC_USE_AGENT_STORE``), as under torchrun.
    """

    def get_backend(self) -> str:
        return LOCAL_RENDEZVOUS  # torch checks a handler's name against the one asked for

    def next_rendezvous(self) -> RendezvousInfo:
        if self._store is None:
            self._store = TCPStore(
                self.master_addr, 0, self.world_size, True, self.timeout, multi_tenant=True
            )
            self.master_port = self._store.port  # what the ranks are told to reach
        return super().next_rendezvous()


LOCAL_RENDEZVOUS = "repro-local"


def _local_rendezvous(params: RendezvousParameters) -> LocalRendezvous:
    timeout = int(params.config.get("timeout", 600))
    return LocalRendezvous(params.endpoint.split(":")[0], 0, 0, 1, params.run_id, timeout)


def _register_local_rendezvous() -> str:
    # Registering the same function again is allowed (a second launch in one process).
    rendezvous_handler_registry.register(LOCAL_RENDEZVOUS, _local_rendezvous)
    return LOCAL_RENDEZVOUS


def launch_local(torchrun_argv: list[str], *, fork: bool) -> None:
    """What ``torch.distributed.run.main(torchrun_argv)`` does for a ``--standalone`` launch,
    met on a ``LocalRendezvous``; with ``fork``, the ranks are forked from this process
    (``forked_rank``) instead of spawned as ``python -u -m repro.runs.rank_start``.

    ``torchrun_argv`` is what ``runner.launch`` passes torchrun: ``--standalone`` and
    ``-m repro.runs.rank_start ARGS`` at its end (a spawned launch runs any script).
    """
    args = parse_args(torchrun_argv)  # type: ignore[no-untyped-call]
    if not args.standalone:
        raise ValueError("a local launch is a --standalone one")
    if fork and (args.module is not True or args.training_script != RANK_MODULE):
        raise ValueError(f"forked ranks run {RANK_MODULE}")
    # As torch.distributed.run.run does for --standalone (the endpoint is replaced below).
    args.rdzv_backend, args.rdzv_endpoint, args.rdzv_id = "c10d", "localhost:0", str(uuid.uuid4())
    if args.master_port is None:
        args.master_port = 29500
    config, command, command_args = config_from_args(args)
    config.rdzv_backend, config.rdzv_endpoint = _register_local_rendezvous(), "127.0.0.1:0"
    if not fork:
        elastic_launch(config=config, entrypoint=command)(*command_args)
        return
    config.start_method = "fork"
    exits = RankExits()
    exits.install()
    try:
        elastic_launch(config=config, entrypoint=forked_rank)(*args.training_script_args)
    except ChildFailedError as failed:
        exits.complete(failed)
        raise
