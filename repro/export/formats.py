"""The formats an eval model is exported to, each built once from the first input set and
then run on every input set: ``torch.export`` (``.module()``), ONNX through ONNX Runtime
(``repro.export.onnx_format``), and a TorchScript trace after a save/load round trip.

Each builder returns a ``Built``: a callable giving the flattened outputs, the facts a
reader needs to reproduce it (versions, opset, provider), and the warnings the exporter
raised (``repro.export.built``).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable

import torch
from torch import nn

from repro.export.built import Built, dynamic_shapes, recorded_warnings
from repro.export.onnx_format import build_onnx
from repro.export.subject import Inputs
from repro.export.tolerance import flatten

FORMATS = ("export", "onnx", "torchscript")
DEPRECATED = {"torchscript": "TorchScript is deprecated upstream in favour of torch.export"}


def build_export(model: nn.Module, example: Inputs, dynamic: bool) -> Built:
    start = time.perf_counter()
    notes: list[str] = []
    with recorded_warnings(notes):
        program = torch.export.export(
            model, example, dynamic_shapes=dynamic_shapes(example, dynamic)
        )
        module = program.module()

    def run(inputs: Inputs) -> list[torch.Tensor]:
        with torch.no_grad():
            return [t.detach() for t in flatten(module(*inputs))]

    facts = {"torch": torch.__version__, "dynamic_shapes": dynamic}
    if dynamic:
        facts["ranges"] = {str(k): str(v) for k, v in program.range_constraints.items()}
    return Built(run, facts, notes, time.perf_counter() - start, program)


def build_torchscript(model: nn.Module, example: Inputs, dynamic: bool) -> Built:
    start = time.perf_counter()
    notes: list[str] = []
    with recorded_warnings(notes), torch.no_grad():
        # check_trace re-traces and compares graphs: it fails on nn.TransformerEncoder's
        # fast path for mangled-name differences alone; the output comparison is the check.
        traced = torch.jit.trace(model, example, check_trace=False)  # type: ignore[no-untyped-call]
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        size = buffer.tell()
        buffer.seek(0)
        loaded = torch.jit.load(buffer)  # type: ignore[no-untyped-call]

    def run(inputs: Inputs) -> list[torch.Tensor]:
        with recorded_warnings(notes), torch.no_grad():
            return [t.detach() for t in flatten(loaded(*inputs))]

    facts = {
        "torch": torch.__version__,
        "saved_bytes": size,
        "deprecated": DEPRECATED["torchscript"],
    }
    return Built(run, facts, notes, time.perf_counter() - start)


def builder(name: str) -> Callable[[nn.Module, Inputs, bool], Built]:
    if name == "export":
        return build_export
    if name == "torchscript":
        return build_torchscript

    return build_onnx
