"""A numerics band from recorded runs: every member checked against the others, flagged
members replaced, and the band document that ``band.json`` holds.

The check is Rosner-style leave-one-out (``leave_one_out``); ``checked_members`` leaves
out what it flags and asks for replacements, or refuses the band.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS
from repro.baselines.baseline import BAND_SCHEMA_VERSION
from repro.errors import RunFailed
from repro.judge.bands import numerics_check
from repro.judge.tails import tail_diagnostics
from repro.runs.runview import RunView, series


class BandRejected(RunFailed):
    """The recorded band fails its own leave-one-out check."""


def final_metrics(view: RunView) -> dict[str, Any]:
    final = view.final or {}
    return {"eval_loss": final["eval_loss"], "eval_accuracy": final["eval_accuracy"]}


def _exceedance(check: Any) -> float:
    """How far a member lies beyond its band, in log units (positive: outside)."""

    def log(x: float) -> float:
        return math.log(max(x, 1e-300))

    scores = [log(w.value) - log(w.threshold) for w in check.windows]
    scores += [
        log(abs(f.value - f.reference)) - log(f.high - f.reference)
        for f in check.finals
        if f.tested
    ]
    return max(scores, default=-math.inf)


def leave_one_out(
    primary: RunView,
    members: list[RunView],
    *,
    alpha: float,
    windows: int,
    resolution: dict[str, float],
) -> tuple[list[int], int, list[str]]:
    """Judge each member against the others; returns (flagged member indices, allowed, messages).

    Outliers mask each other in a plain leave-one-out pass (two broken members
    widen each other's band), so it proceeds like Rosner's generalised ESD test:
    repeatedly set aside the member that lies furthest outside the band of the
    remaining others; the flagged ones are the first r set aside, for the largest
    r whose r-th one failed its check.
    """
    from scipy import stats

    data = [{"series": series(m.steps), "final": final_metrics(m)} for m in members]
    reference = series(primary.steps)
    # More flagged members than chance (the 99th percentile of Binomial(K, alpha)) or one
    # broken run explains refuses the band: one run a transient glitch spoiled is replaced.
    allowed = max(1, int(stats.binom.ppf(0.99, len(members), alpha)))
    remaining = list(range(len(members)))
    verdicts: list[tuple[int, bool, Any]] = []
    # Whether the failures exceed `allowed` is all that matters beyond them: set aside at most allowed + 1.
    while len(remaining) > 3 and len(verdicts) <= allowed:
        checks = {}
        for i in remaining:
            others = [data[j] for j in remaining if j != i]
            checks[i] = numerics_check(
                data[i]["series"],
                members[i].final,
                reference,
                others,
                alpha=alpha,
                windows=windows,
                resolution=resolution,
            )
        worst = max(remaining, key=lambda i: _exceedance(checks[i]))
        verdicts.append((worst, not checks[worst].ok, checks[worst]))
        remaining.remove(worst)
    failing = max((r + 1 for r, (_, failed, _) in enumerate(verdicts) if failed), default=0)
    messages = [
        f"member {i} ({members[i].name}) leaves the band of the others from step {check.first_step_outside}"
        for i, _, check in verdicts[:failing]
    ]
    return [i for i, _, _ in verdicts[:failing]], allowed, messages


# Rounds of replacing flagged members before a recording is refused: a replacement
# that is flagged again means the machine itself is not behaving.
REPLACEMENT_ROUNDS = 2
Replacer = Callable[[list[int]], list[RunView]]


def checked_members(
    primary: RunView,
    members: list[RunView],
    *,
    first_spare: int,
    replace: Replacer | None,
    resolution: dict[str, float],
) -> tuple[list[RunView], dict[str, Any]]:
    """Leave every flagged member out and record a replacement, or refuse the band.

    A flagged member is never kept: one broken member widens the loss and
    gradient-norm bounds by orders of magnitude. The allowed count (the 99th
    percentile of Binomial(K, alpha), at least one) decides only whether the recording as a
    whole is refused: more flagged members than chance explains.
    """
    replaced: list[str] = []
    reasons: list[str] = []
    spare = first_spare
    for round_ in range(REPLACEMENT_ROUNDS + 1):
        flagged, allowed, messages = leave_one_out(
            primary, members, alpha=DEFAULT_ALPHA, windows=DEFAULT_WINDOWS, resolution=resolution
        )
        if not flagged:
            return members, {"replaced": replaced, "allowed": allowed, "reasons": reasons}
        if len(flagged) > allowed or round_ == REPLACEMENT_ROUNDS or replace is None:
            why = (
                f"{len(flagged)} of {len(members)} members fail the leave-one-out check but at most "
                f"{allowed} may at alpha {DEFAULT_ALPHA}"
                if len(flagged) > allowed
                else f"{len(flagged)} member(s) still fail the leave-one-out check after "
                f"{round_} round(s) of replacement"
                if replace is not None
                else f"{len(flagged)} member(s) fail the leave-one-out check and none can be replaced"
            )
            raise BandRejected(
                f"the numerics band is refused: {why} ({'; '.join(messages[:3])}); nothing was written"
            )
        indices = list(range(spare, spare + len(flagged)))
        spare += len(flagged)
        fresh = replace(indices)
        bad = [v for v in fresh if v.status.get("status") != "COMPLETE"]
        if bad:
            raise RunFailed(
                f"a replacement band member failed: {bad[0].name}: {bad[0].status.get('reason')}"
            )
        replaced += [members[i].name for i in flagged]
        reasons += messages
        members = [m for i, m in enumerate(members) if i not in flagged] + fresh
    raise AssertionError("unreachable")  # the loop returns or raises


def checked_tails(
    primary: RunView,
    members: list[RunView],
    *,
    first_spare: int,
    replace: Replacer | None,
    replaced: list[str],
) -> tuple[list[RunView], dict[str, Any]]:
    """The band's tail diagnostics (``repro.judge.tails``): a band past the first look's
    limits gets as many members again and a second look, and is refused past its limits
    (or at once, with no way to add members): a normal bound on a heavy tail would not
    hold its false-alarm rate."""

    def diagnose(views: list[RunView], second_look: bool) -> dict[str, Any]:
        data = [{"series": series(m.steps), "final": final_metrics(m)} for m in views]
        return tail_diagnostics(
            series(primary.steps),
            data,
            alpha=DEFAULT_ALPHA,
            windows=DEFAULT_WINDOWS,
            second_look=second_look,
        )

    tails = diagnose(members, second_look=False)
    added = 0
    if tails["pooled"]["heavy"] and replace is not None:
        added = len(members)
        fresh = replace(list(range(first_spare, first_spare + added)))
        bad = [v for v in fresh if v.status.get("status") != "COMPLETE"]
        if bad:
            raise RunFailed(
                f"an added band member failed: {bad[0].name}: {bad[0].status.get('reason')}"
            )
        members = members + fresh
        # The first look's figures stay with the band: they are why it has more members.
        tails = {**diagnose(members, second_look=True), "first_look": tails["pooled"]}
    pooled = tails["pooled"]
    if pooled["heavy"]:
        after = f", after adding {added} members" if added else ", and none could be added"
        raise BandRejected(
            f"the numerics band is refused: its {len(members)} members' log deviations are "
            f"heavier-tailed than normal (pooled skewness {pooled['skew']:+.2f}, limit "
            f"{pooled['skew_limit']:.2f}; excess kurtosis {pooled['excess_kurtosis']:+.2f}, limit "
            f"{pooled['kurtosis_limit']:.2f}{after}), "
            "so its bound would not hold its false-alarm rate; find what makes some members "
            "move far more than others (loss-scale skips, nondeterministic kernels); nothing was written"
        )
    return members, {**tails, "added_for_tails": added, "replaced": replaced}


def final_resolution(primary: RunView) -> dict[str, float]:
    """The smallest meaningful step of each final metric: one token of accuracy.
    Prediction intervals never get narrower than this."""
    settings = primary.config["settings"]
    tokens = settings["data"]["eval_samples"] * settings["model"]["seq_len"]
    return {"eval_accuracy": 1.0 / tokens, "eval_loss": 0.0}


def build_band(primary: RunView, members: list[RunView], seeds: list[RunView]) -> dict[str, Any]:
    return {
        "schema_version": BAND_SCHEMA_VERSION,
        "members": [
            {"run": m.name, "series": series(m.steps), "final": final_metrics(m)} for m in members
        ],
        "seeds": [{"seed": s.seed, **final_metrics(s)} for s in seeds],
        "resolution": final_resolution(primary),
    }
