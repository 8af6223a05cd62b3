"""Result rows shared by the ``bench_*.py`` scripts and ``run_all.py``.

A row is one measured figure: its median (or rate), its spread, an optional ratio against
a peer measured in the same run, and an optional target. Each script prints its rows and,
with ``--json FILE``, writes them for ``run_all.py`` to gather into one table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from runner import Timing


@dataclass(frozen=True)
class Row:
    bench: str
    case: str
    n: int
    value: float  # the median, or the rate for counts
    unit: str
    spread: str = ""  # e.g. "IQR 11.9-12.4, range 11.7-13.0"
    ratio: str = ""  # e.g. "1.04 x plain loop"
    target: str = ""  # e.g. "<= 45 s"
    met: bool | None = None


def spread(samples: Sequence[float], scale: float = 1.0) -> str:
    """Interquartile range and full range of ``samples`` (times ``scale``)."""
    timing = Timing("", tuple(samples))
    q1, q3 = timing.quartiles
    low, high = min(samples), max(samples)
    return (
        f"IQR {_fmt(q1 * scale)}-{_fmt(q3 * scale)}, range {_fmt(low * scale)}-{_fmt(high * scale)}"
    )


def sample_row(
    bench: str,
    case: str,
    samples: Sequence[float],
    unit: str,
    *,
    scale: float = 1.0,
    ratio: str = "",
    at_most: float | None = None,
) -> Row:
    """A row from raw samples: median and spread, checked against ``at_most`` (in ``unit``)."""
    median = statistics.median(samples) * scale
    return Row(
        bench,
        case,
        len(samples),
        median,
        unit,
        spread(samples, scale),
        ratio,
        "" if at_most is None else f"<= {at_most:g} {unit}",
        None if at_most is None else median <= at_most,
    )


def ratio_text(samples: Sequence[float], peer: Sequence[float], peer_name: str) -> str:
    return f"{statistics.median(samples) / statistics.median(peer):.3f} x {peer_name}"


def _fmt(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.1:
        return f"{value:.3f}"
    return f"{value:.3g}"


def format_rows(rows: Sequence[Row], *, with_bench: bool = False) -> str:
    header = ("case", "n", "median", "unit", "spread", "ratio", "target", "met")
    table = [(("benchmark",) if with_bench else ()) + header]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        cells = (r.case, str(r.n), _fmt(r.value), r.unit, r.spread, r.ratio, r.target, met)
        table.append(((r.bench,) if with_bench else ()) + cells)
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(line.rstrip() for line in lines)


def print_rows(title: str, rows: Sequence[Row]) -> None:
    print(f"\n{title}\n")
    print(format_rows(rows))


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the rows as JSON")


def write_rows(path: Path | None, rows: Sequence[Row]) -> None:
    if path is not None:
        path.write_text(json.dumps([asdict(r) for r in rows], indent=1) + "\n")


def read_rows(path: Path) -> list[Row]:
    return [Row(**data) for data in json.loads(path.read_text())]


def load_average() -> str:
    """The 1/5/15-minute load averages: on a shared machine they say how noisy a figure is."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"
