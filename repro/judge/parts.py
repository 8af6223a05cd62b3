"""The typed parts of a comparison: each run as described in the report, a run that failed,
and repeats that differ. ``Comparison`` holds them; verdict.json holds their dicts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from repro.judge.divergence import Divergence
from repro.strict_json import build


@dataclass(frozen=True)
class RunDescription:
    """One run as the report names it: where it is, what it was and how it ended."""

    name: str | None
    # Any other fact may be unrecorded (logs of another tool): None.
    path: str | None = None
    profile: str | None = None
    seed: int | None = None
    status: str | None = None
    workload_hash: str | None = None
    command: str | None = None
    reference: bool | None = None
    final: dict[str, Any] | None = None
    # The warnings and failures of the run's preflight (the machine's health when it began).
    preflight: list[dict[str, Any]] = field(default_factory=list)
    # Logs read without a manifest beside them (another tool's) have no environment facts;
    # None where that question does not arise (reference runs always record one).
    environment: bool | None = None
    # Facts a stored description left out (a shared copy without its folders): they stay out.
    omitted: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """verdict.json's form: ``preflight`` only when there are findings, ``environment``
        only where it was asked, nothing the description was read without."""
        data = asdict(self)
        absent = {"omitted", *self.omitted}
        if not self.preflight:
            absent.add("preflight")
        if self.environment is None:
            absent.add("environment")
        return {k: v for k, v in data.items() if k not in absent}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunDescription:
        omitted = tuple(f.name for f in fields(cls) if f.name != "omitted" and f.name not in data)
        return cls(**data, omitted=omitted)


@dataclass(frozen=True)
class Failure:
    """A run that did not complete, or whose result is no number."""

    run: str | None
    status: str | None
    kind: str
    step: int | None
    rank: int | None
    message: str

    def describe(self) -> str:
        """``run-b failed: NaN loss at step 5``: the summary of a failed comparison."""
        return f"{self.run} {str(self.status).lower()}: {self.message}"


@dataclass(frozen=True)
class Nondeterminism:
    """Repeats on one machine that differ: how many ran, which one, and where it parted."""

    repeats: int
    differing: str | None
    first_difference: Divergence | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Nondeterminism:
        where = data.get("first_difference")
        return cls(data["repeats"], data["differing"], build(Divergence, where) if where else None)

    def where(self) -> str:
        """``step 7: loss 2.31 vs 2.30``, or ``step None: None`` when no step was located."""
        first = self.first_difference
        return f"step {first.step}: {first.detail}" if first else "step None: None"
