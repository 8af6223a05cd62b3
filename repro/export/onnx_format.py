"""ONNX through ONNX Runtime: export with torch's default (dynamo) exporter, run the
serialised model in an ONNX Runtime session, and on a mismatch find the first value
inside the graph that parts from the ExportedProgram the ONNX program was made from.

Optional: without ``repro[export]`` (onnx, onnxscript, onnxruntime) the format is
reported as unavailable with the install command.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import torch
from torch import nn

from repro.export.built import Built, Unavailable, dynamic_shapes, recorded_warnings
from repro.export.subject import Inputs

INSTALL = "pip install 'repro[export]'"
PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def missing_packages() -> list[str]:
    return [name for name in PACKAGES if importlib.util.find_spec(name) is None]


def _providers(example: Inputs) -> list[str]:
    import onnxruntime as ort

    on_cuda = any(t.is_cuda for t in example)
    if on_cuda and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session(program: Any, example: Inputs) -> tuple[Any, dict[str, Any]]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    session = ort.InferenceSession(
        program.model_proto.SerializeToString(), options, providers=_providers(example)
    )
    opsets = {o.domain or "ai.onnx": o.version for o in program.model_proto.opset_import}
    facts = {
        "onnxruntime": ort.__version__,
        "onnx": metadata.version("onnx"),
        "onnxscript": metadata.version("onnxscript"),
        "providers": session.get_providers(),
        "graph_optimization_level": str(options.graph_optimization_level).rsplit(".", 1)[-1],
        "opset": opsets.get("ai.onnx"),
        # ONNX Runtime's CUDA provider uses TF32 unless this is 0; PyTorch does not by default.
        "NVIDIA_TF32_OVERRIDE": os.environ.get("NVIDIA_TF32_OVERRIDE"),
        "ops": sorted({node.op_type for node in program.model_proto.graph.node}),
    }
    return session, facts


def export_onnx(model: nn.Module, example: Inputs, dynamic: bool) -> Any:
    """The ONNXProgram of torch's default exporter (dynamo, torch's default opset)."""
    return torch.onnx.export(
        model, example, dynamo=True, dynamic_shapes=dynamic_shapes(example, dynamic), verbose=False
    )


def build_onnx(model: nn.Module, example: Inputs, dynamic: bool) -> Built:
    missing = missing_packages()
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed: {INSTALL}")
    start = time.perf_counter()
    notes: list[str] = []
    with recorded_warnings(notes):
        program = export_onnx(model, example, dynamic)
        session, facts = _session(program, example)
    names = [i.name for i in session.get_inputs()]

    def run(inputs: Inputs) -> list[torch.Tensor]:
        if len(inputs) != len(names):
            raise RuntimeError(
                f"the ONNX graph takes {len(names)} inputs, the set has {len(inputs)}"
            )
        feed = {n: t.detach().cpu().numpy() for n, t in zip(names, inputs)}
        with recorded_warnings(notes):
            return [torch.from_numpy(o) for o in session.run(None, feed)]

    facts["model_bytes"] = program.model_proto.ByteSize()
    return Built(run, facts, notes, time.perf_counter() - start, program)


@dataclass(frozen=True)
class DivergingValue:
    value: str
    node: str | None
    op_type: str | None
    max_abs: float
    position: int  # 1-based among the values compared, in graph order
    compared: int


def first_diverging_value(program: Any, inputs: Inputs, tolerance: float) -> DivergingValue | None:
    """The first value in graph order where ONNX Runtime and the ExportedProgram inside the
    ONNX program differ by more than ``tolerance`` (the output's calibrated bound)."""
    import torch.onnx.verification as verification

    notes: list[str] = []
    with recorded_warnings(notes):
        infos = verification.verify_onnx_program(program, inputs, compare_intermediates=True)
    producers = {out.name: node for node in program.model.graph for out in node.outputs}
    for position, info in enumerate(infos, start=1):
        if info.max_abs_diff > tolerance:
            node = producers.get(info.name)
            return DivergingValue(
                info.name,
                node.name if node is not None else None,
                node.op_type if node is not None else None,
                float(info.max_abs_diff),
                position,
                len(infos),
            )
    return None
