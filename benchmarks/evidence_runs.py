"""The environment changes ``evidence.py`` measures, and how their runs are made and kept.

An environment change is one this machine can make without other hardware: a CPU kernel
level below its own (``ATEN_CPU_CAPABILITY``), a lower oneDNN instruction-set cap
(``ONEDNN_MAX_CPU_ISA``), another split of the same global batch over ranks and threads.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import atomic
from repro.judge.bands import Bands, window_bounds
from repro.judge.comparison import Comparison
from repro.judge.group_stats import clopper_pearson
from repro.manifest.cpu import ATEN_LEVELS
from repro.manifest.cpu import current_usable_cpus as usable_cpus
from repro.profile import load_profile, parse_overrides
from repro.runs.prepare import prepare_run
from repro.runs.runner import launch
from repro.runs.runview import RunView

# oneDNN's instruction-set caps below torch's CPU capability, highest first (oneDNN reads
# upper case; SSE41 is the lowest it offers on x86).
ONEDNN_BELOW = {"AVX512": ("AVX2", "SSE41"), "AVX2": ("SSE41",)}


@dataclass
class Cell:
    name: str
    sets: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _kernel_cells(capability: str) -> tuple[list[Cell], list[Cell]]:
    """Each ATen kernel level below this machine's, and each lower oneDNN cap."""
    own = ATEN_LEVELS.index(capability.lower()) if capability.lower() in ATEN_LEVELS else 0
    aten = [
        Cell(f"ATEN_CPU_CAPABILITY={level}", env={"ATEN_CPU_CAPABILITY": level})
        for level in ATEN_LEVELS[:own]
    ]
    onednn = [
        Cell(f"ONEDNN_MAX_CPU_ISA={isa}", env={"ONEDNN_MAX_CPU_ISA": isa})
        for isa in ONEDNN_BELOW.get(capability.upper(), ())
    ]
    return aten, onednn


# 1 rank x 2 threads, not 2 x 2: more threads than cores makes DDP several times slower,
# and the change (the BLAS and oneDNN thread split) is the same.
THREADS = Cell(
    "1 rank x 2 threads (same global batch)", sets=["world_size=1", "threads_per_rank=2"]
)
WORLD_SIZE_1 = Cell("world size 1 (same global batch)", sets=["world_size=1"])


def machine_cells(capability: str) -> list[Cell]:
    """The perturbed rows' cells: one oneDNN cap, every kernel level, the batch splits."""
    aten, onednn = _kernel_cells(capability)
    return [THREADS, *aten, *onednn[:1], WORLD_SIZE_1]


def environments(capability: str) -> list[Cell]:
    """Every environment this machine can run as is: itself, each lower kernel level and
    oneDNN cap, a lower machine's pair of both (ATen and oneDNN one level down, and both at
    their lowest), and the batch splits."""
    aten, onednn = _kernel_cells(capability)
    pairs = []
    if aten and onednn:
        for a, o in ((aten[-1], onednn[0]), (aten[0], onednn[-1])):
            pairs.append(Cell(f"{a.name} + {o.name}", env={**a.env, **o.env}))
    unique = {cell.name: cell for cell in pairs}  # one level below is also the lowest on AVX2
    return [Cell("this host as is"), *aten, *onednn, *unique.values(), THREADS, WORLD_SIZE_1]


CHUNK = 12  # runs per launch: a finished chunk is kept, so a stopped measurement loses little


def run_cell(
    profile: str, sets: list[list[str]], env: dict[str, str], runs: Path, *, only_kept: bool = False
) -> list[RunView]:
    """A cell's runs, CHUNK to a launch, as many launches at once as the CPUs hold.

    Every finished run is kept in ``runs.json`` beside ``runs`` (its settings and
    environment -> its folder), so a second call with the same work folder runs only
    what is missing, and a changed judge can be measured again on the same runs;
    ``only_kept`` runs nothing and returns what is kept.
    """
    index_file = runs.parent / "runs.json"
    index: dict[str, str] = json.loads(index_file.read_text()) if index_file.exists() else {}
    keys = [json.dumps([s, env], sort_keys=True) for s in sets]
    missing = [i for i, k in enumerate(keys) if k not in index]
    if missing and not only_kept:
        ranks_x_threads = _cpus_per_run(profile, sets[0])
        parallel = max(1, usable_cpus() // ranks_x_threads)
        chunks = [missing[c : c + CHUNK] for c in range(0, len(missing), CHUNK)]
        lock = threading.Lock()

        def run_chunk(chunk: list[int]) -> None:
            entries = [
                prepare_run(profile, sets[i], runs_dir=runs, quiet=True, env=env) for i in chunk
            ]
            for i, outcome in zip(chunk, launch(entries, env=env)):
                if outcome.ok:  # a launch problem is not a verdict: rerun it next time
                    with lock:
                        index[keys[i]] = str(outcome.run_dir)
                        atomic.write_json(index_file, index)
                else:
                    print(f"warning: {outcome.run_dir}: {outcome.reason}", flush=True)

        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(run_chunk, chunks))
    return [RunView.from_run_dir(Path(index[k])) for k in keys if k in index]


def _cpus_per_run(profile: str, sets: list[str]) -> int:
    p = load_profile(profile, parse_overrides(sets))
    return p.world_size * p.threads_per_rank


def worst_ratio(comparison: Comparison) -> float:
    """The candidate's largest window value over its bound (1 is the decision)."""
    ratios = [w.value / w.threshold for w in comparison.numerics.windows if w.threshold > 0]
    return max(ratios, default=math.nan)


def tolerance(bands: Bands) -> list[tuple[str, int, int, float, float]]:
    """(scalar, first step, last step, typical member deviation, bound / typical) per window."""
    bounds, _ = window_bounds(
        bands.primary, bands.members, alpha=bands.alpha, windows=bands.windows
    )
    return [(b.scalar, b.start, b.end - 1, b.typical, b.tolerance) for b in bounds]


def rate(events: int, ratios: list[float]) -> dict[str, Any]:
    """A count of events among candidates, its exact 95 % interval and the candidates'
    worst ratios (their smallest, median and largest)."""
    ordered = sorted(ratios)
    return {
        "n": len(ordered),
        "events": events,
        "interval": clopper_pearson(events, len(ordered)) if ordered else (0.0, 1.0),
        "worst_min": ordered[0] if ordered else math.nan,
        "worst_median": statistics.median(ordered) if ordered else math.nan,
        "worst_max": ordered[-1] if ordered else math.nan,
    }


def rate_line(label: str, row: dict[str, Any], counted: str) -> str:
    low, high = row["interval"]
    return (
        f"  {label:40} {row['events']:>3} of {row['n']:<3} {counted:13} "
        f"{100 * low:5.1f}-{100 * high:5.1f} %   worst / bound min {row['worst_min']:.2f}, "
        f"median {row['worst_median']:.2f}, max {row['worst_max']:.2f}"
    )
