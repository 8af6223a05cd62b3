"""Every preflight check in one call (``run_preflight``), host first, and the all-reduce
sweep's two checks: every byte right, and the bus bandwidth against ``bandwidth.yaml``."""

from __future__ import annotations

import shutil
import subprocess
import time
from importlib import resources
from typing import Any

from repro.clock import stamp_phase
from repro.manifest.probe import reason_for
from repro.preflight.check import Check, Preflight
from repro.preflight.collective import allreduce_sweep
from repro.preflight.devices import job_device_uuids
from repro.preflight.gpu import gpu_checks, job_gpu_names
from repro.preflight.host import host_checks

GPU_SWEEP = (8, 64 * 1024, 1024**2, 16 * 1024**2, 64 * 1024**2)
CPU_SWEEP = (8, 64 * 1024, 1024**2, 4 * 1024**2)  # gloo on CPU ranks: seconds, not minutes


def _expectation(names: list[str], ranks: int) -> tuple[float | None, float, str]:
    """(expected busbw in GB/s or None, warn fraction, source) for this node."""
    import yaml

    table = yaml.safe_load(
        resources.files("repro.preflight").joinpath("bandwidth.yaml").read_text()
    )
    for row in table["rows"]:
        # The whole NVML name: "NVIDIA H100 80GB HBM3" (SXM) is not "NVIDIA H100 PCIe" or
        # "NVIDIA H100 NVL", which have no NVSwitch and a fraction of its bandwidth.
        if names and all(row["gpu"] == n for n in names) and row["ranks"] == ranks:
            return (
                float(row["busbw_gbps"]),
                float(table["warn_below"]),
                f"bandwidth.yaml ({row['gpu']}, {ranks} ranks, {row['link']})",
            )
    return None, float(table["warn_below"]), "bandwidth.yaml has no row for this node"


def collective_checks(
    ranks: int, backend: str, names: list[str], corrupt: bool = False
) -> list[Check]:
    sizes = GPU_SWEEP if backend == "nccl" else CPU_SWEEP
    label = f"{backend}, {ranks} ranks"
    try:
        sweep = allreduce_sweep(ranks, backend, sizes, corrupt=corrupt)
    except Exception as exc:  # a rank that dies or hangs in a collective is itself the finding
        return [Check("collective.allreduce", "fail", None, "completes", label, str(exc))]
    wrong = sum(row["wrong"] for row in sweep)
    checks = [
        Check(
            "collective.allreduce.bytes",
            "fail" if wrong else "ok",
            wrong,
            "0 wrong elements",
            f"exact integer sums ({label})",
            f"{wrong} elements came back wrong: the interconnect or a GPU corrupts data"
            if wrong
            else "",
        )
    ]
    largest = sweep[-1]
    busbw = largest["busbw_gbps"]
    expected, fraction, source = _expectation(names, ranks)
    value = {
        "bytes": largest["bytes"],
        "busbw_gbps": busbw,
        "algbw_gbps": largest["algbw_gbps"],
        "sweep": [{k: row[k] for k in ("bytes", "seconds", "busbw_gbps")} for row in sweep],
    }
    if busbw is None:
        checks.append(
            Check(
                "collective.allreduce.busbw",
                "unavailable",
                value,
                "n/a",
                label,
                "one rank: no bus to measure",
            )
        )
    elif expected is None:
        checks.append(Check("collective.allreduce.busbw", "ok", value, "no expectation", source))
    elif busbw < fraction * expected:
        checks.append(
            Check(
                "collective.allreduce.busbw",
                "warn",
                value,
                f">= {fraction * expected:g} GB/s",
                source,
                f"{busbw:.1f} GB/s at {largest['bytes']} bytes, expected about {expected:g}",
            )
        )
    else:
        checks.append(
            Check(
                "collective.allreduce.busbw",
                "ok",
                value,
                f">= {fraction * expected:g} GB/s",
                source,
            )
        )
    return checks


def dcgm_check(timeout: float = 300.0) -> Check:
    """``dcgmi diag -r 1`` when DCGM is installed: its pass or fail, recorded."""
    dcgmi = shutil.which("dcgmi")
    if dcgmi is None:
        return Check("dcgm.diag_r1", "unavailable", None, "Pass", "dcgmi", "DCGM is not installed")
    try:
        done = subprocess.run(
            [dcgmi, "diag", "-r", "1"], capture_output=True, text=True, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check("dcgm.diag_r1", "fail", None, "Pass", "dcgmi diag -r 1", str(exc))
    failed = done.returncode != 0 or "Fail" in done.stdout
    tail = done.stdout.strip().splitlines()[-3:]
    return Check(
        "dcgm.diag_r1",
        "fail" if failed else "ok",
        " / ".join(tail),
        "Pass",
        "dcgmi diag -r 1",
        "DCGM diagnostics failed" if failed else "",
    )


def _cuda_devices(job_devices: list[str] | None) -> tuple[list[str], Check | None]:
    """The job's CUDA devices (asked of torch in a child when not given), and a failing
    check when a CUDA profile has none."""
    expected = "at least one CUDA device for this CUDA profile"
    source = "torch in a child process, under this job's CUDA_VISIBLE_DEVICES"
    if job_devices is None:
        try:
            job_devices = job_device_uuids()
        except Exception as exc:
            return [], Check("gpus.cuda", "fail", None, expected, source, reason_for(exc))
    if not job_devices:
        why = "torch sees no CUDA device: a CPU-only torch, no driver, or CUDA_VISIBLE_DEVICES hides them all"
        return [], Check("gpus.cuda", "fail", 0, expected, source, why)
    return job_devices, Check("gpus.cuda", "ok", len(job_devices), expected, source)


def run_preflight(
    *,
    ranks: int,
    threads: int,
    device: str = "cpu",
    expect_gpus: int | None = None,
    collectives: bool = True,
    dcgm: bool = False,
    corrupt_collective: bool = False,
    nvml: Any = None,
    job_devices: list[str] | None = None,
) -> Preflight:
    """Every check, host first, of the devices this job will use.

    ``device`` is the profile's (cpu: no GPU is checked and the sweep runs gloo; cuda: the
    job's GPUs and one NCCL rank on each). ``job_devices``: the UUIDs of the job's CUDA
    devices; by default torch lists them in a child process. ``nvml``: the pynvml module by
    default (tests pass a fake).
    """
    start = time.monotonic()
    stamp_phase("preflight: start")
    checks = host_checks(ranks, threads)
    devices: list[str] = []
    if device == "cuda":
        devices, cuda = _cuda_devices(job_devices)
        checks += [cuda] if cuda is not None else []
    gpus = gpu_checks(expect_gpus, nvml, devices)
    checks += gpus
    if collectives and device == "cuda" and devices:
        checks += collective_checks(len(devices), "nccl", job_gpu_names(gpus), corrupt_collective)
    elif collectives and device != "cuda":
        checks += collective_checks(max(2, ranks), "gloo", [], corrupt_collective)
    if dcgm:
        checks.append(dcgm_check())
    stamp_phase("preflight: done")
    return Preflight(tuple(checks), time.monotonic() - start)
