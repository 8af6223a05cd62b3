"""The group statistics as a pure function, on numbers alone (no training run)."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from repro.judge.group_power import runs_per_side, welch_detectable
from repro.judge.group_stats import can_pair, clopper_pearson, compare_samples, superiority

A = [0.921, 0.918, 0.925, 0.919, 0.923]


def test_separated_groups_are_different_and_the_interval_holds_the_gap():
    b = [v + 0.02 for v in A]
    result = compare_samples(A, b)
    assert result.decision == "DIFFERENT"
    low, high = result.interval
    assert low < 0.02 < high and low > 0
    assert result.superiority == 1.0
    # At complete separation the interval must not collapse onto 1.
    assert result.superiority_interval[0] < 1.0


def test_welch_matches_scipy_and_paired_matches_scipy():
    b = [0.917, 0.913, 0.922, 0.915, 0.921]
    unpaired = compare_samples(A, b)
    assert unpaired.p_value == pytest.approx(stats.ttest_ind(b, A, equal_var=False).pvalue)
    paired = compare_samples(A, b, paired=True)
    assert paired.p_value == pytest.approx(stats.ttest_rel(b, A).pvalue)
    assert paired.paired and paired.p_value < unpaired.p_value  # pairing removes the seed spread


def test_no_margin_no_same():
    result = compare_samples(A, list(A))
    assert result.decision == "UNRESOLVED"
    assert compare_samples(A, list(A), margin=0.01).decision == "SAME"


def test_same_needs_the_whole_equivalence_interval_inside_the_margin():
    b = [v + 0.001 for v in reversed(A)]
    wide = compare_samples(A, b, margin=0.02)
    assert wide.decision == "SAME"
    low, high = wide.equivalence_interval
    assert low > -0.02 and high < 0.02
    narrow = compare_samples(A, b, margin=0.001)
    assert narrow.decision == "UNRESOLVED"


def test_two_runs_per_side_cannot_show_the_same_at_a_realistic_margin():
    result = compare_samples([0.92, 0.91], [0.915, 0.925], margin=0.005)
    assert result.decision == "UNRESOLVED"
    assert result.runs_to_resolve is not None and result.runs_to_resolve > 2
    assert result.detectable > abs(result.difference)


def test_runs_to_resolve_is_the_smallest_size_whose_detectable_difference_reaches_the_gap():
    spread, gap = 0.01, 0.008
    n = runs_per_side(gap, spread, paired=False, alpha=0.05)
    assert n is not None

    def detectable(runs: int) -> float:
        return welch_detectable(spread, runs, runs, False, 0.05)

    assert detectable(n) <= gap < detectable(n - 1)
    assert runs_per_side(0.0, spread, paired=False, alpha=0.05) is None


def test_superiority_counts_ties_half():
    p, (low, high) = superiority([1.0, 2.0], [1.0, 2.0], alpha=0.05)
    assert p == 0.5 and low < 0.5 < high


def test_the_superiority_interval_covers_at_three_runs_per_side():
    """The Hanley-McNeil (Wald) interval covered 72-90 % here; at no effect, complete
    separation (1 draw in 20 at 3 vs 3) must still reach 0.5."""
    assert superiority([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], alpha=0.05)[1][0] < 0.5
    rng = random.Random(5)
    theta = stats.norm.cdf(1 / math.sqrt(2))  # B shifted by one sd
    draws, covered = 2000, 0
    for _ in range(draws):
        a = [rng.gauss(0, 1) for _ in range(3)]
        b = [rng.gauss(1, 1) for _ in range(3)]
        low, high = superiority(a, b, alpha=0.05)[1]
        covered += low <= theta <= high
    assert clopper_pearson(covered, draws)[0] >= 0.93, f"{covered}/{draws} covered"


def test_the_power_stated_is_the_power_of_the_welch_test_run():
    """At the difference it calls detectable with 80 % power, Welch's test on 3 runs per
    side detects it about 80 % of the time (the pooled formula's figure gave 69 %)."""
    rng = random.Random(6)
    gap = welch_detectable(1.0, 3, 3, paired=False, alpha=0.05)
    draws, hits = 3000, 0
    for _ in range(draws):
        a = [rng.gauss(0, 1) for _ in range(3)]
        b = [rng.gauss(gap, 1) for _ in range(3)]
        hits += compare_samples(a, b).decision == "DIFFERENT"
    low, high = clopper_pearson(hits, draws)
    assert low <= 0.8 + 0.015 and high >= 0.8 - 0.015, f"{hits}/{draws} detected"


def test_no_spread_is_judged_by_the_exact_test():
    # Each group constant: the permutation test; 3 vs 3 cannot reach 5 %.
    three = compare_samples([0.9] * 3, [0.95] * 3, resolution=0.05)
    assert three.test == "exact permutation" and three.p_value == pytest.approx(0.1)
    assert three.decision == "UNRESOLVED" and three.detectable == math.inf
    four = compare_samples([0.9] * 4, [0.95] * 4, resolution=0.05)
    assert four.p_value == pytest.approx(2 / 70) and four.decision == "DIFFERENT"
    # Every pair moved alike: the sign test, p = 2 * 2**-n.
    pairs = compare_samples([0.90, 0.85], [0.95, 0.90], paired=True, resolution=0.05)
    assert pairs.test == "exact sign" and pairs.p_value == 0.5 and pairs.decision == "UNRESOLVED"


def test_the_resolution_stands_in_for_the_missing_spread():
    # One grid step apart, margin two steps: the interval is the gap +- one step.
    near = compare_samples([0.90] * 3, [0.92] * 3, margin=0.05, resolution=0.02)
    assert near.equivalence_interval == pytest.approx((0.0, 0.04))
    assert near.decision == "SAME"
    assert compare_samples([0.90] * 3, [0.92] * 3, margin=0.03, resolution=0.02).decision == (
        "UNRESOLVED"
    )
    # A gap below the metric's resolution is never DIFFERENT, however constant the runs.
    hair = compare_samples([0.9] * 5, [0.9 + 1e-9] * 5, resolution=1 / 50)
    assert hair.p_value < 0.05 and hair.decision == "UNRESOLVED"


def test_a_detected_difference_inside_the_margin_is_same():
    b = [v + 0.01 for v in A]
    result = compare_samples(A, b, margin=0.05)
    assert result.detected and result.p_value < 0.05
    assert result.decision == "SAME"


def test_pairing_needs_the_same_seeds_once_each():
    assert can_pair([1, 2, 3], [3, 2, 1])
    assert not can_pair([1, 2, 3], [1, 2, 4])
    assert not can_pair([1, 1, 2], [1, 1, 2])
    assert not can_pair([None, None], [None, None])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        compare_samples(A, [*A[:4], float("nan")])
    with pytest.raises(ValueError):
        compare_samples([0.9], A)
    with pytest.raises(ValueError):
        compare_samples(A, A[:3], paired=True)
    with pytest.raises(ValueError):
        compare_samples(A, A, margin=0.0)


def test_clopper_pearson_is_the_beta_interval():
    low, high = clopper_pearson(3, 30)
    assert low == pytest.approx(stats.beta.ppf(0.025, 3, 28))
    assert high == pytest.approx(stats.beta.ppf(0.975, 4, 27))
    assert clopper_pearson(0, 120)[0] == 0.0


def test_the_false_different_rate_holds_on_skewed_draws():
    """A small version of benchmarks/bench_groups.py: 3 runs per side from a skewed
    accuracy distribution, drawn alike; DIFFERENT must come at most at alpha's rate."""
    rng = random.Random(11)
    draws, hits = 2000, 0
    for _ in range(draws):
        a = [0.92 - 0.003 * rng.lognormvariate(0, 1) for _ in range(3)]
        b = [0.92 - 0.003 * rng.lognormvariate(0, 1) for _ in range(3)]
        hits += compare_samples(a, b).decision == "DIFFERENT"
    low, _ = clopper_pearson(hits, draws)
    assert low <= 0.05, f"{hits}/{draws} false DIFFERENT"
