"""The head of a report on several comparisons (``repro compare A B C``): the worst verdict
and one row per candidate, shared by the three renderers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from repro.report.blocks import VERDICT_TONES, Table
from repro.verdict import Verdict

if TYPE_CHECKING:
    from repro.judge.curves import Judged


def worst_verdict(judged: list[Judged]) -> Verdict:
    """The headline of a multi-run report: the same verdict the exit code comes from."""
    return Verdict.worst([j.comparison.verdict for j in judged])


def overview(judged: list[Judged]) -> tuple[str, Table]:
    """The headline and one row per candidate, for ``repro compare A B C``."""
    comparisons = [j.comparison for j in judged]
    if not comparisons:
        raise ValueError("there is no comparison to render; pass at least one")
    first = comparisons[0].reference
    reference = first.name if first else None
    counts = {v: sum(c.verdict == v for c in comparisons) for v in Verdict}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    headline = f"{len(comparisons)} runs compared with {reference}: {tally}"
    table = Table(
        columns=("candidate", "verdict", "summary"),
        rows=tuple((str(c.candidate.name), c.verdict, c.summary) for c in comparisons),
        tones=tuple(VERDICT_TONES[c.verdict] for c in comparisons),
        numeric=(False, False, False),
    )
    return headline, table
