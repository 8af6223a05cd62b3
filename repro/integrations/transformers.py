"""Record a Hugging Face ``Trainer`` training as a tracked run (``pip install repro[transformers]``).

    from repro.integrations.transformers import ReproCallback

    trainer = Trainer(model, args, train_dataset=data, callbacks=[ReproCallback(runs_dir="runs")])
    trainer.train()                     # then: repro compare runs/A runs/B

The run's config is the ``TrainingArguments`` that define the training (seeds,
``full_determinism``, precision, TF32, accumulation, the optimiser and schedule, data
loader workers: not the output paths, which differ run to run) and the model's config;
a difference there is another training. Every ``on_log`` row is recorded at the Trainer's
global step (evaluations' metrics among them; the last evaluation's are the final
metrics), without the wall-clock figures (``*_runtime``, ``*_per_second``), which differ
between identical runs. The ``Trainer``
calls no callback when training raises: a run still open when the process ends is
closed FAILED with the exception that ended it.

Under ``torchrun`` (or ``accelerate launch``) every rank records its rows in the one
folder rank 0 creates, as ``repro.track`` does.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from repro.integrations._run import FrameworkRun
from repro.runs.readers.huggingface import ARGUMENTS

_WALL_CLOCK = ("_runtime", "_per_second", "model_preparation_time")


class ReproCallback(TrainerCallback):
    """Opens the tracked run at ``on_train_begin``; ``on_train_end`` closes it COMPLETE."""

    def __init__(
        self,
        runs_dir: str | Path = "runs",
        config: dict[str, Any] | None = None,
        *,
        flush_every: int = 100,
    ) -> None:
        self.runs_dir, self.config, self.flush_every = (
            Path(runs_dir),
            dict(config or {}),
            flush_every,
        )
        self.run: FrameworkRun | None = None
        self._final: dict[str, Any] = {}

    @property
    def path(self) -> Path | None:
        """The run's folder once training has begun."""
        return self.run.path if self.run is not None else None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        model = kwargs.get("model")
        config = {"training_arguments": training_arguments(args), **self.config}
        if model is not None and getattr(model, "config", None) is not None:
            config.setdefault("model", model_config(model.config))
        self._final = {}
        self.run = FrameworkRun(
            config,
            seed=args.seed,
            runs_dir=self.runs_dir,
            flush_every=self.flush_every,
            rank=args.process_index,
            world_size=args.world_size,
        )
        self.run.start()

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        logs = _measured(kwargs.get("logs") or {})
        if self.run is None or not logs:
            return
        if "train_loss" in logs:  # the Trainer's closing summary: the mean training loss
            self._final["train_loss"] = logs["train_loss"]
        self.run.log(state.global_step, **logs)

    def on_evaluate(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # The Trainer logs these metrics through on_log too (recorded there, once); here the
        # last evaluation becomes the final metrics.
        metrics = _measured(kwargs.get("metrics") or {})
        self._final.update({k: v for k, v in metrics.items() if k != "epoch"})

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.run is None:
            return
        self.run.final(**self._final)
        model = kwargs.get("model")
        if model is not None:
            self.run.fingerprint(model)
        self.run.end()


def training_arguments(args: TrainingArguments) -> dict[str, Any]:
    """The arguments that define the training, enums as their values."""
    chosen = {name: getattr(args, name) for name in ARGUMENTS if hasattr(args, name)}
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in chosen.items()}


def model_config(config: Any) -> dict[str, Any]:
    """The model's architecture; not the library version or where it was loaded from."""
    values: dict[str, Any] = config.to_dict()
    return {
        k: v for k, v in values.items() if not k.startswith("_") and k != "transformers_version"
    }


def _measured(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if not k.endswith(_WALL_CLOCK)}
