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
    def __init__(self, fingerprint: Fingerprinter, process_group: dist.ProcessGroup | None = None) -> None:
        self.fingerprint = fingerprint
        self.process_group = process_group
        self.active = False
        self.forward: list[tuple[str, torch.Tensor]] = []
        self.grad_local: list[tuple[int, torch.Tensor]] = []
        self.grad_reduced: list[tuple[int, torch.Tensor]] = []

    def watch(self, model: nn.Module, skip: tuple[str, ...] = ("dropout",)) -> None:
        """Register a forward hook on every named submodule (not the root)."""
        for name, module in model.named_modules():
            if name and name.split(".")[0] not in skip:
                module.register_forward_hook(self._forward_hook(name))

    def _forward_hook(self, name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if self.active and isinstance(output, torch.Tensor):
                self.forward.append((name, self.fingerprint(output)))

        return hook

    # No annotations on purpose: DDP compares them to the real classes, and this
    # module's postponed (string) annotations would fail that check.
    def comm_hook(self, state, bucket):  # type: ignore[no-untyped-def]
        """DDP's default averaging all-reduce, fingerprinting the bucket on both sides."""
        if not self.active:
            return allreduce_hook(self.process_group, bucket)  # type: ignore[arg-type]
        index = bucket.index()
        self.grad_local.append((index, self.fingerprint(bucket.buffer())))
        future = allreduce_hook(self.process_group, bucket)  # type: ignore[arg-type]

        def after(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
            reduced = fut.value()
            self.grad_reduced.append((index, self.fingerprint(reduced)))
            return reduced

        return future.then(after)

    def take(self) -> dict[str, list[list[Any]]]:
        """The step's trace as hex fingerprints; clears it for the next step."""
        trace = {
            "forward": [[name, to_hex(int(fp))] for name, fp in self.forward],
            "grad_local": [[i, to_hex(int(fp))] for i, fp in sorted(self.grad_local, key=lambda p: p[0])],
            "grad_reduced": [[i, to_hex(int(fp))] for i, fp in sorted(self.grad_reduced, key=lambda p: p[0])],
        }
        self.forward, self.grad_local, self.grad_reduced = [], [], []
        return trace
