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
from repro.judge.causes import rank_causes, training_cause
from repro.judge.comparison import Comparison, failure_of
from repro.judge.curves import Judged, LossCurves
from repro.judge.divergence import Divergence
from repro.judge.resumes import tracked_resume
from repro.manifest.diff import diff_manifests
from repro.manifest.keys import environment_key, flatten
from repro.runs.tracked import Tracked
from repro.verdict import Verdict


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
            step = min(len(rows_a), len(rows_b))
            return Divergence(
                step,
                "record",
                f"one run logged {len(rows_a)} steps, the other {len(rows_b)}",
                None,
                False,
            )
    if len(a.ranks) != len(b.ranks):
        return Divergence(
            0, "batch_split", f"{len(a.ranks)} vs {len(b.ranks)} ranks logged", None, False
        )
    if a.final != b.final:
        return Divergence(
            len(a.ranks[0]), "final", f"final metrics {a.final} vs {b.final}", None, False
        )
    if a.fingerprint and b.fingerprint and a.fingerprint != b.fingerprint:
        return Divergence(len(a.ranks[0]), "final", "the weights' fingerprints differ", None, False)
    return None


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


def _describe(t: Tracked) -> dict[str, Any]:
    config = t.view.config
    return {
        "name": t.view.name,
        "path": t.view.path,
        "profile": "tracked",
        "seed": config.get("seed"),
        "status": t.view.status.get("status"),
        "workload_hash": None,
        "command": config.get("command"),
        "reference": False,
        "final": _numbers(t.final),
        # Logs read without a manifest beside them (another tool's): no environment facts.
        "environment": bool(t.view.manifest),
    }


def _numbers(final: dict[str, Any] | None) -> dict[str, Any] | None:
    if final is None:
        return None
    return {k: v for k, v in final.items() if strict_json.number(v) is not None}


def compare_tracked(candidate: Tracked, reference: Tracked) -> Judged:
    failed = [t for t in (candidate, reference) if t.view.status.get("status") != "COMPLETE"]
    not_finite = [t for t in (candidate, reference) if _non_finite_finals(t)]
    resume = tracked_resume(candidate, reference)  # a resumed run is compared from its resume on
    divergence = _first_difference(*(resume.after if resume else (candidate, reference)))
    config_diffs = _config_differences(candidate, reference)
    differences = diff_manifests(candidate.view.manifest, reference.view.manifest)
    env_key_match = environment_key(candidate.view.manifest) == environment_key(
        reference.view.manifest
    )
    checks, resume_notes = (
        resume.judged(divergence, env_key_match and not config_diffs) if resume else ([], [])
    )
    if failed or not_finite:
        # A NaN, Inf or non-number final is FAILED on every path (pairs, groups, the README's
        # table): two copies of a NaN run are not IDENTICAL, they are both broken.
        verdict = Verdict.FAILED
    elif config_diffs or not all(check.ok for check in checks):
        verdict = Verdict.DRIFT  # another training, or a resume that parts where nothing else may
    elif divergence is None:
        verdict = Verdict.IDENTICAL
    else:
        verdict = Verdict.NO_BASELINE
    causes = rank_causes(verdict, divergence, differences, candidate.view, reference.view)
    if config_diffs and verdict != Verdict.IDENTICAL:
        cause = training_cause(
            config_diffs,
            _config(candidate),
            _config(reference),
            "the runs are two trainings: compare runs of one config, or change one thing at a time",
            prefix="config.",
        )
        causes.insert(0, cause)
    failure = (
        failure_of(failed[0].view)
        if failed
        else _non_finite_failure(not_finite[0])
        if not_finite
        else None
    )
    mismatches = (
        [
            f"the configs differ ({', '.join(config_diffs[:6])}): another training, whatever the numbers do"
        ]
        if config_diffs
        else []
    )
    comparison = Comparison(
        verdict=verdict,
        summary=_summary(
            verdict, divergence, failure, mismatches + [c.detail for c in checks if not c.ok]
        ),
        candidate=_describe(candidate),
        reference=_describe(reference),
        baseline=None,
        identical=verdict == Verdict.IDENTICAL,
        first_difference=divergence,
        numerics=BandCheck(False, "tracked runs have no band: where they part is reported"),
        seed=SeedCheck(False, "tracked runs have no seed band"),
        failure=failure,
        nondeterminism=None,
        env_differences=differences,
        env_key_match=env_key_match,
        causes=causes,
        mismatches=mismatches,
        notes=[*dict.fromkeys(n for n in (candidate.note, reference.note) if n), *resume_notes],
        setting_differences={"config": config_diffs} if config_diffs else {},
        exact=checks,
    )
    curves = LossCurves(*resume.losses) if resume else _loss_curves(candidate, reference)
    return Judged(comparison, curves)


def _non_finite_finals(run: Tracked) -> list[str]:
    """``eval_loss = nan``: each final metric that is not a finite number."""
    found = []
    for name, value in sorted((run.final or {}).items()):
        number = strict_json.number(value)
        if number is None or not math.isfinite(number):
            found.append(f"{name} = {value}")
    return found


def _non_finite_failure(run: Tracked) -> dict[str, Any]:
    return {
        "run": run.view.name,
        "status": "FAILED",
        "kind": "nan",
        "step": None,
        "rank": None,
        "message": f"its final {', '.join(_non_finite_finals(run))} is not a finite number",
    }


def _summary(
    verdict: Verdict,
    divergence: Divergence | None,
    failure: dict[str, Any] | None,
    mismatches: list[str],
) -> str:
    if failure is not None:
        return f"{failure['run']} {str(failure['status']).lower()}: {failure['message']}"
    if verdict == Verdict.IDENTICAL:
        return "bit-identical: every logged value, the final metrics and the weights match"
    first = f"first differs at step {divergence.step}: {divergence.detail}" if divergence else ""
    return "; ".join([*mismatches, first]) if mismatches else f"no band to judge noise by; {first}"
