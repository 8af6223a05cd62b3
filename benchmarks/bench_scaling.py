"""How the cost of a run and its judging grows with steps and model width.

    python benchmarks/bench_scaling.py [--profile smoke] [--smoke]

Variants of the smoke profile: steps x1, x2, x4 and model width (d_model) x2, all with
``trace_steps=10`` so tracing does not grow with the steps. Each variant gets five runs
(primary, band members 0 and 1, seed 1, and a candidate, band member 2), all variants in
one launch after one warm-up run, so every run's time is that of a warm process: the gap
between its status file and the previous run's. The candidate is judged (15 times) against the
primary with a K=2 band built by ``band_build.build_band`` from that variant's runs (no
baseline is written); judging includes loading both records. Reported: run seconds,
training seconds, judge milliseconds and record.json bytes, the ratio per doubling of
steps, and a least-squares line ``a + b * steps`` with its largest residual.
``--smoke`` starts the steps at 10 (10, 20, 40), with no accuracy required.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import tempfile
from pathlib import Path

from repro.baselines.band_build import build_band
from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS
from repro.judge.bands import Bands
from repro.judge.comparison import compare
from repro.profile import load_profile
from repro.runs.runner import run_many
from repro.runs.runview import RunView, series
from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import Timing, add_smoke_option, print_table, time_callable

BENCH = "scaling"
STEPS = ("steps x1", "steps x2", "steps x4")
ROLES: tuple[list[str], ...] = (
    [],
    ["band_member=0"],
    ["band_member=1"],
    ["seed=1"],
    ["band_member=2"],
)


# name: (steps factor, width factor)
VARIANTS = {"steps x1": (1, 1), "steps x2": (2, 1), "steps x4": (4, 1), "width x2": (1, 2)}


TRACE_STEPS = 10  # fixed, so tracing does not grow with the steps


def variant_sets(profile: str, steps_factor: int, width_factor: int, base_steps: int) -> list[str]:
    p = load_profile(profile)
    return [
        f"trace_steps={TRACE_STEPS}",
        f"steps={steps_factor * base_steps}",
        f"model.d_model={width_factor * p.model.d_model}",
    ]


def measure(run_dirs: list[Path], previous_status: float) -> dict[str, list]:
    """One variant's five runs (in ``ROLES`` order): costs, and the candidate's judging."""
    status = [d.joinpath("status.yaml").stat().st_mtime for d in run_dirs]
    primary, m0, m1, seed1, _ = (RunView.from_run_dir(d) for d in run_dirs)
    band = build_band(primary, [m0, m1], [primary, seed1])
    # K = 2 is below what a baseline may hold: this measures the judge's cost, not a verdict.
    bands = Bands(
        "k2",
        DEFAULT_ALPHA,
        DEFAULT_WINDOWS,
        primary.seed,
        series(primary.steps),
        str(primary.config["workload_hash"]),
        band["members"],
        band["seeds"],
        band["resolution"],
    )

    def judge() -> str:
        a, b = RunView.from_run_dir(run_dirs[4]), RunView.from_run_dir(run_dirs[0])
        try:
            return compare(a, b, bands=bands).verdict
        except OverflowError as exc:  # a judge bug with K=2 bands; reported, not hidden
            return f"judge raised OverflowError ({exc})"

    return {
        "run": [b - a for a, b in itertools.pairwise([previous_status, *status])],
        "train": [json.loads((d / "timings.json").read_text())["train_seconds"] for d in run_dirs],
        "judge": list(time_callable(judge, repeat=15).seconds),
        "bytes": [float((d / "record.json").stat().st_size) for d in run_dirs],
        "verdict": [judge()],
    }


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float, float]:
    """Least squares ``y = a + b x``; returns (a, b, largest |residual| / y)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    a = my - b * mx
    return a, b, max(abs(y - (a + b * x)) / y for x, y in zip(xs, ys, strict=True))


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)

    base_steps = TRACE_STEPS if args.smoke else load_profile(args.profile).steps
    # Ten steps do not reach the profile's accuracy, and a run that does not converge fails.
    smoke = ["converged_accuracy=0"] if args.smoke else []
    cases = {
        name: variant_sets(args.profile, *factors, base_steps) + smoke
        for name, factors in VARIANTS.items()
    }
    plan: list[list[str]] = [[]] + [
        sets + role for sets in cases.values() for role in ROLES
    ]  # warm-up first
    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        outcomes = run_many(args.profile, plan, runs_dir=Path(tmp))
        failed = [o for o in outcomes if not o.ok]
        if failed:
            raise RuntimeError(f"{failed[0].run_dir}: {failed[0].status}: {failed[0].reason}")
        dirs = [o.run_dir for o in outcomes]
        measured = {}
        for i, name in enumerate(cases):
            chunk = dirs[1 + i * len(ROLES) : 1 + (i + 1) * len(ROLES)]
            before = dirs[i * len(ROLES)].joinpath("status.yaml").stat().st_mtime
            measured[name] = measure(chunk, before)
    print(f"load average after: {load_average()}")

    print_table(
        "seconds per run in a warm launch (5 runs per variant)",
        [Timing(name, tuple(m["run"])) for name, m in measured.items()],
        baseline="steps x1",
        unit="s",
    )
    rows = []
    base = measured["steps x1"]
    for quantity, unit, scale in (("run", "s", 1), ("train", "s", 1), ("judge", "ms", 1e3)):
        for name, m in measured.items():
            ratio = f"{statistics.median(m[quantity]) / statistics.median(base[quantity]):.2f} x steps x1"
            rows.append(
                sample_row(
                    BENCH, f"{quantity} {unit}: {name}", m[quantity], unit, scale=scale, ratio=ratio
                )
            )
    for name, m in measured.items():
        ratio = f"{statistics.median(m['bytes']) / statistics.median(base['bytes']):.2f} x steps x1"
        rows.append(
            sample_row(BENCH, f"record kB: {name}", m["bytes"], "kB", scale=1e-3, ratio=ratio)
        )

    steps = [
        float(s.split("=")[1])
        for sets in list(cases.values())[:3]
        for s in sets
        if s.startswith("steps=")
    ]
    for quantity, unit in (("run", "s"), ("train", "s"), ("judge", "s"), ("bytes", "B")):
        ys = [
            statistics.median(measured[name][quantity])
            for name in ("steps x1", "steps x2", "steps x4")
        ]
        a, b, residual = line_fit(steps, ys)
        doublings = [ys[1] / ys[0], ys[2] / ys[1]]
        rows.append(
            Row(
                BENCH,
                f"{quantity} per doubling of steps",
                3,
                statistics.geometric_mean(doublings),
                "x",
                f"x{doublings[0]:.2f} then x{doublings[1]:.2f}",
                f"fit {a:.3g} + {b:.3g} {unit}/step, max residual {100 * residual:.1f} %",
            )
        )
    print_rows(f"growth with steps and width (profile {args.profile}, trace_steps=10)", rows)
    verdicts = {name: m["verdict"][0] for name, m in measured.items()}
    print(f"\ncandidate verdicts against their K=2 bands: {verdicts}")
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
