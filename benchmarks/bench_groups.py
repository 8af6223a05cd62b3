"""Calibration of ``repro compare --group`` by simulation: are its error rates what it says?

    python benchmarks/bench_groups.py [--draws 10000] [--power-draws 2000] [--alpha 0.05] [--smoke]

Every figure calls ``repro.group_stats.compare_samples``, the function the command uses,
on groups drawn from three shapes of final accuracy:

- normal: accuracy 0.90, standard deviation 1 point;
- skewed: 0.92 minus a log-normal loss (sigma 1) scaled to 1 point: most runs close, a
  few much worse;
- token-discrete: the share of 100 held-out tokens right, p = 0.9 (sd 3 points; ties are
  common).

Paired rows draw each seed's pair with a shared seed effect (half the variance), as two
machines running the same seeds do. Errors:

- false DIFFERENT: both groups drawn alike; the rate must not exceed alpha;
- false SAME: group B shifted by exactly the margin, one sd (1 point; 3 tokens in 100
  for the discrete shape); the rate must not exceed alpha.

"met" means the exact 95 % interval of the measured rate reaches down to alpha or below
(the rate is consistent with the stated level). Power rows give the share DIFFERENT at a
true gap of 1 and 2 sd, and the share SAME at no gap (margin 1 sd), unpaired.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from repro.group_stats import clopper_pearson, compare_samples
from results import Row, add_json_option, print_rows, write_rows
from runner import add_smoke_option

BENCH = "groups"
SIZES = (3, 5, 8, 20, 30)
SPREAD = 0.01
TOKENS = 100

Draw = Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]


def _normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.normal(0.0, 1.0, n)


def _skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    # A log-normal loss, scaled to unit variance (var of lognormal(0, 1) = (e - 1) e).
    loss = rng.lognormal(0.0, 1.0, n)
    return -(loss - np.exp(0.5)) / np.sqrt((np.e - 1) * np.e)


SHAPES: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "normal": _normal,
    "skewed": _skewed,
}


def _continuous(shape: str, centre: float) -> Draw:
    unit = SHAPES[shape]

    def draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
        return centre + SPREAD * unit(rng, n), centre + gap + SPREAD * unit(rng, n)

    return draw


def _paired(shape: str, centre: float) -> Draw:
    unit = SHAPES[shape]
    half = np.sqrt(0.5)

    def draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
        seed = unit(rng, n)  # what the seed does, on either machine
        a = centre + SPREAD * half * (seed + unit(rng, n))
        return a, centre + gap + SPREAD * half * (seed + unit(rng, n))

    return draw


def _tokens(paired: bool) -> Draw:
    p = 0.9

    def draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
        if paired:  # the seed moves p a little; each machine then draws its own tokens
            ps = np.clip(p + 0.02 * rng.normal(size=n), 0, 1)
            return (
                rng.binomial(TOKENS, ps) / TOKENS,
                rng.binomial(TOKENS, np.clip(ps + gap, 0, 1)) / TOKENS,
            )
        return rng.binomial(TOKENS, p, n) / TOKENS, rng.binomial(TOKENS, p + gap, n) / TOKENS

    return draw


DRAWS: dict[str, tuple[Draw, Draw, float]] = {  # name: (unpaired, paired, margin)
    "normal": (_continuous("normal", 0.9), _paired("normal", 0.9), SPREAD),
    "skewed": (_continuous("skewed", 0.92), _paired("skewed", 0.92), SPREAD),
    "token-discrete": (_tokens(False), _tokens(True), 3 / TOKENS),
}


def rate(
    draw: Draw,
    n: int,
    gap: float,
    *,
    decision: str,
    paired: bool,
    margin: float,
    draws: int,
    alpha: float,
    seed: int,
) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        a, b = draw(rng, n, gap)
        result = compare_samples(a.tolist(), b.tolist(), alpha=alpha, margin=margin, paired=paired)
        hits += result.decision == decision
    return hits, draws


def error_row(case: str, hits: int, draws: int, alpha: float) -> Row:
    low, high = clopper_pearson(hits, draws)
    return Row(
        BENCH,
        case,
        draws,
        100 * hits / draws,
        "%",
        f"95 % CI {100 * low:.2f}-{100 * high:.2f}",
        "",
        f"<= {100 * alpha:g} %",
        low <= alpha,
    )


def power_row(case: str, hits: int, draws: int) -> Row:
    low, high = clopper_pearson(hits, draws)
    return Row(
        BENCH, case, draws, 100 * hits / draws, "%", f"95 % CI {100 * low:.1f}-{100 * high:.1f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=10_000, help="draws per error-rate row")
    parser.add_argument("--power-draws", type=int, default=2_000, help="draws per power row")
    parser.add_argument("--alpha", type=float, default=0.05)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.draws, args.power_draws = 4, 2
    start = time.perf_counter()
    rows: list[Row] = []
    seed = 0
    for name, (unpaired, paired_draw, margin) in DRAWS.items():
        for n in SIZES:
            for paired, draw in ((False, unpaired), (True, paired_draw)):
                kind = "paired" if paired else "unpaired"
                common = dict(paired=paired, margin=margin, draws=args.draws, alpha=args.alpha)
                seed += 1
                hits, draws = rate(draw, n, 0.0, decision="DIFFERENT", seed=seed, **common)
                rows.append(
                    error_row(f"false DIFFERENT {name} {kind} n={n}", hits, draws, args.alpha)
                )
                seed += 1
                hits, draws = rate(draw, n, margin, decision="SAME", seed=seed, **common)
                rows.append(error_row(f"false SAME {name} {kind} n={n}", hits, draws, args.alpha))
    for name, (unpaired, _, margin) in DRAWS.items():
        for n in SIZES:
            common = dict(paired=False, margin=margin, draws=args.power_draws, alpha=args.alpha)
            for gap_points in (1, 2):
                seed += 1
                gap = gap_points * margin
                hits, draws = rate(unpaired, n, gap, decision="DIFFERENT", seed=seed, **common)
                rows.append(
                    power_row(f"power DIFFERENT {name} n={n} gap {gap_points} sd", hits, draws)
                )
            seed += 1
            hits, draws = rate(unpaired, n, 0.0, decision="SAME", seed=seed, **common)
            rows.append(power_row(f"power SAME {name} n={n} gap 0, margin 1 sd", hits, draws))
    print_rows(f"compare --group, simulated (alpha {args.alpha})", rows)
    print(f"\n{time.perf_counter() - start:.0f} s")
    write_rows(args.json, rows)
    return 0 if args.smoke or all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
