"""``repro compare`` on tracked runs (``repro.track``): the same report as for reference runs.

Without a band there is no judging of noise: two tracked runs are IDENTICAL (every
logged value of every rank, the final metrics and the weight fingerprints bit-equal),
FAILED (one did not complete, or a final metric is NaN, Inf or no number), DRIFT (their
configs differ: another training, whatever the numbers do), or else
NO_BASELINE with where they part, how far apart their curves are and the ranked causes.
"""

from __future__ import annotations

import math
from typing import Any

from repro import strict_json
from repro.judge.bands import BandCheck, SeedCheck
from repro.judge.causes import training_cause
from repro.judge.comparison import failure_of, judge
from repro.judge.curves import Judged, LossCurves
from repro.judge.divergence import Divergence
from repro.judge.ladder import Findings
from repro.judge.parts import Failure, RunDescription
from repro.judge.resumes import tracked_resume
from repro.judge.summary import TRACKED_RUNS
from repro.manifest.diff import diff_manifests
from repro.manifest.keys import environment_key, flatten
from repro.runs.tracked import Tracked


def _first_difference(a: Tracked, b: Tracked) -> Divergence | None:
    """The first step at which any rank logged another value (or another set of names)."""
    for rank, (rows_a, rows_b) in enumerate(zip(a.ranks, b.ranks)):
        for ra, rb in zip(rows_a, rows_b):
            if ra != rb:
                names = sorted(set(ra) | set(rb) - {"step"})
                differing = [n for n in names if ra.get(n) != rb.get(n)]
                detail = ", ".join(f"{n} {ra.get(n)!r} vs {rb.get(n)!r}" for n in differing[:3])
                return Divergence(
                    int(ra.get("step", 0)), "logged", f"{detail} (rank {rank})", None, False
                )
        if len(rows_a) != len(rows_b):
            shorter, longer = sorted((rows_a, rows_b), key=len)
            return Divergence(
                int(longer[len(shorter)].get("step", len(shorter))),  # the first step one lacks
                "record",
                f"one run logged {len(rows_a)} steps, the other {len(rows_b)}",
                None,
                False,
            )
    if len(a.ranks) != len(b.ranks):
        return Divergence(
            0, "batch_split", f"{len(a.ranks)} vs {len(b.ranks)} ranks logged", None, False
        )
    end = _end_step(a.ranks[0] if a.ranks else [])
    if a.final != b.final:
        return Divergence(end, "final", f"final metrics {a.final} vs {b.final}", None, False)
    if a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint:
        return Divergence(end, "final", "the weights' fingerprints differ", None, False)
    return None


def _end_step(rows: list[dict[str, Any]]) -> int:
    """The step after the last one ``rows`` logged, where the final metrics belong, by the
    rows' own step numbers: a run that logs every tenth step ends past its last logged step,
    not at its count of rows."""
    return int(rows[-1].get("step", len(rows) - 1)) + 1 if rows else 0


def _config(t: Tracked) -> dict[str, Any]:
    """The run's recorded config, flattened to dotted names."""
    return flatten(t.view.settings.get("config") or {})


def _config_differences(a: Tracked, b: Tracked) -> list[str]:
    fa, fb = _config(a), _config(b)
    return sorted(k for k in set(fa) | set(fb) if fa.get(k) != fb.get(k))


def _loss_curves(a: Tracked, b: Tracked) -> LossCurves:
    la = [float(r["loss"]) for r in a.ranks[0] if isinstance(r.get("loss"), (int, float))]
    lb = [float(r["loss"]) for r in b.ranks[0] if isinstance(r.get("loss"), (int, float))]
    return LossCurves(tuple(la), tuple(lb))


def _describe(t: Tracked) -> RunDescription:
    config = t.view.config
    return RunDescription(
        name=t.view.name,
        path=t.view.path,
        profile="tracked",
        seed=config.get("seed"),
        status=t.view.status.get("status"),
        workload_hash=None,
        command=config.get("command"),
        reference=False,
        final=_numbers(t.final),
        # Logs read without a manifest beside them (another tool's): no environment facts.
        environment=bool(t.view.manifest),
    )


def _numbers(final: dict[str, Any] | None) -> dict[str, Any] | None:
    if final is None:
        return None
    return {k: v for k, v in final.items() if strict_json.number(v) is not None}


def compare_tracked(candidate: Tracked, reference: Tracked) -> Judged:
    """Judge two tracked runs by the one ladder: no band applies, so at best NO_BASELINE
    unless every logged value agrees."""
    failure = _failure(candidate, reference)
    resume = tracked_resume(candidate, reference)  # a resumed run is compared from its resume on
    divergence = _first_difference(*(resume.after if resume else (candidate, reference)))
    config_diffs = _config_differences(candidate, reference)
    env_key_match = environment_key(candidate.view.manifest) == environment_key(
        reference.view.manifest
    )
    checks, resume_notes = (
        resume.judged(divergence, env_key_match and not config_diffs) if resume else ([], [])
    )
    findings = Findings(
        TRACKED_RUNS,
        BandCheck(False, "tracked runs have no band: where they part is reported"),
        SeedCheck(False, "tracked runs have no seed band"),
        failure=failure,
        # Logs alone cannot tell a copy from a twin: identical only where the ladder can
        # say IDENTICAL (no failure, one config, no resume row that parts), as verdict.json
        # has always said.
        identical=divergence is None
        and not (config_diffs or failure)
        and all(check.ok for check in checks),
        divergence=divergence,
        mismatches=[
            f"the configs differ ({', '.join(config_diffs[:6])}): another training, "
            "whatever the numbers do"
        ]
        if config_diffs
        else [],
        other_training=bool(config_diffs),
        differences=diff_manifests(candidate.view.manifest, reference.view.manifest),
        exact=checks,
        notes=[*dict.fromkeys(n for n in (candidate.note, reference.note) if n), *resume_notes],
        training=training_cause(
            config_diffs,
            _config(candidate),
            _config(reference),
            "the runs are two trainings: compare runs of one config, or change one thing at a time",
            prefix="config.",
        )
        if config_diffs
        else None,
        leading_causes=resume.causes(divergence) if resume and not config_diffs else [],
    )
    comparison = judge(
        findings,
        _describe(candidate),
        _describe(reference),
        (candidate.view, reference.view),
        env_key_match=env_key_match,
        setting_differences={"config": config_diffs} if config_diffs else {},
    )
    curves = LossCurves(*resume.losses) if resume else _loss_curves(candidate, reference)
    return Judged(comparison, curves)


def _failure(*runs: Tracked) -> Failure | None:
    """A run that did not complete (the first such), else one whose final is NaN, Inf or
    no number: FAILED on every path (pairs, groups), since two copies of a NaN run are not
    IDENTICAL, both are broken."""
    for run in runs:
        if run.view.status.get("status") != "COMPLETE":
            return failure_of(run.view)
    for run in runs:
        if not_finite := _non_finite_finals(run):
            return Failure(run.view.name, "FAILED", "nan", None, None,
                           f"its final {', '.join(not_finite)} is not a finite number")  # fmt: skip
    return None


def _non_finite_finals(run: Tracked) -> list[str]:
    """``eval_loss = nan``: each final metric that is not a finite number."""
    found = []
    for name, value in sorted((run.final or {}).items()):
        number = strict_json.number(value)
        if number is None or not math.isfinite(number):
            found.append(f"{name} = {value}")
    return found
