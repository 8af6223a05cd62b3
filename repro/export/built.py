"""What every format builder returns, and the helpers they share: warnings recorded
rather than raised, and the dynamic shapes given to the exporters.

Warnings are recorded, not raised: the tracer's "might not generalize to other inputs"
is the clue to a specialised trace, so it belongs in the report.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from repro.export.subject import Inputs


@dataclass
class Built:
    run: Callable[[Inputs], list[torch.Tensor]]
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    program: Any = None  # the exporter's own object (an ONNXProgram), for the divergence search


class Unavailable(Exception):
    """The format's packages are not installed; the message says how to install them."""


@contextlib.contextmanager
def recorded_warnings(into: list[str]) -> Iterator[None]:
    """Collect every warning as "Category: first line" (each once) instead of raising it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The ONNX exporter logs a warning per optional op library it lacks (torchvision).
        onnx_log = logging.getLogger("torch.onnx")
        level = onnx_log.level
        onnx_log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            onnx_log.setLevel(level)
    for w in caught:
        line = f"{w.category.__name__}: {str(w.message).splitlines()[0] if str(w.message) else ''}"
        if line not in into:
            into.append(line)


def dynamic_shapes(example: Inputs, dynamic: bool) -> tuple[dict[int, Any], ...] | None:
    """Every dimension of every input left to the exporter (``Dim.AUTO``) when there are
    several input sets: it keeps what it can prove general and specialises the rest."""
    if not dynamic:
        return None
    return tuple({d: torch.export.Dim.AUTO for d in range(t.dim())} for t in example)
