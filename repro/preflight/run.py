"""Every preflight check in one call (``run_preflight``), host first, and the all-reduce
sweep's two checks: every byte right, and the bus bandwidth against ``bandwidth.yaml``."""

from __future__ import annotations

import shutil
import subprocess
import time
from importlib import resources
from typing import Any

from repro.preflight.check import Check, Preflight
from repro.preflight.collective import allreduce_sweep
from repro.preflight.gpu import gpu_checks, gpu_names
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
        if names and all(row["gpu"] in n for n in names) and row["ranks"] == ranks:
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


def run_preflight(
    *,
    ranks: int,
    threads: int,
    expect_gpus: int | None = None,
    collectives: bool = True,
    dcgm: bool = False,
    corrupt_collective: bool = False,
    nvml: Any = None,
) -> Preflight:
    """Every check, host first. ``nvml``: the pynvml module by default (tests pass a fake)."""
    start = time.monotonic()
    checks = host_checks(ranks, threads)
    gpus = gpu_checks(expect_gpus, nvml)
    checks += gpus
    gpu_count = next(
        (c.value for c in gpus if c.name == "gpus.count" and isinstance(c.value, int)), 0
    )
    if collectives:
        if gpu_count >= 1 and nvml is None:
            checks += collective_checks(gpu_count, "nccl", gpu_names(), corrupt_collective)
        else:
            checks += collective_checks(max(2, ranks), "gloo", [], corrupt_collective)
    if dcgm:
        checks.append(dcgm_check())
    return Preflight(tuple(checks), time.monotonic() - start)
