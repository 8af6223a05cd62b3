"""Two groups of runs, one metric: are the settings behind them different, the same, or
is it too early to say? A pure function of the numbers (``compare_samples``).

- **DIFFERENT**: Welch's t-test (paired t when the runs pair by seed) rejects equal means
  at ``alpha``.
- **SAME**: only against a margin the user gives, by two one-sided tests: the
  (1 - 2 alpha) interval of the difference lies inside +-margin. No margin, no SAME.
- **UNRESOLVED** otherwise, with the smallest difference these group sizes detect at
  80 % power and the runs per side that would resolve the observed gap.

Why t-tests and not an exact permutation test: with 3 or 4 runs per side (what people
run) a permutation test cannot reach 5 % at all (its smallest p-value is 1/10 for 3 vs 3
and 1/4 for 3 pairs), and no bootstrap below about 20 runs per side (it under-covers).
Under the null the difference of two groups drawn alike is symmetric, where the t-test
holds up well; ``benchmarks/bench_groups.py`` measures its error rates on normal, skewed
and token-discrete accuracies at 3 to 30 runs per side.

The probability that a run of group B beats a run of group A (ties count half) comes
with the Hanley-McNeil interval, its variance taken half a pair in from 0 or 1 when the
groups do not overlap (the plain formula gives a zero-width interval there).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

Decision = Literal["DIFFERENT", "SAME", "UNRESOLVED"]
POWER = 0.8  # for the detectable difference and the runs per side to resolve a gap
MOST_RUNS = 10_000  # "more than this many per side" is as good as "never"


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
    difference: float  # mean_b - mean_a (mean of the paired differences when paired)
    interval: tuple[float, float]  # (1 - alpha) interval of the difference
    p_value: float  # two-sided, equal means
    alpha: float
    margin: float | None  # absolute, in the metric's units
    equivalence_alpha: float  # the false-SAME rate at a true difference of the margin
    equivalence_interval: tuple[float, float]  # (1 - 2 equivalence_alpha): inside +-margin is SAME
    superiority: float  # P(a run of B beats a run of A), ties half
    superiority_interval: tuple[float, float]
    detectable: float  # smallest |difference| detected with POWER at these sizes
    runs_to_resolve: int | None  # per side, for the observed gap at POWER; None: resolved or no gap

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SampleComparison:
        data = dict(data)
        for key in ("interval", "equivalence_interval", "superiority_interval"):
            data[key] = tuple(data[key])
        return cls(**data)


def t_quantile(p: float, dof: float) -> float:
    """Student t quantile. scipy.special's inverse CDF gives the same bits as
    ``scipy.stats.t.ppf`` at a fraction of the import time (compare's start-up)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, p))


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


def _welch(a: list[float], b: list[float]) -> _Estimate:
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    va, vb = sa * sa / len(a), sb * sb / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        dof = float(len(a) + len(b) - 2)
    else:  # Welch-Satterthwaite
        dof = (va + vb) ** 2 / (va * va / (len(a) - 1) + vb * vb / (len(b) - 1))
    pooled = math.sqrt(((len(a) - 1) * sa * sa + (len(b) - 1) * sb * sb) / (len(a) + len(b) - 2))
    return _Estimate(mb - ma, se, dof, pooled)


def _paired(a: list[float], b: list[float]) -> _Estimate:
    d = [y - x for x, y in zip(a, b)]
    md, sd = mean_sd(d)
    return _Estimate(md, sd / math.sqrt(len(d)), float(len(d) - 1), sd)


def _p_value(e: _Estimate) -> float:
    if e.se == 0:  # no spread at all: any gap is certain, none is none
        return 0.0 if e.difference != 0 else 1.0
    return _t_sf2(e.difference / e.se, e.dof)


def superiority(a: list[float], b: list[float], alpha: float) -> tuple[float, tuple[float, float]]:
    """P(B > A) + P(B = A) / 2 over all cross pairs, with a (1 - alpha) Hanley-McNeil interval."""
    wins = sum((y > x) + 0.5 * (y == x) for x in a for y in b)
    pairs = len(a) * len(b)
    p = wins / pairs
    # Half a pair in from the edge: at complete separation the formula's variance is zero.
    q = min(max(p, 0.5 / pairs), 1 - 0.5 / pairs)
    q1, q2 = q / (2 - q), 2 * q * q / (1 + q)
    var = (q * (1 - q) + (len(b) - 1) * (q1 - q * q) + (len(a) - 1) * (q2 - q * q)) / pairs
    half = _normal_quantile(1 - alpha / 2) * math.sqrt(max(var, 0.0))
    return p, (max(0.0, p - half), min(1.0, p + half))


def _normal_quantile(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def _detectable(spread: float, n_a: int, n_b: int, paired: bool, alpha: float) -> float:
    """The |difference| a two-sided test at ``alpha`` detects with POWER at these sizes."""
    if paired:
        dof, scale = n_a - 1, 1 / math.sqrt(n_a)
    else:
        dof, scale = n_a + n_b - 2, math.sqrt(1 / n_a + 1 / n_b)
    if dof < 1:
        return math.inf
    return (t_quantile(1 - alpha / 2, dof) + t_quantile(POWER, dof)) * spread * scale


def detectable_difference(spread: float, runs: int, alpha: float = 0.05) -> float:
    """Two settings, ``runs`` runs each, per-run spread ``spread``: the gap in mean a
    two-sided test at ``alpha`` detects with POWER (80 %)."""
    return _detectable(spread, runs, runs, False, alpha)


def runs_per_side(gap: float, spread: float, paired: bool, alpha: float) -> int | None:
    """The fewest runs per side at which ``gap`` is detected with POWER; None when there is
    no gap to resolve, MOST_RUNS + 1 past the ceiling."""
    if gap == 0 or not math.isfinite(gap):
        return None
    if spread == 0:
        return 2
    low, high = 2, MOST_RUNS + 1
    while low < high:  # the detectable difference shrinks as runs are added
        n = (low + high) // 2
        if _detectable(spread, n, n, paired, alpha) <= abs(gap):
            high = n
        else:
            low = n + 1
    return low


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


def compare_samples(
    a: list[float],
    b: list[float],
    *,
    alpha: float = 0.05,
    margin: float | None = None,
    paired: bool = False,
    equivalence_alpha: float | None = None,
) -> SampleComparison:
    """Group A against group B for one metric; ``paired`` means a[i] and b[i] share a seed.

    ``alpha`` is the false-DIFFERENT rate, and (unless ``equivalence_alpha`` says
    otherwise) the false-SAME rate at a true difference of exactly the margin. Several
    metrics split alpha for DIFFERENT, while SAME for all of them may keep it whole
    (an intersection-union test). Needs at least 2 values per side.
    """
    if len(a) < 2 or len(b) < 2:
        raise ValueError("each group needs at least 2 runs")
    if paired and len(a) != len(b):
        raise ValueError("paired groups need the same number of runs")
    same_alpha = alpha if equivalence_alpha is None else equivalence_alpha
    for level in (alpha, same_alpha):
        if not 0 < level < 0.5:
            raise ValueError(f"alpha must lie between 0 and 0.5, not {level}")
    if margin is not None and not margin > 0:
        raise ValueError(f"the margin must be positive, not {margin}")
    e = _paired(a, b) if paired else _welch(a, b)
    p = _p_value(e)

    def interval(level: float) -> tuple[float, float]:
        half = t_quantile(1 - (1 - level) / 2, e.dof) * e.se if e.se > 0 else 0.0
        return e.difference - half, e.difference + half

    equivalence = interval(1 - 2 * same_alpha)
    if p < alpha:
        decision: Decision = "DIFFERENT"
    elif margin is not None and -margin < equivalence[0] and equivalence[1] < margin:
        decision = "SAME"
    else:
        decision = "UNRESOLVED"
    (ma, sa), (mb, sb) = mean_sd(a), mean_sd(b)
    sup, sup_interval = superiority(a, b, alpha)
    return SampleComparison(
        decision=decision,
        n_a=len(a),
        n_b=len(b),
        mean_a=ma,
        mean_b=mb,
        sd_a=sa,
        sd_b=sb,
        paired=paired,
        difference=e.difference,
        interval=interval(1 - alpha),
        p_value=p,
        alpha=alpha,
        margin=margin,
        equivalence_alpha=same_alpha,
        equivalence_interval=equivalence,
        superiority=sup,
        superiority_interval=sup_interval,
        detectable=_detectable(e.spread, len(a), len(b), paired, alpha),
        runs_to_resolve=(
            runs_per_side(e.difference, e.spread, paired, alpha)
            if decision == "UNRESOLVED"
            else None
        ),
    )
