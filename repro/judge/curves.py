"""The loss curves a comparison's report draws, read from the runs it judged.

The judge decides and keeps only what it decided (``Comparison``); what a reader is shown
of the runs step by step is read here, once, beside it: ``Judged`` carries the two to the
renderers. A report reads no file: the curves come from runs already loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from repro.runs.runview import series

if TYPE_CHECKING:
    from repro.judge.bands import BandCheck, Bands
    from repro.judge.comparison import Comparison
    from repro.runs.runview import RunView


@dataclass(frozen=True)
class LossCurves:
    """Training loss per step of both runs; with bands, the largest member's deviation from
    the bands' primary run and the bound each step was judged by."""

    candidate: tuple[float, ...] = ()
    reference: tuple[float, ...] = ()
    band_max: tuple[float, ...] | None = None
    band_threshold: tuple[float, ...] | None = None

    @cached_property  # the report's text and its plots both read it
    def deviation(self) -> tuple[float, ...]:
        """|candidate - reference| over the steps both runs have."""
        return tuple(abs(a - b) for a, b in zip(self.candidate, self.reference))

    def to_dict(self) -> dict[str, Any]:
        """The plots' input: ``candidate_loss``, ``reference_loss``, ``deviation`` and, with
        bands, ``band_max`` and ``band_threshold``."""
        data: dict[str, Any] = {
            "candidate_loss": list(self.candidate),
            "reference_loss": list(self.reference),
            "deviation": list(self.deviation),
        }
        if self.band_max is not None and self.band_threshold is not None:
            data["band_max"] = list(self.band_max)
            data["band_threshold"] = list(self.band_threshold)
        return data


class Judged(NamedTuple):
    """What one report is about: the judge's comparison and the curves drawn beside it."""

    comparison: Comparison
    curves: LossCurves


def loss_curves(
    candidate: RunView, reference: RunView | None, numerics: BandCheck, bands: Bands | None
) -> LossCurves:
    """The curves of a judged pair; the band's only where the judge applied it."""
    a = tuple(series(candidate.steps)["loss"])
    b = tuple(series(reference.steps)["loss"]) if reference is not None else ()
    if not (numerics.applied and bands is not None):
        return LossCurves(a, b)
    n = min(len(a), len(b))
    primary = bands.primary["loss"]
    band_max = tuple(
        max(abs(m["series"]["loss"][i] - primary[i]) for m in bands.members) for i in range(n)
    )
    upper = [0.0] * n
    for w in numerics.windows:
        if w.scalar == "loss":
            for i in range(w.start, min(w.end, n)):
                upper[i] = w.threshold
    return LossCurves(a, b, band_max, tuple(upper))


def judged(
    comparison: Comparison,
    candidate: RunView,
    reference: RunView | None,
    bands: Bands | None = None,
) -> Judged:
    """A comparison and the curves of the runs it judged, ready to render."""
    return Judged(comparison, loss_curves(candidate, reference, comparison.numerics, bands))
