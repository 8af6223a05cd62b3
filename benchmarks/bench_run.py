"""Cost of one ``repro run``: whole-process wall time, training time and peak memory.

    python benchmarks/bench_run.py [--repeat 3] [--profile quick] [--smoke]

Each repetition runs ``python -m repro run --profile quick`` as a whole process. Memory
is the summed PSS (proportional set size, so pages shared between the ranks count once)
of every process in its tree (the CLI, torch's launcher, the ranks and their data
workers), read from ``/proc/<pid>/smaps_rollup`` every 0.2 s; the peak is reported.
Claims for the quick profile: wall <= 45 s, training <= 30 s, peak PSS <= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from repro.runs.proctree import descendants
from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import Timing, add_smoke_option, print_table

BENCH = "run"
GIB = 2**30


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    return [root, *descendants(root)]


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakPss:
    """Samples the summed PSS of a process tree every ``interval`` s in a thread."""

    def __init__(self, root: int, interval: float = 0.2) -> None:
        self.root, self.interval = root, interval
        self.peak, self.processes_at_peak = 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            tree = process_tree(self.root)
            total = sum(pss_bytes(pid) for pid in tree)
            if total > self.peak:
                self.peak, self.processes_at_peak = total, len(tree)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def one_run(profile: str, runs_dir: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "repro", "run", "--profile", profile, "--quiet"]
    start = time.perf_counter()
    proc = subprocess.Popen(
        [*command, "--runs-dir", str(runs_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    sampler = PeakPss(proc.pid)
    _, stderr = proc.communicate()
    wall = time.perf_counter() - start
    sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {stderr.decode()}")
    (run_dir,) = runs_dir.iterdir()
    timings = json.loads((run_dir / "timings.json").read_text())
    return {
        "wall": wall,
        "train": timings["train_seconds"],
        "pss": sampler.peak,
        "processes": sampler.processes_at_peak,
    }


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", default="quick")
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.repeat, args.profile = 1, "smoke"

    print(f"load average before: {load_average()}", flush=True)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
            runs.append(one_run(args.profile, Path(tmp)))
    print(f"load average after: {load_average()}")

    walls, trains = [r["wall"] for r in runs], [r["train"] for r in runs]
    print_table(
        f"`repro run --profile {args.profile}`, {args.repeat} runs",
        [Timing("whole process", tuple(walls)), Timing("training loop", tuple(trains))],
        baseline="whole process",
        unit="s",
    )
    rows = [
        sample_row(BENCH, "wall s, whole process", walls, "s", at_most=45),
        sample_row(BENCH, "training s (timings.json)", trains, "s", at_most=30),
        sample_row(
            BENCH, "outside training s", [w - t for w, t in zip(walls, trains, strict=True)], "s"
        ),
        sample_row(
            BENCH,
            f"peak PSS, process tree ({max(r['processes'] for r in runs)} processes)",
            [r["pss"] for r in runs],
            "GiB",
            scale=1 / GIB,
            at_most=2,
        ),
    ]
    print_rows(f"`repro run --profile {args.profile}` against its targets", rows)
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
