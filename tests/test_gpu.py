"""The CUDA path, run for real on a GPU machine (`nox -s gpu`); skipped elsewhere."""

from __future__ import annotations

import pytest

from helpers import view
from repro.runner import launch, prepare_run

# A short full-profile run: the GPU code path (nccl, fp16 autocast + GradScaler, fused attention).
SHORT = [
    "steps=60",
    "warmup_steps=5",
    "data.train_samples=3840",
    "trace_steps=3",
    "converged_accuracy=0",
]


@pytest.mark.gpu
def test_cuda_runs_are_bitwise_deterministic(tmp_path):
    entries = [prepare_run("full", SHORT, runs_dir=tmp_path, quiet=True) for _ in range(2)]
    first, second = launch(entries)
    assert first.ok and second.ok, (first.reason, second.reason)
    a, b = view(first.run_dir), view(second.run_dir)
    assert a.record == b.record
    run = a.manifest["run"]
    assert run["device"] == "cuda" and run["amp_dtype"] == "float16"
    assert run["deterministic"]["cublas_workspace_config"]
    assert any(step["loss_scale"] != 1.0 for step in a.steps)  # GradScaler is active
    assert a.manifest["hardware"]["gpus"][0]["name"]


@pytest.mark.gpu
def test_bf16_differs_from_fp16_on_cuda(tmp_path):
    fp16 = prepare_run("full", SHORT, runs_dir=tmp_path, quiet=True)
    bf16 = prepare_run("full", [*SHORT, "amp_dtype=bfloat16"], runs_dir=tmp_path, quiet=True)
    a, b = launch([fp16, bf16])
    assert a.ok and b.ok
    assert view(a.run_dir).record["steps"] != view(b.run_dir).record["steps"]
