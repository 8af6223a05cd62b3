"""A Hugging Face ``Trainer`` folder read as a tracked run: ``trainer_state.json``'s
``log_history`` (one row per logged step; evaluations' rows among them) and, beside it,
the model's ``config.json``.

The folder may be a ``checkpoint-N/`` or the output folder: its own ``trainer_state.json``
(``Trainer.save_state()``) if it has one, else its highest-numbered checkpoint's. Final
metrics are the last evaluation's and the closing mean training loss, as the callback
records them; wall-clock figures (``*_runtime``, ``*_per_second``) differ between
identical runs and are left out. The ``TrainingArguments`` that define the training
(``ARGUMENTS``, the ones the callback records) come from ``training_args.bin``, a pickle
read without executing it: every class it names is replaced by an inert stand-in that
keeps only its arguments and state, so no code from the folder runs and no transformers
or accelerate object is built in this process.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.runs.readers import trainer_folder
from repro.runs.readers.common import tracked_run
from repro.runs.tracked import Tracked

# The TrainingArguments that define the numbers a training produces (and its determinism):
# what repro.integrations.transformers records as config, and what is read back here.
ARGUMENTS = (
    "seed",
    "data_seed",
    "full_determinism",
    "bf16",
    "fp16",
    "tf32",
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "optim",
    "lr_scheduler_type",
    "warmup_steps",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "label_smoothing_factor",
    "dataloader_num_workers",
    "dataloader_drop_last",
    "group_by_length",
    "torch_compile",
)
_WALL_CLOCK = ("_runtime", "_per_second", "model_preparation_time")
# What trainer_state.json keeps of the TrainingArguments: the rest lives in the pickle.
_STATE_SETTINGS = ("train_batch_size", "max_steps", "num_train_epochs")


def detect(path: Path) -> bool:
    return trainer_folder.state_file(path) is not None


def source_files(path: Path) -> list[Path]:
    state = trainer_folder.state_file(path)
    return [] if state is None else [state, state.parent / trainer_folder.MODEL_CONFIG]


def load(path: Path) -> Tracked:
    state_file = trainer_folder.state_file(path)
    assert state_file is not None
    state = _read_state(state_file)
    rows, final = [], {}
    for entry in state["log_history"]:
        values = {k: v for k, v in entry.items() if not k.endswith(_WALL_CLOCK)}
        rows.append(values)
        if any(k.startswith("eval_") for k in values):
            final.update({k: v for k, v in values.items() if k not in ("epoch", "step")})
        if "train_loss" in values:  # the Trainer's closing summary
            final["train_loss"] = values["train_loss"]
    if not final and rows:
        last_loss = [r["loss"] for r in rows if "loss" in r]
        final = {"loss": last_loss[-1]} if last_loss else {}
    config: dict[str, Any] = {}
    arguments = read_training_arguments(state_file.parent / trainer_folder.TRAINING_ARGS)
    notes = []
    if arguments is not None:
        config["training_arguments"] = arguments
    else:
        config["trainer_state"] = {k: state[k] for k in _STATE_SETTINGS if k in state}
        notes.append(
            f"{state_file.parent.name}: no readable training_args.bin; the learning rate, "
            "seed and precision are compared only as logged values"
        )
    model = _model_config(state_file.parent / trainer_folder.MODEL_CONFIG)
    if model is not None:
        config["model"] = model
    seed = (arguments or {}).get("seed")
    return tracked_run(
        path,
        kind="huggingface",
        config=config,
        seed=seed if isinstance(seed, int) else None,
        rows=rows,
        final=final,
        notes=notes,
    )


class _Inert:
    """What a class named in the pickle becomes: its arguments and state, kept as data."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        return type(name, (_Inert,), {})

    def persistent_load(self, pid: Any) -> None:
        return None  # a tensor's storage: TrainingArguments holds none worth reading


def read_training_arguments(path: Path) -> dict[str, Any] | None:
    """``ARGUMENTS`` from a ``training_args.bin`` (``torch.save``'s zip), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            (member,) = [n for n in archive.namelist() if n.endswith("data.pkl")]
            loaded = _InertUnpickler(io.BytesIO(archive.read(member))).load()
    except Exception:  # absent, truncated or another format: the report says so instead
        return None
    state = getattr(loaded, "state", None)
    if not isinstance(state, dict):
        return None
    return {name: _plain(state[name]) for name in ARGUMENTS if name in state}


def _plain(value: Any) -> Any:
    """An enum member (rebuilt from its value) as its value; other objects as None."""
    if isinstance(value, _Inert):
        return value.args[0] if len(value.args) == 1 and not hasattr(value, "state") else None
    return value if isinstance(value, (bool, int, float, str, type(None))) else None


def _read_state(state_file: Path) -> dict[str, Any]:
    state = trainer_folder.read_state(state_file)
    history = state.get("log_history")
    if not isinstance(history, list) or not all(
        isinstance(e, dict) and isinstance(e.get("step"), int) for e in history
    ):
        raise UserError(
            f"{state_file} has no log_history of steps in the layout repro reads (an unknown "
            "trainer_state.json schema); pass a folder the transformers Trainer saved."
        )
    return state


def _model_config(path: Path) -> dict[str, Any] | None:
    """The model's architecture; not the library version or where it was loaded from."""
    try:
        values = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(values, dict):
        return None
    return {
        k: v for k, v in values.items() if not k.startswith("_") and k != "transformers_version"
    }
