"""Localisation data for the first traced steps: where in a step two runs part.

During a traced step the ``Tracer`` fingerprints, in execution order, each
module's forward output and, through a DDP communication hook, the gradient
buckets before and after the all-reduce. Outside traced steps the hook is the
plain averaging all-reduce and costs nothing extra.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from repro.reference.fingerprint import Fingerprinter, to_hex


class Tracer:
    def __init__(
        self, fingerprint: Fingerprinter, process_group: dist.ProcessGroup | None = None
    ) -> None:
        self.fingerprint = fingerprint
        self.process_group = process_group
        self.active = False
        self.names: dict[int, str] = {}
        self._handles: list[Any] = []
        self.forward: list[tuple[str, torch.Tensor]] = []
        self.grad_local: list[tuple[str, torch.Tensor]] = []
        self.grad_reduced: list[tuple[str, torch.Tensor]] = []

    def watch(self, model: nn.Module, skip: tuple[str, ...] = ("dropout",)) -> None:
        """Register a forward hook on every named submodule (not the root)."""
        self.names = {id(p): name for name, p in model.named_parameters()}
        for name, module in model.named_modules():
            if name and name.split(".")[0] not in skip:
                self._handles.append(module.register_forward_hook(self._forward_hook(name)))

    def unwatch(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def _forward_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.active and isinstance(output, torch.Tensor):
                self.forward.append((name, self.fingerprint(output)))

        return hook

    # No annotations on purpose: DDP compares them to the real classes, and this
    # module's postponed (string) annotations would fail that check.
    def comm_hook(self, state, bucket):
        """DDP's default averaging all-reduce, fingerprinting the bucket on both sides."""
        if not self.active:
            return allreduce_hook(self.process_group, bucket)  # type: ignore[arg-type]
        # Per-parameter views into the bucket, in the order DDP reduces them (about
        # the backward order); fingerprinted before the hook averages them in place.
        names = [self.names.get(id(p), "?") for p in bucket.parameters()]
        sizes = [g.numel() for g in bucket.gradients()]
        for name, grad in zip(names, bucket.gradients()):
            self.grad_local.append((name, self.fingerprint(grad)))
        future = allreduce_hook(self.process_group, bucket)  # type: ignore[arg-type]

        def after(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            reduced = fut.value()
            offset = 0
            for name, size in zip(names, sizes):
                self.grad_reduced.append((name, self.fingerprint(reduced[offset : offset + size])))
                offset += size
            return reduced

        return future.then(after)

    def take(self) -> dict[str, list[list[Any]]]:
        """The step's trace as hex fingerprints; clears it for the next step.

        Every fingerprint of the step leaves the device in one transfer.
        """
        parts = {
            "forward": self.forward,
            "grad_local": self.grad_local,
            "grad_reduced": self.grad_reduced,
        }
        entries = [entry for part in parts.values() for entry in part]
        values = torch.stack([fp for _, fp in entries]).tolist() if entries else []
        trace: dict[str, list[list[Any]]] = {}
        start = 0
        for kind, part in parts.items():
            names = [name for name, _ in part]
            trace[kind] = [[n, to_hex(v)] for n, v in zip(names, values[start : start + len(part)])]
            start += len(part)
        self.forward, self.grad_local, self.grad_reduced = [], [], []
        return trace
