"""One run on one rank: everything that decides the numbers of record.json.

``Training`` builds the model, optimiser, learning-rate schedule, GradScaler and
data loader, runs the step loop, checks the ranks against each other and
evaluates; it writes nothing and prints nothing (``train.py`` does the I/O).
This module is part of the workload hash: a change here is another workload.

Step k: loss_k is computed from parameters p_k; update k produces p_{k+1};
p_0 is the initialisation.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from repro.reference import band
from repro.reference.data import TrainSet, eval_set, make_loader
from repro.reference.determinism import configure_determinism
from repro.reference.fingerprint import Fingerprinter, digest_ints, state_dict_identity, to_hex
from repro.reference.model import Transformer
from repro.reference.tracing import Tracer

if TYPE_CHECKING:
    from repro.profile import Profile

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# Steps per cross-rank gather of the per-step rows: one collective instead of ten
# (about 1 ms each on gloo); every step's rows are still checked.
_GATHER_EVERY = 10
# The only buffer is the constant dropout key table: no need to re-send it every forward.
# torch 2.13 renamed the option; older releases know only the first spelling.
NO_BUFFER_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
    else {"broadcast_buffers": False}
)


class TrainingFailure(Exception):
    """NaN/Inf or desynchronised ranks: agreed on by every rank, so all stop at the same step."""

    def __init__(self, step: int, rank: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.step, self.rank, self.kind = step, rank, kind


def lr_schedule(profile: Profile) -> Callable[[int], float]:
    """Step -> factor of the peak learning rate: linear warm-up, then cosine decay to ``min_lr_ratio``."""

    def factor(step: int) -> float:
        if step < profile.warmup_steps:
            shape = (step + 1) / profile.warmup_steps
        else:
            progress = (step - profile.warmup_steps) / max(1, profile.steps - profile.warmup_steps)
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            shape = profile.min_lr_ratio + (1 - profile.min_lr_ratio) * cosine
        return profile.fault.lr_factor * shape

    return factor


def sdpa_context(profile: Profile) -> AbstractContextManager[Any]:
    if profile.sdpa_backend == "default":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[profile.sdpa_backend]
    return sdpa_kernel(backend)


@dataclass
class _Pending:
    """A step's results on this rank, waiting for the next cross-rank gather."""

    step: int
    row: torch.Tensor  # (3 + local batch,) int64: see Training._row
    grad_norm: float
    lr: float
    loss_scale: float
    params: list[int]
    trace: list[dict[str, Any]] | None


class Training:
    """One run on one rank. ``run`` returns ``None`` or the ``TrainingFailure`` every rank
    agreed on, or raises (an injected or real crash)."""

    def __init__(self, profile: Profile, rank: int, world: int, device: torch.device) -> None:
        p = self.profile = profile
        self.rank, self.world, self.device = rank, world, device
        self.fault_rank = p.fault.fault_rank % world
        self.determinism = configure_determinism(p, rank)
        self.fingerprint = Fingerprinter(device)
        self.model = Transformer(p.model).to(device)
        self.param_names = [n for n, _ in self.model.named_parameters()]
        self.params = [q for _, q in self.model.named_parameters()]
        band.perturb_initial(p, self.params, device)
        self.initial_params = self._param_fingerprints().tolist()
        self.ddp = DDP(
            self.model,
            device_ids=[device.index] if device.type == "cuda" else None,
            **NO_BUFFER_SYNC,
        )
        self.tracer = Tracer(self.fingerprint)
        self.tracer.watch(self.model)
        self.ddp.register_comm_hook(None, self.tracer.comm_hook)
        self.foreach = device.type == "cuda"
        self.optimizer = torch.optim.AdamW(
            self.params, lr=p.lr, betas=p.betas, weight_decay=p.weight_decay, foreach=self.foreach
        )
        self.schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_schedule(p))
        self.scaler = torch.amp.GradScaler(device.type, enabled=p.amp_dtype == "float16")
        dataset = TrainSet(p, os_entropy_dropout=p.fault.nondeterministic)
        self.loader, self.sampler = make_loader(
            p, dataset, rank, world, pin_memory=device.type == "cuda"
        )
        # Per-parameter odd weights: the row's sum of fingerprints sees any one that differs.
        self._weights = torch.arange(len(self.params), dtype=torch.int64, device=device) * 2 + 1
        self.steps: list[dict[str, Any]] = []  # the record's steps, filled on rank 0

    def amp(self) -> AbstractContextManager[Any]:
        dtype = AMP_DTYPES.get(self.profile.amp_dtype)
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _param_fingerprints(self) -> torch.Tensor:
        return torch.stack([self.fingerprint(q) for q in self.params])

    # -- the step loop ----------------------------------------------------------------------

    def run(self, after_step: Callable[[int], None] | None = None) -> TrainingFailure | None:
        """Every step; ``after_step(step)`` runs after each one (progress, timing)."""
        p = self.profile
        steps_per_epoch = p.data.train_samples // p.global_batch
        batches: Iterator[dict[str, Any]] = iter(())
        pending: list[_Pending] = []
        with sdpa_context(p):
            for step in range(p.steps):
                epoch, position = divmod(step, steps_per_epoch)
                if position == 0:
                    if not p.fault.skip_set_epoch:
                        self.sampler.set_epoch(epoch)
                    batches = iter(self.loader)
                entry = self._step(step, next(batches))
                pending.append(entry)
                due = len(pending) == _GATHER_EVERY or step == p.steps - 1
                # Gradients are all-reduced, so every rank sees the same norm: a NaN/Inf
                # anywhere makes all ranks gather at this very step and stop together.
                if due or not math.isfinite(entry.grad_norm):
                    failure = self._gather_rows(pending)
                    pending = []
                    if failure:
                        return failure
                if after_step is not None:
                    after_step(step)
        return None

    def _step(self, step: int, batch: dict[str, Any]) -> _Pending:
        p, device = self.profile, self.device
        tracing = step < p.trace_steps
        self.tracer.active = tracing
        tokens = batch["tokens"].to(device, non_blocking=True)
        targets = batch["targets"].to(device, non_blocking=True)
        seeds = batch["dropout_seed"].to(device, non_blocking=True)
        with self.amp():
            logits = self.ddp(tokens, seeds)  # (B, T, vocab)
        loss = F.cross_entropy(logits.float().view(-1, p.model.vocab), targets.view(-1))
        if p.fault.nan_step == step and self.rank == self.fault_rank:
            loss = loss * float("nan")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, p.grad_clip)
        loss_scale = float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0
        lr = float(self.schedule.get_last_lr()[0])
        before = [q.detach().clone() for q in self.params] if p.fault.update_scale else None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.step()
        if before is not None:
            with torch.no_grad():  # p_{k+1} = p_k + (1 + e) (p_{k+1} - p_k), the same on every rank
                for q, q0 in zip(self.params, before):
                    q.add_(q - q0, alpha=p.fault.update_scale)
        band.perturb_update(p, self.params, step, device)
        self._inject_step_faults(step)
        fps = self._param_fingerprints()  # p_{k+1}
        row = self._row(fps, loss, grad_norm, batch["occurrence"])
        trace = self._gather_trace(self.tracer.take()) if tracing else None
        if step + 1 == p.trace_steps:
            self.tracer.unwatch()  # no hook cost once tracing is over
        return _Pending(step, row, float(grad_norm), lr, loss_scale, fps.tolist(), trace)

    def _row(
        self,
        fps: torch.Tensor,
        loss: torch.Tensor,
        grad_norm: torch.Tensor,
        occurrences: torch.Tensor,
    ) -> torch.Tensor:
        """What every rank must see of every other: [weighted parameter fingerprint sum,
        non-finite flags, loss as float32 bits, the batch's sample occurrences...]."""
        return torch.cat(
            [
                (fps * self._weights).sum().view(1),
                # 1: this rank's loss is NaN/Inf; 2: the (shared) gradient norm is.
                (
                    (~torch.isfinite(loss.detach())).to(torch.int64)
                    + 2 * (~torch.isfinite(grad_norm)).to(torch.int64)
                ).view(1),
                loss.detach().float().view(1).view(torch.int32).to(torch.int64),
                occurrences.to(self.device, torch.int64),
            ]
        )

    def _inject_step_faults(self, step: int) -> None:
        p = self.profile
        if self.rank != self.fault_rank:
            return
        if p.fault.desync_step == step:
            with torch.no_grad():
                self.params[0].add_(1e-3)
        if p.fault.raise_step == step:
            raise RuntimeError(f"injected fault: rank {self.rank} raised at step {step}")
        if p.fault.hang_step == step:
            time.sleep(10 * p.collective_timeout_s + 3600)

    # -- across ranks -----------------------------------------------------------------------

    def _gather_trace(self, local: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's trace on every rank (traced steps only): a rank's own backward can part first."""
        traces: list[Any] = [None] * self.world
        dist.all_gather_object(traces, local)
        return traces

    def _gather_rows(self, pending: list[_Pending]) -> TrainingFailure | None:
        """One all_gather for several steps' rows; every rank checks every step's rows and so
        reaches the same decision. Rank 0 keeps the step records."""
        block = torch.stack([entry.row for entry in pending])  # (steps, row)
        gathered = [torch.empty_like(block) for _ in range(self.world)]
        dist.all_gather(gathered, block)
        per_rank = [g.tolist() for g in gathered]
        for i, entry in enumerate(pending):
            rows = [per_rank[r][i] for r in range(self.world)]
            if self.rank == 0:
                self.steps.append(_step_record(entry, rows))
            failure = self._check_ranks(entry.step, rows)
            if failure:
                return failure
        return None

    def _check_ranks(self, step: int, rows: list[list[int]]) -> TrainingFailure | None:
        # Name the rank whose own loss went bad; a NaN gradient norm is shared by all ranks.
        flagged = sorted((row[1] & 1 == 0, rank) for rank, row in enumerate(rows) if row[1])
        if flagged:
            rank = flagged[0][1]
            return TrainingFailure(
                step, rank, "nonfinite", f"NaN/Inf loss or gradient at step {step} on rank {rank}"
            )
        last = step == self.profile.steps - 1
        if step % self.profile.check_every == 0 or last:
            for rank, row in enumerate(rows[1:], start=1):
                if row[0] != rows[0][0]:
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
                with self.amp():
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


def _step_record(entry: _Pending, rows: list[list[int]]) -> dict[str, Any]:
    rank_losses = [_float32_from_bits(row[2]) for row in rows]
    rank_batches = [row[3:] for row in rows]
    record: dict[str, Any] = {
        "step": entry.step,
        "loss": math.fsum(rank_losses) / len(rank_losses),  # mean over the global batch
        "grad_norm": entry.grad_norm,
        "lr": entry.lr,
        "loss_scale": entry.loss_scale,
        "global_batch": digest_ints(sorted(i for b in rank_batches for i in b)),
        "rank_batches": [digest_ints(b) for b in rank_batches],
        "params": [to_hex(v) for v in entry.params],
    }
    if entry.trace is not None:
        record["trace"] = entry.trace
    return record


def _float32_from_bits(bits: int) -> float:
    return float(torch.tensor([bits], dtype=torch.int64).to(torch.int32).view(torch.float32).item())
