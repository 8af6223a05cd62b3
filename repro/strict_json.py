"""JSON that every parser reads: no ``NaN``, ``Infinity`` or ``-Infinity`` tokens.

Python's ``json`` writes non-finite floats as those bare tokens by default, which is not
JSON: JavaScript's ``JSON.parse``, Go's ``encoding/json`` and ``jq`` reject the whole
document. Every JSON text repro writes (files and ``--json`` output) goes through
``dumps``, which writes a non-finite float as the string Python prints for it (``"nan"``,
``"inf"``, ``"-inf"``; ``float()`` reads each back) and refuses any other non-JSON value.

    >>> dumps({"score": float("inf"), "loss": 0.5}, sort_keys=True)
    '{"loss": 0.5, "score": "inf"}'
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

T = TypeVar("T")

# What a non-finite float is written as; ``float(s)`` gives the value back.
NONFINITE = frozenset({"nan", "inf", "-inf"})


def finite(value: Any) -> Any:
    """``value`` with every non-finite float, at any depth, replaced by its string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """``json.dumps`` that writes strict JSON (non-finite floats as strings)."""
    return json.dumps(
        finite(value), indent=indent, sort_keys=sort_keys, default=default, allow_nan=False
    )


def number(value: Any) -> float | int | None:
    """A number as ``dumps`` wrote it: ints and floats as they are, the non-finite strings
    as floats; ``None`` for anything else (a bool is not a number here)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if _nonfinite(value):
        return float(value)
    return None


def build(cls: type[T], data: Mapping[str, Any]) -> T:
    """``cls(**data)`` for a dataclass read back from ``dumps``'s JSON: a float field's
    ``"nan"``, ``"inf"`` or ``"-inf"`` becomes the float again."""
    floats = {f.name for f in dataclasses.fields(cast(Any, cls)) if _is_float(f.type)}
    return cls(
        **{
            key: float(value) if key in floats and _nonfinite(value) else value
            for key, value in data.items()
        }
    )


def _is_float(annotation: Any) -> bool:
    # Annotations are strings under ``from __future__ import annotations``.
    return annotation is float or "float" in str(annotation).replace(" ", "").split("|")


def _nonfinite(value: Any) -> bool:
    return isinstance(value, str) and value in NONFINITE
