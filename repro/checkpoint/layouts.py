"""What a user's checkpoint holds, and what a resume from it cannot restore.

The layouts found in the wild: a bare ``model.state_dict()``; a dict of pieces
(``{"model": ..., "optimizer": ...}``, ``repro.checkpoint.save``'s among them); a Lightning
``.ckpt``; a Hugging Face ``checkpoint-N/`` folder. Every file is loaded with
``weights_only=True``; the numpy RNG state Transformers pickles into ``rng_state*.pth`` is
let through by an explicit allowlist of numpy's array types, as Transformers itself loads
it. ``model.safetensors`` is read from its JSON header alone.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from repro.errors import UserError
from repro.runs.readers import trainer_folder as folder

# The pieces a resume needs beyond the weights, and what to add to the saved dict for each.
ADD = {
    "optimizer": '"optimizer": optimizer.state_dict()',
    "scaler": '"scaler": scaler.state_dict() (only where a GradScaler runs: fp16)',
    "scheduler": '"scheduler": scheduler.state_dict()',
    "rng": "every RNG state per rank: torch CPU and CUDA, numpy, Python "
    "(repro.checkpoint.save stores them)",
    "sampler": '"sampler": the epoch and the step within it (skip that many batches on resume)',
}
WORDS = {
    "model": "model weights",
    "optimizer": "optimizer state",
    "scaler": "loss scaler",
    "scheduler": "LR schedule",
    "rng": "RNG states",
    "sampler": "sampler position",
}
# The keys a pieces dict uses for each piece, as seen in training scripts.
KEYS = {
    "model": ("model", "model_state_dict", "state_dict", "net", "module"),
    "optimizer": ("optimizer", "optimizer_state_dict", "optim", "opt"),
    "scaler": ("scaler", "grad_scaler", "amp", "scaler_state_dict"),
    "scheduler": ("scheduler", "lr_scheduler", "schedule", "scheduler_state_dict"),
    "rng": ("rng", "rng_state", "rng_states"),
    "sampler": ("sampler", "sampler_state", "dataloader"),
}


@dataclass
class Inspection:
    path: str
    layout: str
    holds: dict[str, str] = field(default_factory=dict)  # piece -> what is in it
    other: list[str] = field(default_factory=list)  # keys no piece explains
    optional: tuple[str, ...] = ("scaler",)  # missing without harm unless fp16 runs

    @property
    def missing(self) -> dict[str, str]:
        return {piece: add for piece, add in ADD.items() if piece not in self.holds}

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing}


def _load(path: Path, *, numpy_rng: bool = False) -> Any:
    """``torch.load(weights_only=True)``; with ``numpy_rng`` numpy's RNG array types allowed."""
    try:
        if numpy_rng:
            with torch.serialization.safe_globals(_numpy_rng_types()):
                return torch.load(path, map_location="cpu", weights_only=True)
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(
            f"{path} is not a readable checkpoint ({first[:160]}); pass a file written by "
            "torch.save, or write it again if it was cut short."
        ) from None


def _numpy_rng_types() -> list[Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return [_reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _tensors(state: Any) -> tuple[int, int]:
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    return len(tensors), sum(t.numel() for t in tensors)


def _weights(state: dict[str, Any]) -> str:
    count, numel = _tensors(state)
    return f"{count} tensors, {numel:,} values"


def _optimizer(state: Any) -> str:
    """Which optimizer (from its per-parameter state) and its step count."""
    if not isinstance(state, dict) or "param_groups" not in state:
        return "present (not an optimizer.state_dict())"
    per_param = state.get("state") or {}
    first: dict[str, Any] = next(iter(per_param.values()), {})
    kinds = {
        "exp_avg_sq": "Adam/AdamW",
        "momentum_buffer": "SGD with momentum",
        "square_avg": "RMSprop",
        "sum": "Adagrad",
    }
    kind = next((k for key, k in kinds.items() if key in first), None)
    groups = state["param_groups"]
    if kind == "Adam/AdamW" and groups:
        kind = "AdamW" if groups[0].get("decoupled_weight_decay") else "Adam or AdamW"
    step = first.get("step")
    words = f"{kind or 'an optimizer'}, {len(per_param)} parameters' state"
    if not per_param:
        return f"{words} (empty: it never stepped)"
    return words + (f", step {int(step)}" if step is not None else "")


def _describe_rng(state: Any) -> str:
    if isinstance(state, list):  # one entry per rank
        return f"{len(state)} ranks: " + _describe_rng(state[0] if state else {})
    if isinstance(state, dict):
        return ", ".join(sorted(str(k) for k in state))
    return "present"


def _describe(piece: str, value: Any) -> str:
    if piece == "model":
        return _weights(value) if isinstance(value, dict) else "present"
    if piece == "optimizer":
        return _optimizer(value)
    if piece == "scaler" and isinstance(value, dict):
        return f"scale {value.get('scale')}, growth tracker {value.get('_growth_tracker')}"
    if piece == "scheduler" and isinstance(value, dict):
        return f"{value.get('last_epoch', '?')} steps taken"
    if piece == "rng":
        return _describe_rng(value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if isinstance(v, int | float))
    return "present"


def _pieces_dict(path: Path, state: dict[str, Any], layout: str) -> Inspection:
    found = Inspection(str(path), layout)
    used: set[str] = {"format"}
    for piece, keys in KEYS.items():
        key = next((k for k in keys if k in state), None)
        if key is not None and state[key] is not None:
            found.holds[piece] = _describe(piece, state[key])
            used.add(key)
    found.other = sorted(str(k) for k in state if k not in used)
    return found


def _lightning(path: Path, state: dict[str, Any]) -> Inspection:
    version = state.get("pytorch-lightning_version", "?")
    found = Inspection(str(path), f"Lightning checkpoint (Lightning {version})")
    found.holds["model"] = _weights(state["state_dict"])
    optimizers = state.get("optimizer_states") or []
    if optimizers:
        found.holds["optimizer"] = "; ".join(_optimizer(o) for o in optimizers)
    if state.get("lr_schedulers"):
        found.holds["scheduler"] = "; ".join(
            _describe("scheduler", s) for s in state["lr_schedulers"]
        )
    for key in ("native_amp_scaling_state", "MixedPrecision"):
        if isinstance(state.get(key), dict):
            found.holds["scaler"] = _describe("scaler", state[key])
    if "loops" in state:
        # The fit loop's progress lets Lightning skip the batches an epoch already took.
        found.holds["sampler"] = (
            f"epoch {state.get('epoch')}, global step {state.get('global_step')}"
        )
    known = {"state_dict", "optimizer_states", "lr_schedulers", "loops", "epoch", "global_step"}
    known |= {"pytorch-lightning_version", "native_amp_scaling_state", "MixedPrecision"}
    found.other = sorted(str(k) for k in state if k not in known)
    return found


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a ``.safetensors`` file: 8 bytes of length, then the JSON."""
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < size <= path.stat().st_size - 8:
            raise UserError(f"{path} is not a safetensors file (its header is cut short).")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise UserError(f"{path} is not a safetensors file (its header is not JSON).") from None
    return {k: v for k, v in header.items() if k != "__metadata__"}


def _hugging_face(path: Path) -> Inspection:
    found = Inspection(str(path), "Hugging Face checkpoint folder")
    safetensors, bin_file = (path / name for name in folder.WEIGHTS)
    if safetensors.is_file():
        header = _safetensors_header(safetensors)
        numel = sum(_numel(t.get("shape", [])) for t in header.values())
        found.holds["model"] = f"{len(header)} tensors, {numel:,} values ({safetensors.name})"
    elif bin_file.is_file():
        found.holds["model"] = _weights(_load(bin_file)) + f" ({bin_file.name})"
    pieces = {"optimizer": folder.OPTIMIZER, "scheduler": folder.SCHEDULER}
    pieces["scaler"] = folder.SCALER
    for piece, name in pieces.items():
        if (path / name).is_file():
            found.holds[piece] = _describe(piece, _load(path / name))
    rng_files = folder.rng_files(path)
    if rng_files:
        keys = _describe_rng(_load(rng_files[0], numpy_rng=True))
        found.holds["rng"] = f"{len(rng_files)} file(s) ({rng_files[0].name}: {keys})"
    if (path / folder.STATE).is_file():
        progress = folder.read_state(path / folder.STATE)
        # The Trainer skips global_step's batches on resume: the sampler's position.
        found.holds["sampler"] = (
            f"epoch {progress.get('epoch')}, global step {progress.get('global_step')} "
            f"({folder.STATE})"
        )
    names = {*folder.WEIGHTS, *pieces.values(), folder.STATE} | {p.name for p in rng_files}
    found.other = sorted(p.name for p in path.iterdir() if p.name not in names)
    return found


def _numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def inspect_checkpoint(path: Path | str) -> Inspection:
    """What the checkpoint at ``path`` holds; bad input is one sentence (``UserError``)."""
    path = Path(path)
    if path.is_dir():
        if not folder.is_checkpoint_folder(path):
            raise UserError(
                f"{path} is a folder but not a Hugging Face checkpoint-N folder (no "
                "model.safetensors, pytorch_model.bin or trainer_state.json); pass a file or "
                "such a folder."
            )
        return _hugging_face(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a checkpoint file or checkpoint-N folder.")
    if path.suffix == ".safetensors":
        found = Inspection(str(path), "safetensors weights")
        header = _safetensors_header(path)
        numel = sum(_numel(t.get("shape", [])) for t in header.values())
        found.holds["model"] = f"{len(header)} tensors, {numel:,} values"
        return found
    state = _load(path, numpy_rng=path.suffix == ".pth")
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a checkpoint's dict.")
    if "state_dict" in state and "pytorch-lightning_version" in state:
        return _lightning(path, state)
    if state and all(isinstance(v, torch.Tensor) for v in state.values()):
        found = Inspection(str(path), "bare state_dict (weights only)")
        found.holds["model"] = _weights(state)
        return found
    fmt = state.get("format")
    layout = f"{fmt} file" if isinstance(fmt, str) else "dict of pieces"
    return _pieces_dict(path, state, layout)
