"""Tail diagnostics of a numerics band: is the normal model behind its bound believable?

The bound (``bands.window_bounds``) is a normal tolerance bound on the members' log RMS
deviations. Its false-alarm rate holds when their tails are normal or lighter; with
heavy right tails (fp16 loss-scale skips, GPU atomics) it does not: Student t with 5
degrees of freedom fails the per-test level about 20-fold. Twenty-four members cannot
show a tail in one window, so the rule pools the windows:

**Heavy** when the skewness or the excess kurtosis of every window's standardised member
logs, pooled, exceeds its 99.5th percentile under independent normal windows of the
same shape (simulated: ``NULL_DRAWS`` draws, fixed seed). Each statistic alone refuses
about 0.5 % of normal bands, both together at most 1 %. ``baseline record`` then adds
half as many members again and asks once more; a band heavy twice is refused.

Pure functions of numbers: no files, no torch.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from repro.judge.bands import band_factor, member_logs
from repro.judge.group_stats import mean_sd

QUANTILE = 0.995
NULL_DRAWS = 4000
RULE = (
    "heavy when the pooled skewness or excess kurtosis of the members' standardised log "
    "deviations exceeds its 99.5th percentile under normal windows of the same shape"
)


def moments(values: list[float]) -> tuple[float, float]:
    """Sample skewness and excess kurtosis (the moment estimators g1, g2)."""
    n = len(values)
    mean = math.fsum(values) / n
    m2 = math.fsum((v - mean) ** 2 for v in values) / n
    if m2 <= 0:
        return 0.0, 0.0
    m3 = math.fsum((v - mean) ** 3 for v in values) / n
    m4 = math.fsum((v - mean) ** 4 for v in values) / n
    return m3 / m2**1.5, m4 / (m2 * m2) - 3.0


def standardised(values: list[float]) -> list[float]:
    mean, sd = mean_sd(values)
    return [(v - mean) / sd for v in values] if sd > 0 else [0.0 for _ in values]


@lru_cache(maxsize=32)
def null_limits(members: int, windows: int) -> tuple[float, float]:
    """The 99.5th percentiles of the pooled skewness and excess kurtosis when every window's
    K member logs are independent normal draws (seeded: the same limits on every host)."""
    import numpy as np

    rng = np.random.default_rng(20240932)
    x = rng.standard_normal((NULL_DRAWS, windows, members))
    z = (x - x.mean(axis=2, keepdims=True)) / x.std(axis=2, ddof=1, keepdims=True)
    z = z.reshape(NULL_DRAWS, -1)
    c = z - z.mean(axis=1, keepdims=True)
    m2 = (c**2).mean(axis=1)
    skew = (c**3).mean(axis=1) / m2**1.5
    kurt = (c**4).mean(axis=1) / m2**2 - 3.0
    return float(np.quantile(skew, QUANTILE)), float(np.quantile(kurt, QUANTILE))


def judge_tails(logs_by_window: list[list[float]]) -> dict[str, Any]:
    """The pooled statistics, their limits and the verdict, from each window's member logs."""
    pooled = [z for logs in logs_by_window for z in standardised(logs)]
    skew, kurtosis = moments(pooled)
    skew_limit, kurtosis_limit = null_limits(len(logs_by_window[0]), len(logs_by_window))
    return {
        "skew": round(skew, 4),
        "excess_kurtosis": round(kurtosis, 4),
        "skew_limit": round(skew_limit, 4),
        "kurtosis_limit": round(kurtosis_limit, 4),
        "heavy": skew > skew_limit or kurtosis > kurtosis_limit,
    }


def _largest_leave_one_out(windows: list[tuple[Any, list[float]]], alpha: float) -> dict[str, Any]:
    """The member furthest out against the bound of the others, as a ratio of RMS deviations
    (above 1: outside the band the others make)."""
    factor = band_factor(len(windows[0][1]) - 1, len(windows), alpha)
    best: dict[str, Any] = {"ratio": 0.0}
    for (scalar, start, end, floor), logs in windows:
        for i, value in enumerate(logs):
            mean, sd = mean_sd(logs[:i] + logs[i + 1 :])
            threshold = math.exp(min(mean + factor * sd, 700.0)) - floor
            ratio = (math.exp(value) - floor) / threshold if threshold > 0 else math.inf
            if ratio > best["ratio"]:
                best = {"ratio": round(ratio, 4), "member": i, "window": f"{scalar} {start}-{end}"}
    return best


def tail_diagnostics(
    primary: dict[str, list[float]], members: list[dict[str, Any]], *, alpha: float, windows: int
) -> dict[str, Any]:
    """What ``baseline.yaml`` keeps under ``tails``: per window skewness, excess kurtosis and
    the largest standardised member; pooled over windows the same and the verdict of
    ``RULE``; the largest leave-one-out ratio."""
    found, _ = member_logs(primary, members, windows=windows, alpha=alpha)
    per_window: list[dict[str, Any]] = []
    for (scalar, start, end, _), logs in found:
        skew, kurtosis = moments(logs)
        per_window.append(
            {
                "scalar": scalar,
                "steps": f"{start}-{end}",
                "skew": round(skew, 3),
                "excess_kurtosis": round(kurtosis, 3),
                "largest_z": round(max(standardised(logs)), 3),
            }
        )
    return {
        "rule": RULE,
        "members": len(members),
        "pooled": judge_tails([logs for _, logs in found]),
        "largest_z": max(w["largest_z"] for w in per_window),
        "largest_leave_one_out": _largest_leave_one_out(found, alpha),
        "windows": per_window,
    }


def describe(tails: dict[str, Any] | None) -> str:
    """One line for ``baseline list``."""
    if not tails:
        return "tails: not checked (recorded before tail checks)"
    pooled = tails["pooled"]
    loo = tails["largest_leave_one_out"]
    return (
        f"tails: {'HEAVY' if pooled['heavy'] else 'normal or lighter'} (skew {pooled['skew']:+.2f}"
        f" <= {pooled['skew_limit']:.2f}, excess kurtosis {pooled['excess_kurtosis']:+.2f} <= "
        f"{pooled['kurtosis_limit']:.2f}); largest member z {tails['largest_z']:.2f}, "
        f"leave-one-out {loo['ratio']:.2f} of the others' bound"
        + (f"; replaced {len(tails['replaced'])}" if tails.get("replaced") else "")
    )
