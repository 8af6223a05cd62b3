"""Which tail rule keeps the band's per-baseline guarantee under Student t with 5 df.

    python benchmarks/bench_tail_levers.py [--bands 4000] [--smoke]

The three levers ``repro.judge.tails`` was chosen from, each on synthetic bands of
K = 24 members x 10 windows (seeded), t5 against normal:

1. **The statistic.** At equal false-extension rates on normal bands (30, 10 and 1 %),
   the share of t5 bands sent to a second look by the pooled excess kurtosis (the rule's)
   and by a likelihood-ratio test normal vs Student t on the same pooled standardised
   logs (degrees of freedom on a grid, scale profiled).
2. **A factor read from how heavy a band looks.** Each t5 band's critical factor (the
   factor that puts its own family false-alarm rate, 12 one-sided tests, at alpha) by
   fifths of its pooled kurtosis, beside the normal bands' 95th percentile (the family
   factor): if even the t5 bands that look normal need far more, a factor continuous in
   the statistic covers them only by giving normal-looking bands the same.
3. **The limits and the extension.** Per first-look percentile (kurtosis), second-look
   percentile and extension (half or all of K again): the share of normal bands extended
   and refused, and the share of t5 bands accepted (every accepted t5 band judges above
   alpha: the guarantee needs at most 5 %).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from typing import Any

import numpy as np
from scipy import special, stats

from repro.judge.tails import pooled_moments
from runner import add_smoke_option

ALPHA = 0.001
K, WINDOWS, TESTS = 24, 10, 12
DF_GRID = (2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0, 40.0, 100.0)
SCALE_GRID = np.linspace(0.5, 1.05, 23)


def likelihood_ratio(x: np.ndarray) -> np.ndarray:
    """log L(best Student t) - log L(normal) of each band's pooled standardised logs."""
    z = (x - x.mean(axis=2, keepdims=True)) / x.std(axis=2, ddof=1, keepdims=True)
    z = z.reshape(len(x), -1)
    n = z.shape[1]
    normal = -0.5 * n * (np.log(2 * np.pi * (z**2).mean(axis=1)) + 1)
    best = np.full(len(z), -np.inf)
    for nu in DF_GRID:
        c = special.gammaln((nu + 1) / 2) - special.gammaln(nu / 2) - 0.5 * np.log(nu * np.pi)
        for s in SCALE_GRID:
            ll = n * (c - np.log(s)) - (nu + 1) / 2 * np.log1p(z**2 / (nu * s * s)).sum(axis=1)
            best = np.maximum(best, ll)
    return np.asarray(best - normal)


def statistics(bands: int, rng: np.random.Generator) -> None:
    normal = rng.standard_normal((bands, WINDOWS, K))
    t5 = rng.standard_t(5, (bands, WINDOWS, K))
    kurtosis = (pooled_moments(normal)[1], pooled_moments(t5)[1])
    ratio = (likelihood_ratio(normal), likelihood_ratio(t5))
    print("| normal bands extended | t5 extended: kurtosis | likelihood ratio | ratio |")
    print("|---|---|---|---|")
    for q in (0.70, 0.90, 0.99):
        power = [float(np.mean(t > np.quantile(n, q))) for n, t in (kurtosis, ratio)]
        print(
            f"| {100 * (1 - q):.0f} % | {100 * power[0]:.1f} % | {100 * power[1]:.1f} % | "
            f"{power[1] / power[0]:.3f} |"
        )


def critical_factors(x: np.ndarray, model: Any) -> np.ndarray:
    """Each band's factor at which its family rate over the tests is alpha (bisection)."""
    mean, sd = x.mean(axis=2), x.std(axis=2, ddof=1)
    low, high = np.zeros(len(x)), np.full(len(x), 80.0)
    for _ in range(30):
        mid = (low + high) / 2
        rate = 1 - np.prod(1 - model.sf(mean + mid[:, None] * sd), axis=1)
        above = rate > ALPHA
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return high


def factors(bands: int, rng: np.random.Generator) -> None:
    normal = critical_factors(rng.standard_normal((bands, TESTS, K)), stats.norm())
    x = rng.standard_t(5, (bands, TESTS, K))
    kurtosis, needed = pooled_moments(x[:, :WINDOWS])[1], critical_factors(x, stats.t(5))
    print(f"normal bands' 95th percentile (the family factor): {np.quantile(normal, 0.95):.2f}")
    print("| t5 bands, pooled kurtosis | critical factor: median | 95th pct | vs family factor |")
    print("|---|---|---|---|")
    edges = np.quantile(kurtosis, np.linspace(0, 1, 6))
    for low, high in itertools.pairwise(edges):
        inside = needed[(kurtosis >= low) & (kurtosis <= high)]
        print(
            f"| {low:+.2f} to {high:+.2f} | {np.median(inside):.2f} | "
            f"{np.quantile(inside, 0.95):.2f} | {np.median(inside) / np.quantile(normal, 0.95):.2f}x |"
        )


def limits(bands: int, rng: np.random.Generator) -> None:
    draws = {
        "normal": rng.standard_normal((bands, WINDOWS, 2 * K)),
        "t5": rng.standard_t(5, (bands, WINDOWS, 2 * K)),
    }
    first = {name: pooled_moments(x[:, :, :K])[1] for name, x in draws.items()}
    print("| first look | second look | members added | normal extended | refused | t5 accepted |")
    print("|---|---|---|---|---|---|")
    for added in (K // 2, K):
        second = {name: pooled_moments(x[:, :, : K + added])[1] for name, x in draws.items()}
        for q1 in (0.6, 0.7, 0.8, 0.9):
            for q2 in (0.95, 0.99, 0.995):
                extend = np.quantile(first["normal"], q1)
                refuse = np.quantile(second["normal"], q2)
                shares = {
                    name: (first[name] > extend, (first[name] > extend) & (second[name] > refuse))
                    for name in draws
                }
                print(
                    f"| {100 * q1:.0f}th | {100 * q2:g}th | {added} | "
                    f"{100 * np.mean(shares['normal'][0]):.1f} % | "
                    f"{100 * np.mean(shares['normal'][1]):.2f} % | "
                    f"{100 * (1 - np.mean(shares['t5'][1])):.1f} % |"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bands", type=int, default=4000)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    bands = 50 if args.smoke else args.bands
    print(f"{bands} bands of K = {K} x {WINDOWS} windows per model; alpha {ALPHA}")
    for part in (statistics, factors, limits):
        print()
        part(bands, np.random.default_rng(32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
