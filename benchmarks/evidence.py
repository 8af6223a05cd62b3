"""The verdict's error rates, measured on real changes (``nox -s evidence``; long, not in CI).

    python benchmarks/evidence.py [--profile quick] [--per-cell 62] [--trials 20] [--record]

Judges every candidate against the baseline ``repro verify`` selects on this machine
(``--record`` records a fresh one first, into a temporary folder).

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
import time
from dataclasses import dataclass, field
from pathlib import Path

from repro.bands import Bands, window_bounds
from repro.baseline import Baseline, load_baseline, search_dirs, select_baseline
from repro.judge import Comparison, compare
from repro.prepare import prepare_run
from repro.profile import load_profile
from repro.recording import assemble_baseline, baseline_plan, spare_members
from repro.runner import launch
from repro.runview import RunView
from repro.verdict import Verdict
from repro.workload import workload_hash

POWER_LEVELS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)
# oneDNN's ISA names one level below torch's CPU capability (oneDNN reads upper case).
ONEDNN_BELOW = {"AVX512": "AVX2", "AVX2": "SSE41"}
CAPABILITY_LEVELS = ("default", "avx2", "avx512")


@dataclass
class Cell:
    name: str
    sets: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def clopper_pearson(events: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = float(beta.ppf(tail, events, trials - events + 1)) if events > 0 else 0.0
    high = float(beta.ppf(1 - tail, events + 1, trials - events)) if events < trials else 1.0
    return low, high


def machine_cells(capability: str) -> list[Cell]:
    """The environment changes this machine can make (it cannot go above its own level)."""
    cells = [Cell("threads per rank 2", sets=["threads_per_rank=2"])]
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


def run_cell(profile: str, sets: list[list[str]], env: dict[str, str], runs: Path) -> list[RunView]:
    """All of a cell's runs in one launch; runs a crash left unstarted go into a new launch.

    With a kept work folder a cell that already ran is read back instead (``cells.json``),
    so a changed judge can be measured again on the same runs.
    """
    index_file = runs.parent / "cells.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {}
    key = json.dumps([sets, env], sort_keys=True)
    if key in index:
        return [RunView.from_run_dir(Path(p)) for p in index[key]]
    done: dict[int, RunView] = {}
    pending = list(range(len(sets)))
    for _ in range(3):
        entries = [
            prepare_run(profile, sets[i], runs_dir=runs, quiet=True, env=env) for i in pending
        ]
        outcomes = launch(entries, env=env)
        for i, outcome in zip(pending, outcomes):
            done[i] = RunView.from_run_dir(outcome.run_dir)
        pending = [
            i for i, o in zip(pending, outcomes) if not o.ok and "not run" in (o.reason or "")
        ]
        if not pending:
            break
    views = [done[i] for i in range(len(sets))]
    failed = [v for v in views if v.status.get("status") != "COMPLETE"]
    if failed:  # never kept: a launch problem is not a verdict
        raise SystemExit(f"{len(failed)} runs failed; first: {failed[0].path}: {failed[0].status}")
    index[key] = [v.path for v in views]
    index_file.write_text(json.dumps(index))
    return views


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
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--workdir", type=Path, help="keep the runs here; a second call judges them again"
    )
    args = parser.parse_args(argv)

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
                search_dirs(None),
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

        if not args.skip_alarms:
            cells = []
            for c, cell in enumerate(machine_cells(capability)):
                sets = [
                    [*cell.sets, f"band_member={100 + 1000 * c + i}"] for i in range(args.per_cell)
                ]
                views = run_cell(args.profile, sets, cell.env, folder / "runs")
                comparisons = [compare(v, primary, bands=bands) for v in views]
                alarms = [
                    c
                    for c in comparisons
                    if c.verdict not in (Verdict.EQUIVALENT, Verdict.IDENTICAL)
                ]
                ratios = sorted(worst_ratio(c) for c in comparisons)
                cells.append(
                    {
                        "cell": cell.name,
                        "n": len(comparisons),
                        "alarms": len(alarms),
                        "interval": clopper_pearson(len(alarms), len(comparisons)),
                        "worst_ratio_median": ratios[len(ratios) // 2],
                        "worst_ratio_max": ratios[-1],
                        "alarm_summaries": [f"{c.verdict}: {c.summary}" for c in alarms[:5]],
                    }
                )
                print(f"  {cell.name}: {len(alarms)}/{len(comparisons)} alarms", flush=True)
            n = sum(c["n"] for c in cells)
            alarms_total = sum(c["alarms"] for c in cells)
            results["false_alarms"] = {
                "cells": cells,
                "pooled": {
                    "n": n,
                    "alarms": alarms_total,
                    "interval": clopper_pearson(alarms_total, n),
                },
            }
            print("\nfalse alarms on real environment changes (band-member perturbed candidates)")
            print(
                f"{'cell':34} {'alarms':>9} {'95 % CI':>15} {'worst/bound median':>19} {'max':>6}"
            )
            for c in cells:
                low, high = c["interval"]
                print(
                    f"{c['cell']:34} {c['alarms']:>4}/{c['n']:<4} {100 * low:6.2f}-{100 * high:5.2f} % "
                    f"{c['worst_ratio_median']:19.2f} {c['worst_ratio_max']:6.2f}"
                )
            low, high = results["false_alarms"]["pooled"]["interval"]
            print(f"{'pooled':34} {alarms_total:>4}/{n:<4} {100 * low:6.2f}-{100 * high:5.2f} %")

        if not args.skip_power:
            sets = [
                [f"fault.update_scale={e}", f"band_member={5000 + 100 * j + i}"]
                for j, e in enumerate(args.levels)
                for i in range(args.trials)
            ]
            views = run_cell(args.profile, sets, {}, folder / "runs")
            power = []
            for j, e in enumerate(args.levels):
                chunk = views[j * args.trials : (j + 1) * args.trials]
                comparisons = [compare(v, primary, bands=bands) for v in chunk]
                drift = [c for c in comparisons if c.verdict == Verdict.DRIFT]
                detected = len(drift)
                ratios = sorted(worst_ratio(c) for c in comparisons)
                power.append(
                    {
                        "e": e,
                        "n": len(comparisons),
                        "detected": detected,
                        "interval": clopper_pearson(detected, len(comparisons)),
                        "worst_ratio_median": ratios[len(ratios) // 2],
                        "drift_summaries": [c.summary for c in drift[:5]],
                    }
                )
            results["power"] = power
            print("\npower: update scale (1 + e), band-member perturbed candidates")
            print(f"{'e':>8} {'detected':>10} {'95 % CI':>15} {'worst/bound median':>19}")
            for row in power:
                low, high = row["interval"]
                print(
                    f"{100 * row['e']:7.2f}% {row['detected']:>5}/{row['n']:<4} "
                    f"{100 * low:6.1f}-{100 * high:5.1f} % {row['worst_ratio_median']:19.2f}"
                )
    results["minutes"] = (time.time() - started) / 60
    print(f"\n{results['machine']}; {results['minutes']:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
