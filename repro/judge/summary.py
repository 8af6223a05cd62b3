"""A comparison in words: its one-line summary and the note for a difference nothing recorded
explains. The judge decides; this module only says it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repro.judge.bands import BandCheck, SeedCheck
from repro.judge.divergence import Divergence
from repro.judge.parts import Failure, Nondeterminism
from repro.verdict import Verdict


@dataclass(frozen=True)
class Wording:
    """What a kind of run's summary says where the kinds differ."""

    identical: str  # every record bit-equal
    no_band: str  # nothing to judge noise by
    unlocated: str  # the runs differ, but no step says where


REFERENCE_RUNS = Wording(
    "bit-identical: every step's record and the checkpoint identity match",
    "no band to judge against",
    "records differ",
)
TRACKED_RUNS = Wording(
    "bit-identical: every logged value, the final metrics and the weights match",
    "no band to judge noise by",
    "",
)


def unexplained(differences: list[Any]) -> str:
    """Which recorded facts were checked and could not explain a difference."""
    outside = [d.key for d in differences if not d.env_key]
    recorded = (
        f"the recorded differences outside the key ({', '.join(outside[:5])}"
        f"{' and more' if len(outside) > 5 else ''}) are not expected to move the numbers"
        if outside
        else "no other recorded fact differs"
    )
    return (
        "The environment key and every setting match the reference, so bit-identity is "
        f"expected, yet the runs differ; {recorded}. On a deterministic setup that is itself "
        "a finding: a nondeterministic kernel, a setting repro does not record, or faulty hardware."
    )


def summary(
    verdict: Verdict,
    wording: Wording,
    divergence: Divergence | None,
    numerics: BandCheck,
    seeds: SeedCheck,
    failure: Failure | None,
    nondeterminism: Nondeterminism | None,
    mismatches: list[str],
) -> str:
    if verdict == Verdict.FAILED and failure:
        return failure.describe()
    if verdict == Verdict.NONDETERMINISTIC and nondeterminism:
        return f"repeated runs on this machine differ (first at {nondeterminism.where()})"
    if verdict == Verdict.IDENTICAL:
        return wording.identical
    first = (
        f"first differs at step {divergence.step}: {divergence.detail}"
        if divergence
        else wording.unlocated
    )
    if mismatches and verdict in (Verdict.DRIFT, Verdict.NO_BASELINE):
        return f"{mismatches[0]}; {first}"
    if verdict == Verdict.NO_BASELINE:
        return f"{wording.no_band}; {first}"
    if verdict == Verdict.DRIFT:
        parts = []
        if numerics.applied and not numerics.ok:
            parts.append(f"outside the numerics band from step {numerics.first_step_outside}")
        for m in seeds.metrics:
            if not m.ok:
                parts.append(
                    f"{m.metric} {m.value:.4f} outside the seed interval [{m.low:.4f}, {m.high:.4f}]"
                )
        return "; ".join([*parts, first])
    applied = [n for n, c in (("numerics band", numerics), ("seed interval", seeds)) if c.applied]
    return f"not bit-identical but inside the {' and the '.join(applied)}; {first}"
