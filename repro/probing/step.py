"""One training step from a saved state, and the settings a repeat runs under.

``Snapshot`` holds everything a step reads that the step itself changes: parameters and
buffers, the optimizer's state, and every random generator a program seeds (torch's CPU
and CUDA generators, Python's ``random``, NumPy's global generator). Restoring it before
each repeat makes two repeats start from the same bits, so any difference between them
is made inside the step.
"""

from __future__ import annotations

import contextlib
import copy
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from repro.probing.trace import Point, Recorder, tensors

LossFn = Callable[[Any], torch.Tensor]


@dataclass(frozen=True)
class Setting:
    """What a repeat runs under: the probe's plain run, or a candidate fix."""

    name: str
    threads: int
    deterministic: bool = False  # torch.use_deterministic_algorithms(True, warn_only=True)
    restore_generators: bool = False  # reset the generators the model's modules hold


def _numpy_random() -> Any:
    try:
        import numpy
    except ImportError:  # numpy is optional to torch: then there is no state to keep
        return None
    return numpy.random


def module_generators(model: nn.Module) -> dict[str, torch.Generator]:
    """Generators held as attributes of the model's modules (``self.gen = torch.Generator()``):
    randomness that restoring the global generators does not reach."""
    found: dict[str, torch.Generator] = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


class Snapshot:
    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        self.model, self.optimizer = model, optimizer
        self.tensors = [t.detach().clone() for t in self._state_tensors()]
        self.grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
        self.optim = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
        self.torch_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # type: ignore[no-untyped-call]
        self.py_rng = random.getstate()
        np_random = _numpy_random()
        self.np_rng = np_random.get_state() if np_random is not None else None
        self.generators = {name: g.get_state() for name, g in module_generators(model).items()}

    def _state_tensors(self) -> list[torch.Tensor]:
        return [*self.model.parameters(), *self.model.buffers()]

    def restore(self, generators: bool = False, grads: bool = False) -> None:
        with torch.no_grad():
            for t, saved in zip(self._state_tensors(), self.tensors):
                t.copy_(saved)
        for p, g in zip(self.model.parameters(), self.grads):
            # A repeat starts with no gradient (set_to_none); the end restores the user's.
            p.grad = g.clone() if grads and g is not None else None
        if self.optimizer is not None and self.optim is not None:
            self.optimizer.load_state_dict(copy.deepcopy(self.optim))
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        random.setstate(self.py_rng)
        np_random = _numpy_random()
        if np_random is not None and self.np_rng is not None:
            np_random.set_state(self.np_rng)
        if generators:
            held = module_generators(self.model)
            for name, state in self.generators.items():
                if name in held:
                    held[name].set_state(state)


@contextlib.contextmanager
def applied(setting: Setting) -> Iterator[None]:
    """Run under a setting, then put back the thread count and the deterministic flags."""
    threads = torch.get_num_threads()
    det, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    try:
        torch.set_num_threads(setting.threads)
        if setting.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def call_model(model: nn.Module, batch: Any) -> Any:
    """A tuple or list is the positional arguments, a dict the keyword arguments."""
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    if isinstance(batch, dict):
        return model(**batch)
    return model(batch)


def default_loss(output: Any) -> torch.Tensor:
    """The output itself when it is a scalar, its ``loss`` when it carries one (as Hugging
    Face models do), else the sum of its floating tensors: any loss exercises every
    gradient, which is all a probe needs."""
    if isinstance(output, torch.Tensor) and output.dim() == 0:
        return output
    loss = output.get("loss") if isinstance(output, dict) else getattr(output, "loss", None)
    if isinstance(loss, torch.Tensor) and loss.dim() == 0:
        return loss
    floats = [t.float().sum() for t in tensors(output) if t.is_floating_point()]
    if not floats:
        raise ValueError("the model's output holds no floating tensor; pass loss_fn")
    return torch.stack(floats).sum()


def run_step(
    recorder: Recorder,
    model: nn.Module,
    batch: Any,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[list[Point], list[int]]:
    """Forward, loss, backward and (with an optimizer) the update, traced."""
    recorder.start()
    output = call_model(model, batch)
    loss = (loss_fn or default_loss)(output)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError("the loss must be a one-element tensor")
    recorder.add(Point("forward", "", "loss"), loss)
    recorder.phase = "backward"
    loss.backward()  # type: ignore[no-untyped-call]
    if optimizer is not None:
        optimizer.step()
        recorder.record_update(model)
    return recorder.take()
