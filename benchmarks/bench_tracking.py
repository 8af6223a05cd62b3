"""What ``repro.track`` costs a training loop: the example's loop with and without it.

    python benchmarks/bench_tracking.py [--pairs 7] [--steps 60] [--smoke]

The loop is ``examples/train_tracked.py``'s (a small Transformer on generated sequences,
AdamW, gradient clipping), in this process on one thread. "tracked" wraps it in
``repro.track`` and logs the loss and gradient norm (tensors) every step, with a final
metric and a weight fingerprint at the end; "plain" is the same loop without repro. The
steps are timed alike; the tracker's one-off start and end (a manifest capture each) are
reported on their own row: a cost per run, not per step.
The two run as interleaved pairs (the order alternates), so a drift of the machine hits
both; the claim is the median per-pair ratio, <= 1.02.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import add_smoke_option

BENCH = "tracking"
TARGET = 1.02
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "train_tracked.py"


def _example() -> Any:
    spec = importlib.util.spec_from_file_location("train_tracked", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ONE_OFF: list[float] = []  # seconds of the tracked runs' start and end (manifest captures)


def loop(steps: int, runs_dir: Path | None) -> float:
    """Seconds of one training loop's steps; tracked into ``runs_dir`` when given (the
    one-off start and end, two manifest captures, go to ONE_OFF)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    import repro

    ex = _example()
    torch.manual_seed(0)
    model = ex.Model(64)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    xs, ys = ex.batches(0, steps, 32)
    start = time.perf_counter()
    if runs_dir is None:
        for step in range(steps):
            loss = F.cross_entropy(model(xs[step]).view(-1, ex.VOCAB), ys[step].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        return time.perf_counter() - start
    tracker = repro.track(config={"lr": 3e-3}, seed=0, runs_dir=runs_dir)
    with tracker as run:
        entered = time.perf_counter()
        for step in range(steps):
            loss = F.cross_entropy(model(xs[step]).view(-1, ex.VOCAB), ys[step].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            run.log(step, loss=loss.detach(), grad_norm=grad_norm)
        run.final(eval_loss=loss.detach())
        run.fingerprint(model)
        stepped = time.perf_counter()
    ONE_OFF.append((entered - start) + (time.perf_counter() - stepped))
    return stepped - entered


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=60)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:  # two pairs: the first tracked start is a warm-up, left out of its row
        args.pairs, args.steps = 2, 5

    import torch

    torch.set_num_threads(1)
    print(f"load average before: {load_average()}", flush=True)
    plain: list[float] = []
    tracked: list[float] = []
    with tempfile.TemporaryDirectory(prefix="repro-bench-tracking-") as tmp:
        loop(args.steps, None)  # warm-up: imports, allocator, kernels
        for i in range(args.pairs):
            order = (None, Path(tmp)) if i % 2 == 0 else (Path(tmp), None)
            for runs_dir in order:
                (plain if runs_dir is None else tracked).append(loop(args.steps, runs_dir))
    ratios = [t / p for t, p in zip(tracked, plain)]
    median = statistics.median(ratios)
    rows = [
        sample_row(BENCH, "plain loop (s)", plain, "s"),
        sample_row(BENCH, "tracked loop (s)", tracked, "s"),
        sample_row(BENCH, "tracked: start + end, once per run (s)", ONE_OFF[1:], "s"),
        Row(
            BENCH,
            "tracked / plain, per pair",
            len(ratios),
            median,
            "x",
            f"range {min(ratios):.3f}-{max(ratios):.3f}",
            f"{median:.3f} x plain loop",
            "" if args.smoke else f"<= {TARGET}",
            None if args.smoke else median <= TARGET,
        ),
    ]
    print_rows(f"repro.track overhead ({args.steps} steps, 1 thread)", rows)
    print(f"load average after: {load_average()}")
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    sys.exit(0 if all(r.met is not False for r in main()) else 1)
