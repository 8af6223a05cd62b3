"""Rank probable causes by joining where two runs parted with what differs between them.

The rules are data (``causes.yaml`` beside this module); this module only applies them, and renders
each rule's ``try`` with the runs' own values, each as one shell word, so that a command
in it can be pasted into a shell as it stands.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import yaml

from repro.explain.knobs import lowering
from repro.manifest.cpu import ATEN_LEVELS
from repro.manifest.diff import ABSENT, Difference, render_change
from repro.manifest.keys import flatten

if TYPE_CHECKING:
    from repro.judge.divergence import Divergence
    from repro.runs.runview import RunView

_IMPACT = {"high": 3, "medium": 2, "low": 1}
# ATEN_LEVELS: x86's kernel levels; the other architectures know only "default" and one
# level of their own (vsx, zvector, sve256).


@dataclass(frozen=True)
class Cause:
    """One probable cause of a difference, its score, the evidence and what to try."""

    cause: str
    score: float
    evidence: list[str]
    try_next: str


class UnknownValue(LookupError):
    """A value a ``try`` needs is unknown here, or is not a single shell word."""


@cache
def rules() -> tuple[dict[str, Any], ...]:
    text = resources.files("repro.judge").joinpath("causes.yaml").read_text(encoding="utf-8")
    return tuple(yaml.safe_load(text)["rules"])


def explainable(cause: str) -> bool:
    """Whether ``repro explain`` can confirm ``cause`` by rerunning with the other run's
    setting (the rules marked ``explain: true``)."""
    return any(r["cause"] == cause and r.get("explain") for r in rules())


def _matches(key: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def shell_word(value: Any) -> str:
    """A scalar as one shell word (quoted where needed); UnknownValue for anything else.

    A list, a mapping, a missing or an unavailable reading has no single value to put in
    a command: ``ATEN_CPU_CAPABILITY=[avx, avx2]`` is not a setting.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or (isinstance(value, str) and value not in ("", ABSENT)):
        return shlex.quote(str(value))
    raise UnknownValue(f"{value!r} is not one value")


def aten_level(capability: Any) -> str:
    """``AVX2`` -> ``avx2``: torch's CPU capability as ATEN_CPU_CAPABILITY takes it."""
    level = capability.lower().replace(" ", "") if isinstance(capability, str) else ""
    if not re.fullmatch(r"[a-z0-9_]+", level):
        raise UnknownValue(f"{capability!r} is not a CPU capability")
    return level


def lower_level(a: str, b: str) -> str:
    """The lower of two different ATen levels: the one both CPUs can run."""
    if a == b:
        raise UnknownValue(f"both runs used {a}: another kernel level is no remedy")
    if "default" in (a, b):
        return "default"
    if a in ATEN_LEVELS and b in ATEN_LEVELS:
        return min(a, b, key=ATEN_LEVELS.index)
    raise UnknownValue(f"{a} and {b} are levels of different architectures")


def lowering_words(candidate: RunView, reference: RunView) -> str:
    """``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``: the variables that take the
    run with the higher kernels down to the other's, each as one shell word; the set
    ``repro explain`` would try (oneDNN's ISA counts where the other machine set nothing)."""
    try:
        knobs = lowering(reference, candidate) or lowering(candidate, reference)
    except (KeyError, TypeError, ValueError) as error:
        raise UnknownValue(f"the runs' CPU facts cannot be read: {error}") from error
    if not knobs:
        raise UnknownValue("no one run's kernels can go down to the other's")
    return " ".join(shell_word(f"{k.name}={k.other}") for k in knobs)


class _RunWords:
    """A run's manifest and settings by flattened key (``config.seed``), each as a shell word."""

    def __init__(self, view: RunView) -> None:
        self._flat = {**flatten(view.manifest), **flatten({"config": view.settings})}

    def __getitem__(self, key: str) -> str:
        if key not in self._flat:
            raise UnknownValue(f"the run records no {key}")
        return shell_word(self._flat[key])

    def capability(self) -> str:
        return aten_level(self._flat.get("hardware.cpu.torch_capability"))


class _Fields:
    """What a ``try`` may name; see the head of causes.yaml."""

    def __init__(self, candidate: RunView, reference: RunView) -> None:
        self.candidate, self.reference = _RunWords(candidate), _RunWords(reference)
        self.views = (candidate, reference)
        self.profile = str(candidate.config.get("profile", "quick"))
        self.paths = {"candidate_path": candidate.path, "reference_path": reference.path}

    def __getitem__(self, name: str) -> Any:
        if name == "profile":
            return shlex.quote(self.profile)
        if name in self.paths:
            return shell_word(self.paths[name])
        if name in ("candidate", "reference"):
            return getattr(self, name)
        if name == "lower_capability":
            return lower_level(self.candidate.capability(), self.reference.capability())
        if name == "lowering":
            try:
                return lowering_words(*self.views)
            except UnknownValue:  # e.g. flags too sparse to say: ATen's two levels decide
                return f"ATEN_CPU_CAPABILITY={self['lower_capability']}"
        raise KeyError(f"causes.yaml names an unknown field {{{name}}}")


def render_try(rule: dict[str, Any], candidate: RunView, reference: RunView) -> str:
    """The rule's ``try`` with the runs' values, or its ``otherwise`` when one is unknown."""
    fields = _Fields(candidate, reference)
    try:
        return str(rule["try"]).format_map(fields)
    except UnknownValue:
        return str(rule["otherwise"]).format_map(fields)


def training_cause(
    differing: list[str],
    a: Mapping[str, Any],
    b: Mapping[str, Any],
    try_next: str,
    *,
    prefix: str = "",
) -> Cause:
    """Two trainings, not two environments: ranked above whatever the environment says.
    ``a`` and ``b`` map each run's dotted setting names to values; the first six that
    differ are the evidence."""
    evidence = [f"{prefix}{name}: {a.get(name)!r} vs {b.get(name)!r}" for name in differing[:6]]
    return Cause("training settings", float("inf"), evidence, try_next)


def rank_causes(
    verdict: str,
    divergence: Divergence | None,
    differences: list[Difference],
    candidate: RunView,
    reference: RunView,
) -> list[Cause]:
    if verdict == "IDENTICAL":
        return []
    assigned: dict[str, list[Difference]] = {}
    for diff in differences:
        for rule in rules():
            if _matches(diff.key, rule.get("keys", [])):
                assigned.setdefault(rule["id"], []).append(diff)
                break
    ranked: list[tuple[tuple[float, ...], Cause]] = []
    for position, rule in enumerate(rules()):
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
        try_next = render_try(rule, candidate, reference)
        order = (-float(score), *_tie_break(where_hit, diffs, position))
        ranked.append((order, Cause(rule["cause"], float(score), evidence, try_next)))
    ranked.sort(key=lambda item: item[0])
    return [cause for _, cause in ranked]


def _tie_break(where_hit: bool, diffs: list[Difference], position: int) -> tuple[int, ...]:
    """Sort key among causes of one score, smallest first; the order is given at the
    head of causes.yaml. The score caps impact at 6, so two rules that both explain
    several differences tie on it; their uncapped counts still tell them apart."""
    counts = [sum(d.impact == level for d in diffs) for level in _IMPACT]  # high first
    in_env_key = sum(d.env_key for d in diffs)
    return (-int(where_hit), *(-count for count in counts), -in_env_key, position)
