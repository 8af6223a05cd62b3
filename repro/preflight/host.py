"""Host checks: CPUs against ranks x threads, available memory, the CPU frequency
governor, and whether the system clock is synchronised. Each reads one place and never
raises: what cannot be read is ``unavailable`` with the reason."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

from repro.manifest.cpu import current_usable_cpus
from repro.preflight.check import Check

# The quick profile's 2 ranks peak at 0.74 GiB of memory together (benchmarks/bench_run.py,
# target <= 2 GiB); below this much available memory a rank can be killed mid-run.
MEMORY_NEEDED_GIB = 2.0
_TIME_ERROR = 5  # adjtimex: the clock is not synchronised


def cpu_check(ranks: int, threads: int, usable: int | None = None) -> Check:
    usable = current_usable_cpus() if usable is None else usable
    need = ranks * threads
    expected = f">= {need} ({ranks} ranks x {threads} threads)"
    source = "the profile's world_size x threads_per_rank"
    if usable >= need:
        return Check("host.cpus", "ok", usable, expected, source)
    return Check(
        "host.cpus",
        "warn",
        usable,
        expected,
        source,
        f"{usable} usable CPUs (affinity and cgroup quota) for {need} threads: oversubscribed "
        "DDP runs several times slower; the numbers do not change",
    )


def memory_check(meminfo: Path = Path("/proc/meminfo")) -> Check:
    expected, source = f">= {MEMORY_NEEDED_GIB:g} GiB", "peak memory of a quick run, benchmarks/"
    try:
        fields = dict(
            line.split(":", 1) for line in meminfo.read_text().splitlines() if ":" in line
        )
        available = int(fields["MemAvailable"].split()[0]) / 2**20  # kB -> GiB
    except (OSError, KeyError, ValueError) as exc:
        return Check("host.memory", "unavailable", None, expected, source, f"{meminfo}: {exc}")
    value = round(available, 2)
    if available >= MEMORY_NEEDED_GIB:
        return Check("host.memory", "ok", value, expected, source)
    return Check(
        "host.memory",
        "fail",
        value,
        expected,
        source,
        f"{available:.2f} GiB available: a rank may be killed for memory mid-run; free memory first",
    )


def governor_check(cpufreq: Path = Path("/sys/devices/system/cpu")) -> Check:
    expected, source = "performance", "clocks that follow load make timings noisy"
    governors = sorted(
        {p.read_text().strip() for p in cpufreq.glob("cpu[0-9]*/cpufreq/scaling_governor")}
    )
    if not governors:
        return Check(
            "host.cpu_governor",
            "unavailable",
            None,
            expected,
            source,
            "no cpufreq governor is exposed (common in VMs and containers)",
        )
    value = ",".join(governors)
    if governors == ["performance"]:
        return Check("host.cpu_governor", "ok", value, expected, source)
    return Check(
        "host.cpu_governor",
        "warn",
        value,
        expected,
        source,
        f"governor {value}: timings vary with load; the numbers do not",
    )


def clock_sync_check() -> Check:
    expected, source = "synchronised", "adjtimex(2): the kernel's NTP state"
    libc_name = ctypes.util.find_library("c")
    adjtimex = getattr(ctypes.CDLL(libc_name), "adjtimex", None) if libc_name else None
    if adjtimex is None:
        return Check(
            "host.clock_sync", "unavailable", None, expected, source, "no adjtimex here (not Linux)"
        )
    buffer = ctypes.create_string_buffer(
        512
    )  # struct timex (208 bytes on 64-bit), modes = 0: read only
    state = int(adjtimex(buffer))
    if state < 0:
        return Check(
            "host.clock_sync", "unavailable", None, expected, source, "adjtimex refused the read"
        )
    if state == _TIME_ERROR:
        return Check(
            "host.clock_sync",
            "warn",
            "unsynchronised",
            expected,
            source,
            "the system clock is not synchronised: times in manifests of two nodes do not line up",
        )
    return Check("host.clock_sync", "ok", "synchronised", expected, source)


def host_checks(ranks: int, threads: int) -> list[Check]:
    return [cpu_check(ranks, threads), memory_check(), governor_check(), clock_sync_check()]
