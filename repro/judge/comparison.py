"""The one comparison core: two loaded runs (and optionally a baseline's bands) -> a ``Comparison``.

``repro verify``, ``repro compare`` and ``repro selftest`` all call ``compare``; every
report renders the ``Comparison`` it returns, beside the curves ``repro.judge.curves``
reads from the same runs (the judge keeps what it decided, not what is drawn). It takes
loaded runs (``RunView``), reads no file and never imports torch. The pieces live beside
it: ``divergence`` (where two runs part), ``bands`` (the statistics), ``causes`` (why,
ranked). What was measured becomes ``Findings``; the one verdict ladder (``ladder``)
decides from them, for tracked runs (``tracked``) too, and ``judge`` makes the
``Comparison``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from repro.judge.bands import (
    BandCheck,
    Bands,
    SeedCheck,
    judge_by_bands,
    same_as_primary,
)
from repro.judge.causes import Cause, rank_causes, training_cause
from repro.judge.divergence import Divergence, first_difference
from repro.judge.exact import ExactCheck, exact_checks
from repro.judge.ladder import Findings, decide
from repro.judge.parts import Failure, Nondeterminism, RunDescription
from repro.judge.resumes import resume_causes, resume_check
from repro.judge.seed_runs import SeedRuns
from repro.judge.summary import REFERENCE_RUNS
from repro.manifest.diff import Difference, diff_manifests
from repro.manifest.keys import environment_key
from repro.profile import differing_fields, flatten_settings
from repro.runs.runview import RunView, records_identical
from repro.strict_json import build
from repro.verdict import Verdict


@dataclass(frozen=True)
class Comparison:
    verdict: Verdict
    summary: str
    candidate: RunDescription
    reference: RunDescription | None  # None: no baseline to compare against
    baseline: str | None
    identical: bool
    first_difference: Divergence | None
    numerics: BandCheck
    seed: SeedCheck
    failure: Failure | None
    nondeterminism: Nondeterminism | None
    env_differences: list[Difference]
    env_key_match: bool
    causes: list[Cause]
    mismatches: list[str]
    notes: list[str]
    # Setting names by field class where the two runs' settings differ (see repro.profile).
    setting_differences: dict[str, list[str]] = field(default_factory=dict)
    bitwise_expected: bool = False
    # When neither run is the baseline's primary, the reference is judged against it too.
    reference_verdict: Verdict | None = None
    exact: list[ExactCheck] = field(default_factory=list)
    next_command: str | None = None  # what to run next, e.g. the command that records a baseline
    seed_runs: SeedRuns | None = None  # verify --seed-runs: N runs here against the stored seeds

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.seed_runs is None:  # the section appears only where seed runs were asked for
            del data["seed_runs"]
        data["candidate"] = self.candidate.to_dict()
        data["reference"] = self.reference.to_dict() if self.reference else {}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Comparison:
        """The comparison ``to_dict`` (or verdict.json) holds, with every part typed again."""
        divergence = data.get("first_difference")
        reference_verdict = data.get("reference_verdict")
        failure, nondeterminism = data.get("failure"), data.get("nondeterminism")
        return cls(
            **{
                **data,
                "verdict": Verdict(data["verdict"]),
                "candidate": RunDescription.from_dict(data["candidate"]),
                "reference": RunDescription.from_dict(data["reference"])
                if data.get("reference")
                else None,
                "failure": build(Failure, failure) if failure else None,
                "nondeterminism": Nondeterminism.from_dict(nondeterminism)
                if nondeterminism
                else None,
                "first_difference": build(Divergence, divergence) if divergence else None,
                "numerics": BandCheck.from_dict(data["numerics"]),
                "seed": SeedCheck.from_dict(data["seed"]),
                "causes": [build(Cause, c) for c in data.get("causes", [])],
                "exact": [build(ExactCheck, e) for e in data.get("exact", [])],
                "env_differences": [Difference(**d) for d in data.get("env_differences", [])],
                "reference_verdict": Verdict(reference_verdict) if reference_verdict else None,
                "seed_runs": SeedRuns.from_dict(data["seed_runs"])
                if data.get("seed_runs")
                else None,
            }
        )


def judge(
    findings: Findings,
    candidate: RunDescription,
    reference: RunDescription | None,
    views: tuple[RunView, RunView],
    *,
    env_key_match: bool,
    setting_differences: dict[str, list[str]],
    next_command: str | None = None,
) -> Comparison:
    """The one way a ``Comparison`` is made, for reference and tracked runs alike: the
    ladder decides verdict, summary and notes; the causes known before ranking come first
    (another training, then a resume's), then the rules' ranking of ``views``."""
    ruling = decide(findings)
    known = [findings.training] if findings.training else []
    ranked = rank_causes(ruling.verdict, findings.divergence, findings.differences, *views)
    return Comparison(
        verdict=ruling.verdict,
        summary=ruling.summary,
        candidate=candidate,
        reference=reference,
        baseline=findings.baseline if reference else None,
        identical=findings.identical,
        first_difference=findings.divergence,
        numerics=findings.numerics,
        seed=findings.seeds,
        failure=findings.failure,
        nondeterminism=findings.nondeterminism,
        env_differences=findings.differences,
        env_key_match=env_key_match,
        causes=[*known, *findings.leading_causes, *ranked],
        mismatches=findings.mismatches,
        notes=ruling.notes,
        setting_differences=setting_differences,
        bitwise_expected=findings.bitwise_expected,
        reference_verdict=findings.reference_verdict,
        exact=findings.exact,
        next_command=next_command,
        seed_runs=findings.seed_runs,
    )


def describe(view: RunView) -> RunDescription:
    """A reference run as the report names it, with its preflight findings where checked."""
    return RunDescription(
        name=view.name,
        path=view.path,
        profile=view.config.get("profile"),
        seed=view.config.get("settings", {}).get("seed"),
        status=view.status.get("status"),
        workload_hash=view.config.get("workload_hash"),
        command=view.config.get("command"),
        reference=view.config.get("reference"),
        final=view.final,
        preflight=preflight_findings(view.manifest),
    )


def preflight_findings(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings and failures of a run's preflight; never a difference to compare."""
    checks = (manifest.get("preflight") or {}).get("checks", [])
    return [c for c in checks if c.get("status") in ("fail", "warn")]


def failure_of(view: RunView) -> Failure | None:
    if view.status.get("status") == "COMPLETE":
        return None
    record_failure = (view.record or {}).get("failure") or {}
    return Failure(
        run=view.name,
        status=view.status.get("status"),
        kind=view.status.get("kind", record_failure.get("kind", "crash")),
        step=view.status.get("step", record_failure.get("step")),
        rank=view.status.get("rank", record_failure.get("rank")),
        message=view.status.get("reason", "the run did not complete"),
    )


# Harness settings that may differ where bit-identity is still expected: they decide what
# is observed and when a run is stopped, never the arithmetic. Faults and band members
# (harness too) perturb the run on purpose.
_QUIET_HARNESS = frozenset(
    {
        "name",
        "description",
        "trace_steps",
        "check_every",
        "converged_accuracy",
        "collective_timeout_s",
    }
)


def _perturbed(view: RunView) -> bool:
    """A band member or a run with a fault: never expected to match another run bit for bit."""
    return view.settings.get("band_member") is not None or bool(view.config.get("faults"))


def _bitwise_expected(
    candidate: RunView, reference: RunView, classes: dict[str, list[str]], env_key_match: bool
) -> bool:
    """Same environment key, same settings (up to quiet harness fields), no perturbation."""
    if not env_key_match or _perturbed(candidate) or _perturbed(reference):
        return False
    loud = [n for cls, names in classes.items() for n in names if n not in _QUIET_HARNESS]
    return not loud


def _not_applied(reason: str) -> tuple[BandCheck, SeedCheck]:
    return BandCheck(False, reason), SeedCheck(False, reason)


def _mismatches(candidate: RunView, reference: RunView, classes: dict[str, list[str]]) -> list[str]:
    """What makes the two runs different trainings or different workloads, in words."""
    out = []
    semantic = classes.get("semantic", [])
    if semantic:
        out.append(
            f"the training itself differs ({', '.join(semantic)}): another training is never "
            "equivalent, whatever the numbers do"
        )
    precision = classes.get("precision", [])
    if precision:
        out.append(
            f"the precision differs ({', '.join(precision)}): a run is judged only against a "
            "baseline recorded at its own precision"
        )
    va, vb = candidate.config.get("workload_hash"), reference.config.get("workload_hash")
    if va != vb and not semantic and not precision:
        out.append(
            f"the workload hash differs ({va} vs {vb}): the runs come from different reference "
            "code, so no band applies"
        )
    return out


@dataclass
class _Pair:
    """What two runs are to each other before any band judges them."""

    classes: dict[str, list[str]] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    identical: bool = False
    divergence: Divergence | None = None
    differences: list[Difference] = field(default_factory=list)
    env_key_match: bool = False
    bitwise_expected: bool = False
    exact: list[ExactCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def other_training(self) -> bool:
        return bool(self.classes.get("semantic"))


def _pair(candidate: RunView, reference: RunView, failed: bool) -> _Pair:
    classes = differing_fields(candidate.settings, reference.settings)
    identical = records_identical(candidate.record, reference.record)
    env_key_match = environment_key(candidate.manifest) == environment_key(reference.manifest)
    pair = _Pair(
        classes=classes,
        mismatches=_mismatches(candidate, reference, classes),
        identical=identical,
        divergence=None if identical else first_difference(candidate, reference),
        differences=diff_manifests(candidate.manifest, reference.manifest),
        env_key_match=env_key_match,
        bitwise_expected=_bitwise_expected(candidate, reference, classes, env_key_match),
    )
    if not (failed or pair.other_training or identical) and candidate.steps and reference.steps:
        pair.exact, pair.notes = exact_checks(candidate, reference)
    return pair


def _band_checks(
    candidate: RunView, reference: RunView, pair: _Pair, bands: Bands | None, failed: bool
) -> tuple[BandCheck, SeedCheck, Verdict | None]:
    """The candidate's band checks, and the reference's verdict when it must be judged too."""
    if failed or not candidate.steps:
        return (*_not_applied("the run did not complete"), None)
    if pair.other_training:
        return (*_not_applied("another training: bands judge only runs of one training"), None)
    if pair.mismatches:
        return (*_not_applied(pair.mismatches[0]), None)
    if bands is None:
        return (*_not_applied("no baseline bands are available"), None)
    if candidate.config.get("workload_hash") != bands.workload_hash:
        return (
            *_not_applied(
                f"baseline {bands.name} was recorded for workload {bands.workload_hash}, the run "
                f"is workload {candidate.config.get('workload_hash')}: no band applies"
            ),
            None,
        )
    reference_verdict = None
    both = not pair.identical and not same_as_primary(reference, bands)
    if both:
        # Two runs judged make two tests: each at alpha / 2 keeps the pair's at alpha.
        bands = replace(bands, alpha=bands.alpha / 2)
    numerics, seeds = judge_by_bands(candidate, bands)
    if both:
        ref_numerics, ref_seeds = judge_by_bands(reference, bands)
        passed = ref_numerics.ok and ref_seeds.ok
        reference_verdict = Verdict.EQUIVALENT if passed else Verdict.DRIFT
    return numerics, seeds, reference_verdict


def compare(
    candidate: RunView,
    reference: RunView | None,
    *,
    bands: Bands | None = None,
    repeats: list[RunView] | None = None,
    notes: list[str] | None = None,
    next_command: str | None = None,
    checks: list[ExactCheck] | None = None,
    seed_runs: SeedRuns | None = None,
) -> Comparison:
    """Judge ``candidate`` against ``reference`` (a run, or a baseline's primary run).

    ``notes`` come first in the report (how the baseline was chosen); ``next_command``
    is what to run next when no baseline applies (the command that records one).
    ``checks`` are exact checks measured beside the pair (``verify --resume-at``: the
    resumed run against the candidate); a failed one is DRIFT, whatever the baseline says.
    ``seed_runs``: ``verify --seed-runs``'s runs judged against the stored seeds, folded
    into the verdict by the ladder.

    Deviations are always measured from the bands' own primary run. When the
    reference is not that run, it is judged against the bands as well and the
    pair takes the worse verdict. With no reference at all (no baseline exists)
    the verdict is at best NO_BASELINE.
    """
    failure = failure_of(candidate) or (failure_of(reference) if reference else None)
    found = Findings(
        REFERENCE_RUNS,
        *_not_applied("no baseline exists for this profile and workload"),
        has_reference=reference is not None,
        failure=failure,
        nondeterminism=_nondeterminism(candidate, repeats or []),
        exact=list(checks or []),
        notes=list(notes or []),
        seed_runs=seed_runs,
    )
    if reference is None:
        return judge(found, describe(candidate), None, (candidate, candidate),
                     env_key_match=False, setting_differences={}, next_command=next_command)  # fmt: skip
    pair = _pair(candidate, reference, failed=failure is not None)
    resume_checks, resume_notes = resume_check(candidate, reference)
    numerics, seeds, reference_verdict = _band_checks(
        candidate, reference, pair, bands, failed=failure is not None
    )
    found = replace(
        found,
        numerics=numerics,
        seeds=seeds,
        identical=pair.identical,
        divergence=pair.divergence,
        mismatches=pair.mismatches,
        other_training=pair.other_training,
        exact=pair.exact + resume_checks + found.exact,
        bitwise_expected=pair.bitwise_expected,
        differences=pair.differences,
        reference_verdict=reference_verdict,
        baseline=bands.name if bands else None,
        notes=found.notes + resume_notes + pair.notes,
        training=_training_cause(pair, candidate, reference),
        leading_causes=resume_causes(candidate, reference),
    )
    return judge(found, describe(candidate), describe(reference), (candidate, reference),
                 env_key_match=pair.env_key_match, setting_differences=pair.classes)  # fmt: skip


def _training_cause(pair: _Pair, candidate: RunView, reference: RunView) -> Cause | None:
    """Another training outranks whatever the environment says."""
    if not pair.other_training:
        return None
    return training_cause(
        pair.classes["semantic"],
        flatten_settings(candidate.settings),
        flatten_settings(reference.settings),
        "compare runs of the same training (drop the differing `--set` overrides), or "
        "record a baseline for this training and verify against it",
    )


def _nondeterminism(candidate: RunView, repeats: list[RunView]) -> Nondeterminism | None:
    for other in repeats:
        if not records_identical(candidate.record, other.record):
            where = first_difference(candidate, other)
            return Nondeterminism(len(repeats) + 1, other.name, where)
    return None
