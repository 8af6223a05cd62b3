"""Rank probable causes by joining where two runs parted with what differs between them.

The rules are data (``report/causes.yaml``); this module only applies them.
"""

from __future__ import annotations

import fnmatch
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from repro.judge import Cause, Divergence, RunView
    from repro.manifest.diff import Difference

_IMPACT = {"high": 3, "medium": 2, "low": 1}


@cache
def rules() -> tuple[dict[str, Any], ...]:
    text = resources.files("repro.report").joinpath("causes.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text)["rules"])


def _matches(key: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def rank_causes(
    verdict: str,
    divergence: Divergence | None,
    differences: list[Difference],
    candidate: RunView,
    reference: RunView,
) -> list[Cause]:
    from repro.judge import Cause
    from repro.manifest.diff import render_change, render_value

    if verdict == "IDENTICAL":
        return []
    assigned: dict[str, list[Difference]] = {}
    for diff in differences:
        for rule in rules():
            if _matches(diff.key, rule.get("keys", [])):
                assigned.setdefault(rule["id"], []).append(diff)
                break
    causes = []
    for rule in rules():
        diffs = assigned.get(rule["id"], [])
        where_hit = divergence is not None and divergence.where in rule.get("where", [])
        verdict_hit = verdict in rule.get("verdicts", [])
        if not diffs and not verdict_hit and not (where_hit and rule.get("pattern_only")):
            continue
        score = min(6, sum(_IMPACT.get(d.impact, 1) for d in diffs))
        evidence = [f"{d.key}: {render_change(d)}" for d in diffs[:4]]
        if where_hit and divergence is not None:
            score += 3
            evidence.append(f"first difference at step {divergence.step}: {divergence.detail}")
            if divergence.step == 0 and rule.get("step0"):
                score += 2
        if verdict_hit:
            score += 6
            evidence.append(f"verdict {verdict}")
        first = diffs[0] if diffs else None
        a = render_value(first.a) if first else "?"
        b = render_value(first.b) if first else "?"
        try_next = str(rule["try"]).format(
            a=a,
            b=b,
            a_lower=a.lower(),
            b_lower=b.lower(),
            profile=candidate.config.get("profile", "quick"),
        )
        causes.append(Cause(rule["cause"], float(score), evidence, try_next))
    causes.sort(key=lambda c: -c.score)  # stable: ties keep the table's order
    return causes
