"""One run on one rank as the harness runs it: the plain training of ``step.py`` with the
recording beside it (fingerprints, the per-step rows every rank checks, traces, faults),
then the evaluation and record.json's content; ``train.py`` does the I/O. Part of the
workload hash. Step k: loss_k comes from parameters p_k; update k makes p_{k+1}.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.distributed as dist
import torch.nn.functional as F

from repro.reference import band
from repro.reference.data import eval_set
from repro.reference.fingerprint import Fingerprinter, digest_ints, state_dict_identity, to_hex
from repro.reference.step import (
    StepHooks,
    autocast,
    batches,
    build,
    sdpa_context,
    train_step,
)
from repro.reference.tracing import Tracer

if TYPE_CHECKING:
    from repro.profile import Profile

# Steps per cross-rank gather of the per-step rows: one collective instead of ten
# (about 1 ms each on gloo); every step's rows are still checked.
_GATHER_EVERY = 10


@dataclass(frozen=True)
class Waiting:
    """The collective a rank is in: if it raises after waiting about the profile's timeout,
    another rank did not join it (the rank entry point reports which)."""

    collective: str
    step: int
    since: float  # time.monotonic() on entry


class TrainingFailure(Exception):
    """NaN/Inf or desynchronised ranks: agreed on by every rank, so all stop at the same step."""

    def __init__(self, step: int, rank: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.step, self.rank, self.kind = step, rank, kind


class RankRow(NamedTuple):
    """What every rank must see of every other after one step.

    A step packs it on the device as one int64 vector (``pack``); nothing leaves the
    device until the gather that moves many steps' rows at once, where ``unpack`` reads
    it back. Floats travel as their exact bits.
    """

    params_sum: int  # odd-weighted sum of the parameter fingerprints: are the ranks in sync?
    loss_nonfinite: bool  # this rank's loss is NaN/Inf
    grad_nonfinite: bool  # the (all-reduced, so shared) gradient norm is NaN/Inf
    skipped: bool  # the GradScaler skipped the update: its scale went down
    loss: float  # this rank's loss (float32)
    grad_norm: float  # float32, widened
    loss_scale: float  # the scale this step used; 1.0 without a GradScaler
    params: list[int]  # each parameter's fingerprint after the update
    occurrences: list[int]  # which samples this rank's batch held

    @staticmethod
    def pack(
        weights: torch.Tensor,
        fps: torch.Tensor,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        scale_before: torch.Tensor,
        scale_after: torch.Tensor,
        occurrences: torch.Tensor,
    ) -> torch.Tensor:
        loss = loss.detach().float()
        flags = (
            (~torch.isfinite(loss)).to(torch.int64)
            + 2 * (~torch.isfinite(grad_norm)).to(torch.int64)
            + 4 * (scale_after < scale_before).to(torch.int64)
        )
        head = [
            (fps * weights).sum().reshape(1),
            flags.reshape(1),
            loss.reshape(1).view(torch.int32).to(torch.int64),
            grad_norm.detach().double().reshape(1).view(torch.int64),
            scale_before.double().reshape(1).view(torch.int64),
        ]
        return torch.cat([*head, fps, occurrences.to(torch.int64)])

    @classmethod
    def unpack(cls, values: list[int], n_params: int) -> RankRow:
        head, rest = values[:_ROW_HEAD], values[_ROW_HEAD:]
        params_sum, flags, loss_bits, grad_bits, scale_bits = head
        return cls(
            params_sum=params_sum,
            loss_nonfinite=bool(flags & 1),
            grad_nonfinite=bool(flags & 2),
            skipped=bool(flags & 4),
            loss=_from_bits("<f", "<i", loss_bits),
            grad_norm=_from_bits("<d", "<q", grad_bits),
            loss_scale=_from_bits("<d", "<q", scale_bits),
            params=rest[:n_params],
            occurrences=rest[n_params:],
        )


_ROW_HEAD = 5  # the scalar fields ahead of the two lists


def _from_bits(float_format: str, int_format: str, bits: int) -> float:
    return float(struct.unpack(float_format, struct.pack(int_format, bits))[0])


@dataclass
class _Pending:
    """A step's results on this rank, waiting for the next cross-rank gather."""

    step: int
    row: torch.Tensor  # RankRow.pack's vector, still on the device
    lr: float
    trace: list[dict[str, Any]] | None


class Training(StepHooks):
    """One run on one rank: ``step.train_step`` with the harness beside it. As its hooks,
    it reads what a step used (learning rate, loss scale) and injects the profile's faults;
    after each step it packs the rank's row, and every ``_GATHER_EVERY`` steps checks every
    rank's rows. ``run`` returns ``None`` or the ``TrainingFailure`` every rank agreed on,
    or raises (an injected or real crash)."""

    def __init__(self, profile: Profile, rank: int, world: int, device: torch.device) -> None:
        p = self.profile = profile
        self.rank, self.world, self.device = rank, world, device
        self.fault_rank = p.fault.fault_rank % world
        self.fingerprint = Fingerprinter(device)
        self.initial_params: list[int] = []
        self.trainer = build(p, rank, world, device, before_wrap=self._before_wrap)
        self.determinism = self.trainer.determinism
        self.model, self.params = self.trainer.model, self.trainer.params
        self.param_names = [n for n, _ in self.model.named_parameters()]
        self.foreach = device.type == "cuda"
        self.tracer = Tracer(self.fingerprint)
        self.tracer.watch(self.model)
        self.trainer.ddp.register_comm_hook(None, self.tracer.comm_hook)
        # Per-parameter odd weights: the row's sum of fingerprints sees any one that differs.
        self._weights = torch.arange(len(self.params), dtype=torch.int64, device=device) * 2 + 1
        self.steps: list[dict[str, Any]] = []  # the record's steps, filled on rank 0
        self.waiting: Waiting | None = None
        self._used: tuple[float, torch.Tensor] = (0.0, torch.ones(()))  # lr, scale of a step
        self._before_update: list[torch.Tensor] | None = None

    def _before_wrap(self, model: torch.nn.Module) -> None:
        band.perturb_initial(self.profile, model.parameters(), self.device)
        self.initial_params = torch.stack(
            [self.fingerprint(q) for q in model.parameters()]
        ).tolist()

    @contextmanager
    def _collective(self, name: str, step: int) -> Iterator[None]:
        self.waiting = Waiting(name, step, time.monotonic())
        yield
        self.waiting = None

    def _param_fingerprints(self) -> torch.Tensor:
        return torch.stack([self.fingerprint(q) for q in self.params])

    # -- the step loop ----------------------------------------------------------------------

    def run(self, after_step: Callable[[int], None] | None = None) -> TrainingFailure | None:
        """Every step; ``after_step(step)`` runs after each one (progress, timing)."""
        p = self.profile
        pending: list[_Pending] = []
        with sdpa_context(p):
            for step, batch in batches(self.trainer):
                pending.append(self._step(step, batch))
                # A NaN is found at the gather, up to _GATHER_EVERY - 1 steps late: every
                # rank stops there together and the failure names the step it began.
                if len(pending) == _GATHER_EVERY or step == p.steps - 1:
                    failure = self._gather_rows(pending)
                    pending = []
                    if failure:
                        return failure
                if after_step is not None:
                    after_step(step)
        return None

    def _step(self, step: int, batch: dict[str, Any]) -> _Pending:
        tracing = step < self.profile.trace_steps
        self.tracer.active = tracing
        loss, grad_norm = train_step(self.trainer, step, batch, hooks=self)
        lr, scale_before = self._used
        row = RankRow.pack(
            self._weights,
            self._param_fingerprints(),  # p_{k+1}
            loss,
            grad_norm,
            scale_before,
            self._loss_scale(),
            batch["occurrence"].to(self.device, non_blocking=True),
        )
        trace = self._gather_trace(self.tracer.take(), step) if tracing else None
        if step + 1 == self.profile.trace_steps:
            self.tracer.unwatch()  # no hook cost once tracing is over
        return _Pending(step, row, lr, trace)

    # -- the hooks: what the step used, and the faults ---------------------------------------

    def logits(self, step: int, logits: torch.Tensor) -> torch.Tensor:
        if self.profile.fault.overflow_step == step and self.rank == self.fault_rank:
            # Inf gradients from here back, on one rank, as an fp16 backward overflows.
            logits.register_hook(lambda grad: torch.full_like(grad, math.inf))  # type: ignore[no-untyped-call]
        return logits

    def loss(self, step: int, loss: torch.Tensor) -> torch.Tensor:
        if self.profile.fault.nan_step == step and self.rank == self.fault_rank:
            return loss * float("nan")
        return loss

    def backward(self, step: int) -> AbstractContextManager[Any]:
        return self._collective("the gradient all-reduce", step)

    def before_update(self, step: int) -> None:
        self._used = (float(self.trainer.schedule.get_last_lr()[0]), self._loss_scale())
        if self.profile.fault.update_scale:
            self._before_update = [q.detach().clone() for q in self.params]

    def after_update(self, step: int) -> None:
        p = self.profile
        if self._before_update is not None:
            with torch.no_grad():  # p_{k+1} = p_k + (1 + e) (p_{k+1} - p_k), the same on every rank
                for q, q0 in zip(self.params, self._before_update):
                    q.add_(q - q0, alpha=p.fault.update_scale)
            self._before_update = None
        band.perturb_update(p, self.params, step, self.device)
        if self.rank != self.fault_rank:
            return
        if p.fault.desync_step == step:
            with torch.no_grad():
                self.params[0].add_(1e-3)
        if p.fault.raise_step == step:
            raise RuntimeError(f"injected fault: rank {self.rank} raised at step {step}")
        if p.fault.hang_step == step:
            time.sleep(10 * p.collective_timeout_s + 3600)

    def _loss_scale(self) -> torch.Tensor:
        """The GradScaler's current scale as a device tensor (``get_scale()`` would sync)."""
        scaler = self.trainer.scaler
        scale = scaler._get_scale_async() if scaler.is_enabled() else None
        if scale is None:
            return torch.ones((), device=self.device)
        return scale.detach().clone()  # update() changes the scale in place

    # -- across ranks -----------------------------------------------------------------------

    def _gather_trace(self, local: dict[str, Any], step: int) -> list[dict[str, Any]]:
        """Every rank's trace on every rank (traced steps only): a rank's own backward can part first."""
        traces: list[Any] = [None] * self.world
        with self._collective("the trace gather", step):
            dist.all_gather_object(traces, local)
        return traces

    def _gather_rows(self, pending: list[_Pending]) -> TrainingFailure | None:
        """One all_gather for several steps' rows; every rank checks every step's rows and so
        reaches the same decision. Rank 0 keeps the step records."""
        block = torch.stack([entry.row for entry in pending])  # (steps, row)
        gathered = [torch.empty_like(block) for _ in range(self.world)]
        with self._collective("the per-step check", pending[-1].step):
            dist.all_gather(gathered, block)
        n = len(self.params)
        per_rank = [[RankRow.unpack(values, n) for values in g.tolist()] for g in gathered]
        for i, entry in enumerate(pending):
            rows = [per_rank[r][i] for r in range(self.world)]
            if self.rank == 0:
                self.steps.append(_step_record(entry, rows))
            failure = self._check_ranks(entry.step, rows)
            if failure:
                return failure
        return None

    def _check_ranks(self, step: int, rows: list[RankRow]) -> TrainingFailure | None:
        bad_loss = [rank for rank, row in enumerate(rows) if row.loss_nonfinite]
        if bad_loss:  # name the first rank whose own loss went bad
            return TrainingFailure(
                step, bad_loss[0], "nonfinite", f"NaN/Inf loss at step {step} on rank {bad_loss[0]}"
            )
        # With a GradScaler an Inf/NaN gradient is the ordinary signal to skip the step and
        # lower the scale; without one it is a failure. The norm is all-reduced: every rank's.
        if rows[0].grad_nonfinite and not self.trainer.scaler.is_enabled():
            return TrainingFailure(
                step, 0, "nonfinite", f"NaN/Inf gradient norm at step {step} (no GradScaler)"
            )
        last = step == self.profile.steps - 1
        if step % self.profile.check_every == 0 or last:
            for rank, row in enumerate(rows[1:], start=1):
                if row.params_sum != rows[0].params_sum:
                    return TrainingFailure(
                        step,
                        rank,
                        "desync",
                        f"ranks desynchronised at step {step}: rank {rank}'s parameters differ from rank 0's",
                    )
        return None

    # -- the end of a run (rank 0) ----------------------------------------------------------

    def evaluate(self) -> tuple[float, float]:
        """Mean token loss and accuracy over the held-out set, on rank 0 alone."""
        p, model = self.profile, self.model
        tokens, targets = eval_set(p)
        model.eval()
        loss_sum, correct = 0.0, 0
        seeds = torch.zeros(p.eval_batch, dtype=torch.int64, device=self.device)
        with torch.no_grad(), sdpa_context(p):
            for start in range(0, len(tokens), p.eval_batch):
                x = tokens[start : start + p.eval_batch].to(self.device)
                y = targets[start : start + p.eval_batch].to(self.device)
                with autocast(p, self.device):
                    logits = model(x, seeds[: len(x)])
                logits = logits.float().view(-1, p.model.vocab)
                loss_sum += float(F.cross_entropy(logits, y.view(-1), reduction="sum").double())
                correct += int((logits.argmax(-1) == y.view(-1)).sum())
        model.train()
        n = targets.numel()
        return loss_sum / n, correct / n

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The final weights on the CPU, as the checkpoint holds them."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items()}

    def final(self, state: dict[str, torch.Tensor]) -> dict[str, Any]:
        eval_loss, eval_accuracy = self.evaluate()
        return {
            "eval_loss": eval_loss,
            "eval_accuracy": eval_accuracy,
            "converged": eval_accuracy >= self.profile.converged_accuracy,
            "checkpoint_identity": state_dict_identity(state),
        }

    def record(
        self, final: dict[str, Any] | None, failure: TrainingFailure | None = None
    ) -> dict[str, Any]:
        """record.json's content, less the file's schema version."""
        record: dict[str, Any] = {
            "profile": self.profile.name,
            "seed": self.profile.seed,
            "world_size": self.world,
            "param_names": self.param_names,
            "initial_params": [to_hex(v) for v in self.initial_params],
            "steps": self.steps,
            "final": final,
        }
        if failure is not None:
            record["failure"] = {
                "step": failure.step,
                "rank": failure.rank,
                "kind": failure.kind,
                "message": str(failure),
            }
        return record


def _step_record(entry: _Pending, rows: list[RankRow]) -> dict[str, Any]:
    """Rank 0's record of one step, from every rank's row."""
    mine = rows[0]
    record: dict[str, Any] = {
        "step": entry.step,
        "loss": math.fsum(r.loss for r in rows) / len(rows),  # mean over the global batch
        # A skipped step's norm is Inf/NaN, which JSON cannot hold: null, with "skipped".
        "grad_norm": mine.grad_norm if math.isfinite(mine.grad_norm) else None,
        "lr": entry.lr,
        "loss_scale": mine.loss_scale,
        "global_batch": digest_ints(sorted(i for r in rows for i in r.occurrences)),
        "rank_batches": [digest_ints(r.occurrences) for r in rows],
        "params": [to_hex(v) for v in mine.params],
    }
    if mine.skipped:
        record["skipped"] = True
    if entry.trace is not None:
        record["trace"] = entry.trace
    return record
