"""What an export check is about, and the preconditions it proves before any number is
compared: the model, its input sets, eval mode, the checkpoint's weights.

A model in train mode is bad input, never a numeric mismatch: dropout alone moves a
2-layer Transformer's outputs by about 7e-2, which would read as a broken exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from repro.errors import UserError
from repro.reference.fingerprint import state_dict_identity

Inputs = tuple[Any, ...]

FACTORY_SHAPE = (
    "return (model, example_inputs) or (model, example_inputs, [more input sets]), where "
    "each input set is a tensor or a tuple of tensors"
)


@dataclass
class Subject:
    """The model under check and its input sets; the first set is the one exported."""

    model: nn.Module
    input_sets: list[Inputs]
    origin: str  # the factory spec or "python"

    @property
    def example(self) -> Inputs:
        return self.input_sets[0]


def _as_inputs(value: Any, what: str) -> Inputs:
    inputs = (value,) if isinstance(value, torch.Tensor) else value
    if not isinstance(inputs, (tuple, list)) or not inputs:
        raise UserError(f"{what} is {type(value).__name__}; {FACTORY_SHAPE}.")
    for item in inputs:
        if not isinstance(item, torch.Tensor):
            raise UserError(f"{what} holds a {type(item).__name__}; {FACTORY_SHAPE}.")
    return tuple(inputs)


def subject_from(made: Any, origin: str) -> Subject:
    """A factory's return value as a Subject; a wrong shape is one sentence."""
    if not isinstance(made, (tuple, list)) or len(made) not in (2, 3):
        raise UserError(f"{origin} returned {type(made).__name__}; {FACTORY_SHAPE}.")
    model = made[0]
    if not isinstance(model, nn.Module):
        raise UserError(
            f"{origin} returned a {type(model).__name__} as the model; {FACTORY_SHAPE}."
        )
    sets = [_as_inputs(made[1], f"{origin}'s example inputs")]
    if len(made) == 3:
        more = made[2]
        if not isinstance(more, (list, tuple)):
            raise UserError(f"{origin}'s further input sets are not a list; {FACTORY_SHAPE}.")
        sets += [_as_inputs(s, f"{origin}'s input set {i + 2}") for i, s in enumerate(more)]
    return Subject(model, sets, origin)


def require_eval_mode(model: nn.Module) -> None:
    """Every submodule in eval mode: dropout off, batch-norm statistics frozen."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise UserError(
            f"the model is in train mode ({training[0]} first of {len(training)} modules); "
            "call model.eval() before exporting."
        )


def weights_identity(model: nn.Module) -> str:
    """sha256 over names, dtypes, shapes and bytes of every parameter and buffer."""
    return state_dict_identity(dict(model.state_dict()))


def _state_dict_in(loaded: Any) -> dict[str, torch.Tensor] | None:
    if (
        isinstance(loaded, dict)
        and loaded
        and all(isinstance(v, torch.Tensor) for v in loaded.values())
    ):
        return loaded
    if isinstance(loaded, dict):
        # Training loops wrap the weights: {"model": state_dict, "optimizer": ...}.
        for key in ("model", "state_dict", "model_state_dict"):
            if key in loaded:
                return _state_dict_in(loaded[key])
    return None


def require_checkpoint(model: nn.Module, path: Path) -> str:
    """The checkpoint's weight identity, which must equal the model's."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise UserError(
            f"--checkpoint {path} does not exist; give the file you exported from."
        ) from exc
    except Exception as exc:
        raise UserError(
            f"--checkpoint {path} is not a torch checkpoint ({exc}); give a file written by torch.save."
        ) from exc
    state = _state_dict_in(loaded)
    if state is None:
        raise UserError(
            f"--checkpoint {path} holds no state dict (looked at the top and under 'model', 'state_dict'); save model.state_dict()."
        )
    want = state_dict_identity(state)
    have = weights_identity(model)
    if want != have:
        raise UserError(
            f"the model's weights are not those of {path} (identity {have[:12]} vs {want[:12]}); "
            "load the checkpoint into the model (model.load_state_dict) before checking."
        )
    return want
