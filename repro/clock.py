"""Wall-clock times as repro writes them: UTC, to the second; phase times for benchmarks.
Never part of a fingerprint."""

from __future__ import annotations

import contextlib
import os
import time


def utc_now() -> str:
    """ISO 8601 with a Z: ``2026-05-09T07:35:25Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def utc_stamp() -> str:
    """The compact form run ids start with: ``20260509T073525Z``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


PHASE_LOG_ENV = "REPRO_PHASE_LOG"
"""A file each repro process appends its phase times to (``benchmarks/bench_verify.py``)."""


def stamp_phase(name: str, at: float | None = None) -> None:
    """Append ``<unix seconds> <pid> <name>`` to the file ``REPRO_PHASE_LOG`` names, if any;
    the time is now unless ``at`` gives one.

    One ``O_APPEND`` write: the CLI, the launcher and the ranks share the file. A benchmark's
    aid must never fail a run, so an unwritable file is ignored.
    """
    path = os.environ.get(PHASE_LOG_ENV)
    if not path:
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, f"{time.time() if at is None else at:.6f} {os.getpid()} {name}\n".encode())
        finally:
            os.close(fd)


def process_started_at() -> float | None:
    """When this process was created (unix seconds, to the kernel's 10 ms tick), before the
    interpreter started; None where ``/proc`` does not say (not Linux)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            # Field 22 (starttime, ticks since boot), counted after the ")" that ends field 2.
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        # Seconds since boot now, to the nanosecond (/proc/stat's btime is whole seconds).
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return time.time() - age
