"""The head of a report on several comparisons (``repro compare A B C``): the worst verdict
and one row per candidate, shared by the three renderers."""

from __future__ import annotations

from collections.abc import Sequence

from repro.report.blocks import Report, Table
from repro.verdict import Verdict


def worst_verdict(reports: Sequence[Report]) -> Verdict:
    """The headline of a multi-run report: the same verdict the exit code comes from."""
    return Verdict.worst([r.verdict for r in reports])


def overview(reports: Sequence[Report]) -> tuple[str, Table]:
    """The headline and one row per candidate, for ``repro compare A B C``."""
    if not reports:
        raise ValueError("there is no comparison to render; pass at least one")
    counts = {v: sum(r.verdict == v for r in reports) for v in Verdict}
    tally = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    headline = f"{len(reports)} runs compared with {reports[0].reference}: {tally}"
    table = Table(
        columns=("candidate", "verdict", "summary"),
        rows=tuple((r.candidate, r.verdict, r.summary) for r in reports),
        tones=tuple(r.tone for r in reports),
        numeric=(False, False, False),
    )
    return headline, table
