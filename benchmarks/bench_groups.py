"""Calibration of ``repro compare --group`` by simulation: are its error rates what it says?

    python benchmarks/bench_groups.py [--draws 10000] [--power-draws 2000] [--alpha 0.05] [--smoke]

Groups of final metrics are drawn and judged by the code the command runs:
``repro.group_stats.compare_samples`` for continuous accuracies, and the whole group
comparison (``repro.groups.compare_groups`` on runs built in memory: seed folding,
the NaN rule, the inferred resolution) for every row whose inputs that code changes.

Shapes of final accuracy:

- normal: accuracy 0.90, standard deviation 1 point;
- skewed: 0.92 minus a log-normal loss (sigma 1) scaled to 1 point: most runs close, a
  few much worse; group B shifted up, or ("B below") down into the long tail;
- items-N: the share of N evaluation items right (N = 20, 50, 100), p = 0.9: on a grid
  of 1/N, ties common; the margin is one standard deviation of a run;
- near-constant: the share of 20 items right at p = 0.99: most groups are constant;
- repeated seeds: normal, each seed run 2 or 3 times with deterministic training (its
  runs are copies);
- one NaN: normal, one run of group B ends in NaN.

Paired rows draw each seed's pair with a shared seed effect (half the variance), as two
machines running the same seeds do. Errors, each a rate that must not exceed alpha:

- false DIFFERENT: both groups drawn alike;
- false SAME: group B shifted by exactly the margin (one run's standard deviation); for
  one NaN, any SAME (at no shift, with a wide margin) is false.

A row is met when the upper end of the exact 95 % interval of its rate is at most
alpha + 1 point, so 10,000 draws per row: at a true rate of exactly 5 % the upper end
sits near 5.45 %. Coverage rows: the share of draws whose P(B beats A) interval holds
the true probability; met when the lower end of its 95 % interval is at least 93 %.
Power-check rows: the share DIFFERENT at the difference the report calls detectable
with 80 % power; met within 2 points of 80 %. Power rows (no target) give the share
DIFFERENT at a true gap of 1 and 2 sd, and SAME at no gap (margin 1 sd), unpaired.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import numpy as np
from scipy.stats import norm

from repro.judge.group_inputs import Margin
from repro.judge.group_power import POWER, welch_detectable
from repro.judge.group_stats import clopper_pearson, compare_samples, superiority
from repro.judge.groups import compare_groups
from repro.runs.group_runs import GroupRun
from results import Row, add_json_option, print_rows, write_rows
from runner import add_smoke_option

BENCH = "groups"
SIZES = (2, 3, 5, 8, 20)
ITEM_SIZES = (2, 3, 5, 10)
SPREAD = 0.01
ITEMS = (20, 50, 100)
SLACK = 0.01  # a row's rate may reach alpha + 1 point at the top of its 95 % interval
COVERAGE_FLOOR = 0.93

T = TypeVar("T")
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


def _continuous(shape: str, centre: float, paired: bool) -> Draw:
    unit = SHAPES[shape.removesuffix(" B below")]
    half = np.sqrt(0.5)
    # Group B moves up, or (" B below") down into the long tail: the t interval's errors
    # from skew fall on one side only.
    sign = -1 if shape.endswith(" B below") else 1

    def draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
        if paired:
            seed = unit(rng, n)  # what the seed does, on either machine
            a = centre + SPREAD * half * (seed + unit(rng, n))
            return a, centre + sign * gap + SPREAD * half * (seed + unit(rng, n))
        return centre + SPREAD * unit(rng, n), centre + sign * gap + SPREAD * unit(rng, n)

    return draw


def _items(items: int, p: float, paired: bool) -> Draw:
    sign = 1 if p <= 0.5 else -1  # group B moves away from the nearer end of [0, 1]

    def draw(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, np.ndarray]:
        if paired:  # the seed moves p a little; each machine then draws its own items
            ps = np.clip(p + 0.02 * rng.normal(size=n), 0, 1)
            return (
                rng.binomial(items, ps) / items,
                rng.binomial(items, np.clip(ps + sign * gap, 0, 1)) / items,
            )
        return rng.binomial(items, p, n) / items, rng.binomial(items, p + sign * gap, n) / items

    return draw


def _item_sd(items: int, p: float) -> float:
    return math.sqrt(p * (1 - p) / items)


# -- the command's code on numbers ------------------------------------------------------------


def _runs(side: str, values: list[float], seeds: list[int]) -> list[GroupRun]:
    return [
        GroupRun(
            name=f"{side}{i}",
            path=f"{side}{i}",
            seed=seed,
            complete=True,
            reason="",
            final={"accuracy": value},
            scalars={},
            run_id=f"{side}{i}",
        )
        for i, (value, seed) in enumerate(zip(values, seeds))
    ]


def _repeat(values: list[T], times: int) -> list[T]:
    return [v for v in values for _ in range(times)]


def judge_groups(
    a: list[float],
    b: list[float],
    *,
    paired: bool,
    margin: float,
    alpha: float,
    repeats: int = 1,
) -> str:
    """The verdict ``repro compare --group`` gives runs with these final accuracies (each
    seed run ``repeats`` times; with deterministic training the reruns are copies)."""
    seeds_a = list(range(len(a)))
    seeds_b = seeds_a if paired else [len(a) + i for i in range(len(b))]
    runs_a = _runs("a", _repeat(a, repeats), _repeat(seeds_a, repeats))
    runs_b = _runs("b", _repeat(b, repeats), _repeat(seeds_b, repeats))
    result = compare_groups(
        [("a", runs_a), ("b", runs_b)],
        metrics=["accuracy"],
        margins=[Margin("accuracy", margin, "")],
        alpha=alpha,
    )
    return str(result.verdict)


# -- rows -------------------------------------------------------------------------------------


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
    pipeline: int = 0,
    repeats: int = 1,
    nan: int = 0,
) -> int:
    """How many of ``draws`` draws get ``decision``; ``pipeline`` (or repeats, or a NaN)
    judges through the whole group comparison rather than the statistics alone."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        a, b = draw(rng, n, gap)
        if nan:
            b[-1] = np.nan
        if pipeline or repeats > 1 or nan:
            verdict = judge_groups(
                a.tolist(), b.tolist(), paired=paired, margin=margin, alpha=alpha, repeats=repeats
            )
        else:
            verdict = compare_samples(
                a.tolist(), b.tolist(), alpha=alpha, margin=margin, paired=paired
            ).decision
        hits += verdict == decision
    return hits


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
        f"CI top <= {100 * (alpha + SLACK):g} %",
        high <= alpha + SLACK,
    )


def coverage_row(case: str, covered: int, draws: int) -> Row:
    low, high = clopper_pearson(covered, draws)
    return Row(
        BENCH,
        case,
        draws,
        100 * covered / draws,
        "%",
        f"95 % CI {100 * low:.2f}-{100 * high:.2f}",
        "",
        f"CI bottom >= {100 * COVERAGE_FLOOR:g} %",
        low >= COVERAGE_FLOOR,
    )


def power_row(case: str, hits: int, draws: int, target: float | None = None) -> Row:
    low, high = clopper_pearson(hits, draws)
    met = None if target is None else low <= target + 0.02 and high >= target - 0.02
    return Row(
        BENCH,
        case,
        draws,
        100 * hits / draws,
        "%",
        f"95 % CI {100 * low:.1f}-{100 * high:.1f}",
        "",
        "" if target is None else f"within 2 points of {100 * target:g} %",
        met,
    )


def _coverage(draw: Draw, n: int, gap: float, theta: float, draws: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    covered = 0
    for _ in range(draws):
        a, b = draw(rng, n, gap)
        low, high = superiority(a.tolist(), b.tolist(), 0.05)[1]
        covered += low <= theta <= high
    return covered


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
    alpha, rows, seeds = args.alpha, [], iter(range(1, 1_000_000))

    def errors(
        name: str, draws_of: Callable[[bool], Draw], n: int, margin: float, **how: int
    ) -> None:
        """False DIFFERENT (no gap) and false SAME (a gap of the margin), unpaired and paired."""
        for paired in (False, True):
            kind = "paired" if paired else "unpaired"
            for gap, decision in ((0.0, "DIFFERENT"), (margin, "SAME")):
                hits = rate(
                    draws_of(paired), n, gap, decision=decision, paired=paired, margin=margin,
                    draws=args.draws, alpha=alpha, seed=next(seeds), **how,
                )  # fmt: skip
                rows.append(
                    error_row(f"false {decision} {name} {kind} n={n}", hits, args.draws, alpha)
                )

    for shape, centre in (("normal", 0.9), ("skewed", 0.92), ("skewed B below", 0.92)):
        for n in SIZES:
            errors(shape, partial(_continuous, shape, centre), n, SPREAD)
    for items in ITEMS:
        for n in ITEM_SIZES:
            margin = _item_sd(items, 0.9)
            errors(
                f"items-{items}",
                partial(_items, items, 0.9),
                n,
                margin,
                pipeline=1,
            )
    for n in (2, 3, 5):
        errors("near-constant", partial(_items, 20, 0.99), n, 1 / 20, pipeline=1)
    for repeats in (2, 3):
        errors(
            f"seeds x{repeats}",
            partial(_continuous, "normal", 0.9),
            3,
            SPREAD,
            repeats=repeats,
        )
    normal = _continuous("normal", 0.9, False)
    hits = rate(
        normal, 3, 0.0, decision="DIFFERENT", paired=False, margin=SPREAD, draws=args.draws,
        alpha=alpha, seed=next(seeds), nan=1,
    )  # fmt: skip
    rows.append(error_row("false DIFFERENT one NaN unpaired n=3", hits, args.draws, alpha))
    hits = rate(
        normal, 3, 0.0, decision="SAME", paired=False, margin=10 * SPREAD, draws=args.draws,
        alpha=alpha, seed=next(seeds), nan=1,
    )  # fmt: skip
    rows.append(
        error_row("false SAME one NaN unpaired n=3 (margin 10 sd, no gap)", hits, args.draws, alpha)
    )

    coverage_draws = 2 * args.power_draws
    for n in (3, 5, 8):
        for gap_sd in (0, 1):
            theta = float(norm.cdf(gap_sd / math.sqrt(2)))  # P(B > A), B shifted by gap_sd
            covered = _coverage(normal, n, gap_sd * SPREAD, theta, coverage_draws, next(seeds))
            case = f"P(beats) 95 % interval covers: normal n={n} gap {gap_sd} sd"
            rows.append(coverage_row(case, covered, coverage_draws))
    for n in (3, 5):
        # Two draws of one binomial: P(B > A) + P(B = A) / 2 is 1/2 by symmetry.
        covered = _coverage(_items(20, 0.9, False), n, 0.0, 0.5, coverage_draws, next(seeds))
        case = f"P(beats) 95 % interval covers: items-20 n={n} gap 0"
        rows.append(coverage_row(case, covered, coverage_draws))

    for n, paired in ((2, False), (3, False), (5, False), (8, False), (3, True), (5, True)):
        # The paired draw's differences have one run's spread (half the variance is the seed's).
        gap = welch_detectable(SPREAD, n, n, paired, alpha)
        hits = rate(
            _continuous("normal", 0.9, paired), n, gap, decision="DIFFERENT", paired=paired,
            margin=SPREAD, draws=args.power_draws, alpha=alpha, seed=next(seeds),
        )  # fmt: skip
        kind = "paired" if paired else "unpaired"
        case = f"power at the stated detectable difference, normal {kind} n={n}"
        rows.append(power_row(case, hits, args.power_draws, POWER))

    for name, draw, margin, pipeline in (
        ("normal", normal, SPREAD, 0),
        ("items-20", _items(20, 0.9, False), _item_sd(20, 0.9), 1),
    ):
        for n in (3, 5, 8, 20):
            for gap_sd, decision in ((1, "DIFFERENT"), (2, "DIFFERENT"), (0, "SAME")):
                hits = rate(
                    draw, n, gap_sd * margin, decision=decision, paired=False, margin=margin,
                    draws=args.power_draws, alpha=alpha, seed=next(seeds), pipeline=pipeline,
                )  # fmt: skip
                what = f"gap {gap_sd} sd" + (", margin 1 sd" if decision == "SAME" else "")
                rows.append(
                    power_row(f"power {decision} {name} n={n} {what}", hits, args.power_draws)
                )
    print_rows(f"compare --group, simulated (alpha {alpha})", rows)
    print(f"\n{time.perf_counter() - start:.0f} s")
    write_rows(args.json, rows)
    return 0 if args.smoke or all(r.met is not False for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
