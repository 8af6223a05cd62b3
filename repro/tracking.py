"""Track a user's own training: the manifest seen from inside the process, every logged
scalar, the final metrics and weight fingerprints, in a run folder ``repro compare`` reads.

    with repro.track(config=cfg, seed=seed, runs_dir="runs") as run:
        for step, batch in enumerate(loader):
            ...
            run.log(step, loss=loss, lr=lr)      # tensors stay on their device until a flush
        run.final(eval_accuracy=acc)

A run that continues from a checkpoint says so: ``repro.checkpoint.load`` inside the run
records the resume by itself, and ``run.resumed(step, path)`` records one by hand; ``repro
compare`` then sets the run against an uninterrupted one from that step on.

Under torchrun every rank may log: each writes ``metrics-rank{N}.jsonl``; rank 0 writes
the manifest, config and status. ``track`` makes no collective call (a collective while
a rank is dying hangs) and changes no global state: seeds, flags and thread counts are
read, never set. A SIGTERM marks the run INTERRUPTED and then ends the process as it
would have ended anyway.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from repro import atomic, strict_json
from repro.checkpoint.full import RESUME_HOOKS
from repro.checkpoint.layouts import inspect_checkpoint
from repro.clock import utc_now
from repro.errors import UserError
from repro.manifest import capture_manifest
from repro.manifest.git_info import head_sha
from repro.manifest.redact import redact, redact_argv
from repro.manifest.schema import write_manifest
from repro.outputs import describe
from repro.reference.fingerprint import state_dict_identity
from repro.runs.store import create_unique_run_dir, write_status
from repro.runs.track_values import loggable, plain_config, warn_not_recorded
from repro.runs.tracked import METRICS_FILE, TRACK_SCHEMA_VERSION

_WAIT_FOR_RANK0_S = 120.0  # how long the other ranks wait for rank 0 to name the folder
# Tracked runs entered in this process: every rank enters them in the same order, so the
# count tells one run's folder key from the next within a launch.
_ENTRIES = itertools.count()


def track(
    config: Mapping[str, Any] | None = None,
    *,
    seed: int | None = None,
    runs_dir: str | Path = "runs",
    flush_every: int = 100,
    repo: str | Path | None = None,
) -> TrackedRun:
    """A tracked run; use it as a context manager around the training loop."""
    if flush_every < 1:
        raise ValueError(f"flush_every={flush_every} must be at least 1")
    return TrackedRun(dict(config or {}), seed, Path(runs_dir), flush_every, repo)


class TrackedRun:
    def __init__(
        self,
        config: dict[str, Any],
        seed: int | None,
        runs_dir: Path,
        flush_every: int,
        repo: str | Path | None,
    ) -> None:
        self.config, self.seed, self.runs_dir = config, seed, runs_dir
        self.flush_every, self.repo = flush_every, repo
        self.rank = int(os.environ.get("RANK", "0"))
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.path: Path | None = None
        self._pending: list[tuple[int, dict[str, Any]]] = []
        self._not_recorded: dict[str, dict[str, Any]] = {}  # name -> its first refusal, unwritten
        self._refused: set[str] = set()  # names warned about: one warning each, not one a step
        self._previous_sigterm: Any = None
        self._last_step: int | None = None
        self._unwritable: str | None = None  # why the record stopped (a full disk), once it has

    # -- the context ----------------------------------------------------------------------

    def __enter__(self) -> TrackedRun:
        self.path = self._folder()
        atomic.write_text(
            self._metrics_path, _line({"schema_version": TRACK_SCHEMA_VERSION, "rank": self.rank})
        )
        if self.rank == 0:
            self._write_start()
        self._install_sigterm()
        RESUME_HOOKS.append(self._loaded)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop_listening()
        self._restore_sigterm()
        self._flush()
        if self._unwritable is not None:
            self._end("FAILED", reason=self._unwritable, kind="crash")
        elif kind is None:
            self._end("COMPLETE")
        elif issubclass(kind, KeyboardInterrupt):
            self._end("INTERRUPTED", reason="interrupted (Ctrl-C)")
        else:
            detail = "".join(traceback.format_exception_only(kind, error)).strip()
            self._end("FAILED", reason=f"rank {self.rank} raised {detail}", kind="crash")

    # -- what the loop calls --------------------------------------------------------------

    def log(self, step: int, **scalars: Any) -> None:
        """Values at a step: numbers and one-element numeric tensors, and as notes strings,
        bools and None. Tensors are detached, cloned and left on their device until a flush.

        A value that cannot be recorded (a set, a tensor of many elements) is left out of
        the row with a ``TrackingWarning`` and named in the metrics file; the rest of the
        row is kept. A training is not ended for a log line: hours of work lost to a
        metric is worse than one metric missing and said to be missing."""
        try:
            step = int(step)
        except (TypeError, ValueError):
            self._refuse("<step>", f"a step of {type(step).__name__}", "log", None)
            return
        values = {}
        for name, value in scalars.items():
            kept, what = loggable(value, notes=True)
            if what is None:
                values[name] = kept
            else:
                self._refuse(name, what, "log", step)
        self._pending.append((step, values))
        self._last_step = step
        if len(self._pending) >= self.flush_every:
            self._flush()

    def final(self, **metrics: Any) -> None:
        """Final metrics (evaluation accuracy, loss): what ``repro compare`` reports first.
        Numbers and one-element numeric tensors; anything else is left out with a warning,
        as in ``log``."""
        values = {}
        for name, value in metrics.items():
            kept, what = loggable(value, notes=False)
            if what is None:
                values[name] = kept
            else:
                self._refuse(name, what, "final", None)
        names = list(values)
        self._append({"final": dict(zip(names, _to_host([values[n] for n in names])))})

    def _refuse(self, name: str, what: str, call: str, step: int | None) -> None:
        key = f"{call}:{name}"
        if key in self._refused:
            return
        self._refused.add(key)
        warn_not_recorded(name, what, call, step)
        self._not_recorded[key] = {"not_recorded": name, "call": call, "is": what, "at_step": step}

    def resumed(
        self, step: int | None, path: str | Path, *, full_state: bool | None = None
    ) -> None:
        """This run continues from the checkpoint at ``path``, saved after ``step``.

        ``full_state``: whether the checkpoint held the whole training state and all of it
        was restored. Left out, the file is inspected as ``repro checkpoint inspect`` does
        (one more read of it): full when it lacks nothing a resume needs.
        ``repro.checkpoint.load`` inside the run records its resume itself, with the pieces
        the file held and those it restored."""
        held: list[str] | None = None
        if full_state is None:
            held, full_state = _inspected(Path(path))
        self._record_resume(step, path, held, None, full_state)

    def _loaded(self, step: Any, path: Path, held: list[str], restored: list[str]) -> None:
        """``repro.checkpoint.load``'s hook: the pieces the file held and those restored."""
        self._record_resume(step, path, held, restored, set(held) <= set(restored))

    def _record_resume(
        self,
        step: Any,
        path: str | Path,
        held: list[str] | None,
        restored: list[str] | None,
        full_state: bool | None,
    ) -> None:
        at = int(step) if isinstance(step, int | float) else None
        record = {"step": at, "checkpoint": os.path.abspath(path), "full_state": full_state}
        self._append({"resumed": {**record, "held": held, "restored": restored}})

    def _stop_listening(self) -> None:
        if self._loaded in RESUME_HOOKS:
            RESUME_HOOKS.remove(self._loaded)

    def fingerprint(self, model: Any) -> str:
        """A sha256 over the weights' names, dtypes, shapes and bytes: bit-exact identity."""
        identity = state_dict_identity(model.state_dict())
        self._append({"fingerprint": identity, "after_step": self._last_step})
        return identity

    # -- files ----------------------------------------------------------------------------

    @property
    def _metrics_path(self) -> Path:
        assert self.path is not None, "use the tracked run as a context manager"
        return self.path / METRICS_FILE.format(rank=self.rank)

    def _append(self, record: dict[str, Any]) -> None:
        self._flush()
        if self._unwritable is not None:
            return
        try:
            with open(self._metrics_path, "a", encoding="utf-8") as f:
                f.write(_line(record))
        except OSError as exc:
            self._stop_recording(exc)

    def _flush(self) -> None:
        """Every pending tensor leaves its device in one transfer per device.

        A write that fails (a full disk) stops the record, not the training: one sentence on
        stderr, nothing more written, and the run ends FAILED with that sentence."""
        if self._unwritable is not None:
            self._pending, self._not_recorded = [], {}
            return
        try:
            self._write_pending()
        except OSError as exc:
            self._stop_recording(exc)

    def _stop_recording(self, exc: OSError) -> None:
        self._unwritable = describe(exc)
        print(
            f"repro: FAILED: {self._unwritable}; this run's record stops here, the training "
            "goes on",
            file=sys.stderr,
        )

    def _write_pending(self) -> None:
        if not (self._pending or self._not_recorded) or self.path is None:
            return
        pending, self._pending = self._pending, []
        lines = [_line(notice) for notice in self._not_recorded.values()]
        self._not_recorded = {}
        host = iter(_to_host([v for _, values in pending for v in values.values()]))
        for step, values in pending:
            lines.append(_line({"step": step, **{name: next(host) for name in values}}))
        with open(self._metrics_path, "a", encoding="utf-8") as f:
            f.write("".join(lines))

    def _folder(self) -> Path:
        """Rank 0 creates the folder and names it to the other ranks through a key in this
        launch's store, which they wait for (a wait on a store is no collective: a rank that
        dies leaves the others a timeout, not a hang)."""
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        key = f"repro.track-{restart}-{next(_ENTRIES)}"
        store = _launch_store(self.runs_dir) if self.world_size > 1 else None
        if self.rank == 0:
            path = create_unique_run_dir(self.runs_dir, head_sha(self.repo))
            if store is not None:
                store.set(key, path.name)
            return path
        if store is None:
            raise RuntimeError(
                f"rank {self.rank} cannot learn the tracked run folder rank 0 creates: call "
                "torch.distributed.init_process_group before repro.track, or launch with torchrun"
            )
        try:
            store.wait([key], timedelta(seconds=_WAIT_FOR_RANK0_S))
        except RuntimeError as exc:  # c10d's store errors, its timeout included
            raise RuntimeError(
                f"rank 0 did not name the tracked run folder within {_WAIT_FOR_RANK0_S:.0f} s"
            ) from exc
        return self.runs_dir / bytes(store.get(key)).decode()

    def _write_start(self) -> None:
        assert self.path is not None
        argv = redact_argv(sys.argv)
        config, converted = plain_config(self.config)
        write_status(self.path, "RUNNING", pid=os.getpid(), host=socket.gethostname())
        atomic.write_yaml(
            self.path / "config.yaml",
            {
                "schema_version": TRACK_SCHEMA_VERSION,
                "kind": "tracked",
                "run_id": self.path.name,
                "config": redact(config),
                # The keys whose values YAML cannot hold, recorded in a readable form instead
                # (a Path as its text, a numpy scalar as a number), with their Python types.
                "config_converted": converted,
                "seed": self.seed,
                "world_size": self.world_size,
                "argv": argv,
                "created_utc": utc_now(),
            },
        )
        write_manifest(self.path / "manifest.yaml", capture_manifest(self.repo, argv=argv))

    def _end(self, status: str, **detail: Any) -> None:
        if self.rank != 0 or self.path is None:
            return

        try:
            if self._unwritable is None:
                # The end state too: a library loaded late, a flag the loop changed.
                write_manifest(
                    self.path / "manifest-end.yaml",
                    capture_manifest(self.repo, argv=redact_argv(sys.argv)),
                )
            write_status(self.path, status, **detail)  # the last act
        except OSError as exc:
            if self._unwritable is None:
                self._stop_recording(exc)
            # write_status rewrites status.yaml in place when the disk is full
            with contextlib.suppress(OSError):
                write_status(self.path, "FAILED", reason=self._unwritable, kind="crash")

    # -- SIGTERM --------------------------------------------------------------------------

    def _install_sigterm(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers belong to the main thread
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
            self._previous_sigterm = None

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous_sigterm
        self._stop_listening()
        self._restore_sigterm()
        self._flush()
        self._end("INTERRUPTED", reason="terminated (SIGTERM)")
        if callable(previous):
            previous(signum, frame)
        else:  # the default action: end the process by the same signal
            os.kill(os.getpid(), signum)


def _inspected(path: Path) -> tuple[list[str] | None, bool | None]:
    """The pieces the checkpoint holds, and whether it lacks none a resume needs (None,
    None where it cannot be read: the record says so rather than guessing)."""
    try:
        found = inspect_checkpoint(path)
    except UserError:
        return None, None
    return list(found.holds), not [m for m in found.missing if m not in found.optional]


def _launch_store(runs_dir: Path) -> Any:
    """A key-value store that lives exactly one launch and that every rank on every node
    reaches: the process group's, or where ``track`` is entered before the group exists,
    torchrun's agent store at MASTER_ADDR:MASTER_PORT; failing both, files under
    ``runs_dir`` named by the launch. None where there is nothing to name it by.

    A file outlives its launch: the next launch with the same rendezvous id, address and
    port read the previous launch's folder name before rank 0 rewrote it, and logged into
    the previous run's folder. A fixed --master-port means torchrun's static rendezvous,
    which always has the agent store; without it the port is picked afresh each launch."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.distributed_c10d._get_default_store()
    env = os.environ
    address, port, run_id = (
        env.get("MASTER_ADDR"),
        env.get("MASTER_PORT"),
        env.get("TORCHELASTIC_RUN_ID"),
    )
    if not (address and port):
        return None
    if dist.is_available() and env.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        from torch.distributed import TCPStore  # type: ignore[attr-defined]  # not in __all__

        timeout = timedelta(seconds=_WAIT_FOR_RANK0_S)  # to connect
        return TCPStore(address, int(port), is_master=False, timeout=timeout)
    if not run_id:
        return None
    launch = "-".join([run_id, address, port]).replace("/", "_").replace(":", "_")
    return _FileStore(runs_dir / ".track" / launch)


class _FileStore:
    """A store's ``set``, ``wait`` and ``get`` over files in one folder on a file system
    every rank sees, for a launch that has no store of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def set(self, key: str, value: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.folder / key, value)

    def wait(self, keys: list[str], timeout: timedelta) -> None:
        deadline = time.monotonic() + timeout.total_seconds()
        while not all((self.folder / key).is_file() for key in keys):
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {keys} in {self.folder} after {timeout}")
            time.sleep(0.05)

    def get(self, key: str) -> bytes:
        return (self.folder / key).read_bytes()


def _to_host(values: list[Any]) -> list[Any]:
    """Tensors to Python numbers: one stacked transfer per device and dtype."""
    import torch

    out: list[Any] = list(values)
    groups: dict[tuple[Any, Any], list[int]] = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            groups.setdefault((v.device, v.dtype), []).append(i)
    for indices in groups.values():
        stacked = torch.stack([values[i].reshape(()) for i in indices]).tolist()
        for i, number in zip(indices, stacked):
            out[i] = number
    return out


def _line(record: dict[str, Any]) -> str:
    # Floats exactly (repr round-trips); NaN and Inf as the strings "nan", "inf", "-inf".
    return strict_json.dumps(record, sort_keys=True) + "\n"
