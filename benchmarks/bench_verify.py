"""Wall time of ``repro verify`` (one run judged against a baseline), split into its phases.

    python benchmarks/bench_verify.py [--repeat 3] [--baseline-dir DIR] [--record] [--smoke]

Without ``--baseline-dir`` the smallest baseline repro accepts is recorded first into a
temporary folder (``repro baseline record --profile quick --numerics 8 --seeds 8``; not
timed). Each
repetition runs ``python -m repro verify --profile quick`` as a whole process; the phases
come from the file times the run leaves behind:

    start-up, CLI     process start -> config.yaml (imports, prepare the run folder)
    start-up, ranks   config.yaml -> manifest.yaml (launcher, import torch, rendezvous,
                      manifest capture; rank 0 writes the manifest just before step 0)
    training          timings.json ``train_seconds``
    finish run        evaluation, checkpoint and record (up to status COMPLETE)
    judging           status.yaml -> verdict.json (ranks and launcher exit, load, judge)
    report            verdict.json -> process exit (render and print the report)

Judging and the report are also timed in-process, alone. The claim is <= 60 s in all.
``--record`` also times ``repro baseline record --profile quick`` with its defaults (8
numerics members + 8 seeds), once; that claim is <= 10 min.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from repro.baselines.band_sizes import MIN_MEMBERS
from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import Timing, add_smoke_option, print_table, time_callable

BENCH = "verify"
PHASES = ("start-up, CLI", "start-up, ranks", "training", "finish run", "judging", "report")


def repro(*args: str) -> list[str]:
    return [sys.executable, "-m", "repro", *args]


def record_small_baseline(profile: str, folder: Path) -> Path:
    smallest = str(MIN_MEMBERS)
    command = repro("baseline", "record", "--profile", profile)
    command += ["--numerics", smallest, "--seeds", smallest]
    command += ["--baseline-dir", str(folder / "baselines"), "--runs-dir", str(folder / "runs")]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder / "baselines"


def one_verify(profile: str, baseline_dir: Path, runs_dir: Path) -> tuple[dict[str, float], Path]:
    """Phase seconds of one ``repro verify``, and its run folder."""
    command = repro("verify", "--profile", profile, "--quiet", "--baseline-dir", str(baseline_dir))
    start_wall, start = time.time(), time.perf_counter()
    proc = subprocess.run(
        [*command, "--runs-dir", str(runs_dir)], stdout=subprocess.DEVNULL, check=False
    )
    total = time.perf_counter() - start
    end_wall = start_wall + total
    if proc.returncode not in (0, 1):  # 0 IDENTICAL/EQUIVALENT, 1 DRIFT: both judged
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}")
    (run_dir,) = runs_dir.iterdir()

    def mtime(name: str) -> float:
        return (run_dir / name).stat().st_mtime

    train = json.loads((run_dir / "timings.json").read_text())["train_seconds"]
    phases = {
        "start-up, CLI": mtime("config.yaml") - start_wall,
        "start-up, ranks": mtime("manifest.yaml") - mtime("config.yaml"),
        "training": train,
        "finish run": mtime("status.yaml") - mtime("manifest.yaml") - train,
        "judging": mtime("verdict.json") - mtime("status.yaml"),
        "report": end_wall - mtime("verdict.json"),
        "total": total,
    }
    return phases, run_dir


def in_process(run_dir: Path, baseline_dir: Path) -> list[Timing]:
    """Judging (load run and baseline, compare, the curves the report draws) and rendering
    the report, alone: what ``repro verify`` does after its run."""
    from repro.baselines.baseline import find_baseline
    from repro.judge.comparison import compare
    from repro.judge.curves import Judged, judged
    from repro.report.terminal import render_terminal
    from repro.runs.runview import RunView

    chosen = json.loads((run_dir / "verdict.json").read_text())["baseline"]
    baseline = find_baseline(chosen, [baseline_dir])

    def judge() -> Judged:
        candidate, primary, bands = (
            RunView.from_run_dir(run_dir),
            baseline.primary(),
            baseline.bands(),
        )
        return judged(compare(candidate, primary, bands=bands), candidate, primary, bands)

    report = judge()
    judging = time_callable(judge, repeat=5)
    rendering = time_callable(lambda: render_terminal(report), repeat=5)
    return [
        Timing("judge (in-process)", judging.seconds),
        Timing("report (in-process)", rendering.seconds),
    ]


def time_record(profile: str) -> tuple[float, str]:
    """Seconds of a default ``repro baseline record``, and its error if it failed."""
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        command = repro("baseline", "record", "--profile", profile)
        command += ["--baseline-dir", f"{tmp}/baselines", "--runs-dir", f"{tmp}/runs"]
        start = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        seconds = time.perf_counter() - start
    error = (
        ""
        if done.returncode == 0
        else f"exit {done.returncode}: " + done.stderr.strip().splitlines()[-1]
    )
    return seconds, error


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--baseline-dir", type=Path, help="default: record a small one first")
    parser.add_argument("--record", action="store_true", help="also time a default record")
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # the smoke profile; --record is left as given (it takes minutes)
        args.repeat, args.profile = 1, "smoke"

    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        folder = Path(tmp)
        baseline_dir = args.baseline_dir or record_small_baseline(args.profile, folder)
        samples: dict[str, list[float]] = {}
        for i in range(args.repeat):
            phases, run_dir = one_verify(args.profile, baseline_dir, folder / f"runs-{i}")
            for name, seconds in phases.items():
                samples.setdefault(name, []).append(seconds)
        alone = in_process(run_dir, baseline_dir)
    print(f"load average after: {load_average()}")

    timings = [Timing(name, tuple(s)) for name, s in samples.items()] + alone
    print_table(
        f"`repro verify --profile {args.profile}`, {args.repeat} runs",
        timings,
        baseline="total",
        unit="s",
    )
    rows = [
        sample_row(
            BENCH,
            f"phase s: {name}",
            seconds,
            "s",
            at_most=60 if name == "total" else None,
        )
        for name, seconds in samples.items()
    ]
    rows += [sample_row(BENCH, t.name, t.seconds, "ms", scale=1e3) for t in alone]
    if args.record:
        seconds, error = time_record(args.profile)
        case = "baseline record, 8 + 8 (defaults)" + (f", FAILED ({error})" if error else "")
        row = sample_row(BENCH, case, [seconds / 60], "min", at_most=10)
        rows.append(replace(row, met=row.met and not error))
    print_rows(f"`repro verify --profile {args.profile}` against its targets", rows)
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
