"""The training itself, as a training script writes it: build the parts, take the batches,
and per step forward, loss, backward, clip, update. Part of the workload hash.

Nothing here records or checks anything. ``repro.reference.loop`` runs these same functions
with the harness's recording and faults beside them, through ``StepHooks``; the overhead
benchmark runs them with the default hooks (none), so both time the very same step.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from repro.reference.data import TrainSet, make_loader
from repro.reference.determinism import configure_determinism
from repro.reference.model import Transformer

if TYPE_CHECKING:
    from repro.profile import Profile

AMP_DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# The only buffer is the constant dropout key table: no need to re-send it every forward.
# torch 2.13 renamed the option; older releases know only the first spelling.
NO_BUFFER_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
    else {"broadcast_buffers": False}
)


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


def autocast(profile: Profile, device: torch.device) -> AbstractContextManager[Any]:
    dtype = AMP_DTYPES.get(profile.amp_dtype)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class Trainer:
    """What a training script holds: the model and its DDP wrapper, the optimiser, the
    schedule, the loss scaler and the data."""

    profile: Profile
    device: torch.device
    determinism: dict[str, Any]  # what configure_determinism set, for the manifest
    model: Transformer
    ddp: DDP
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.AdamW
    schedule: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    loader: torch.utils.data.DataLoader[Any]
    sampler: torch.utils.data.DistributedSampler[Any]


def build(
    profile: Profile,
    rank: int,
    world: int,
    device: torch.device,
    before_wrap: Callable[[Transformer], None] | None = None,
) -> Trainer:
    """Seeds and kernels first, then the parts. ``before_wrap(model)`` runs before DDP
    broadcasts rank 0's initial weights (the harness perturbs a band member's there)."""
    p = profile
    determinism = configure_determinism(p, rank)
    model = Transformer(p.model).to(device)
    if before_wrap is not None:
        before_wrap(model)
    ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None, **NO_BUFFER_SYNC)
    params = list(model.parameters())
    optimizer = torch.optim.AdamW(
        params,
        lr=p.lr,
        betas=p.betas,
        weight_decay=p.weight_decay,
        foreach=device.type == "cuda",
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule(p))
    scaler = torch.amp.GradScaler(device.type, enabled=p.amp_dtype == "float16")
    dataset = TrainSet(p, os_entropy_dropout=p.fault.nondeterministic)
    loader, sampler = make_loader(p, dataset, rank, world, pin_memory=device.type == "cuda")
    return Trainer(
        p, device, determinism, model, ddp, params, optimizer, schedule, scaler, loader, sampler
    )


def batches(trainer: Trainer) -> Iterator[tuple[int, dict[str, Any]]]:
    """(step, batch) for every step; each epoch reshuffles (``set_epoch``) and restarts the loader."""
    p = trainer.profile
    loader: Iterator[dict[str, Any]] = iter(())
    for step in range(p.steps):
        epoch, position = divmod(step, p.steps_per_epoch)
        if position == 0:
            if not p.fault.skip_set_epoch:
                trainer.sampler.set_epoch(epoch)
            loader = iter(trainer.loader)
        yield step, next(loader)


class StepHooks:
    """The points where the harness looks into a step or injects a fault; these do nothing."""

    def logits(self, step: int, logits: torch.Tensor) -> torch.Tensor:
        return logits

    def loss(self, step: int, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def backward(self, step: int) -> AbstractContextManager[Any]:
        return nullcontext()

    def before_update(self, step: int) -> None:
        """The gradients are final (unscaled, clipped); the weights are still p_k."""

    def after_update(self, step: int) -> None:
        """The weights are p_{k+1}."""


NO_HOOKS = StepHooks()


def train_step(
    trainer: Trainer, step: int, batch: dict[str, Any], hooks: StepHooks = NO_HOOKS
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step; (this rank's loss, the gradient norm before clipping), on the device."""
    t, p, device = trainer, trainer.profile, trainer.device
    tokens = batch["tokens"].to(device, non_blocking=True)
    targets = batch["targets"].to(device, non_blocking=True)
    seeds = batch["dropout_seed"].to(device, non_blocking=True)
    with autocast(p, device):
        logits = hooks.logits(step, t.ddp(tokens, seeds))  # (B, T, vocab)
    loss = F.cross_entropy(logits.float().view(-1, p.model.vocab), targets.view(-1))
    loss = hooks.loss(step, loss)
    t.optimizer.zero_grad(set_to_none=True)
    with hooks.backward(step):
        t.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
    t.scaler.unscale_(t.optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(t.params, p.grad_clip)
    hooks.before_update(step)
    t.scaler.step(t.optimizer)  # skipped when the gradients hold an Inf/NaN ...
    t.scaler.update()  # ... and then the scale goes down
    with warnings.catch_warnings():
        # The schedule is a function of the step, skipped or not (the exact check on the
        # learning rate relies on it); torch warns when a skip leaves step 0 unstepped.
        warnings.filterwarnings("ignore", "Detected call of `lr_scheduler.step", UserWarning)
        t.schedule.step()
    hooks.after_update(step)
    return loss, grad_norm
