"""The verdict's error rates, measured on real changes (``nox -s evidence``; long, not in CI).

    python benchmarks/evidence.py [--profile quick] [--per-cell 62] [--trials 20] [--record]
        [--baseline-dir DIR] [--smoke]

Judges every candidate against the baseline ``repro verify`` selects on this machine
(from ``--baseline-dir`` when given; ``--record`` records a fresh one first, into a
temporary folder). ``--smoke`` runs one candidate per cell and one power trial on the
smoke profile, whose baseline must come from ``--baseline-dir`` or ``--record``.

False alarms. Each cell is an environment change that must not move the numbers beyond
rounding: another thread count per rank, each CPU kernel level below this machine's
(``ATEN_CPU_CAPABILITY``), oneDNN's instruction-set cap one level below this machine's
(``ONEDNN_MAX_CPU_ISA``), and 1 rank instead of 2 at the same global batch. One
environment change alone is one deterministic record, not many trials, so every
candidate also carries a fresh band-member perturbation (members 100 onward, never used
by a baseline): a candidate is "another machine's arithmetic" twice over. A false alarm
is any verdict other than EQUIVALENT or IDENTICAL. Rates come with exact (Clopper-Pearson)
95 % intervals, per cell and pooled.

Power. The update-scale fault multiplies every parameter update p_{k+1} - p_k by (1 + e)
after the optimiser step, the logged learning rate unchanged: an effective learning rate
the schedule does not show. Candidates are band-member perturbed as above (members 5000
onward); the detection rate is the share judged DRIFT, at e = 0, 0.25 %, 0.5 %, 1 %, 2 %, 5 %.

The band's real tolerance: for each window and scalar, how many times the typical
member's deviation (the geometric mean) a run may deviate before it is outside.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repro import atomic
from repro.baselines.baseline import Baseline, load_baseline, search_dirs, select_baseline
from repro.baselines.recording import assemble_baseline, baseline_plan, spare_members
from repro.judge.bands import Bands, window_bounds
from repro.judge.comparison import Comparison, compare
from repro.judge.group_stats import clopper_pearson
from repro.manifest.cpu import current_usable_cpus as usable_cpus
from repro.profile import load_profile, parse_overrides
from repro.runs.prepare import prepare_run
from repro.runs.runner import launch
from repro.runs.runview import RunView
from repro.runs.workload import workload_hash
from repro.verdict import Verdict
from runner import add_smoke_option

POWER_LEVELS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)
# oneDNN's ISA names one level below torch's CPU capability (oneDNN reads upper case).
ONEDNN_BELOW = {"AVX512": "AVX2", "AVX2": "SSE41"}
CAPABILITY_LEVELS = ("default", "avx2", "avx512")


@dataclass
class Cell:
    name: str
    sets: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def machine_cells(capability: str) -> list[Cell]:
    """The environment changes this machine can make (it cannot go above its own level)."""
    # 1 rank x 2 threads, not 2 x 2: more threads than cores makes DDP several times
    # slower, and the cell's change (the BLAS and oneDNN thread split) is the same.
    cells = [
        Cell("1 rank x 2 threads (same global batch)", sets=["world_size=1", "threads_per_rank=2"])
    ]
    own = (
        CAPABILITY_LEVELS.index(capability.lower())
        if capability.lower() in CAPABILITY_LEVELS
        else 0
    )
    cells += [
        Cell(f"ATEN_CPU_CAPABILITY={level}", env={"ATEN_CPU_CAPABILITY": level})
        for level in CAPABILITY_LEVELS[:own]
    ]
    if capability.upper() in ONEDNN_BELOW:
        isa = ONEDNN_BELOW[capability.upper()]
        cells.append(Cell(f"ONEDNN_MAX_CPU_ISA={isa}", env={"ONEDNN_MAX_CPU_ISA": isa}))
    cells.append(Cell("world size 1 (same global batch)", sets=["world_size=1"]))
    return cells


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


def record(profile: str, folder: Path) -> Baseline:
    if (folder / "baselines" / "evidence" / "baseline.yaml").is_file():  # a kept work folder
        return load_baseline(folder / "baselines" / "evidence")
    plan, seed_list = baseline_plan(profile, 24, 8)
    entries = [prepare_run(profile, s, runs_dir=folder / "runs", quiet=True) for s in plan]
    views = [RunView.from_run_dir(o.run_dir) for o in launch(entries)]
    path, _ = assemble_baseline(
        views,
        numerics=24,
        seed_list=seed_list,
        root=folder / "baselines",
        name="evidence",
        force=True,
        replace=spare_members(profile, runs_dir=folder / "runs"),
    )
    return load_baseline(path)


def judged(views: list[RunView], primary: RunView, bands: Bands) -> list[Comparison]:
    return [compare(v, primary, bands=bands) for v in views]


def power(args: Any, primary: RunView, bands: Bands, runs: Path, kept: bool) -> list[dict]:
    """Detection rate of the update-scale fault at each effect size."""
    rows = []
    for j, e in enumerate(args.levels):
        sets = [
            [f"fault.update_scale={e}", f"band_member={5000 + 100 * j + i}"]
            for i in range(args.trials)
        ]
        comparisons = judged(run_cell(args.profile, sets, {}, runs, only_kept=kept), primary, bands)
        if not comparisons:
            continue
        detected = sum(c.verdict == Verdict.DRIFT for c in comparisons)
        ratios = sorted(worst_ratio(c) for c in comparisons)
        rows.append(
            {
                "e": e,
                "n": len(comparisons),
                "detected": detected,
                "interval": clopper_pearson(detected, len(comparisons)),
                "worst_ratio_median": ratios[len(ratios) // 2],
                "worst_ratio_min": ratios[0],
            }
        )
        print(f"  e = {e}: {detected}/{len(comparisons)} detected", flush=True)
    print("\npower: update scale (1 + e), band-member perturbed candidates")
    print(f"{'e':>8} {'detected':>10} {'95 % CI':>15} {'worst/bound median (min)':>25}")
    for row in rows:
        low, high = row["interval"]
        print(
            f"{100 * row['e']:7.2f}% {row['detected']:>5}/{row['n']:<4} "
            f"{100 * low:6.1f}-{100 * high:5.1f} % {row['worst_ratio_median']:17.2f} "
            f"({row['worst_ratio_min']:.2f})"
        )
    return rows


def false_alarms(
    args: Any, capability: str, primary: RunView, bands: Bands, runs: Path, kept: bool
) -> dict:
    """Alarms on real environment changes, each candidate also band-member perturbed."""
    cells: list[dict[str, Any]] = []
    # --smoke: the first cell; the others differ only in their settings and environment.
    for c, cell in enumerate(machine_cells(capability)[: 1 if args.smoke else None]):
        sets = [[*cell.sets, f"band_member={100 + 1000 * c + i}"] for i in range(args.per_cell)]
        views = run_cell(args.profile, sets, cell.env, runs, only_kept=kept)
        comparisons = judged(views, primary, bands)
        if not comparisons:
            continue
        alarms = [
            x for x in comparisons if x.verdict not in (Verdict.EQUIVALENT, Verdict.IDENTICAL)
        ]
        ratios = sorted(worst_ratio(x) for x in comparisons)
        cells.append(
            {
                "cell": cell.name,
                "n": len(comparisons),
                "alarms": len(alarms),
                "interval": clopper_pearson(len(alarms), len(comparisons)),
                "worst_ratio_median": ratios[len(ratios) // 2],
                "worst_ratio_max": ratios[-1],
                "alarm_summaries": [f"{x.verdict}: {x.summary}" for x in alarms[:5]],
            }
        )
        print(f"  {cell.name}: {len(alarms)}/{len(comparisons)} alarms", flush=True)
    n = sum(row["n"] for row in cells)
    total = sum(row["alarms"] for row in cells)
    print("\nfalse alarms on real environment changes (band-member perturbed candidates)")
    print(f"{'cell':40} {'alarms':>9} {'95 % CI':>15} {'worst/bound median':>19} {'max':>6}")
    for row in cells:
        low, high = row["interval"]
        print(
            f"{row['cell']:40} {row['alarms']:>4}/{row['n']:<4} {100 * low:6.2f}-{100 * high:5.2f} % "
            f"{row['worst_ratio_median']:19.2f} {row['worst_ratio_max']:6.2f}"
        )
    low, high = clopper_pearson(total, n) if n else (0.0, 1.0)
    print(f"{'pooled':40} {total:>4}/{n:<4} {100 * low:6.2f}-{100 * high:5.2f} %")
    return {"cells": cells, "pooled": {"n": n, "alarms": total, "interval": (low, high)}}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--per-cell", type=int, default=62, help="candidates per false-alarm cell")
    parser.add_argument("--trials", type=int, default=20, help="candidates per power level")
    parser.add_argument(
        "--levels",
        type=lambda text: tuple(float(v) for v in text.split(",")),
        default=POWER_LEVELS,
        help="update-scale effect sizes e, comma-separated (default: %(default)s)",
    )
    parser.add_argument("--record", action="store_true", help="record a fresh baseline first")
    parser.add_argument("--skip-power", action="store_true")
    parser.add_argument("--skip-alarms", action="store_true")
    parser.add_argument(
        "--only-kept", action="store_true", help="run nothing: judge the runs the work folder keeps"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workdir", type=Path, help="keep the runs here; a second call judges them again"
    )
    parser.add_argument("--baseline-dir", help="judge by a baseline from this folder")
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.profile, args.per_cell, args.trials, args.levels = "smoke", 1, 1, (0.05,)

    import torch

    capability = str(torch.backends.cpu.get_cpu_capability())
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="repro-evidence-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.record:
            baseline = record(args.profile, folder)
        else:
            profile = load_profile(args.profile)
            manifest_run = run_cell(args.profile, [[]], {}, folder / "runs")[0]
            selection = select_baseline(
                profile.name,
                workload_hash(profile.to_dict()),
                manifest_run.manifest,
                search_dirs(args.baseline_dir),
            )
            if selection.baseline is None:
                raise SystemExit(f"no baseline to measure against: {selection.message}")
            baseline = selection.baseline
        primary, bands = baseline.primary(), baseline.bands()
        results: dict = {
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"CPU capability {capability}",
            "profile": args.profile,
            "baseline": baseline.name,
            "members": len(bands.members),
            "alpha": bands.alpha,
            "tolerance": tolerance(bands),
        }
        print(f"baseline {baseline.name}: {len(bands.members)} members, alpha {bands.alpha}")
        print("\nthe band's tolerance: bound / typical member deviation (geometric mean)")
        for scalar, start, end, typical, factor in results["tolerance"]:
            print(f"  {scalar:9} steps {start:3}-{end:3}  typical {typical:.3g}  x {factor:.2f}")

        kept = args.only_kept
        if not args.skip_power:  # first: it is short, and the threshold is a target of its own
            results["power"] = power(args, primary, bands, folder / "runs", kept)
        if not args.skip_alarms:
            results["false_alarms"] = false_alarms(
                args, capability, primary, bands, folder / "runs", kept
            )
    results["minutes"] = (time.time() - started) / 60
    print(f"\n{results['machine']}; {results['minutes']:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
