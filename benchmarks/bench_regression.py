"""The repro_regression fixture's false-alarm rate and power, measured on a real training.

    python benchmarks/bench_regression.py [--bands 40] [--candidates 40] [--smoke]

The training is the fixture test's own (tests/test_pytest_plugin.py): a 16-32-1 MLP, 60
SGD steps in float32 at one thread. Every "run" is that training with a different
rounding-level perturbation of its initial parameters (``Perturbation(0, member)``), so
any two are what two machines' arithmetic would give. ``--bands`` bands of 9 disjoint
members each (a reference and 8 members, as the fixture records) judge ``--candidates``
other members through ``repro.judge.regression.check``: every DRIFT is a false alarm.
The stated rate is 1 % (family-wise over the two metrics). Power: the unperturbed
training with the learning rate x1.0001, x1.001 and x1.01, judged by every band.

Measured: the members sit on a handful of float32 values (the loss took 6 distinct values
over 60 perturbations, sd 4e-9), so the fixture's floor (2^-20 of the value), not their
spread, sets the band: no false alarm in 1,600 judgements, and learning rate x1.0001
(a loss 1.5e-6 lower) is outside every band.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from typing import Any

import torch

from repro.judge import regression
from results import Row, add_json_option, print_rows, write_rows
from runner import add_smoke_option

LR = 0.05


def train(perturb: regression.Perturbation, lr: float = LR) -> dict[str, float]:
    torch.manual_seed(perturb.seed)
    first = torch.nn.Linear(16, 32)
    model = torch.nn.Sequential(first, torch.nn.Tanh(), torch.nn.Linear(32, 1))
    perturb(model)
    x = torch.randn(256, 16)
    y = x[:, :1] * 2 - x[:, 1:2]
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(60):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {"loss": loss.item(), "weight_norm": first.weight.norm().item()}


def band(members: list[dict[str, float]]) -> dict[str, Any]:
    """A band as the fixture records it, from 9 runs (the seed runs only feed the report)."""
    return {
        "schema_version": regression.SCHEMA_VERSION,
        "seed": 0,
        "alpha": regression.ALPHA,
        "reference": members[0],
        "members": members[1:],
        "seeds": members[1:],
        "environment": {},
    }


def drifts(bands: list[dict[str, Any]], candidate: dict[str, float]) -> list[bool]:
    return [not regression.check(lambda _: candidate, b).passed for b in bands]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=40)
    parser.add_argument("--candidates", type=int, default=40)
    add_smoke_option(parser)
    add_json_option(parser)
    args = parser.parse_args()
    n_bands, n_candidates = (2, 2) if args.smoke else (args.bands, args.candidates)
    torch.set_num_threads(1)
    size = 1 + regression.MEMBERS
    runs = [train(regression.Perturbation(0, m)) for m in range(1, n_bands * size + 1)]
    bands = [band(runs[i * size : (i + 1) * size]) for i in range(n_bands)]
    first = n_bands * size + 1
    candidates = [train(regression.Perturbation(0, m)) for m in range(first, first + n_candidates)]
    per_band = [
        statistics.mean(drifts([b], c)[0] for c in candidates) for b in bands
    ]  # each band's own false-alarm rate
    alarms = sum(sum(drifts(bands, c)) for c in candidates)
    pairs = n_bands * n_candidates
    rows = [
        Row(
            "bench_regression",
            "false alarms: rounding-level candidates judged DRIFT",
            pairs,
            100 * alarms / pairs,
            "%",
            f"per band: median {100 * statistics.median(per_band):.1f} %, "
            f"max {100 * max(per_band):.1f} %",
            target="<= 1 % (stated)",
            met=None if args.smoke else alarms / pairs <= regression.ALPHA,
        )
    ]
    for factor in (1.0001, 1.001, 1.01):
        changed = train(regression.Perturbation(0), LR * factor)
        caught = sum(drifts(bands, changed))
        rows.append(
            Row(
                "bench_regression",
                f"power: learning rate x{factor} judged DRIFT",
                n_bands,
                100 * caught / n_bands,
                "% of bands",
            )
        )
    print_rows("repro_regression: false alarms and power (16-32-1 MLP, 60 steps)", rows)
    write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
