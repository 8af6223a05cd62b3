"""Power of the group tests: the difference the test actually run detects with POWER at
given group sizes, and the runs per side that would resolve a gap."""

from __future__ import annotations

import math
from functools import lru_cache

POWER = 0.8  # for the detectable difference and the runs per side to resolve a gap
MOST_RUNS = 10_000  # "more than this many per side" is as good as "never"


def t_quantile(p: float, dof: float) -> float:
    """Student t quantile. scipy.special's inverse CDF gives the same bits as
    ``scipy.stats.t.ppf`` at a fraction of the import time (compare's start-up)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, p))


def exact_runs_needed(paired: bool, alpha: float) -> int:
    """Runs per side at which the exact test of constant groups can reach ``alpha``."""
    n = 2
    while n <= MOST_RUNS:
        smallest = 2 * 0.5**n if paired else 2 / math.comb(2 * n, n)
        if smallest < alpha:
            return n
        n += 1
    return MOST_RUNS + 1


_GRID = 96  # quantile midpoints per chi-square in the Welch power integral
WELCH_AS_POOLED = 30  # runs per side from which the pooled power stands in for Welch's


@lru_cache(maxsize=4096)
def _detectable_in_spreads(n_a: int, n_b: int, paired: bool, alpha: float) -> float:
    """The |difference|, in per-run standard deviations, that the test actually run
    detects with POWER at these sizes (both groups with the same spread)."""
    from scipy.special import nctdtr, stdtrit

    if paired or min(n_a, n_b) >= WELCH_AS_POOLED:
        # The paired t is exact; past WELCH_AS_POOLED runs per side Welch's test has the
        # pooled test's power to within 0.04 % of the detectable difference.
        if min(n_a, n_b) < 2:
            return math.inf
        dof = n_a - 1 if paired else n_a + n_b - 2
        scale = 1 / math.sqrt(n_a) if paired else math.sqrt(1 / n_a + 1 / n_b)
        crit = float(stdtrit(dof, 1 - alpha / 2))

        def power(delta: float) -> float:
            nc = delta / scale
            return float(1 - nctdtr(dof, nc, crit) + nctdtr(dof, nc, -crit))

    else:
        # Welch's test rejects when |mean gap| > t(nu_hat) * se_hat, and both nu_hat and
        # se_hat move with the two sample variances: average the rejection probability
        # over them (each a scaled chi-square), on a grid of their quantiles.
        import numpy as np
        from scipy.special import chdtri, ndtr

        mid = (np.arange(_GRID) + 0.5) / _GRID
        x = chdtri(n_a - 1, mid)[:, None]  # (GRID, 1)
        y = chdtri(n_b - 1, mid)[None, :]  # (1, GRID)
        va, vb = x / ((n_a - 1) * n_a), y / ((n_b - 1) * n_b)
        nu = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
        reach = stdtrit(nu, 1 - alpha / 2) * np.sqrt(va + vb)  # (GRID, GRID)
        true_se = math.sqrt(1 / n_a + 1 / n_b)

        def power(delta: float) -> float:
            return float(
                np.mean(ndtr((delta - reach) / true_se) + ndtr((-delta - reach) / true_se))
            )

    high = 1.0
    while power(high) < POWER:
        high *= 2
        if high > 1e6:
            return math.inf
    low = 0.0
    for _ in range(50):
        mid_delta = (low + high) / 2
        if power(mid_delta) < POWER:
            low = mid_delta
        else:
            high = mid_delta
    return high


def welch_detectable(spread: float, n_a: int, n_b: int, paired: bool, alpha: float) -> float:
    """The |difference| the test ``compare_samples`` runs (Welch, or paired t) detects
    with POWER at these sizes, for runs spread by ``spread``."""
    return spread * _detectable_in_spreads(n_a, n_b, paired, alpha)


def detectable_difference(spread: float, runs: int, alpha: float = 0.05) -> float:
    """Two settings, ``runs`` runs each, per-run spread ``spread``: the gap in mean a
    pooled two-sided t-test at ``alpha`` detects with POWER (80 %), by the usual
    (t + t) approximation. The seed band's planning figure; a group comparison states
    ``welch_detectable`` for the test it runs."""
    dof = 2 * runs - 2
    if dof < 1:
        return math.inf
    scale = math.sqrt(2 / runs)
    return (t_quantile(1 - alpha / 2, dof) + t_quantile(POWER, dof)) * spread * scale


def runs_per_side(gap: float, spread: float, paired: bool, alpha: float) -> int | None:
    """The fewest runs per side at which ``gap`` is detected with POWER by the test
    actually run; None when there is no gap to resolve, MOST_RUNS + 1 past the ceiling."""
    if gap == 0 or not math.isfinite(gap):
        return None
    if spread == 0:
        return exact_runs_needed(paired, alpha)
    low, high = 2, MOST_RUNS + 1
    while low < high:  # the detectable difference shrinks as runs are added
        n = (low + high) // 2
        if welch_detectable(spread, n, n, paired, alpha) <= abs(gap):
            high = n
        else:
            low = n + 1
    return low
