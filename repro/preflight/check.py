"""One preflight check's finding, and the verdict over all of them.

A check reports ok, warn, fail or unavailable (with the reason), the value it read, what
was expected and where that expectation comes from. A ``fail`` makes the machine unfit:
``repro verify`` stops before training with UNFIT. A ``warn`` never changes the exit code
unless ``--strict``; ``unavailable`` never does (a probe the driver does not support costs
one field, not the verdict).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "unavailable"]
STATUSES: tuple[Status, ...] = ("fail", "warn", "unavailable", "ok")  # worst first


@dataclass(frozen=True)
class Check:
    name: str  # e.g. "gpu0.row_remap", "host.cpus", "collective.allreduce.bytes"
    status: Status
    value: Any
    expected: str
    source: str  # where the expectation comes from
    reason: str = ""  # what is wrong, or why it could not be read

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Check:
        return cls(**data)


@dataclass(frozen=True)
class Preflight:
    checks: tuple[Check, ...]
    seconds: float

    def unfit(self, strict: bool = False) -> list[Check]:
        """The checks that make this machine unfit to be judged (with ``strict``, warnings too)."""
        bad = ("fail", "warn") if strict else ("fail",)
        return [c for c in self.checks if c.status in bad]

    def counts(self) -> dict[str, int]:
        return {s: sum(c.status == s for c in self.checks) for s in STATUSES}

    def summary(self, strict: bool = False) -> str:
        counts = ", ".join(f"{n} {s}" for s, n in self.counts().items() if n)
        unfit = self.unfit(strict)
        if unfit:
            names = ", ".join(c.name for c in unfit[:4]) + (" ..." if len(unfit) > 4 else "")
            return f"unfit: {names} ({counts}; {self.seconds:.1f} s)"
        return f"fit ({counts}; {self.seconds:.1f} s)"

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preflight:
        return cls(
            tuple(Check.from_dict(c) for c in data.get("checks", [])), data.get("seconds", 0.0)
        )
