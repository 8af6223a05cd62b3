"""Compare two manifests key by key, and render the differences for a person.

No torch here: ``repro manifest --diff`` and the compare report run without it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from repro.manifest.keys import IMPACTS, Impact, flatten, key_info, section_rank
from repro.manifest.probe import is_unavailable

ABSENT = "<absent>"
"""The value on the side where a key does not exist."""

_MAX_VALUE = 60  # characters of one rendered value
_MAX_LIST_CHANGES = 6  # items shown of an added/removed list diff


@dataclass(frozen=True)
class Difference:
    """One manifest key whose value differs between manifests A and B."""

    key: str
    section: str
    a: Any
    b: Any
    impact: Impact
    env_key: bool
    hint: str


def _sort_key(difference: Difference) -> tuple[tuple[int, str], int, str]:
    return (
        section_rank(difference.section),
        IMPACTS.index(difference.impact),
        difference.key,
    )


def diff_manifests(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[Difference]:
    """Every flattened key whose value differs (``ABSENT`` on a side that lacks it),
    except volatile readings (keys.yaml), which differ between any two runs.

    Sorted by section in manifest order, then impact (high first), then key.
    """
    flat_a, flat_b = flatten(a), flatten(b)
    differences = []
    for key in flat_a.keys() | flat_b.keys():
        value_a, value_b = flat_a.get(key, ABSENT), flat_b.get(key, ABSENT)
        if value_a == value_b and type(value_a) is type(value_b):
            continue  # `1 == 1.0 == True` in Python, but not in a manifest
        info = key_info(key)
        if info.volatile:
            continue
        differences.append(
            Difference(
                key=key,
                section=info.section,
                a=value_a,
                b=value_b,
                impact=info.impact,
                env_key=info.env_key,
                hint=info.hint,
            )
        )
    return sorted(differences, key=_sort_key)


def _shorten(text: str, limit: int = _MAX_VALUE) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_unavailable(value):
        return f"unavailable ({_shorten(str(value['unavailable']))})"
    if isinstance(value, list):
        return _shorten("[" + ", ".join(render_value(item) for item in value) + "]")
    text = str(value)
    return _shorten(text) if text else '""'


def _render_list_change(a: list[Any], b: list[Any]) -> str:
    changes = [f"-{render_value(item)}" for item in a if item not in b]
    changes += [f"+{render_value(item)}" for item in b if item not in a]
    if not changes:
        return "same items, another order"
    shown = ", ".join(changes[:_MAX_LIST_CHANGES])
    hidden = len(changes) - _MAX_LIST_CHANGES
    return f"{shown}, and {hidden} more" if hidden > 0 else shown


def render_change(difference: Difference) -> str:
    """``a -> b``; for two lists, the items removed (-) and added (+)."""
    if isinstance(difference.a, list) and isinstance(difference.b, list):
        return _render_list_change(difference.a, difference.b)
    return f"{render_value(difference.a)} -> {render_value(difference.b)}"


def _summary(differences: list[Difference]) -> str:
    in_key = sum(difference.env_key for difference in differences)
    noun = "difference" if len(differences) == 1 else "differences"
    if in_key:
        return (
            f"{len(differences)} {noun}, {in_key} in the environment key "
            "(bitwise-identical results are not expected)"
        )
    return f"{len(differences)} {noun}, none in the environment key"


def _section_lines(differences: Iterable[Difference], fold_low: bool) -> list[str]:
    lines, folded = [], []
    for difference in differences:
        if fold_low and difference.impact == "low":
            folded.append(difference.key)
            continue
        lines.append(f"  [{difference.impact}] {difference.key}: {render_change(difference)}")
        if difference.impact == "high" and difference.hint:
            lines.append(f"      try: {difference.hint}")
    if folded:
        lines.append(f"  [low] {len(folded)} more: {', '.join(folded)}")
    return lines


def format_differences(differences: list[Difference], fold_low: bool = True) -> str:
    """Plain text, grouped by section, each line tagged with its impact; high-impact lines
    carry what to try. ``fold_low`` lists low-impact keys on one line per section."""
    if not differences:
        return "no differences\n"
    lines = [_summary(differences)]
    for section, group in itertools.groupby(differences, key=lambda d: d.section):
        lines.append(section)
        lines.extend(_section_lines(group, fold_low))
    return "\n".join(lines) + "\n"
