"""Wall time of ``repro verify --quiet`` split into its phases, beside a plain ``torchrun``
script running the same training, evaluation and checkpoint, and a bare ``import torch``.

    python benchmarks/bench_verify.py [--repeat 3] [--profile quick] [--baseline-dir DIR]
                                      [--no-preflight] [--record] [--smoke]

Each round runs, in an order that rotates, ``python -c 'import torch'``, ``python -m repro
verify --profile P --quiet`` and the plain loop of ``bench_overhead.py`` (the harness's own
build and ``train_step``, no hooks, then evaluation and ``torch.save``) under ``python -m
torch.distributed.run``, each as a whole process. The phases come from the times every
process appends to ``REPRO_PHASE_LOG`` (``repro.clock.stamp_phase``: the CLI's preflight
and launch, the launcher, rank 0) and from the run folder:

    CLI start, imports,           process start -> the launcher's start (argument parsing,
      prepare the run             profile, workload hash, baseline checks, the run folder,
                                  config.yaml, the plan)
    preflight, the launcher       the CLI imports torch, checks the host and sweeps gloo's
      starting beside it          all-reduce while torch's elastic launcher (a second
                                  interpreter) imports torch and the training code
    launcher start, beyond        what the launcher's start takes past the preflight, its
      the preflight               rendezvous -> rank 0's process exists (CPU ranks are
                                  forked from the launcher; CUDA ranks are spawned)
    rank start-up: imports        a spawned rank's torch and training code (a forked one
                                  has them from the launcher)
    rank start-up: process group  gloo's process group
    rank start-up: build          model, optimiser, loader (and the manifest, for repro)
    steps                         the step loop (``timings.json`` ``train_seconds``)
    evaluation                    the held-out set, rank 0
    checkpoint and record         checkpoint.pt (and record.json, timings, status)
    ranks and launcher exit       rank 0 done -> the launcher's (or torchrun's) exit
    judging                       -> verdict.json (load the run and baseline, judge)
    rendering and exit            -> the process's exit (the terminal report)

The claim (issue: verify in little more than its training) is wall <= train_seconds + one
bare ``import torch`` (same round) + 1.5 s; the table shows wall / (train + import) for both.
Without ``--baseline-dir`` the shipped baseline of the profile judges when there is one;
otherwise the smallest baseline repro accepts is recorded first (not timed).
``--record`` also times ``repro baseline record`` with its defaults, once (<= 10 min).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench_overhead import run_plain

from repro.baselines.band_sizes import MIN_MEMBERS
from repro.clock import PHASE_LOG_ENV
from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import add_smoke_option

BENCH = "verify"
IMPORT = "import torch"
VERIFY = "repro verify"
PLAIN = "plain torchrun"
MARGIN_S = 1.5  # the claim: wall <= train + one import + this
# Each phase ends at a mark (a stamp's name, or the bench's own); a mark a case does not
# leave (the plain script has no preflight) merges its phase into the next.
MARKS = (
    ("launch: start", "CLI start, imports, prepare the run"),
    # The preflight runs in the CLI while the launcher starts (imports torch) beside it.
    ("preflight: done", "preflight, the launcher starting beside it"),
    ("launch: ranks released", "preflight, the launcher starting beside it"),
    ("rank 0: started", "launcher start, beyond the preflight"),
    ("rank 0: imported", "rank start-up: imports"),
    ("rank 0: process group", "rank start-up: process group"),
    ("rank 0: built, manifest written", "rank start-up: build (+ manifest)"),
    ("rank 0: built", "rank start-up: build (+ manifest)"),
    ("rank 0: steps done", "steps"),
    ("rank 0: evaluated", "evaluation"),
    ("rank 0: checkpoint written", "checkpoint and record"),
    ("rank 0: record and status written", "checkpoint and record"),
    ("launch: launcher exited", "ranks and launcher exit"),
    ("verdict.json", "judging"),
    ("end", "rendering and exit"),
)


def repro(*args: str) -> list[str]:
    return [sys.executable, "-m", "repro", *args]


def read_marks(log: Path) -> dict[str, float]:
    """Each stamp's first time in a phase log (unix seconds)."""
    marks: dict[str, float] = {}
    for line in log.read_text().splitlines():
        at, _pid, name = line.split(" ", 2)
        marks.setdefault(name, float(at))
    return marks


def phases(marks: dict[str, float]) -> dict[str, float]:
    """Seconds per phase, from the process's start (mark ``start``) to its last mark."""
    out: dict[str, float] = {}
    previous = marks["start"]
    for mark, name in MARKS:
        if mark in marks:
            out[name] = out.get(name, 0.0) + marks[mark] - previous
            previous = marks[mark]
    return out


def timed(command: list[str], log: Path, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``command`` with its phase log; its marks, ``start`` and ``end`` included."""
    start = time.time()
    done = subprocess.run(
        command,
        env={**os.environ, **(env or {}), PHASE_LOG_ENV: str(log)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    end = time.time()
    if done.returncode not in (0, 1):  # 0 IDENTICAL/EQUIVALENT, 1 DRIFT: both judged
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return {**(read_marks(log) if log.exists() else {}), "start": start, "end": end}


def one_verify(profile: str, baseline_dir: Path | None, folder: Path, preflight: bool) -> dict:
    """Marks and ``train_seconds`` of one ``repro verify --quiet``."""
    runs = folder / f"runs-{time.monotonic_ns()}"
    command = repro("verify", "--profile", profile, "--quiet", "--runs-dir", str(runs))
    command += ["--baseline-dir", str(baseline_dir)] if baseline_dir else []
    command += [] if preflight else ["--no-preflight"]
    marks = timed(command, runs.with_suffix(".log"))
    (run_dir,) = runs.iterdir()
    marks["verdict.json"] = (run_dir / "verdict.json").stat().st_mtime
    train = json.loads((run_dir / "timings.json").read_text())["train_seconds"]
    return {"marks": marks, "train": train, "wall": marks["end"] - marks["start"]}


def one_plain(profile: str, folder: Path) -> dict:
    """Marks and ``train_seconds`` of the plain loop, evaluation and checkpoint, under torchrun."""
    log = folder / f"plain-{time.monotonic_ns()}.log"
    start = time.time()
    result, _ = run_plain(profile, "finish", folder, env={PHASE_LOG_ENV: str(log)})
    end = time.time()
    # torchrun's exit is the end: there is no judging or report.
    marks = {**read_marks(log), "start": start, "launch: launcher exited": end}
    return {"marks": marks, "train": result["train_seconds"], "wall": end - start}


def one_import(folder: Path) -> dict:
    marks = timed([sys.executable, "-c", "import torch"], folder / "import.log")
    return {"marks": marks, "train": 0.0, "wall": marks["end"] - marks["start"]}


def shipped_baseline(profile: str) -> bool:
    """Whether a baseline repro finds by itself judges this profile's training."""
    from repro.baselines.baseline import list_baselines, search_dirs
    from repro.profile import load_profile
    from repro.runs.workload import workload_hash

    workload = workload_hash(load_profile(profile).to_dict())
    stored = list_baselines(search_dirs(None))
    return any((b.meta["profile"], b.meta["workload_hash"]) == (profile, workload) for b in stored)


def record_small_baseline(profile: str, folder: Path) -> Path:
    smallest = str(MIN_MEMBERS)
    command = repro("baseline", "record", "--profile", profile)
    command += ["--numerics", smallest, "--seeds", smallest]
    command += ["--baseline-dir", str(folder / "baselines"), "--runs-dir", str(folder / "runs")]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return folder / "baselines"


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


def rows_for(runs: dict[str, list[dict]]) -> list[Row]:
    """Per phase, per case: median seconds; then wall, and wall / (train + import) per round."""
    imports = [r["wall"] for r in runs[IMPORT]]
    rows = [sample_row(BENCH, f"wall s: bare {IMPORT}", imports, "s")]
    for case in (VERIFY, PLAIN):
        split = [phases(r["marks"]) for r in runs[case]]
        for name in dict.fromkeys(name for _, name in MARKS):
            if all(name in s for s in split):
                rows.append(
                    sample_row(BENCH, f"phase s: {case}: {name}", [s[name] for s in split], "s")
                )
        walls = [r["wall"] for r in runs[case]]
        trains = [r["train"] for r in runs[case]]
        rows.append(
            sample_row(BENCH, f"wall s: {case}", walls, "s", at_most=60 if case == VERIFY else None)
        )
        rows.append(sample_row(BENCH, f"train_seconds: {case}", trains, "s"))
        ratios = [w / (t + i) for w, t, i in zip(walls, trains, imports, strict=True)]
        rows.append(sample_row(BENCH, f"wall / (train + import): {case}", ratios, "x"))
        beyond = [w - t - i for w, t, i in zip(walls, trains, imports, strict=True)]
        at_most = MARGIN_S if case == VERIFY else None
        rows.append(
            sample_row(BENCH, f"wall - train - import s: {case}", beyond, "s", at_most=at_most)
        )
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--profile", default="quick")
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        help="default: the shipped baseline, or record a small one first",
    )
    parser.add_argument("--no-preflight", action="store_true", help="verify --no-preflight")
    parser.add_argument("--record", action="store_true", help="also time a default record")
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # the smoke profile; --record is left as given (it takes minutes)
        args.repeat, args.profile = 1, "smoke"

    print(f"load average before: {load_average()}", flush=True)
    runs: dict[str, list[dict]] = {IMPORT: [], VERIFY: [], PLAIN: []}
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmp:
        folder = Path(tmp)
        baseline_dir = args.baseline_dir
        if baseline_dir is None and not shipped_baseline(args.profile):
            baseline_dir = record_small_baseline(args.profile, folder)
        cases = {
            IMPORT: lambda: one_import(folder),
            VERIFY: lambda: one_verify(args.profile, baseline_dir, folder, not args.no_preflight),
            PLAIN: lambda: one_plain(args.profile, folder),
        }
        names = list(cases)
        for round_ in range(args.repeat):
            shift = round_ % len(names)  # rotate, so no case always follows the same one
            for name in names[shift:] + names[:shift]:
                runs[name].append(cases[name]())
    print(f"load average after: {load_average()}")

    rows = rows_for(runs)
    if args.record:
        seconds, error = time_record(args.profile)
        case = "baseline record, defaults" + (f", FAILED ({error})" if error else "")
        row = sample_row(BENCH, case, [seconds / 60], "min", at_most=10)
        rows.append(replace(row, met=row.met and not error))
    print_rows(
        f"`repro verify --profile {args.profile} --quiet` beside {PLAIN}, "
        f"{args.repeat} interleaved rounds",
        rows,
    )
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
