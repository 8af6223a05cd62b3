"""The CUDA path, run for real on a GPU machine (`nox -s gpu`); skipped elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import view
from repro.judge.comparison import compare
from repro.manifest.keys import environment_key
from repro.manifest.nvml import cuda_device_uuids, hash_uuid
from repro.runs.prepare import CUBLAS_WORKSPACE_CONFIG, prepare_run
from repro.runs.runner import launch

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
    va, vb = view(a.run_dir), view(b.run_dir)
    # The first forward already differs (not only the GradScaler's loss scale) ...
    assert va.steps[0]["loss"] != vb.steps[0]["loss"]
    assert (va.manifest["run"]["amp_dtype"], vb.manifest["run"]["amp_dtype"]) == (
        "float16",
        "bfloat16",
    )
    # ... and the judge never calls the pair equivalent: another precision has no band.
    comparison = compare(va, vb)
    assert comparison.verdict == "NO_BASELINE"
    assert "amp_dtype" in comparison.setting_differences.get("precision", [])


@pytest.mark.gpu
def test_direct_torchrun_of_the_full_profile_matches_repro_run(tmp_path):
    """The README's direct-torchrun path sets up CUDA from the profile as `repro run` does."""
    (ran,) = launch([prepare_run("full", SHORT, runs_dir=tmp_path / "repro", quiet=True)])
    assert ran.ok, ran.reason
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    sets = [word for pair in SHORT for word in ("--set", pair)]
    command = [
        *(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"),
        *("--nproc-per-node", "1", "--max-restarts", "0", "-m", "repro.reference.train"),
        *("--profile", "full", *sets, "--runs-dir", str(tmp_path / "torchrun"), "--quiet"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    (direct_dir,) = (tmp_path / "torchrun").iterdir()
    assert (direct_dir / "record.json").read_bytes() == (ran.run_dir / "record.json").read_bytes()
    a, b = view(ran.run_dir), view(direct_dir)
    assert environment_key(a.manifest) == environment_key(b.manifest)
    run = b.manifest["run"]
    assert run["backend"] == "nccl" and run["collective_timeout_s"] == 60.0
    assert run["deterministic"]["cublas_workspace_config"] == CUBLAS_WORKSPACE_CONFIG


@pytest.mark.gpu
def test_a_run_records_the_gpu_it_was_given_by_uuid(tmp_path):
    """What `repro verify --per-device` does for each device, on the first one NVML names."""
    uuid = cuda_device_uuids()[0]  # GPU-..., or MIG-... where MIG mode is on
    entry = prepare_run("full", [*SHORT, "steps=20"], runs_dir=tmp_path, quiet=True)
    (outcome,) = launch([entry], env={"CUDA_VISIBLE_DEVICES": uuid})
    assert outcome.ok, outcome.reason
    manifest = view(outcome.run_dir).manifest
    run = manifest["run"]
    assert run["cuda_index"] == 0 and run["cuda_visible_device"] == hash_uuid(uuid)
    assert uuid not in str(manifest["run"])  # hashed, as every UUID in a manifest
    if uuid.startswith("GPU-"):
        assert run["gpu_uuid_sha256"] == hash_uuid(uuid)
        assert run["gpu_uuid_sha256"] in [
            gpu["uuid_sha256"] for gpu in manifest["hardware"]["gpus"]
        ]


@pytest.mark.gpu
def test_an_untraced_step_never_waits_for_the_gpu(monkeypatch):
    """The step's scalars stay on the device until the gather: no host sync inside a step.

    bf16, so no GradScaler: ``GradScaler.step`` reads its Inf flag on the host by design.
    """
    import torch
    import torch.distributed as dist

    from repro.profile import load_profile
    from repro.reference.loop import Training

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29517")
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=device)
    try:
        profile = load_profile(
            "full", {"world_size": 1, "amp_dtype": "bfloat16", "trace_steps": 0, "steps": 8}
        )
        training = Training(profile, 0, 1, device)
        batches = iter(training.trainer.loader)
        # Step 0 builds the optimiser's state; DDP rebuilds its gradient buckets during
        # step 1 with a blocking copy, once. Every step after that is the steady state.
        for step in (0, 1):
            training._step(step, next(batches))
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in (2, 3, 4):
                training._step(step, next(batches))
        finally:
            torch.cuda.set_sync_debug_mode(0)
    finally:
        dist.destroy_process_group()
        # Training turned deterministic mode on for the process; later tests expect it off.
        torch.use_deterministic_algorithms(deterministic_before)


@pytest.mark.gpu
def test_a_tracked_loop_logs_without_waiting_for_the_gpu(tmp_path):
    """``run.log`` keeps tensors on the GPU: a step with a log call never synchronises."""
    import torch

    import repro

    device = torch.device("cuda", 0)
    model = torch.nn.Linear(256, 256).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(64, 256, device=device)
    with repro.track(config={}, runs_dir=tmp_path, flush_every=1000) as run:
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(20):
                loss = model(x).square().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                run.log(step, loss=loss.detach())
        finally:
            torch.cuda.set_sync_debug_mode(0)
    (run_dir,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    from repro.runs.tracked import read_metrics

    assert [r["step"] for r in read_metrics(run_dir) if "step" in r] == list(range(20))


@pytest.mark.gpu
def test_real_preflight_probes_and_an_nccl_sweep_on_a_healthy_node():
    """The real NVML probes read every GPU, and NCCL's all-reduce returns exact sums."""
    import torch

    from repro.preflight.run import run_preflight

    health = run_preflight(ranks=torch.cuda.device_count(), threads=1)
    checks = {c.name: c for c in health.checks}
    assert checks["gpus.count"].value == torch.cuda.device_count()
    assert checks["gpu0.processes"].status in ("ok", "fail")  # read, whatever it found
    assert checks["collective.allreduce.bytes"].status == "ok", checks["collective.allreduce.bytes"]
    assert "nccl" in checks["collective.allreduce.bytes"].source
    failed = [c for c in health.unfit() if not c.name.endswith(".processes")]
    assert not failed, failed  # a healthy node (another job's process is not the node's fault)
