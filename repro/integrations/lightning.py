"""Record a Lightning training as a tracked run (``pip install repro[lightning]``).

    from repro.integrations.lightning import ReproCallback

    trainer = L.Trainer(callbacks=[ReproCallback(runs_dir="runs")], deterministic=True)
    trainer.fit(model, data)            # then: repro compare runs/A runs/B

The run's config is ``pl_module.hparams`` (``save_hyperparameters``) with the Trainer's
settings under ``trainer`` and any ``config=`` given on top; a difference there is another
training. ``seed_everything`` and ``Trainer(deterministic=...)`` are read as they left
torch, never set. Every rank records its own losses (``metrics-rank{N}.jsonl``) in the
one folder rank 0 creates; rank 0 writes the manifest, config and status.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback

from repro.integrations._run import FrameworkRun


class ReproCallback(Callback):
    """Opens the tracked run at ``on_fit_start`` and closes it at ``on_fit_end`` (COMPLETE)
    or ``on_exception`` (FAILED)."""

    def __init__(
        self,
        runs_dir: str | Path = "runs",
        config: Mapping[str, Any] | None = None,
        *,
        flush_every: int = 100,
    ) -> None:
        self.runs_dir, self.config, self.flush_every = (
            Path(runs_dir),
            dict(config or {}),
            flush_every,
        )
        self.run: FrameworkRun | None = None
        self._batches = 0  # training batches seen: the step of each logged row

    @property
    def path(self) -> Path | None:
        """The run's folder once the fit has started."""
        return self.run.path if self.run is not None else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seed = os.environ.get("PL_GLOBAL_SEED")  # what seed_everything set, if it was called
        config = {**dict(pl_module.hparams), "trainer": trainer_settings(trainer), **self.config}
        self._batches = 0
        self.run = FrameworkRun(
            config,
            seed=int(seed) if seed is not None else None,
            runs_dir=self.runs_dir,
            flush_every=self.flush_every,
            rank=trainer.global_rank,
            world_size=trainer.world_size,
            share_name=lambda name: str(trainer.strategy.broadcast(name, src=0)),
        )
        self.run.start()

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.run is None:
            return
        values: dict[str, Any] = {"global_step": trainer.global_step, **learning_rates(trainer)}
        loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
        if isinstance(loss, torch.Tensor):
            # Under automatic optimisation Lightning hands on_train_batch_end the loss divided
            # by accumulate_grad_batches (the value it backpropagates); the loss a user
            # compares is the one training_step returned, so the division is undone (exact
            # when the factor is 1 or a power of two, within one rounding otherwise).
            accumulate = trainer.accumulate_grad_batches
            if pl_module.automatic_optimization and accumulate > 1:
                loss = loss.detach() * accumulate
            values["loss"] = loss
        self.run.log(self._batches, **values)
        self._batches += 1

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is None or trainer.sanity_checking:
            return  # the sanity check's two batches are not a measurement of the training
        self.run.log(max(self._batches - 1, 0), **dict(trainer.callback_metrics))

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.run is None:
            return
        self.run.final(**dict(trainer.callback_metrics))
        self.run.fingerprint(pl_module)
        self.run.end()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if self.run is not None:
            self.run.end(exception)


def trainer_settings(trainer: pl.Trainer) -> dict[str, Any]:
    """The Trainer's settings that define the training, and how torch's determinism was left
    (Lightning keeps no copy of ``deterministic=``: it sets torch's flags and forgets)."""
    deterministic: bool | str = torch.are_deterministic_algorithms_enabled()
    if deterministic and torch.is_deterministic_algorithms_warn_only_enabled():
        deterministic = "warn"
    return {
        "precision": str(trainer.precision),
        "deterministic": deterministic,
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "strategy": type(trainer.strategy).__name__,
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "gradient_clip_val": trainer.gradient_clip_val,
        "max_epochs": trainer.max_epochs,
        "max_steps": trainer.max_steps,
        "seed_workers": os.environ.get("PL_SEED_WORKERS") == "1",
    }


def learning_rates(trainer: pl.Trainer) -> dict[str, float]:
    """``lr`` for one optimizer with one parameter group, else ``lr/<optimizer>.<group>``."""
    groups = [
        (i, j, group["lr"])
        for i, optimizer in enumerate(trainer.optimizers)
        for j, group in enumerate(optimizer.param_groups)
    ]
    if len(groups) == 1:
        return {"lr": groups[0][2]}
    return {f"lr/{i}.{j}": lr for i, j, lr in groups}
