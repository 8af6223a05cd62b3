"""What the full training state costs at a stop, against the weights alone.

    python benchmarks/bench_resume.py [--profile quick] [--stop-at 99] [--repeat 3]

Each repeat is one ``repro run --stop-at K``; rank 0 times both saves in the run itself
(``timings.json``'s ``save``): ``checkpoint.pt`` (``model.state_dict()``, what a
weights-only team keeps) and ``training_state.pt`` (model, AdamW, GradScaler, schedule,
sampler position, every rank's RNGs; its time includes gathering the ranks' RNG states).
Prints the median seconds and the bytes of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--stop-at", type=int, default=99)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="one smoke-profile run stopped early: no figures"
    )
    args = parser.parse_args()
    if args.smoke:
        args.profile, args.stop_at, args.repeat = "smoke", 9, 1
    saves = []
    with tempfile.TemporaryDirectory() as runs:
        for _ in range(args.repeat):
            command = [sys.executable, "-m", "repro", "run", "--profile", args.profile]
            command += ["--stop-at", str(args.stop_at), "--runs-dir", runs, "--quiet"]
            subprocess.run(command, check=True, capture_output=True)
        for timings in Path(runs).glob("*/timings.json"):
            saves.append(json.loads(timings.read_text())["save"])
    print(f"{args.profile}, stopped after step {args.stop_at}, {len(saves)} runs:")
    for kind in ("weights_only", "full_state"):
        seconds = statistics.median(s[kind]["seconds"] for s in saves)
        size = saves[0][kind]["bytes"]
        print(f"  {kind:<13} {seconds * 1000:8.1f} ms  {size:>10,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
