"""False-alarm rates of the verdict on runs that differ from the baseline by noise alone.

    python benchmarks/bench_false_alarms.py [--profile smoke] [--runs 30]

Records one baseline in-process (``baseline_plan`` + ``assemble_baseline``, K1 = 8
numerics members, K2 = 8 seeds), then judges fresh runs against it:

    kind A  same seed, rounding-level perturbed (band members 100, 101, ... that the
            baseline did not use): judged by the numerics band
    kind B  fresh master seeds (1000, 1001, ...) not in the seed band: judged by the
            seed interval

Each kind's runs go in one launch. A false alarm is a DRIFT verdict; each kind's rate is
shown with its 95 % Clopper-Pearson interval next to the baseline's nominal alpha. With
30 runs and no alarm the interval reaches 11.6 %: it bounds the rate, it cannot show it is
below alpha = 1 %.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from repro.baseline import Baseline, assemble_baseline, baseline_plan, load_baseline
from repro.judge import RunView, compare
from repro.runner import run_many
from results import Row, add_json_option, load_average, print_rows, write_rows
from runner import Timing, print_table, time_callable

BENCH = "false alarms"


def clopper_pearson(alarms: int, runs: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = float(beta.ppf(tail, alarms, runs - alarms + 1)) if alarms > 0 else 0.0
    high = float(beta.ppf(1 - tail, alarms + 1, runs - alarms)) if alarms < runs else 1.0
    return low, high


def launch_all(profile: str, sets: list[list[str]], runs_dir: Path, failures: list[str]) -> list:
    """One launch for all ``sets``; a run that hangs or crashes ends its launch, so the runs
    after it, never started, go into a new launch (at most 3). Failures are noted."""
    final = {}
    pending = list(range(len(sets)))
    for _ in range(3):
        outcomes = run_many(profile, [sets[i] for i in pending], runs_dir=runs_dir)
        final.update(zip(pending, outcomes))
        started = [(o.run_dir / "manifest.yaml").exists() for o in outcomes]
        failures += [
            f"{o.run_dir.name}: {o.reason}" for o, s in zip(outcomes, started) if s and not o.ok
        ]
        pending = [i for i, o, s in zip(pending, outcomes, started) if not s and not o.ok]
        if not pending:
            break
    return [final[i] for i in range(len(sets))]


def record(profile: str, folder: Path, failures: list[str]) -> Baseline:
    plan, seed_list = baseline_plan(profile, numerics=8, seeds=8)
    outcomes = launch_all(profile, plan, folder / "runs", failures)
    views = [RunView.from_run_dir(o.run_dir) for o in outcomes]
    path, _ = assemble_baseline(
        views, numerics=8, seed_list=seed_list, root=folder / "baselines", name="bench", force=True
    )
    return load_baseline(path)


def judge_kind(profile: str, sets: list[list[str]], baseline: Baseline, folder: Path) -> dict:
    """Launch one kind's runs and judge each that completed against the baseline."""
    failures: list[str] = []
    outcomes = launch_all(profile, sets, folder / "runs", failures)
    primary, bands = baseline.primary(), baseline.bands()
    views = [RunView.from_run_dir(o.run_dir) for o in outcomes if o.ok]
    comparisons = [compare(v, primary, bands=bands) for v in views]
    seconds = time_callable(lambda: compare(views[0], primary, bands=bands), repeat=5)
    return {
        "verdicts": [c.verdict for c in comparisons],
        "unexpected": [c.summary for c in comparisons if c.verdict not in ("DRIFT", "EQUIVALENT")],
        "numerics_alarms": sum(c.numerics.applied and not c.numerics.ok for c in comparisons),
        "seed_alarms": sum(c.seed.applied and not c.seed.ok for c in comparisons),
        "failures": failures,
        "judge": seconds,
    }


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--runs", type=int, default=30, help="fresh runs of each kind")
    add_json_option(parser)
    args = parser.parse_args(argv)

    kinds = {
        "A: band members 100.. (numerics band)": [
            [f"band_member={100 + i}"] for i in range(args.runs)
        ],
        "B: seeds 1000.. (seed interval)": [[f"seed={1000 + i}"] for i in range(args.runs)],
    }
    print(f"load average before: {load_average()}", flush=True)
    record_failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-false-alarms-") as tmp:
        baseline = record(args.profile, Path(tmp), record_failures)
        alpha = baseline.bands().alpha
        results = {
            name: judge_kind(args.profile, sets, baseline, Path(tmp))
            for name, sets in kinds.items()
        }
    print(f"load average after: {load_average()}")

    print_table(
        "judge time per comparison (in-process)",
        [Timing(name, r["judge"].seconds) for name, r in results.items()],
        unit="ms",
    )
    rows = []
    for name, r in results.items():
        judged, alarms = len(r["verdicts"]), r["verdicts"].count("DRIFT")
        low, high = clopper_pearson(alarms, judged)
        failed = f", {len(r['failures'])} runs FAILED" if r["failures"] else ""
        rows.append(
            Row(
                BENCH,
                f"{name}: {alarms}/{judged} DRIFT{failed}",
                judged,
                100 * alarms / judged,
                "%",
                f"95 % CI {100 * low:.1f}-{100 * high:.1f}",
                f"numerics alarms {r['numerics_alarms']}, seed alarms {r['seed_alarms']}",
                f"nominal alpha {100 * alpha:g} %",
                low <= alpha,  # the data do not contradict the nominal rate
            )
        )
    print_rows(f"false alarms against one baseline (profile {args.profile}, K1 = 8, K2 = 8)", rows)
    print("\nmet: the 95 % interval includes rates at or below the nominal alpha.")
    for name, r in results.items():
        if r["unexpected"]:
            print(
                f"{name}: {len(r['unexpected'])} judged neither DRIFT nor EQUIVALENT; first: {r['unexpected'][0]}"
            )
    for failure in record_failures + [f for r in results.values() for f in r["failures"]]:
        print(f"a run failed (its launch was resumed): {failure}")
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
