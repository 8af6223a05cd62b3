"""The reference training, one process per rank, started by torch's elastic launcher.

``repro run`` launches it for one node::

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m repro.reference.train --plan PLAN.json

and the same module runs unchanged on a cluster (every node)::

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m repro.reference.train --profile quick --runs-dir runs

Nodes x ranks per node must equal the profile's ``world_size`` (``--set world_size=N``).
A plan may hold several runs (band members, seeds): they execute one after
another in this launch, paying the start-up once.

Whoever launches it, the rank takes everything from the profile before the process
group exists: the thread and cuBLAS variables, the backend (nccl or gloo), the
rank's GPU and the collective timeout.

This module is the rank's entry point and its I/O: plan loading, the manifest,
progress, and the record, timings, checkpoint and status files. Everything that
decides the numbers lives in ``loop.py`` and the modules it imports, which the
workload hash covers; this one it leaves out, so a reworded message keeps
every baseline valid.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sys
import time
import traceback
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.distributed as dist

from repro import atomic
from repro.clock import process_started_at, stamp_phase
from repro.errors import EXIT_USAGE, UserError
from repro.manifest import capture_manifest
from repro.manifest.nvml import hash_uuid
from repro.manifest.schema import write_manifest
from repro.profile import Profile, build_profile, load_profile, parse_overrides
from repro.reference.loop import Training, TrainingFailure
from repro.reference.resume import ResumableTraining, finish_stopped
from repro.reference.step import AMP_DTYPES, sdpa_context
from repro.runs.prepare import PlanEntry, prepare_run, rank_env
from repro.runs.rank_output import EXIT_NO_SPACE, Progress, capture_output, out_of_space
from repro.runs.store import RECORD_LINES, RECORD_SCHEMA_VERSION, write_status

_SDPA_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


def selected_sdpa_backend(profile: Profile, device: torch.device) -> str:
    """Which SDPA kernel torch picks for this model's attention shapes and dtype.

    Asked inside the profile's backend context (a forced backend is what runs) and with
    a query that requires grad, as in training: some kernels have no backward.
    """
    cfg = profile.model
    dtype = AMP_DTYPES.get(profile.amp_dtype, torch.float32)
    shape = (1, cfg.n_heads, cfg.seq_len, cfg.d_model // cfg.n_heads)
    q = torch.zeros(shape, device=device, dtype=dtype, requires_grad=True)
    try:
        with sdpa_context(profile):
            choice = int(torch._fused_sdp_choice(q, q, q, None, 0.0, True))
    except Exception as exc:  # a private API: record why it could not be read
        return f"unknown ({exc.__class__.__name__})"
    return _SDPA_NAMES.get(choice, f"backend {choice}")


def _finish_together(run: str, rank: int, world: int, profile: Profile) -> None:
    """Wait for every rank to finish ``run`` on the launch's store, not a gloo barrier: gloo's
    thread frees a barrier's work later, taking the GIL, which the group's destructor holds
    (a rank seen hung after COMPLETE: ~ProcessGroupGloo vs ~AsyncBarrierWork)."""
    keys = [f"repro/finished/{run}/{r}" for r in range(world)]
    store = dist.distributed_c10d._get_default_store()
    store.set(keys[rank], "1")
    store.wait(keys, timedelta(seconds=profile.collective_timeout_s))


def _collective_timeout_s(device: torch.device) -> float | str:
    """The timeout the default process group enforces, read back from its backend."""
    try:
        backend = dist.distributed_c10d._get_default_group()._get_backend(device)
        return float(backend.options._timeout.total_seconds())
    except Exception as exc:  # a private API: record why it could not be read
        return f"unknown ({exc.__class__.__name__})"


def _process_env(name: str) -> str | None:
    """A variable as this process's C library sees it: torch sets some itself (NCCL_ALGO
    under deterministic mode) with ``setenv``, which ``os.environ`` never shows."""
    import ctypes

    getenv = ctypes.CDLL(None).getenv
    getenv.restype = ctypes.c_char_p
    value = getenv(name.encode())
    return value.decode(errors="replace") if value is not None else None


def _cuda_device(device: torch.device) -> dict[str, Any]:
    """Which GPU this rank used: its CUDA index, ``CUDA_VISIBLE_DEVICES`` entry and UUID.

    The entry is what ``repro verify --per-device`` set: an index as written, a ``GPU-`` or
    ``MIG-`` UUID as its ``uuid_sha256`` (manifests never hold a raw UUID); None when the
    variable is unset. ``gpu_uuid_sha256`` is CUDA's own answer, hashed as
    ``hardware.gpus[*].uuid_sha256`` is, so it names one of those GPUs (a MIG instance's
    UUID matches none of them).
    """
    index = device.index if device.index is not None else torch.cuda.current_device()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [entry.strip() for entry in visible.split(",")] if visible is not None else []
    entry = entries[index] if index < len(entries) else None
    try:
        bare = str(torch.cuda.get_device_properties(index).uuid).lower().removeprefix("gpu-")
        uuid_sha256 = hash_uuid(f"GPU-{bare}")  # NVML's spelling, as hardware.gpus hashes it
    except Exception as exc:  # an old driver or torch: record why
        uuid_sha256 = f"unknown ({exc.__class__.__name__})"
    return {
        "cuda_index": index,
        "cuda_visible_device": entry if entry is None or entry.isdigit() else hash_uuid(entry),
        "gpu_uuid_sha256": uuid_sha256,
    }


class RankRun:
    """One planned run on one rank: ``Training`` does the work, this writes its files (rank 0).

    ``run`` returns normally, raises ``TrainingFailure`` once the failure is recorded, or crashes.
    """

    def __init__(
        self,
        entry: PlanEntry,
        rank: int,
        device: torch.device,
        world: int,
        console: TextIO | None = None,
    ) -> None:
        self.run_dir = Path(entry.run_dir)
        self.profile = build_profile(entry.settings, f"plan entry {self.run_dir.name}")
        self.entry = entry
        self.rank, self.world, self.device = rank, world, device
        # The process group was made for the launch's first entry; repro.runner.launch keeps
        # every entry of a launch on the same world size and device.
        if (self.profile.world_size, self.profile.device) != (world, device.type):
            raise ValueError(
                f"plan entry {self.run_dir.name} needs {self.profile.world_size} ranks on "
                f"{self.profile.device}, but this launch has {world} on {device.type}."
            )
        self.training: Training | None = None
        self.talk = rank == 0 and not entry.quiet
        self.console = console or sys.stderr  # the terminal, where rank 0's progress goes
        self.step_seconds: list[float] = []
        self._last = 0.0  # when the previous step ended (perf_counter seconds)
        self.progress: Progress | None = None

    def run(self) -> None:
        training = self.training = self._training()
        if self.rank == 0:
            self._write_manifest(training)
            stamp_phase("rank 0: built, manifest written")
        self.progress = Progress(self.run_dir, self.rank)
        start = self._last = time.perf_counter()
        failure = training.run(after_step=lambda step: self._after_step(step, training))
        train_s = time.perf_counter() - start
        if self.rank == 0:
            stamp_phase("rank 0: steps done")
        # The run's own files now say how it ended; a rank that dies before this keeps it.
        self.progress.close(remove=True)
        if self.talk:
            print(file=self.console)
        if failure is not None:
            if self.rank == 0:
                self._write_failure(training, failure)
            raise failure
        if isinstance(training, ResumableTraining) and training.stopped:
            finish_stopped(self.run_dir, training, train_s, self._write_record)
        elif self.rank == 0:
            self._finish(training, train_s)
        _finish_together(self.run_dir.name, self.rank, self.world, self.profile)

    def _training(self) -> Training:
        """The plain training, or one that stops after a step or resumes a stopped run."""
        entry = self.entry
        if entry.stop_at is None and entry.resume is None:
            return Training(self.profile, self.rank, self.world, self.device)
        return ResumableTraining(
            self.profile,
            self.rank,
            self.world,
            self.device,
            stop_at=entry.stop_at,
            resume=entry.resume,
        )

    def _after_step(self, step: int, training: Training) -> None:
        now = time.perf_counter()
        self.step_seconds.append(now - self._last)
        if self.progress is not None:
            self.progress.finished(step)
        if self.talk and training.steps:
            self._progress(step, training.steps[-1]["loss"])
        self._last = time.perf_counter()  # printing is not part of the step

    def _progress(self, step: int, loss: float) -> None:
        every = max(1, self.profile.steps // 20)
        if step % every and step != self.profile.steps - 1:
            return
        recent = self.step_seconds[-every:]
        rate = self.profile.global_batch * len(recent) / max(sum(recent), 1e-9)
        end = "\r" if self.console.isatty() else "\n"
        print(
            f"  step {step + 1:>5}/{self.profile.steps}  loss {loss:.4f}  {rate:8.1f} samples/s",
            end=end,
            file=self.console,
            flush=True,
        )

    # -- outputs (rank 0) ---------------------------------------------------------------------

    def _write_manifest(self, training: Training) -> None:
        p, determinism = self.profile, training.determinism
        manifest = capture_manifest(self.entry.repo, argv=self.entry.argv)
        manifest["run"] = {
            "device": self.device.type,
            "world_size": self.world,
            "threads_per_rank": p.threads_per_rank,
            "amp_dtype": p.amp_dtype,
            "sdpa_backend": selected_sdpa_backend(p, self.device),
            "optimizer_impl": "foreach" if training.foreach else "for-loop",
            "backend": str(dist.get_backend()),  # a str subclass YAML cannot write
            "collective_timeout_s": _collective_timeout_s(self.device),
            **({"nccl_algo": _process_env("NCCL_ALGO")} if self.device.type == "cuda" else {}),
            **(_cuda_device(self.device) if self.device.type == "cuda" else {}),
            "seeds": {k: v for k, v in determinism.items() if k.endswith("seed")},
            "deterministic": {k: v for k, v in determinism.items() if not k.endswith("seed")},
        }
        manifest["config"] = p.to_dict()
        write_manifest(self.run_dir / "manifest.yaml", manifest)

    def _write_record(self, record: dict[str, Any]) -> None:
        atomic.write_json_lines(
            self.run_dir / "record.json",
            {"schema_version": RECORD_SCHEMA_VERSION, **record},
            expand=RECORD_LINES,
        )

    def _finish(self, training: Training, train_s: float) -> None:
        state = training.state_dict()
        final = training.final(state)
        stamp_phase("rank 0: evaluated")
        checkpoint = self.run_dir / "checkpoint.pt"
        tmp = self.run_dir / ".checkpoint.pt.tmp"
        try:
            torch.save(state, tmp)
            os.replace(tmp, checkpoint)
        except BaseException:
            tmp.unlink(missing_ok=True)  # never leave half a checkpoint behind
            raise
        stamp_phase("rank 0: checkpoint written")
        self._write_record(training.record(final))
        atomic.write_json(
            self.run_dir / "timings.json",
            {
                "train_seconds": train_s,
                "step_seconds": self.step_seconds,
                "samples_per_second": self.profile.global_batch
                * len(self.step_seconds)
                / max(train_s, 1e-9),
                "checkpoint_file_sha256": hashlib.sha256(checkpoint.read_bytes()).hexdigest(),
                # Steps are timed on the host with no synchronisation (one would slow every
                # step): on a GPU a step's time is when its work was queued, and the queue
                # drains at the next host read. Totals over many steps are still right.
                **(
                    {"step_seconds_clock": "host, unsynchronised (GPU work may still run)"}
                    if self.device.type == "cuda"
                    else {}
                ),
            },
        )
        detail: dict[str, str] = {}
        if not final["converged"]:
            detail = {
                "reason": f"not converged: evaluation accuracy {final['eval_accuracy']:.4f} is "
                f"below the profile's {self.profile.converged_accuracy}",
                "kind": "not_converged",
            }
        status = "COMPLETE" if final["converged"] else "FAILED"
        write_status(self.run_dir, status, **detail)  # the last act of a run
        stamp_phase("rank 0: record and status written")

    def _write_failure(self, training: Training, failure: TrainingFailure) -> None:
        self._write_record(training.record(None, failure))
        write_status(
            self.run_dir,
            "FAILED",
            reason=str(failure),
            kind=failure.kind,
            step=failure.step,
            rank=failure.rank,
        )


def _write_rank_error(
    run_dir: Path, rank: int, world: int, exc: BaseException, run: RankRun | None
) -> None:
    """``error-rank{N}.json``; with ``timed_out_in`` when the rank raised after waiting in a
    collective for about the profile's timeout: then a rank that wrote no error file did
    not join it (``repro.runs.runner`` names it)."""
    error: dict[str, Any] = {
        "rank": rank,
        "world_size": world,
        "error": f"{exc.__class__.__name__}: {exc}",
        "traceback": traceback.format_exc(),
    }
    waiting = run.training.waiting if run is not None and run.training is not None else None
    if run is not None and waiting is not None:
        waited = time.monotonic() - waiting.since
        # Any other error ends the wait long before the timeout does.
        if waited >= 0.9 * run.profile.collective_timeout_s:
            error["timed_out_in"] = {
                "collective": waiting.collective,
                "step": waiting.step,
                "waited_s": round(waited, 1),
            }
    with suppress(OSError):
        atomic.write_json(run_dir / f"error-rank{rank}.json", error)


def _launch_profile(args: argparse.Namespace) -> tuple[Profile, list[PlanEntry] | None]:
    """The profile that sets up this launch, and the plan when ``repro run`` wrote one.

    Read from the arguments alone: the process group does not exist yet. Under a direct
    torchrun every rank resolves ``--profile``/``--set`` as rank 0's ``prepare_run`` will.
    """
    if args.plan:
        plan = [PlanEntry.from_dict(e) for e in json.loads(Path(args.plan).read_text())]
        return build_profile(plan[0].settings, f"plan {args.plan}"), plan
    return load_profile(args.profile, parse_overrides(args.set)), None


def _prepare_direct_run(args: argparse.Namespace, rank: int) -> PlanEntry:
    """Direct torchrun (several nodes): rank 0 prepares the run, the others learn where."""
    box: list[Any] = [None]
    if rank == 0:
        box[0] = prepare_run(
            args.profile,
            args.set,
            runs_dir=Path(args.runs_dir),
            repo=args.repo,
            argv=sys.argv,
            quiet=args.quiet,
        ).to_dict()  # plain data over the wire: every rank rebuilds the entry from it
    dist.broadcast_object_list(box, src=0)
    return PlanEntry.from_dict(box[0])


def _usage_error(rank: int, error: UserError) -> int:
    if rank == 0:  # one line for the launch, not one per rank
        print(error.message, file=sys.stderr)
    return EXIT_USAGE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m repro.reference.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--plan", help="JSON list of prepared runs (written by `repro run`)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs-dir", default=os.environ.get("REPRO_RUNS_DIR", "runs"))
    parser.add_argument("--repo", default=None)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if rank == 0:
        stamp_phase("rank 0: started", at=process_started_at())
        stamp_phase("rank 0: imported")
    try:
        profile, plan = _launch_profile(args)
    except UserError as exc:
        return _usage_error(rank, exc)
    if profile.world_size != world:
        mismatch = UserError(
            f"profile {profile.name!r} needs world_size={profile.world_size} but the launcher "
            f"started {world} ranks; match --nnodes x --nproc-per-node to it, or add "
            f"--set world_size={world}."
        )
        return _usage_error(rank, mismatch)
    # From here on what the rank says goes to its log (usage errors above keep the terminal).
    console = capture_output(rank)
    # Before any CUDA call: cuBLAS reads its workspace setting when it creates a handle, and
    # the data-loader workers inherit the thread counts.
    os.environ.update(rank_env(profile, os.environ))
    cuda = profile.device == "cuda"
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        timeout=timedelta(seconds=profile.collective_timeout_s),
        device_id=device if cuda else None,  # binds NCCL's communicator to this rank's GPU
    )
    # The start-up is done: what is alive now (torch's million objects) lives as long as the
    # rank, so it is frozen out of every later collection, the one at exit included; then
    # collection goes on as usual (``repro.runs.rank_start`` disabled it for the imports).
    gc.freeze()
    gc.enable()
    if rank == 0:
        stamp_phase("rank 0: process group")
    current_dir: Path | None = None
    current: RankRun | None = None
    try:
        for entry in plan if plan is not None else [_prepare_direct_run(args, rank)]:
            current_dir, current = Path(entry.run_dir), None
            current = RankRun(entry, rank, device, world, console)
            try:
                current.run()
            except TrainingFailure:
                continue  # recorded by rank 0; every rank agreed, so the launch goes on
        return 0
    except BaseException as exc:
        if current_dir is not None:
            _write_rank_error(current_dir, rank, world, exc, current)
            if out_of_space(current_dir, exc):
                # Nothing more can be written there, a traceback included: the exit status
                # alone tells the parent (repro.runs.failures).
                raise SystemExit(EXIT_NO_SPACE) from None
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
