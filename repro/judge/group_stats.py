"""Two groups of runs, one metric: are the settings behind them different, the same, or
is it too early to say? A pure function of the numbers (``compare_samples``).

- **SAME**: only against a margin the user gives, by two one-sided tests: the
  (1 - 2 alpha) interval of the difference lies inside +-margin. The margin is the
  user's statement of what matters, so SAME wins even where the difference is also
  detected (a real difference inside the margin is still SAME; the report says so).
- **DIFFERENT**: Welch's t-test (paired t when the runs pair by seed) rejects equal means
  at ``alpha``, and the difference is at least the metric's resolution.
- **UNRESOLVED** otherwise, with the smallest difference these group sizes detect at
  80 % power with the test actually run, and the runs per side that would resolve the
  observed gap.

No spread: when every run of each group agreed (or every pair moved alike), a t-test
has nothing to scale the gap by and would call any gap certain. The exact test decides
instead: the permutation test of the two groups (p = 2 / C(2n, n) for n runs per side
at two values), or the sign test of the pairs (p = 2 * 2**-n when all n differences
have one sign); and the metric's resolution (the grid its values sit on, e.g. 1/50 for
an accuracy over 50 items) stands in for the missing spread in the intervals, so
constant groups are SAME only when their difference plus the resolution lies inside
the margin. Where there is some spread, a group's standard deviation (or the pairs')
below one step of the resolution counts as one step: no test claims more precision
than the metric has.

Why t-tests and not an exact permutation test otherwise: with 3 or 4 runs per side (what
people run) a permutation test cannot reach 5 % at all (its smallest p-value is 1/10 for
3 vs 3 and 1/4 for 3 pairs), and no bootstrap below about 20 runs per side (it
under-covers). ``benchmarks/bench_groups.py`` measures the error rates on normal, skewed
and discrete accuracies at 2 to 30 runs per side.

The probability that a run of group B beats a run of group A (ties count half) comes
with Newcombe's score-type interval (his method 5: the Hanley-McNeil variance, sizes
averaged, taken at the bound rather than at the estimate) and a continuity correction of
half a pair; it covers at least 95 % at 2 to 20 runs per side, where the plain
Hanley-McNeil (Wald) interval covers as little as 72 %. Without the correction the
score interval covers 90 % at 3 vs 3: complete separation (5 % of draws at no effect)
must still reach 0.5.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from repro.judge.group_power import (
    exact_runs_needed,
    runs_per_side,
    t_quantile,
    welch_detectable,
)

Decision = Literal["DIFFERENT", "SAME", "UNRESOLVED"]
Test = Literal["welch", "paired t", "exact permutation", "exact sign"]
# Spreads below this fraction of the values' size are floating-point noise (0.94 - 0.92
# and 0.92 - 0.90 differ in the 17th digit): every run agreed.
AGREE = 1e-9
# A spread below one step of the metric's grid is not measured: a group of shares near 0
# or 1 is mostly constant, and a t interval from its few off-grid runs is too narrow
# (8 % false SAME at 20 items and 99 %, 5 runs per side, before this floor).
FLOOR = 1.0


@dataclass(frozen=True)
class SampleComparison:
    """One metric, group A against group B (differences are B - A)."""

    decision: Decision
    n_a: int
    n_b: int
    mean_a: float
    mean_b: float
    sd_a: float
    sd_b: float
    paired: bool
    test: Test  # the test that gave p_value
    difference: float  # mean_b - mean_a (mean of the paired differences when paired)
    interval: tuple[float, float]  # (1 - alpha) interval of the difference
    p_value: float  # two-sided, equal means
    alpha: float
    detected: bool  # p_value < alpha and the gap is at least the resolution
    resolution: float  # the smallest step the metric shows; 0: continuous, inf: unknown
    margin: float | None  # absolute, in the metric's units
    equivalence_alpha: float  # the false-SAME rate at a true difference of the margin
    equivalence_interval: tuple[float, float]  # (1 - 2 equivalence_alpha): inside +-margin is SAME
    superiority: float  # P(a run of B beats a run of A), ties half
    superiority_interval: tuple[float, float]
    detectable: float  # smallest |difference| detected with POWER at these sizes (inf: none)
    runs_to_resolve: int | None  # per side, for the observed gap at POWER; None: resolved or no gap

    @property
    def no_spread(self) -> bool:
        return self.test.startswith("exact")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleComparison:
        data = dict(data)
        for key in ("interval", "equivalence_interval", "superiority_interval"):
            data[key] = tuple(data[key])
        return cls(**data)


def _t_sf2(t: float, dof: float) -> float:
    """Two-sided tail probability of Student's t."""
    from scipy.special import stdtr

    if math.isnan(t):
        return 1.0
    return float(2 * stdtr(dof, -abs(t)))


def mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


@dataclass(frozen=True)
class _Estimate:
    difference: float
    se: float
    dof: float
    spread: float  # per-run standard deviation the power arithmetic uses (pooled, or of the pairs)


def _welch(a: list[float], b: list[float], floor: float = 0.0) -> _Estimate:
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    sa, sb = max(sa, floor), max(sb, floor)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        dof = float(len(a) + len(b) - 2)
    else:  # Welch-Satterthwaite
        dof = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    pooled = math.sqrt(((len(a) - 1) * sa * sa + (len(b) - 1) * sb * sb) / (len(a) + len(b) - 2))
    return _Estimate(mb - ma, se, dof, pooled)


def _paired(a: list[float], b: list[float], floor: float = 0.0) -> _Estimate:
    d = [y - x for x, y in zip(a, b)]
    md, sd = mean_sd(d)
    sd = max(sd, floor)
    return _Estimate(md, sd / math.sqrt(len(d)), float(len(d) - 1), sd)


def _exact_p(a: list[float], b: list[float], paired: bool, difference: float) -> float:
    """The exact test where there is no spread: each group constant (permutation test of
    the group labels) or every pair's difference alike (sign test)."""
    if difference == 0:
        return 1.0
    if paired:  # n differences of one sign: 2 of the 2**n sign patterns are as extreme
        return min(1.0, 2.0 * 0.5 ** len(a))
    # Group A all x, group B all y: relabel at random; k of B's values land in A.
    n_a, n_b = len(a), len(b)
    total = math.comb(n_a + n_b, n_a)
    observed = 1.0  # |mean_B - mean_A| in units of |y - x| when k = 0
    extreme = 0
    for k in range(min(n_a, n_b) + 1):
        gap = abs((n_b - k) / n_b - k / n_a)
        if gap >= observed - 1e-12:
            extreme += math.comb(n_b, k) * math.comb(n_a, n_a - k)
    return extreme / total


# -- P(B beats A) ---------------------------------------------------------------------------


def superiority(a: list[float], b: list[float], alpha: float) -> tuple[float, tuple[float, float]]:
    """P(B > A) + P(B = A) / 2 over all cross pairs, with Newcombe's (2006) score-type
    (1 - alpha) interval: every theta whose Hanley-McNeil variance (with the group sizes
    replaced by their mean) puts the estimate within z standard errors, after moving it
    half a pair towards theta (the estimate is a count of pairs)."""
    wins = sum((y > x) + 0.5 * (y == x) for x in a for y in b)
    pairs = len(a) * len(b)
    p = wins / pairs
    z = _normal_quantile(1 - alpha / 2)
    size = (len(a) + len(b)) / 2

    z2, shift, extra = z * z / pairs, 0.5 / pairs, size - 1

    def outside(theta: float) -> bool:
        gap = abs(p - theta) - shift
        if gap <= 0:
            return False
        rest = 1 - theta
        var = theta * rest * (1 + extra * (rest / (1 + rest) + theta / (1 + theta)))
        return gap * gap > z2 * var

    def bound(inside: float, out: float) -> float:
        for _ in range(40):  # bisection to 1e-12 of the unit interval
            mid = (inside + out) / 2
            if outside(mid):
                out = mid
            else:
                inside = mid
        return inside

    low = 0.0 if p == 0 else bound(p, 0.0)
    high = 1.0 if p == 1 else bound(p, 1.0)
    return p, (low, high)


def _normal_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def clopper_pearson(events: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact two-sided binomial interval of a rate (an error rate measured in trials)."""
    from scipy.special import betaincinv

    tail = (1 - level) / 2
    low = float(betaincinv(events, trials - events + 1, tail)) if events > 0 else 0.0
    high = float(betaincinv(events + 1, trials - events, 1 - tail)) if events < trials else 1.0
    return low, high


def can_pair(seeds_a: list[Any], seeds_b: list[Any]) -> bool:
    """The same seeds on both sides, each once: the runs pair by seed."""
    return (
        None not in seeds_a
        and len(set(seeds_a)) == len(seeds_a)
        and sorted(map(str, seeds_a)) == sorted(map(str, seeds_b))
        and len(seeds_a) == len(seeds_b)
    )


def _check_samples(
    a: list[float],
    b: list[float],
    paired: bool,
    alphas: tuple[float, float],
    margin: float | None,
    resolution: float,
) -> None:
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each group needs at least 2 runs")
    if paired and len(a) != len(b):
        raise ValueError("paired groups need the same number of runs")
    if not all(math.isfinite(v) for v in a + b):
        raise ValueError("every value must be a finite number")
    for level in alphas:
        if not 0 < level < 0.5:
            raise ValueError(f"alpha must lie between 0 and 0.5, not {level}")
    if margin is not None and not margin > 0:
        raise ValueError(f"the margin must be positive, not {margin}")
    if not resolution >= 0:  # inf: unknown (every value the same number)
        raise ValueError(f"the resolution must be 0 or positive, not {resolution}")


def _decide(detected: bool, margin: float | None, equivalence: tuple[float, float]) -> Decision:
    """SAME first: a difference shown to lie inside the user's margin does not matter,
    even where it is detected."""
    if margin is not None and -margin < equivalence[0] and equivalence[1] < margin:
        return "SAME"
    return "DIFFERENT" if detected else "UNRESOLVED"


def _detectable(
    no_spread: bool,
    spread: float,
    n_a: int,
    n_b: int,
    paired: bool,
    alpha: float,
    resolution: float,
    size: float,
) -> float:
    """The difference the test run detects: one step of the metric where the exact test
    of constant groups can reach alpha at all, else Welch's (or the paired t's) power."""
    if no_spread:
        reachable = exact_runs_needed(paired, alpha) <= n_a
        return max(resolution, AGREE * size) if reachable else math.inf
    return welch_detectable(spread, n_a, n_b, paired, alpha)


def compare_samples(
    a: list[float],
    b: list[float],
    *,
    alpha: float = 0.05,
    margin: float | None = None,
    paired: bool = False,
    equivalence_alpha: float | None = None,
    resolution: float = 0.0,
) -> SampleComparison:
    """Group A against group B for one metric; ``paired`` means a[i] and b[i] share a seed.

    ``alpha`` is the false-DIFFERENT rate, and (unless ``equivalence_alpha`` says
    otherwise) the false-SAME rate at a true difference of exactly the margin. Several
    metrics split alpha for DIFFERENT, while SAME for all of them may keep it whole
    (an intersection-union test). ``resolution`` is the smallest step the metric can
    show (0: continuous; inf: unknown, so runs that all agree prove nothing). Needs at
    least 2 finite values per side.
    """
    same_alpha = alpha if equivalence_alpha is None else equivalence_alpha
    _check_samples(a, b, paired, (alpha, same_alpha), margin, resolution)
    e = _paired(a, b) if paired else _welch(a, b)
    size = max(abs(v) for v in a + b)
    no_spread = e.se <= AGREE * size
    if not no_spread and 0 < resolution < math.inf:
        floor = FLOOR * resolution
        e = _paired(a, b, floor) if paired else _welch(a, b, floor)
    if no_spread:
        difference = 0.0 if abs(e.difference) <= AGREE * size else e.difference
        p = _exact_p(a, b, paired, difference)
        test: Test = "exact sign" if paired else "exact permutation"

        def interval(level: float) -> tuple[float, float]:
            # No spread to scale by: the difference is known to the metric's resolution.
            return difference - resolution, difference + resolution

    else:
        difference = e.difference
        p = _t_sf2(difference / e.se, e.dof)
        test = "paired t" if paired else "welch"

        def interval(level: float) -> tuple[float, float]:
            half = t_quantile(1 - (1 - level) / 2, e.dof) * e.se
            return difference - half, difference + half

    equivalence = interval(1 - 2 * same_alpha)
    # A gap of one grid step, computed in floating point, may fall a hair short of it.
    detected = p < alpha and abs(difference) >= resolution * (1 - 1e-9)
    decision = _decide(detected, margin, equivalence)
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    sup, sup_interval = superiority(a, b, alpha)
    spread = 0.0 if no_spread else e.spread
    detectable = _detectable(no_spread, spread, len(a), len(b), paired, alpha, resolution, size)
    return SampleComparison(
        decision=decision,
        n_a=len(a),
        n_b=len(b),
        mean_a=ma,
        mean_b=mb,
        sd_a=sa,
        sd_b=sb,
        paired=paired,
        test=test,
        difference=difference,
        interval=interval(1 - alpha),
        p_value=p,
        alpha=alpha,
        detected=detected,
        resolution=resolution,
        margin=margin,
        equivalence_alpha=same_alpha,
        equivalence_interval=equivalence,
        superiority=sup,
        superiority_interval=sup_interval,
        detectable=detectable,
        runs_to_resolve=(
            runs_per_side(difference, spread, paired, alpha) if decision == "UNRESOLVED" else None
        ),
    )
