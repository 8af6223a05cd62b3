"""Shared benchmark runner: time a callable or a whole command several times, report the
median and spread, and print a plain-text table with a ratio against a named alternative
measured in the same run.

Used by the ``bench_*.py`` scripts next to it (run them from the repository root):

    from runner import interleave, print_table, time_callable, time_command

Timings on shared machines wander by tens of percent between minutes, so alternatives are
measured interleaved (A, B, A, B, ...) and compared by median, never across runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_UNITS = {"s": 1.0, "ms": 1e3, "us": 1e6}


def add_smoke_option(parser: argparse.ArgumentParser) -> None:
    """``--smoke``: the whole script on the smallest inputs, in seconds, so the test suite
    runs every benchmark (tests/test_benchmarks.py) and none can break unnoticed."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="run everything once on tiny inputs (seconds): a check that the script works; "
        "its figures measure nothing and its targets are not judged (exit 0)",
    )


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one case, in seconds."""

    name: str
    seconds: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def quartiles(self) -> tuple[float, float]:
        if len(self.seconds) < 2:
            return self.seconds[0], self.seconds[0]
        q1, _, q3 = statistics.quantiles(self.seconds, n=4, method="inclusive")
        return q1, q3


def time_callable(fn: Callable[[], object], *, repeat: int, warmup: int = 1) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeat`` times timed."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return Timing(getattr(fn, "__name__", "callable"), tuple(samples))


def time_command(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> float:
    """Seconds one run of ``argv`` takes, start to exit; output discarded, failure raised."""
    start = time.perf_counter()
    subprocess.run(
        list(argv),
        cwd=cwd,
        env=None if env is None else {**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )
    return time.perf_counter() - start


def interleave(cases: Mapping[str, Callable[[], float]], *, repeat: int) -> list[Timing]:
    """Run each case once per round, ``repeat`` rounds; each case returns its own seconds
    (e.g. ``lambda: time_command([...])``), so drift on the machine hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeat):
        for name, case in cases.items():
            samples[name].append(case())
    return [Timing(name, tuple(values)) for name, values in samples.items()]


def format_table(
    timings: Sequence[Timing], *, baseline: str | None = None, unit: str = "ms"
) -> str:
    """One row per case: samples, median, IQR, min-max, and median / baseline's median."""
    scale = _UNITS[unit]
    reference = next((t.median for t in timings if t.name == baseline), None)
    ratio_header = f"x {baseline}" if baseline else ""
    header = ("case", "n", f"median {unit}", f"IQR {unit}", f"min-max {unit}", ratio_header)
    rows = [header]
    for timing in timings:
        q1, q3 = timing.quartiles
        ratio = f"{timing.median / reference:.2f}" if reference else ""
        rows.append(
            (
                timing.name,
                str(len(timing.seconds)),
                f"{timing.median * scale:.1f}",
                f"{q1 * scale:.1f}-{q3 * scale:.1f}",
                f"{min(timing.seconds) * scale:.1f}-{max(timing.seconds) * scale:.1f}",
                ratio,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def print_table(
    title: str, timings: Sequence[Timing], *, baseline: str | None = None, unit: str = "ms"
) -> None:
    print(f"\n{title}\n")
    print(format_table(timings, baseline=baseline, unit=unit))
