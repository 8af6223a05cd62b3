"""What a user states about a group comparison: a margin that matters (``--margin``) and
a metric's resolution (``--resolution``, else the grid its values sit on)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

from repro.errors import UserError
from repro.judge.group_stats import mean_sd

GRID_ITEMS = 1000  # the finest grid 1/N inferred from values (an evaluation set of N items)
# Values within this (float32-level) fraction of a grid point sit on it: accuracies are
# often float32 means.
ON_GRID = 5e-7
_MARGIN = re.compile(r"^(?:(?P<metric>[^=]+)=)?(?P<value>[0-9.eE+-]+)(?P<unit>pp|%)?$")
_RESOLUTION = re.compile(r"^(?P<metric>[^=]+)=(?P<value>[0-9.eE+-]+(?:/[0-9]+)?)$")


@dataclass(frozen=True)
class Margin:
    """``--margin``: absolute (``0.002``), percentage points (``0.3pp`` = 0.003) or a
    fraction of the pooled mean of both groups (``0.5%``), for one metric or (no name)
    all of them."""

    metric: str | None
    value: float
    unit: str  # "", "pp" or "%"

    def absolute(self, metric: str, values_a: list[float], values_b: list[float]) -> float:
        if self.unit == "%":
            # The pooled mean: group A's alone would make the margin depend on which
            # setting was named first. Near zero a percentage of it is no margin at all.
            pooled = values_a + values_b
            mean, sd = mean_sd(pooled)
            if abs(mean) <= 3 * sd / math.sqrt(len(pooled)):
                raise UserError(
                    f"--margin {self.describe()}: the mean {metric} of both groups, {mean:.3g}, "
                    "is within 3 standard errors of 0, so a percentage of it is no margin; "
                    f"give one in the metric's units (--margin {metric}=VALUE)."
                )
            return abs(mean) * self.value / 100
        if self.unit == "pp":
            if not all(0 <= v <= 1 for v in values_a + values_b):
                raise UserError(
                    f"--margin {self.value:g}pp: {metric} is not a share between 0 and 1; give "
                    f"its margin in its own units (--margin {metric}=VALUE) or as a fraction (%)."
                )
            return self.value / 100
        return self.value

    def describe(self) -> str:
        return f"{self.value:g}{self.unit}"


def parse_margin(spec: str) -> Margin:
    m = _MARGIN.match(spec.strip())
    value = float(m.group("value")) if m and _is_number(m.group("value")) else math.nan
    if m is None or not value > 0 or not math.isfinite(value):
        raise UserError(
            f"--margin {spec!r} is not a margin: give a positive number, in the metric's units "
            "(0.002), percentage points (0.3pp) or percent of the mean of both groups (0.5%), "
            "optionally for one metric (eval_accuracy=0.3pp)."
        )
    return Margin(m.group("metric"), value, m.group("unit") or "")


def parse_resolution(spec: str) -> tuple[str, float]:
    """``--resolution eval_accuracy=1/50``: the smallest step the metric can show."""
    m = _RESOLUTION.match(spec.strip())
    value = math.nan
    if m:
        try:
            value = float(Fraction(m.group("value")))
        except (ValueError, ZeroDivisionError):
            value = math.nan
    if m is None or not value > 0 or not math.isfinite(value):
        raise UserError(
            f"--resolution {spec!r} is not a resolution: give METRIC=STEP with a positive step, "
            "e.g. eval_accuracy=1/50 for an accuracy over 50 items."
        )
    return m.group("metric"), value


def infer_resolution(values: list[float]) -> float:
    """The coarsest grid 1/N (N up to GRID_ITEMS) that every value sits on; 0 when none
    does (a continuous metric); inf when every value is the same number, which says
    nothing of the grid. With few distinct values the grid found can be coarser than the
    metric's real step, which only makes SAME harder to show; --resolution states it."""
    import numpy as np

    array = np.asarray(values, dtype=float)
    if np.all(np.abs(array - array[0]) <= ON_GRID * np.maximum(1.0, np.abs(array))):
        return math.inf
    scaled = np.arange(1, GRID_ITEMS + 1)[:, None] * array[None, :]
    on_grid = np.abs(scaled - np.round(scaled)) <= ON_GRID * np.maximum(1.0, np.abs(scaled))
    fits = np.flatnonzero(on_grid.all(axis=1))
    return 1 / float(fits[0] + 1) if fits.size else 0.0


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
