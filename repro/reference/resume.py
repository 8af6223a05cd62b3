"""Stop the reference training after step K and resume it, from outside the hashed modules.

``ResumableTraining`` is ``loop.Training`` with a first and a last step: it runs the very
same ``train_step`` and per-step rows, so the workload hash is untouched. A stop writes the
full training state (``training_state.pt``, every rank's RNGs in it); a resume rebuilds the
run as the launch would (same seeds, same initial weights), then restores the pieces asked
for (``PIECES``) and runs steps K+1 onward. Restoring every piece reproduces the
uninterrupted run bit for bit; restoring none is a weights-only resume.

What each rank draws from: the model, the data and the dropout masks are functions of
(seed, epoch, sample index), so the global generators are consumed only while building.
Data-loader workers are persistent and seeded from (master seed, rank, worker) by
``WorkerInit``: the loader's generator gives them a base seed once, at the first batch, and
a resumed launch draws that same one from a fresh generator. The checkpoint still holds
every generator, so a workload that draws during training would resume exactly too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from repro import atomic
from repro.checkpoint.state import load_state, restore_rng_states, rng_states, save_atomic
from repro.reference.determinism import Stream, derive_seed
from repro.reference.loop import _GATHER_EVERY, Training, TrainingFailure, _Pending
from repro.reference.step import Trainer, autocast, sdpa_context
from repro.runs.store import write_status

if TYPE_CHECKING:
    from repro.profile import Profile

STATE_FILE = "training_state.pt"
STATE_FORMAT = "repro.training_state/1"
# What a resume can restore beyond the weights, in the order a report lists them.
PIECES = ("optimizer", "loss_scale", "schedule", "rng", "sampler")
PIECE_WORDS = {
    "optimizer": "the optimizer state (AdamW's moments and step counts)",
    "loss_scale": "the GradScaler's loss scale and growth tracker",
    "schedule": "the learning-rate schedule's position",
    "rng": "the random-number generators (torch, numpy, Python, the loader's)",
    "sampler": "the sampler's epoch and position in it",
}


class _Skipping:
    """A sampler that drops its first ``skip`` indices: a resume starts mid-epoch without
    loading (and discarding) the batches the stopped run already took."""

    def __init__(self, sampler: Any, skip: int) -> None:
        self.sampler, self.skip = sampler, skip

    def __iter__(self) -> Iterator[int]:
        it: Iterator[int] = iter(self.sampler)
        for _ in range(self.skip):
            next(it)
        return it

    def __len__(self) -> int:
        return len(self.sampler) if isinstance(self.sampler, Sized) else 0


def batches_from(
    trainer: Trainer, start: int, first_batch: int, on_first_iter: Callable[[], None]
) -> Iterator[tuple[int, dict[str, Any]]]:
    """``step.batches`` from step ``start``, whose data is the one of step ``first_batch``
    (``start`` when the sampler position is restored, 0 when it is lost)."""
    p = trainer.profile
    per_rank = p.global_batch // p.world_size
    batch_sampler: Any = trainer.loader.batch_sampler
    loader: Iterator[dict[str, Any]] = iter(())
    for step in range(start, p.steps):
        data_step = step - start + first_batch
        epoch, position = divmod(data_step, p.steps_per_epoch)
        if position == 0 or step == start:
            if not p.fault.skip_set_epoch:
                trainer.sampler.set_epoch(epoch)
            # The loader's batch sampler reads its sampler afresh at every iter().
            batch_sampler.sampler = _Skipping(trainer.sampler, position * per_rank)
            loader = iter(trainer.loader)
            if step == start:
                on_first_iter()
        yield step, next(loader)


class ResumableTraining(Training):
    """``Training`` run from step ``start`` (after ``resume``) up to and including ``stop_at``."""

    def __init__(
        self,
        profile: Profile,
        rank: int,
        world: int,
        device: torch.device,
        *,
        stop_at: int | None = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(profile, rank, world, device)
        self.stop_at = stop_at
        self.start = 0
        self.first_batch = 0
        self._loader_state: torch.Tensor | None = None
        if resume is not None:
            self._restore(resume)

    @property
    def stopped(self) -> bool:
        return self.stop_at is not None and self.stop_at < self.profile.steps - 1

    def _restore(self, resume: dict[str, Any]) -> None:
        pieces = set(resume["restore"])
        source = Path(resume["from"])
        # A weights-only resume reads what such a team keeps: checkpoint.pt alone.
        state = load_state(source / (STATE_FILE if pieces else "checkpoint.pt"))
        t = self.trainer
        self.start = int(resume["step"]) + 1
        self.first_batch = self.start if "sampler" in pieces else 0
        self.model.load_state_dict(state["model"] if pieces else state)
        if "optimizer" in pieces:
            t.optimizer.load_state_dict(state["optimizer"])
        if "loss_scale" in pieces:
            t.scaler.load_state_dict(state["scaler"])
        if "schedule" in pieces:
            t.schedule.load_state_dict(state["schedule"])
        # The schedule decides the learning rate; a fresh one restarts it at step 0.
        for group, lr in zip(t.optimizer.param_groups, t.schedule.get_last_lr()):
            group["lr"] = lr
        if "rng" in pieces:
            restore_rng_states(state["rng"][self.rank])
            self._loader_state = state["loader"]["generator"][self.rank]
        # The record holds every step: the stopped run's 0..K, then this run's. The initial
        # parameters are this launch's own (the same seed builds the same p_0).
        if self.rank == 0:
            self.steps = list(resume["steps"])
        if self.start >= self.profile.trace_steps:
            self.tracer.unwatch()

    def _restore_loader_generator(self) -> None:
        # After the first batch: the loader drew its workers' base seed there, as the
        # uninterrupted run did at step 0, and its generator is then where the stop left it.
        if self._loader_state is not None and self.trainer.loader.generator is not None:
            self.trainer.loader.generator.set_state(self._loader_state)

    def _settle_ddp_buckets(self) -> None:
        """One throw-away forward and backward through DDP, as its first step was: DDP
        regroups its gradient buckets by the order gradients became ready in its first
        iteration, and the trace lists each bucket's gradients in that order. The sums are
        the same either way; without this the first resumed step's trace would list them in
        the order of a fresh DDP. No optimizer step, no scaler, no random draw: the
        gradients are dropped and the dropout masks come from the (zero) sample seeds."""
        p, t = self.profile, self.trainer
        batch = p.global_batch // self.world
        tokens = torch.zeros(batch, p.model.seq_len, dtype=torch.int64, device=self.device)
        seeds = torch.zeros(batch, dtype=torch.int64, device=self.device)
        active, self.tracer.active = self.tracer.active, False
        with autocast(p, self.device):
            logits = t.ddp(tokens, seeds)
        logits.float().sum().backward()
        t.optimizer.zero_grad(set_to_none=True)
        self.tracer.active = active

    def run(self, after_step: Callable[[int], None] | None = None) -> TrainingFailure | None:
        """``Training.run`` over steps ``start`` .. ``stop_at`` (or the last)."""
        p = self.profile
        last = p.steps - 1 if self.stop_at is None else min(self.stop_at, p.steps - 1)
        pending: list[_Pending] = []
        with sdpa_context(p):
            if self.start > 0:
                self._settle_ddp_buckets()
            steps = batches_from(
                self.trainer, self.start, self.first_batch, self._restore_loader_generator
            )
            for step, batch in steps:
                pending.append(self._step(step, batch))
                if len(pending) == _GATHER_EVERY or step == last:
                    failure = self._gather_rows(pending)
                    pending = []
                    if failure:
                        return failure
                if after_step is not None:
                    after_step(step)
                if step == last:
                    break
        return None

    def training_state(self) -> dict[str, Any] | None:
        """The full state after ``stop_at`` (rank 0; every rank must call it: it gathers)."""
        t, p = self.trainer, self.profile
        assert self.stop_at is not None
        mine = {"rng": rng_states(), "generator": t.loader.generator.get_state()}
        every: list[Any] = [None] * self.world
        dist.all_gather_object(every, mine)
        if self.rank != 0:
            return None
        workers = max(1, p.num_workers)
        return {
            "format": STATE_FORMAT,
            "step": self.stop_at,
            "model": self.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scaler": t.scaler.state_dict(),
            "schedule": t.schedule.state_dict(),
            "sampler": {
                "epoch": (self.stop_at + 1) // p.steps_per_epoch,
                "position": (self.stop_at + 1) % p.steps_per_epoch,
                "seed": int(t.sampler.seed),
            },
            "loader": {
                "generator": [e["generator"] for e in every],
                "worker_seeds": [
                    [derive_seed(p.seed, Stream.WORKER, rank=r, worker=w) for w in range(workers)]
                    for r in range(self.world)
                ],
            },
            "rng": [e["rng"] for e in every],
        }


def finish_stopped(
    run_dir: Path,
    training: ResumableTraining,
    train_s: float,
    write_record: Callable[[dict[str, Any]], None],
) -> None:
    """Every rank: gather the state; rank 0 writes the weights (``checkpoint.pt``, what a
    weights-only team keeps), the full state, the record so far and status STOPPED."""
    start = time.perf_counter()
    state = training.training_state()
    if state is None:
        return
    gathered_s = time.perf_counter() - start
    weights_s, weights_bytes = _timed_save(state["model"], run_dir / "checkpoint.pt")
    full_s, full_bytes = _timed_save(state, run_dir / STATE_FILE)
    write_record(training.record(None))
    atomic.write_json(
        run_dir / "timings.json",
        {
            "train_seconds": train_s,
            "step_seconds": [],
            # What the stop cost: the weights alone, against the full state (RNGs gathered
            # from every rank first).
            "save": {
                "weights_only": {"seconds": weights_s, "bytes": weights_bytes},
                "full_state": {"seconds": full_s + gathered_s, "bytes": full_bytes},
            },
        },
    )
    k = training.stop_at
    write_status(
        run_dir,
        "STOPPED",
        step=k,
        reason=f"stopped after step {k} (--stop-at); resume it with `repro run --resume {run_dir}`",
    )


def _timed_save(obj: Any, path: Path) -> tuple[float, int]:
    start = time.perf_counter()
    size = save_atomic(obj, path)
    return time.perf_counter() - start, size
