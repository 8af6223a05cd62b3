"""The search for the smallest set of knobs that reproduces the other run bit for bit.

Bit-identity appears only when *every* cause is matched, so one knob at a time cannot
confirm a pair. First every knob at once: if that does not reproduce the other run,
nothing this machine can change explains it. Otherwise leave each knob out in turn and
keep it out when the record still matches (assuming only that matching more causes
never moves the records further apart), then rerun the set that is left once more to
confirm it. A pure function of ``reproduces``: the runs are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from repro.errors import RunInterrupted


@dataclass
class Trial:
    knobs: tuple[str, ...]
    identical: bool
    detail: str = ""  # where the records parted, or what went wrong


@dataclass
class SearchResult:
    outcome: str  # "confirmed", "not explained", "out of runs", "interrupted"
    knobs: tuple[str, ...] = ()  # the smallest set found (confirmed only if outcome says so)
    trials: list[Trial] = field(default_factory=list)


def smallest_cause(
    knobs: Sequence[str],
    reproduces: Callable[[tuple[str, ...]], tuple[bool, str]],
    max_runs: int,
) -> SearchResult:
    """``reproduces(subset)`` runs the reference with those knobs applied and says whether
    its record is bit-identical to the other run's (and, if not, where they parted)."""
    result = SearchResult("out of runs")

    def trial(subset: tuple[str, ...]) -> bool | None:
        if len(result.trials) >= max_runs:
            return None
        identical, detail = reproduces(subset)
        result.trials.append(Trial(subset, identical, detail))
        return identical

    try:
        everything = tuple(knobs)
        first = trial(everything)
        if first is None:
            return result
        if not first:
            result.outcome = "not explained"
            return result
        result.knobs = everything
        for knob in everything:
            rest = tuple(k for k in result.knobs if k != knob)
            if not rest:  # the run without any knob is this machine's own: known to differ
                continue
            kept = trial(rest)
            if kept is None:
                return result
            if kept:
                result.knobs = rest
        confirmed = trial(result.knobs)
        if confirmed is None:
            return result
        result.outcome = "confirmed" if confirmed else "not reproducible"
    except (KeyboardInterrupt, RunInterrupted):  # Ctrl-C: keep what was found
        result.outcome = "interrupted"
    return result
