"""A Hugging Face ``Trainer`` folder: which files a ``checkpoint-N/`` holds and its
``trainer_state.json``, read in one place for ``repro checkpoint inspect`` (what a resume
from it restores) and for the reader that compares it as a tracked run.

The Trainer writes, per ``checkpoint-N/``: the weights (``model.safetensors``, or
``pytorch_model.bin`` before safetensors), ``optimizer.pt``, ``scheduler.pt``,
``scaler.pt`` (fp16 only), ``rng_state*.pth`` (one per rank), ``trainer_state.json``
(progress and ``log_history``), ``training_args.bin`` and the model's ``config.json``. An
output folder holds its own ``trainer_state.json`` after ``Trainer.save_state()``, and its
``checkpoint-N/`` folders. Nothing here imports torch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from repro.errors import UserError

STATE = "trainer_state.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
OPTIMIZER, SCHEDULER, SCALER = "optimizer.pt", "scheduler.pt", "scaler.pt"
TRAINING_ARGS, MODEL_CONFIG = "training_args.bin", "config.json"


def is_checkpoint_folder(path: Path) -> bool:
    """A folder holding the weights or the progress a Trainer saves in ``checkpoint-N/``."""
    return path.is_dir() and any((path / name).is_file() for name in (*WEIGHTS, STATE))


def rng_files(path: Path) -> list[Path]:
    """``rng_state.pth`` (one process) or ``rng_state_{rank}.pth`` (one per rank)."""
    return sorted(path.glob("rng_state*.pth"))


def state_file(path: Path) -> Path | None:
    """The folder's own ``trainer_state.json``, else its highest-numbered checkpoint's."""
    if (path / STATE).is_file():
        return path / STATE
    checkpoints = [p for p in path.glob("checkpoint-*") if (p / STATE).is_file()]
    numbered = [p for p in checkpoints if re.fullmatch(r"checkpoint-\d+", p.name)]
    if not numbered:
        return None
    return max(numbered, key=lambda p: int(p.name.split("-")[1])) / STATE


def read_state(path: Path) -> dict[str, Any]:
    """A ``trainer_state.json`` as a dict; anything else is one sentence (``UserError``)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{path} is not a complete trainer_state.json ({exc}); pass the folder of a "
            "finished save."
        ) from None
    if not isinstance(state, dict):
        raise UserError(
            f"{path} holds a JSON {type(state).__name__}, not the Trainer's state; pass the "
            "folder of a finished save."
        )
    return state
