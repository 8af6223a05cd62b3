"""The keys table: for each manifest key, whether it is in the environment key, how much a
difference matters, what to try, and whether it is a volatile reading that is never
compared. The table is data (keys.yaml); this module reads it.

No torch here: comparing manifests must work without it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib import resources
from typing import Any, Literal, cast

import yaml

from repro.manifest.probe import is_unavailable
from repro.manifest.schema import SECTIONS

Impact = Literal["high", "medium", "low"]
IMPACTS: tuple[Impact, ...] = ("high", "medium", "low")
# Run-level sections the training code adds come first: they explain most differences.
SECTION_ORDER = ("config", "run", *SECTIONS)


@dataclass(frozen=True)
class KeyInfo:
    """What one manifest key means for reproducibility."""

    pattern: str
    """The keys.yaml row that matched (fnmatch pattern; ``*`` also matches dots)."""
    section: str
    """The key's first component: ``hardware`` for ``hardware.cpu.model_name``."""
    env_key: bool
    """In the environment key: a difference means bitwise equality is not expected."""
    impact: Impact
    """How likely a difference is to move the numbers."""
    hint: str
    """What to try when the key differs; empty when there is nothing to do."""
    volatile: bool = False
    """A reading that changes between runs on one machine (current clocks, PCIe link):
    recorded in the manifest, never compared."""
    added_later: bool = False
    """Added after baselines were shipped: a baseline that lacks the key is not judged on it."""


@dataclass(frozen=True)
class _Row:
    pattern: str
    env_key: bool
    impact: Impact
    hint: str
    volatile: bool
    added_later: bool = False


_DEFAULT = _Row(pattern="*", env_key=False, impact="low", hint="", volatile=False)
_REQUIRED = {"pattern", "env_key", "impact", "hint"}
_OPTIONAL = {"volatile", "added_later"}


def _parse_row(number: int, row: Any) -> _Row:
    # A bad row is a bug in the shipped table, not a user error: fail loudly.
    if not isinstance(row, dict) or not _REQUIRED <= set(row) <= _REQUIRED | _OPTIONAL:
        raise ValueError(
            f"keys.yaml row {number} must have pattern, env_key, impact and hint, "
            "and may have volatile and added_later"
        )
    volatile, added_later = row.get("volatile", False), row.get("added_later", False)
    if not isinstance(added_later, bool):
        raise ValueError(f"keys.yaml row {number} ({row['pattern']}) has a bad added_later")
    if row["impact"] not in IMPACTS or not isinstance(row["env_key"], bool):
        raise ValueError(f"keys.yaml row {number} ({row['pattern']}) has a bad impact or env_key")
    if not isinstance(volatile, bool):
        raise ValueError(f"keys.yaml row {number} ({row['pattern']}) has a bad volatile")
    # The environment key decides what a run is compared with; a reading that changes
    # from run to run would make every run its own environment.
    if volatile and row["env_key"]:
        raise ValueError(f"keys.yaml row {number} ({row['pattern']}) is volatile and env_key")
    return _Row(
        pattern=str(row["pattern"]),
        env_key=row["env_key"],
        impact=cast(Impact, row["impact"]),
        hint=str(row["hint"] or ""),
        volatile=volatile,
        added_later=added_later,
    )


@functools.cache
def table() -> tuple[_Row, ...]:
    """The rows of keys.yaml, in order (the first matching row wins)."""
    text = resources.files("repro.manifest").joinpath("keys.yaml").read_text(encoding="utf-8")
    rows = yaml.safe_load(text)["rows"]
    return tuple(_parse_row(number, row) for number, row in enumerate(rows, start=1))


@functools.lru_cache(maxsize=4096)
def key_info(dotted_key: str) -> KeyInfo:
    """The first keys.yaml row whose pattern matches ``dotted_key``; low impact if none."""
    row = next((row for row in table() if fnmatchcase(dotted_key, row.pattern)), _DEFAULT)
    return KeyInfo(
        pattern=row.pattern,
        section=dotted_key.split(".", 1)[0],
        env_key=row.env_key,
        impact=row.impact,
        hint=row.hint,
        volatile=row.volatile,
        added_later=row.added_later,
    )


def flatten(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted keys to leaf values: ``{"hardware.cpu.model_name": "...", ...}``.

    Lists of scalars stay values (``hardware.cpu.isa_flags``); lists of mappings are
    indexed (``hardware.gpus.0.name``). An ``{"unavailable": reason}`` mapping is a leaf,
    kept under the key of the reading it replaces. Empty mappings produce no key.
    """
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and not is_unavailable(value):
            for name, item in value.items():
                walk(f"{prefix}.{name}" if prefix else str(name), item)
        elif isinstance(value, list) and value and all(isinstance(i, Mapping) for i in value):
            for index, item in enumerate(value):
                walk(f"{prefix}.{index}", item)
        else:
            flat[prefix] = value

    walk("", manifest)
    return flat


def environment_key(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The flattened keys that decide whether bitwise-identical results are expected."""
    return {key: value for key, value in flatten(manifest).items() if key_info(key).env_key}


def judged_against(key: str, baseline_key: Mapping[str, Any]) -> bool:
    """Whether ``key`` counts when matching a baseline's environment key: a key added after
    the baseline was recorded (the baseline lacks it) does not."""
    return key in baseline_key or not key_info(key).added_later


def section_rank(section: str) -> tuple[int, str]:
    """Sort key for sections: manifest order, unknown sections after, alphabetically."""
    if section in SECTION_ORDER:
        return SECTION_ORDER.index(section), ""
    return len(SECTION_ORDER), section
