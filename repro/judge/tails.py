"""Tail diagnostics of a numerics band: is the normal model behind its bound believable?

The bound (``bands.window_bounds``) is a normal tolerance bound on the members' log RMS
deviations. Its false-alarm rate holds when their tails are normal or lighter; with
heavy right tails (fp16 loss-scale skips, GPU atomics) it does not: under Student t with
5 degrees of freedom a band needs 9 to 10.5 standard deviations, not 5.19, whatever its
sample looks like. Twenty-four members cannot show a tail in one window, so the rule
pools every window's standardised member logs and looks twice:

**First look** (the members recorded): the band is taken as it is when the pooled
excess kurtosis is at or below its 70th percentile and the pooled skewness at or below
its 99.5th, both under independent normal windows of the same shape (simulated:
``NULL_DRAWS`` draws, fixed seed). Otherwise ``baseline record`` adds as many members
again (24 -> 48) and takes the **second look** at the larger band: heavy, and refused,
when its kurtosis exceeds its 99th percentile or its skewness its 99.5th.

Why these limits (``benchmarks/bench_band_guarantee.py``, ``bench_tail_levers.py``): a
heavy-tailed band is only safe refused (t5 bands that look normal need a factor near 9.2,
not 5.19), so the rule must refuse at least 95 % of Student-t (5 df) bands. Pooled
kurtosis at 240 values separates t5 from normal no better than that (a likelihood-ratio
test normal vs t sends within 1 % as many t5 bands on), so the first look hands every
band that is not clearly light to a second look with twice the values. What it costs
normal 24-member bands: about 31 % extended and 1.3 % refused. A band as light as the
shipped one (kurtosis -0.67) is never extended, and no factor changes: an accepted band
keeps the family factor of its member count.

Pure functions of numbers: no files, no torch.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from repro.judge.bands import band_factor, member_logs
from repro.judge.group_stats import mean_sd

if TYPE_CHECKING:
    import numpy as np

# (skewness, excess kurtosis) percentiles under normal windows: the first look's limits,
# above which members are added, and the second look's, above which the band is refused.
FIRST_LOOK = (0.995, 0.70)
SECOND_LOOK = (0.995, 0.99)
NULL_DRAWS = 10_000  # the 99th percentile from 100 draws above it
BLOCKS = 10
RULE = (
    "at the first look members are added when the pooled excess kurtosis of the members' "
    "standardised log deviations exceeds its 70th percentile, or the pooled skewness its "
    "99.5th, under normal windows of the same shape; at the second look, with twice the "
    "members, the band is heavy and refused when the kurtosis exceeds its 99th percentile "
    "or the skewness its 99.5th"
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


def pooled_moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``moments`` of the pooled standardised logs of many bands at once: ``x`` is
    (bands, windows, members); returns each band's skewness and excess kurtosis."""
    z = (x - x.mean(axis=2, keepdims=True)) / x.std(axis=2, ddof=1, keepdims=True)
    z = z.reshape(len(x), -1)
    c = z - z.mean(axis=1, keepdims=True)
    m2 = (c**2).mean(axis=1)
    return (c**3).mean(axis=1) / m2**1.5, (c**4).mean(axis=1) / m2**2 - 3.0


@lru_cache(maxsize=32)
def null_limits(members: int, windows: int, *, second_look: bool) -> tuple[float, float]:
    """The limits of the pooled skewness and excess kurtosis at the first or second look,
    their percentiles when every window's K member logs are independent normal draws
    (seeded: the same limits on every host)."""
    import numpy as np

    rng = np.random.default_rng(20240932)
    # In blocks: the same stream as one draw, a tenth of the memory (128 members: 100 MB).
    shape = (NULL_DRAWS // BLOCKS, windows, members)
    blocks = [pooled_moments(rng.standard_normal(shape)) for _ in range(BLOCKS)]
    skew, kurtosis = (np.concatenate(parts) for parts in zip(*blocks, strict=True))
    skew_q, kurtosis_q = SECOND_LOOK if second_look else FIRST_LOOK
    return float(np.quantile(skew, skew_q)), float(np.quantile(kurtosis, kurtosis_q))


def judge_tails(logs_by_window: list[list[float]], *, second_look: bool = False) -> dict[str, Any]:
    """The pooled statistics, the limits of this look and whether the band exceeds them
    (``heavy``: at the first look, add members; at the second, refuse)."""
    pooled = [z for logs in logs_by_window for z in standardised(logs)]
    skew, kurtosis = moments(pooled)
    skew_limit, kurtosis_limit = null_limits(
        len(logs_by_window[0]), len(logs_by_window), second_look=second_look
    )
    return {
        "look": "second" if second_look else "first",
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
    primary: dict[str, list[float]],
    members: list[dict[str, Any]],
    *,
    alpha: float,
    windows: int,
    second_look: bool = False,
) -> dict[str, Any]:
    """What ``baseline.yaml`` keeps under ``tails``: per window skewness, excess kurtosis and
    the largest standardised member; pooled over windows the same and the verdict of
    ``RULE`` at this look; the largest leave-one-out ratio."""
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
        "pooled": judge_tails([logs for _, logs in found], second_look=second_look),
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
    # Diagnostics stored before the two looks were one look at the refusal limits.
    look = {"first": ", first look", "second": ", second look"}.get(pooled.get("look"), "")
    return (
        f"tails: {'HEAVY' if pooled['heavy'] else 'normal or lighter'} (skew {pooled['skew']:+.2f}"
        f" <= {pooled['skew_limit']:.2f}, excess kurtosis {pooled['excess_kurtosis']:+.2f} <= "
        f"{pooled['kurtosis_limit']:.2f}{look}); largest member z {tails['largest_z']:.2f}, "
        f"leave-one-out {loo['ratio']:.2f} of the others' bound"
        + (f"; {tails['added_for_tails']} added" if tails.get("added_for_tails") else "")
        + (f"; replaced {len(tails['replaced'])}" if tails.get("replaced") else "")
    )
