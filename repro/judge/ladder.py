"""The one verdict ladder: what the judge found about a pair -> its verdict, summary and notes.

Reference runs (``comparison.compare``) and tracked runs (``tracked.compare_tracked``)
measure different things, but both hand their findings to ``decide``. Worst first:

1. a run failed (crash, hang, NaN/Inf, a final that is no number): FAILED
2. repeats on this machine differ: NONDETERMINISTIC
3. another training (a semantic setting or a tracked config differs), or an exact
   sequence or a check beside the pair differs: DRIFT, whatever the numbers do
4. every record bit-equal: IDENTICAL
5. no band applied: NO_BASELINE
6. outside a band, or not bit-identical where bit-identity is expected: DRIFT
7. else EQUIVALENT

When neither run is the bands' primary, both were judged and the pair takes the worse.
Seed runs (``verify --seed-runs``) judged against the stored seeds fold in last: the
verdict is the worse of the primary run's and theirs, and a note keeps the primary's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repro.judge.bands import BandCheck, SeedCheck
from repro.judge.causes import Cause
from repro.judge.divergence import Divergence
from repro.judge.exact import ExactCheck
from repro.judge.parts import Failure, Nondeterminism
from repro.judge.seed_runs import SeedRuns
from repro.judge.summary import Wording, summary, unexplained
from repro.manifest.diff import Difference
from repro.verdict import Verdict


@dataclass(frozen=True)
class Findings:
    """Everything measured about a pair before any verdict: the ladder's one input."""

    wording: Wording
    numerics: BandCheck
    seeds: SeedCheck
    has_reference: bool = True
    failure: Failure | None = None
    nondeterminism: Nondeterminism | None = None
    identical: bool = False
    divergence: Divergence | None = None
    # Why the runs are other trainings or workloads, in words; ``other_training`` when a
    # semantic setting (a tracked run's config) differs.
    mismatches: list[str] = field(default_factory=list)
    other_training: bool = False
    exact: list[ExactCheck] = field(default_factory=list)
    bitwise_expected: bool = False
    differences: list[Difference] = field(default_factory=list)
    reference_verdict: Verdict | None = None  # neither run the bands' primary: its own verdict
    baseline: str | None = None
    notes: list[str] = field(default_factory=list)  # said before the verdict's own notes
    # Causes known before any ranking, listed first: another training, then a resume's
    # findings (``judge.resumes``), in that order.
    training: Cause | None = None
    leading_causes: list[Cause] = field(default_factory=list)
    seed_runs: SeedRuns | None = None  # verify --seed-runs: N runs here against stored seeds

    @property
    def exact_failed(self) -> list[ExactCheck]:
        return [e for e in self.exact if not e.ok]


@dataclass(frozen=True)
class Ruling:
    verdict: Verdict
    summary: str
    notes: list[str]


def verdict_of(f: Findings) -> Verdict:
    """Steps 1-7 of the ladder, for one run."""
    if f.failure:
        return Verdict.FAILED
    if f.nondeterminism:
        return Verdict.NONDETERMINISTIC
    if f.other_training or f.exact_failed:
        return Verdict.DRIFT
    if f.identical:
        return Verdict.IDENTICAL
    if not f.numerics.applied and not f.seeds.applied:
        return Verdict.NO_BASELINE
    if not (f.numerics.ok and f.seeds.ok) or f.bitwise_expected:
        return Verdict.DRIFT
    return Verdict.EQUIVALENT


def decide(f: Findings) -> Ruling:
    """The verdict, its one-line summary and the notes the report opens with."""
    ruling = _pair_ruling(f)
    runs = f.seed_runs
    if runs is None or runs.verdict is None:
        return ruling
    worst = Verdict.worst([ruling.verdict, runs.verdict])
    said = f"{len(runs.seeds)} seed runs here against the baseline's stored seeds: {runs.reason}"
    note = f"the primary run alone: {ruling.verdict}; the seed runs: {runs.verdict}"
    return Ruling(worst, f"{ruling.summary}; {said}", [*ruling.notes, note])


def _pair_ruling(f: Findings) -> Ruling:
    """Steps 1-7 and the pair's rule: the ruling on the primary run (and its reference)."""
    notes = list(f.notes)
    verdict = verdict_of(f)
    if f.reference_verdict is not None and verdict in (Verdict.EQUIVALENT, Verdict.DRIFT):
        verdict = _pair_verdict(verdict, f.reference_verdict, f.baseline, notes)
    unexpected = verdict not in (Verdict.IDENTICAL, Verdict.FAILED)
    if f.bitwise_expected and unexpected and not f.nondeterminism:
        notes.append(unexplained(f.differences))
    line = summary(verdict, f.wording, f.divergence, f.numerics, f.seeds, f.failure,
                   f.nondeterminism, f.mismatches + [e.detail for e in f.exact_failed])  # fmt: skip
    if not f.has_reference and verdict == Verdict.NO_BASELINE:
        # The first note (how no baseline was found) is the summary.
        return Ruling(verdict, *((notes[0], notes[1:]) if notes else (_NO_BASELINE, [])))
    if verdict == Verdict.DRIFT and not f.other_training and (f.identical or not f.has_reference):
        # Only a check measured beside the pair failed (a resume): "records differ" would lie.
        failed = "; ".join(e.detail for e in f.exact_failed)
        itself = "bit-identical to the reference" if f.has_reference else "unjudged (no baseline)"
        return Ruling(verdict, f"{failed}; the uninterrupted run itself is {itself}", notes)
    if f.bitwise_expected and verdict == Verdict.DRIFT and f.numerics.ok and f.seeds.ok:
        line = f"not bit-identical where bit-identity is expected; {line}"
    return Ruling(verdict, line, notes)


_NO_BASELINE = "no baseline to compare against"


def _pair_verdict(
    candidate: Verdict, reference: Verdict, baseline: str | None, notes: list[str]
) -> Verdict:
    """Neither run is the bands' primary: both were judged, the pair takes the worse."""
    verdict = Verdict.worst([candidate, reference])
    notes.append(
        f"Neither run is the primary run of baseline {baseline or '?'}: each was "
        f"judged against its bands at half its alpha, so the pair is one test at alpha "
        f"(candidate {candidate}, reference {reference}), and the pair takes the worse, {verdict}."
    )
    return verdict
