"""How many standard deviations above the members' mean the numerics band's bound sits.

A baseline's own false-alarm rate depends on the members it recorded: with the prediction
factor t(1 - a, K - 1) * sqrt(1 + 1/K) (4.58 at K = 24, a = 0.001/12), alpha holds only on
average over baselines; 28 % of normal baselines sit above it (``bench_band_guarantee``).
The per-test tolerance factor (5.05: each test holds a with 95 % confidence) is not
enough either, because the 12 tests' rates add and a sum's 95th percentile exceeds the
sum of 95th percentiles for rates this skewed (1.26 alpha measured).

``family_factor`` is the factor at which the *family's* rate, 1 - prod(1 - P(X_w > bound_w))
over the T one-sided tests, is at or below alpha for 95 % of the baselines one could
record, the members' logs normal: for each simulated baseline the factor that puts its
family rate at alpha, then their 95th percentile, rounded up to 0.01. The members'
sample means and standard deviations are drawn from their exact distributions (normal,
scaled chi), so a baseline is 2 T numbers. 5.19 at K = 24 and T = 14 (10 windows and two
two-sided final metrics). Windows correlated in fact only lower the family's rate.

The factors of the bands a user records (8 to 64 members, 5 windows a scalar, the verdict's
alpha and its half for a pair of which neither run is the primary) are read from
``band_factor_table.py``, written by ``python -m repro.judge.band_factor`` from the
simulation: judging then needs neither SciPy's import nor the simulation (about a second),
and the factors do not depend on the installed NumPy's random streams. Other bands are
simulated once per process.
"""

from __future__ import annotations

import math
import sys
from functools import lru_cache
from pathlib import Path

from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS
from repro.judge.band_factor_table import FACTORS

CONFIDENCE = 0.95
BASELINES = 10_000  # Monte-Carlo error of the 95th percentile: about 0.01 sd
SEED = 32


TABLE_MEMBERS = range(8, 65)
TABLE_TESTS = 2 * DEFAULT_WINDOWS + 4  # two scalars' windows, two two-sided final metrics
TABLE_ALPHAS = (DEFAULT_ALPHA, DEFAULT_ALPHA / 2)


def family_factor(members: int, tests: int, alpha: float) -> float:
    tabled = FACTORS.get((members, tests, alpha))
    return tabled if tabled is not None else simulated_factor(members, tests, alpha)


@lru_cache(maxsize=64)
def simulated_factor(members: int, tests: int, alpha: float) -> float:
    import numpy as np
    from scipy.special import ndtr

    rng = np.random.default_rng(SEED)
    k = members
    means = rng.standard_normal((BASELINES, tests)) / math.sqrt(k)
    sds = np.sqrt(rng.chisquare(k - 1, (BASELINES, tests)) / (k - 1))
    low, high = np.zeros(BASELINES), np.full(BASELINES, 60.0)
    for _ in range(26):  # bisection on each baseline's critical factor
        mid = (low + high) / 2
        rate = 1 - np.prod(ndtr(means + mid[:, None] * sds), axis=1)
        above = rate > alpha
        low, high = np.where(above, mid, low), np.where(above, high, mid)
    return math.ceil(float(np.quantile(high, CONFIDENCE)) * 100) / 100


def write_table(path: Path) -> None:
    """Write ``band_factor_table.py``: every tabled band's factor, simulated."""
    rows = [
        f"    ({k}, {TABLE_TESTS}, {alpha!r}): {simulated_factor(k, TABLE_TESTS, alpha)!r},"
        for alpha in TABLE_ALPHAS
        for k in TABLE_MEMBERS
    ]
    text = [
        '"""The family factors of the usual bands (members, tests, alpha) -> factor, written by',
        "``python -m repro.judge.band_factor`` from ``simulated_factor``; do not edit by hand.",
        '"""',
        "",
        "FACTORS: dict[tuple[int, int, float], float] = {",
        *rows,
        "}",
        "",
    ]
    path.write_text("\n".join(text))


if __name__ == "__main__":
    write_table(
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("band_factor_table.py")
    )
