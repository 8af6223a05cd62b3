"""What ``repro.probe`` costs, as a multiple of one plain training step, and how often it
catches a real thread race.

    python benchmarks/bench_probe.py [--steps 20] [--repeats 20] [--probes 3] [--smoke]

Cost: a small Transformer encoder (2 layers, d=64, 16 sequences of 32 tokens, AdamW,
cross-entropy) at 2 threads. "plain step" is forward, loss, backward and update with no
repro, timed ``--steps`` times; "probe" is ``repro.probe`` on the same model with the
default 20 repeats (a deterministic model: the plain repeats and the warn_only step, no
fix trials). The ratio of medians, measured in the same run, is the cost in steps; the
claim: at most 2.5 x (repeats + 1) steps (tracing at most 1.5x a step, plus the
restores).

Catch rate: an embedding written as ``w[idx]`` (its backward is index_put_ with
accumulate, a parallel atomic add) probed ``--probes`` times at two sizes; a row is the
share of probes that found it and the share of repeats that differed from the first. The
smaller size shows why the tests use the larger: on a loaded 2-core machine the two
threads of a short kernel seldom overlap.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from results import Row, add_json_option, load_average, print_rows, sample_row, write_rows
from runner import add_smoke_option

BENCH = "probe"
THREADS = 2


def encoder(tokens: int) -> tuple[Any, ...]:
    import torch
    from torch import nn

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(64, 4, 128, dropout=0.1, batch_first=True)
    model = nn.Sequential(
        nn.Embedding(100, 64), nn.TransformerEncoder(layer, 2), nn.Linear(64, 100)
    )
    x, y = torch.randint(0, 100, (16, tokens)), torch.randint(0, 100, (16, tokens))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def loss_fn(out: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out.reshape(-1, 100), y.reshape(-1))

    return model, x, loss_fn, opt


def plain_steps(made: tuple[Any, ...], steps: int) -> list[float]:
    model, x, loss_fn, opt = made
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x)).backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def lookup(indices: int) -> tuple[Any, ...]:
    import torch
    from torch import nn

    class Lookup(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(64, 16))

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.weight[idx]
            return out

    torch.manual_seed(0)
    idx, y = torch.randint(0, 64, (indices,)), torch.randint(0, 16, (indices,))

    def loss_fn(out: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(out, y)

    return Lookup(), idx, loss_fn, None


def catch_rows(sizes: list[int], probes: int, repeats: int) -> list[Row]:
    import repro

    rows = []
    for size in sizes:
        found, differing = 0, []
        for _ in range(probes):
            result = repro.probe(*lookup(size), repeats=repeats, threads=THREADS)
            found += result.first is not None
            differing.append(result.plain.differing / (repeats - 1))
        rows.append(Row(BENCH, f"w[idx] backward, {size} indices: probes that found it", probes,
                        found / probes, "share", f"{repeats} repeats each"))  # fmt: skip
        rows.append(Row(BENCH, f"w[idx] backward, {size} indices: repeats differing from the first",
                        probes, statistics.median(differing), "share",
                        f"range {min(differing):.2f}-{max(differing):.2f}"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--probes", type=int, default=3)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    tokens, sizes = 32, [32768, 262144]
    if args.smoke:
        args.steps, args.repeats, args.probes, tokens, sizes = 2, 2, 1, 8, [4096]

    import torch

    import repro

    torch.set_num_threads(THREADS)
    print(f"load average before: {load_average()}", flush=True)
    made = encoder(tokens)
    plain_steps(made, 2)  # warm-up: allocator, kernels
    repro.probe(*made, repeats=2)  # warm-up: the fingerprint weights
    plain, probes = [], []
    for _ in range(3 if not args.smoke else 1):  # interleaved, so a drift of load hits both
        plain += plain_steps(made, args.steps)
        start = time.perf_counter()
        result = repro.probe(*made, repeats=args.repeats)
        probes.append(time.perf_counter() - start)
    step = statistics.median(plain)
    cost = statistics.median(probes) / step
    target = 2.5 * (args.repeats + 1)
    rows = [
        sample_row(BENCH, "plain training step (ms)", plain, "ms", scale=1000),
        sample_row(
            BENCH,
            "traced step inside the probe (ms)",
            result.plain.seconds,
            "ms",
            scale=1000,
            ratio=f"{result.step_seconds / step:.2f} x plain step",
        ),
        sample_row(BENCH, f"probe, {args.repeats} repeats, nothing found (s)", probes, "s"),
        Row(
            BENCH,
            "probe / plain step",
            len(probes),
            cost,
            "x",
            "",
            f"{cost:.1f} x plain step",
            "" if args.smoke else f"<= {target:g}",
            None if args.smoke else cost <= target,
        ),
        *catch_rows(sizes, args.probes, max(args.repeats // 2, 2)),
    ]
    print_rows(
        f"repro.probe cost and catch rate ({THREADS} threads, torch {torch.__version__})", rows
    )
    print(f"load average after: {load_average()}")
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    sys.exit(0 if all(r.met is not False for r in main()) else 1)
