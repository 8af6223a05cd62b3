"""What ``repro explain`` costs: reruns and seconds to confirm a cause, against one run.

    python benchmarks/bench_explain.py [--profile smoke] [--smoke]

"The other machine" is this one with knobs turned: (a) one CPU kernel level down and 2
threads per rank, (b) one kernel level down alone. ``repro explain`` confirms the cause of
each against a plain run of this machine; the table gives its reruns, its wall time and
that time as a multiple of one plain ``repro run`` of the same profile measured in the
same script (the named alternative: a single rerun by hand, which cannot confirm a pair).
``--smoke`` measures case (b) alone.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import Row, add_json_option, print_rows, write_rows
from runner import add_smoke_option


def _run(runs: Path, profile: str, *sets: str, **env: str) -> tuple[str, float]:
    command = [
        sys.executable,
        "-m",
        "repro",
        "run",
        "--profile",
        profile,
        "--runs-dir",
        str(runs),
        "--quiet",
    ]
    for pair in sets:
        command += ["--set", pair]
    start = time.perf_counter()
    subprocess.run(command, env={**os.environ, **env}, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    (new,) = [p for p in runs.iterdir() if p.is_dir()]
    return str(new), seconds


def _explain(other: str, here: str, runs: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "repro", "explain", other, "--here", here, "--runs-dir", str(runs), "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(done.stdout), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="smoke")
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.profile = "smoke"
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as tmp:
        root = Path(tmp)
        here, plain = _run(root / "here", args.profile)
        cases = {
            "kernel level down + 2 threads": ("threads_per_rank=2",),
            "kernel level down": (),
        }
        if args.smoke:  # one case: the same code, half the runs
            del cases["kernel level down + 2 threads"]
        for i, (case, sets) in enumerate(cases.items()):
            other, _ = _run(root / f"other{i}", args.profile, *sets, ATEN_CPU_CAPABILITY="default")
            data, seconds = _explain(other, here, root / f"reruns{i}")
            reruns = len(data["search"]["trials"]) if data.get("search") else 0
            rows.append(
                Row(
                    "explain", f"{case}: {data['search']['outcome'] if data.get('search') else data['conclusion']}",
                    reruns, seconds, "s", f"{reruns} reruns, {seconds / max(1, reruns):.1f} s each",
                    f"{seconds / plain:.1f} x one repro run ({plain:.1f} s)",
                )
            )  # fmt: skip
    print_rows(f"repro explain on the {args.profile} profile", rows)
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
