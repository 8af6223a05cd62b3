"""CPU probes: model, usable CPUs and the instruction sets that decide which kernels run.

Everything comes from /proc and /sys; ``lscpu`` would cost a process start and say no more.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path
from typing import Any

from repro.manifest.probe import guarded, is_unavailable, read_each

CPUINFO = Path("/proc/cpuinfo")
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")

# Flags that select code paths in MKL, oneDNN and ATen's CPU dispatch (x86 "flags" and
# arm64 "Features"); the other flags (mitigations, virtualisation) never change a result.
_ISA_PREFIXES = ("avx", "amx", "fma", "f16c", "sve", "asimd", "i8mm", "bf16")
_ISA_NAMES = frozenset({"sme", "sme2", "sme2p1"})  # not a prefix: x86 has "smep", "smap"


def first_cpu_block(path: Path = CPUINFO) -> str:
    """The first processor's block of /proc/cpuinfo.

    The kernel generates /proc/cpuinfo one CPU at a time as it is read; on machines with
    hundreds of CPUs reading all of it costs tens of ms, and every block says the same.
    """
    text = ""
    with open(path, encoding="utf-8", errors="replace") as f:
        while "\n\n" not in text:
            chunk = f.read(4096)
            if not chunk:
                break
            text += chunk
    return text.split("\n\n", 1)[0]


def parse_cpuinfo_block(block: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    return fields


def isa_flags(flags: str) -> list[str]:
    return sorted(
        {flag for flag in flags.split() if flag.startswith(_ISA_PREFIXES) or flag in _ISA_NAMES}
    )


ATEN_LEVELS = ("default", "avx2", "avx512")
"""torch's x86 CPU kernel levels (``ATEN_CPU_CAPABILITY``), lowest first."""

# What ATen's dispatcher requires before it runs a level's kernels (DispatchStub.cpp,
# compute_cpu_capability): the highest level this CPU can run whatever a process asks for.
_ATEN_LEVEL_FLAGS = (
    ("avx512", frozenset({"avx512f", "avx512vl", "avx512bw", "avx512dq", "fma"})),
    ("avx2", frozenset({"avx2", "fma"})),
)


def highest_kernel_level(flags: Any) -> str | None:
    """The highest ATen CPU kernel level (``avx512``, ``avx2``, ``default``) a CPU with these
    ISA flags can run; None when the flags are unknown or not x86's.

    Read from the CPU, never from what a run used: a run made under
    ``ATEN_CPU_CAPABILITY=avx2`` on an AVX-512 CPU used AVX2, but this CPU can still go higher.
    """
    if not isinstance(flags, (list, tuple, set, frozenset)) or not flags:
        return None
    present = {str(flag).lower() for flag in flags}
    if not any(flag.startswith(("sse", "avx", "fma")) for flag in present):
        return None  # arm64's Features: ATen's x86 levels do not apply
    return next((level for level, need in _ATEN_LEVEL_FLAGS if need <= present), "default")


def this_cpu_highest_kernel_level(cpuinfo: Path = CPUINFO) -> str | None:
    """``highest_kernel_level`` of the CPU this process runs on."""
    fields = parse_cpuinfo_block(first_cpu_block(cpuinfo))
    return highest_kernel_level(isa_flags(fields.get("flags", fields.get("Features", ""))))


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` ("max 100000" or "<quota> <period>")."""
    quota, _, period = text.strip().partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or 100000)


def _cgroup_v2_limit(root: Path, proc_self_cgroup: Path) -> float | None:
    relative = None
    for line in proc_self_cgroup.read_text().splitlines():
        if line.startswith("0::"):
            relative = line[3:].lstrip("/")
    if relative is None:
        return None
    # A parent's limit applies to its children too: take the tightest along the path.
    limits = []
    folder = root / relative
    while True:
        cpu_max = folder / "cpu.max"
        if cpu_max.is_file():
            limit = parse_cpu_max(cpu_max.read_text())
            if limit is not None:
                limits.append(limit)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    return min(limits) if limits else None


def _cgroup_v1_limit(root: Path, proc_self_cgroup: Path) -> float | None:
    for line in proc_self_cgroup.read_text().splitlines():
        _, controllers, relative = line.split(":", 2)
        if "cpu" not in controllers.split(","):
            continue
        for mount in dict.fromkeys((root / controllers, root / "cpu", root / "cpu,cpuacct")):
            folder = mount / relative.lstrip("/")
            quota_file = folder / "cpu.cfs_quota_us"
            if quota_file.is_file():
                quota = int(quota_file.read_text())
                period = int((folder / "cpu.cfs_period_us").read_text())
                return None if quota < 0 else quota / period
    return None


def cgroup_cpu_limit(
    root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> float | None:
    """CPUs' worth of time the cgroup quota allows, or None when there is no quota."""
    limits = [
        limit
        for limit in (
            _cgroup_v2_limit(root, proc_self_cgroup),
            _cgroup_v1_limit(root, proc_self_cgroup),
        )
        if limit is not None
    ]
    return min(limits) if limits else None


def usable_cpus(affinity: Any, limit: Any) -> int:
    """CPUs this process can keep busy: its affinity mask, capped by the cgroup quota."""
    if not isinstance(affinity, int):
        raise ValueError("the CPU affinity mask is unknown")
    if isinstance(limit, (int, float)):
        return max(1, min(affinity, math.ceil(limit)))
    return affinity


def current_usable_cpus() -> int:
    """``usable_cpus`` for this process; the CPU count where affinity is unknown (not Linux)."""
    try:
        return usable_cpus(len(os.sched_getaffinity(0)), cgroup_cpu_limit())
    except AttributeError:
        return os.cpu_count() or 1


def cpu_info(cpuinfo: Path = CPUINFO) -> dict[str, Any]:
    fields = guarded(lambda: parse_cpuinfo_block(first_cpu_block(cpuinfo)))

    def field(*names: str) -> Any:
        if is_unavailable(fields):
            return fields  # why /proc/cpuinfo could not be read
        for name in names:
            if fields.get(name):
                return fields[name]
        raise LookupError(f"{cpuinfo} has no {' or '.join(names)} field")

    reading = read_each(
        {
            "arch": platform.machine,
            "vendor": lambda: field("vendor_id", "CPU implementer"),
            "model_name": lambda: field("model name"),
            "logical_cpus": os.cpu_count,
            "affinity_cpus": lambda: len(os.sched_getaffinity(0)),
            "cgroup_cpu_limit": cgroup_cpu_limit,
            "isa_flags": lambda: isa_flags(field("flags", "Features")),
        }
    )
    reading["usable_cpus"] = guarded(
        lambda: usable_cpus(reading["affinity_cpus"], reading["cgroup_cpu_limit"])
    )
    return reading
