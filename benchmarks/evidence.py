"""The verdict's error rates, measured on real changes (``nox -s evidence``; long, not in CI).

    python benchmarks/evidence.py [--profile quick] [--rows all|unperturbed|perturbed]
        [--judge-by BASELINE ...] [--environment-levels 0.0025,0.005,0.01]
        [--per-cell 62] [--trials 20] [--record] [--baseline-dir DIR] [--workdir DIR] [--smoke]

Judges against the baseline ``repro verify`` selects on this machine (from
``--baseline-dir`` when given; ``--record`` records a fresh one first, into the work
folder), and the unperturbed rows against every ``--judge-by`` baseline too. ``--smoke``
runs two environments, one perturbed candidate per cell and one power trial on the smoke
profile, whose baseline must come from ``--baseline-dir`` or ``--record``.

Unperturbed rows (``evidence_environments``), the evidence counted in environments: each
environment this machine can make (itself, every CPU kernel level and oneDNN cap below
its own, both lowered together, 1 rank x 2 threads and world size 1 at the same global
batch) is one run as is, judged by each baseline; false alarms are counted per
environment, the worst ratio is reported per window and scalar, and power comes from the
same environments with the update-scale fault (held out: no threshold was chosen on them).

Perturbed rows: draws of the band's own generator, not environments. Each cell is an
environment change combined with a fresh band-member perturbation (members 100 onward,
never used by a baseline), so that every candidate is a separate trial; the perturbation,
not the change, dominates what they measure (their no-change control sits where the
changes do). A false alarm is any verdict other than EQUIVALENT or IDENTICAL. Power: the
update-scale fault multiplies every parameter update p_{k+1} - p_k by (1 + e) after the
optimiser step, the logged learning rate unchanged; candidates band-member perturbed
(members 5000 onward); the detection rate is the share judged DRIFT. Rates come with exact
(Clopper-Pearson) 95 % intervals.

The band's real tolerance: for each window and scalar, how many times the typical
member's deviation (the geometric mean) a run may deviate before it is outside.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import evidence_environments
from evidence_runs import machine_cells, rate, rate_line, run_cell, tolerance, worst_ratio

from repro.baselines.baseline import Baseline, load_baseline, search_dirs, select_baseline
from repro.baselines.recording import assemble_baseline, baseline_plan, spare_members
from repro.judge.bands import Bands
from repro.judge.comparison import Comparison, compare
from repro.profile import load_profile
from repro.runs.prepare import prepare_run
from repro.runs.runner import launch
from repro.runs.runview import RunView
from repro.runs.workload import workload_hash
from repro.verdict import Verdict
from runner import add_smoke_option

POWER_LEVELS = (0.0, 0.0025, 0.005, 0.01, 0.02, 0.05)
# The unperturbed rows' fault levels: half, at and twice the perturbed rows' threshold.
ENVIRONMENT_LEVELS = (0.0025, 0.005, 0.01)


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
        detected = sum(c.verdict == Verdict.DRIFT for c in comparisons)
        if comparisons:
            rows.append({"e": e, **rate(detected, [worst_ratio(c) for c in comparisons])})
    print("\npower: update scale (1 + e), band-member perturbed candidates (exact 95 % interval)")
    for row in rows:
        print(rate_line(f"e = {100 * row['e']:.2f} %", row, "DRIFT"))
    return rows


def false_alarms(
    args: Any, capability: str, primary: RunView, bands: Bands, runs: Path, kept: bool
) -> dict:
    """Alarms on real environment changes, each candidate also band-member perturbed."""
    cells: list[dict[str, Any]] = []
    every: list[float] = []
    # --smoke: the first cell; the others differ only in their settings and environment.
    for c, cell in enumerate(machine_cells(capability)[: 1 if args.smoke else None]):
        sets = [[*cell.sets, f"band_member={100 + 1000 * c + i}"] for i in range(args.per_cell)]
        views = run_cell(args.profile, sets, cell.env, runs, only_kept=kept)
        comparisons = judged(views, primary, bands)
        every += [worst_ratio(x) for x in comparisons]
        alarms = [
            x for x in comparisons if x.verdict not in (Verdict.EQUIVALENT, Verdict.IDENTICAL)
        ]
        if comparisons:
            cells.append(
                {
                    "cell": cell.name,
                    **rate(len(alarms), every[-len(comparisons) :]),
                    "alarm_summaries": [f"{x.verdict}: {x.summary}" for x in alarms[:5]],
                }
            )
    pooled = rate(sum(row["events"] for row in cells), every)
    print("\nfalse alarms, perturbed: draws of the band's own generator (exact 95 % interval)")
    for row in [*cells, {"cell": "pooled", **pooled}]:
        print(rate_line(row["cell"], row, "candidates"))
    return {"cells": cells, "pooled": pooled}


def _levels(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(",") if v)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument(
        "--rows",
        choices=("all", "unperturbed", "perturbed"),
        default="all",
        help="which rows to measure (default: all; the unperturbed rows come first)",
    )
    parser.add_argument(
        "--judge-by",
        type=Path,
        action="append",
        default=[],
        metavar="BASELINE",
        help="a baseline's folder that also judges the unperturbed rows (repeatable)",
    )
    parser.add_argument(
        "--environment-levels",
        type=_levels,
        default=ENVIRONMENT_LEVELS,
        help="update-scale effect sizes run in every environment (default: %(default)s)",
    )
    parser.add_argument("--per-cell", type=int, default=62, help="candidates per false-alarm cell")
    parser.add_argument("--trials", type=int, default=20, help="candidates per power level")
    parser.add_argument(
        "--levels",
        type=_levels,
        default=POWER_LEVELS,
        help="perturbed rows' update-scale effect sizes e (default: %(default)s)",
    )
    parser.add_argument("--record", action="store_true", help="record a fresh baseline first")
    parser.add_argument("--skip-power", action="store_true", help="no perturbed power rows")
    parser.add_argument("--skip-alarms", action="store_true", help="no perturbed false-alarm rows")
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
        args.environment_levels = (0.05,)
    return args


def _baselines(args: argparse.Namespace, folder: Path) -> list[Baseline]:
    """The baseline ``repro verify`` selects here (or a fresh one), then each ``--judge-by``."""
    if args.record:
        first = record(args.profile, folder)
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
        first = selection.baseline
    found = {first.name: first}
    for path in args.judge_by:
        other = load_baseline(path)
        found.setdefault(other.name, other)
    return list(found.values())


def main(argv: list[str] | None = None) -> dict:
    args = _arguments(argv)
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability())
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="repro-evidence-") as tmp:
        folder = args.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        baselines = _baselines(args, folder)
        results: dict = {
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
            f"CPU capability {capability}",
            "profile": args.profile,
            "baselines": {},
        }
        for b in baselines:
            bands = b.bands()
            results["baselines"][b.name] = {
                "members": len(bands.members),
                "alpha": bands.alpha,
                "tolerance": tolerance(bands),
            }
            print(f"baseline {b.name}: {len(bands.members)} members, alpha {bands.alpha}")
            print("  the band's tolerance: bound / typical member deviation (geometric mean)")
            for scalar, start, end, typical, factor in results["baselines"][b.name]["tolerance"]:
                print(
                    f"  {scalar:9} steps {start:3}-{end:3}  typical {typical:.3g}  x {factor:.2f}"
                )

        kept, runs = args.only_kept, folder / "runs"
        if args.rows in ("all", "unperturbed"):
            results["unperturbed"] = evidence_environments.measure(
                args.profile,
                capability,
                baselines,
                runs,
                levels=args.environment_levels,
                kept=kept,
                smoke=args.smoke,
            )
        # The perturbed rows: draws of the band's own generator, judged by the first baseline.
        primary, bands = baselines[0].primary(), baselines[0].bands()
        if args.rows in ("all", "perturbed") and not args.skip_power:
            results["power"] = power(args, primary, bands, runs, kept)
        if args.rows in ("all", "perturbed") and not args.skip_alarms:
            results["false_alarms"] = false_alarms(args, capability, primary, bands, runs, kept)
    results["minutes"] = (time.time() - started) / 60
    print(f"\n{results['machine']}; {results['minutes']:.1f} min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
