"""The trace of one training step: every module's tensors fingerprinted, in the order the
step produced them.

Forward: each module's inputs (a pre-hook) and outputs (a hook), so a difference is
placed either in a module's own computation (its output differs, its inputs did not) or
in the code that ran before it (its input already differs). Backward: tensor hooks on
those same inputs and outputs, and each parameter's accumulated gradient, fire in the
order autograd computes them. Update: every parameter after the optimizer step. Tensor
hooks, not module backward hooks, because module backward hooks wrap a module's outputs
and break in-place operations on them (``ReLU(inplace=True)`` after a module).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from repro.probing.fingerprint import Fingerprinter


@dataclass(frozen=True)
class Point:
    """One fingerprinted tensor: where in the step it was produced and what it is."""

    phase: str  # "forward", "backward" or "update"
    module: str  # the module's qualified name; "" for the model itself
    what: str  # "output", "input 0", "gradient of weight", "updated weight", ...
    consumers: tuple[str, ...] = ()  # backward: the modules that took this tensor as input

    def label(self) -> str:
        return f"{self.phase}:{self.module}:{self.what}"


def tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a module's input or output (nested tuples, lists, dicts, dataclasses)."""
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from tensors(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors(v)
    elif hasattr(value, "__dataclass_fields__"):
        for name in value.__dataclass_fields__:
            yield from tensors(getattr(value, name))


class Recorder:
    """Hooks on every module and parameter; ``active`` only while a step is traced."""

    def __init__(self, model: nn.Module) -> None:
        self.fingerprint = Fingerprinter()
        self.points: list[Point] = []
        self.values: list[torch.Tensor] = []
        self.module_stack: list[str] = []  # the modules whose forward is running
        self.phase = "forward"
        self._handles: list[Any] = []
        self._grad_labels: dict[int, tuple[torch.Tensor, list[str], list[str]]] = {}
        self._seen: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
        self.param_names: dict[int, str] = {}
        self.classes = {name: type(m).__name__ for name, m in model.named_modules()}
        for name, p in model.named_parameters():
            self.param_names.setdefault(id(p), name)
        for name, module in model.named_modules():
            self._handles.append(module.register_forward_pre_hook(self._pre_hook(name)))
            self._handles.append(module.register_forward_hook(self._hook(name)))
        for p in model.parameters():
            if p.requires_grad:
                self._handles.append(p.register_post_accumulate_grad_hook(self._param_hook))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def start(self) -> None:
        self.points, self.values, self.module_stack, self.phase = [], [], [], "forward"
        self._grad_labels = {}
        self._seen = {}

    def add(self, point: Point, t: torch.Tensor) -> None:
        # One tensor is often a child's output, its sibling's input and its parent's output:
        # fingerprint it once per version (an in-place change bumps the version).
        key = (id(t), t._version)
        seen = self._seen.get(key)
        if seen is None or seen[0] is not t:
            seen = (t, self.fingerprint(t))  # holding t keeps its id from being reused
            self._seen[key] = seen
        self.points.append(point)
        self.values.append(seen[1])

    def take(self) -> tuple[list[Point], list[int]]:
        """The step's points and their fingerprints (one transfer per device)."""
        by_device: dict[torch.device, list[int]] = {}
        for i, v in enumerate(self.values):
            by_device.setdefault(v.device, []).append(i)
        values = [0] * len(self.values)
        for indices in by_device.values():
            host = torch.stack([self.values[i] for i in indices]).tolist()
            for i, h in zip(indices, host):
                values[i] = int(h)
        points = self.points
        self.start()
        return points, values

    def _pre_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, args: Any) -> None:
            self.module_stack.append(name)
            if self.phase != "forward":
                return
            for i, t in enumerate(tensors(args)):
                self.add(Point("forward", name, f"input {i}"), t)
                self._watch_grad(t, name, consumer=True)

        return hook

    def _hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            if self.module_stack and self.module_stack[-1] == name:
                self.module_stack.pop()
            if self.phase != "forward":
                return
            outputs = list(tensors(output))
            for i, t in enumerate(outputs):
                what = "output" if len(outputs) == 1 else f"output {i}"
                self.add(Point("forward", name, what), t)
                self._watch_grad(t, name, consumer=False)

        return hook

    def _watch_grad(self, t: torch.Tensor, name: str, consumer: bool) -> None:
        """One gradient hook per tensor, whichever modules produced and consumed it."""
        if not (t.requires_grad and (t.is_floating_point() or t.is_complex())):
            return
        entry = self._grad_labels.get(id(t))
        if entry is None or entry[0] is not t:
            # The tensor itself is kept in the entry, so its id cannot be reused this step.
            entry = (t, [], [])
            self._grad_labels[id(t)] = entry
            t.register_hook(self._grad_hook(entry[1], entry[2]))  # type: ignore[no-untyped-call]
        (entry[2] if consumer else entry[1]).append(name)

    def _grad_hook(self, producers: list[str], consumers: list[str]) -> Any:
        def hook(grad: torch.Tensor) -> None:
            if consumers:
                # The innermost module that took it as input computed this gradient.
                module = max(consumers, key=lambda n: n.count(".") + (n != ""))
                point = Point("backward", module, "gradient of its input", tuple(consumers))
            else:
                point = Point("backward", producers[0], "gradient of its output")
            self.add(point, grad)

        return hook

    def _param_hook(self, p: torch.Tensor) -> None:
        if p.grad is None:
            return
        module, _, param = self.param_names.get(id(p), "?").rpartition(".")
        self.add(Point("backward", module, f"gradient of {param}"), p.grad)

    def record_update(self, model: nn.Module) -> None:
        self.phase = "update"
        self._seen = {}  # an optimizer writing through p.data leaves p's version as it was
        for name, p in model.named_parameters():
            module, _, param = name.rpartition(".")
            self.add(Point("update", module, f"updated {param}"), p)
