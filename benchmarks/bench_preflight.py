"""What ``repro preflight`` costs: the whole command against a hand-written all-reduce check.

    python benchmarks/bench_preflight.py [--repeat 5] [--smoke]

"repro preflight" is ``python -m repro preflight --json`` as a whole process: host checks,
NVML (absent on a CPU machine: one unavailable check), and a 2-rank gloo all-reduce sweep
(8 B to 4 MiB) with its bitwise check. The named alternative is what one would write by
hand for the collective alone: ``torchrun --nproc-per-node 2`` of a script that all-reduces
the same sizes the same number of times. Both run interleaved; the claim is <= 10 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from results import add_json_option, print_rows, sample_row, write_rows
from runner import add_smoke_option, interleave, time_command

BENCH = "preflight"
TARGET_S = 10.0
HAND_WRITTEN = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
for size in (8, 64 * 1024, 1024**2, 4 * 1024**2):
    for _ in range(6):
        x = torch.ones(max(1, size // 4))
        dist.all_reduce(x)
dist.destroy_process_group()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 1
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as tmp:
        script = Path(tmp) / "allreduce.py"
        script.write_text(HAND_WRITTEN)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2"]
        timings = interleave(
            {
                "repro preflight": lambda: time_command(
                    [sys.executable, "-m", "repro", "preflight", "--json"]
                ),
                "torchrun all-reduce script": lambda: time_command([*torchrun, str(script)]),
            },
            repeat=args.repeat,
        )
    ours, peer = timings
    rows = [
        sample_row(
            BENCH, "repro preflight, whole process", ours.seconds, "s",
            ratio=f"{ours.median / peer.median:.2f} x torchrun all-reduce script",
            at_most=TARGET_S,
        ),
        sample_row(BENCH, "torchrun all-reduce script (collective only)", peer.seconds, "s"),
    ]  # fmt: skip
    print_rows("repro preflight vs a hand-written all-reduce check", rows)
    write_rows(args.json, rows)
    return 0 if rows[0].met or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
