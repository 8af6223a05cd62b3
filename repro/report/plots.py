"""The HTML report's figures, drawn with matplotlib into SVG text for inline embedding.

matplotlib is imported here, inside the functions, and nowhere else: the terminal report
must start fast. Figures are built without pyplot, so no GUI backend or global figure
state is touched, and nothing is fetched from the network.
"""

from __future__ import annotations

import io
import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_SIZE = (8.0, 3.2)  # inches; scaled to the page width by CSS
_REFERENCE = "#555555"
_CANDIDATE = "#1f6fd1"
_BAND = "#9a9a9a"
_BOUND = "#c62828"
_PARTED = "#7b1fa2"
_GROUPS = ("#555555", "#1f6fd1")  # group A as the reference, group B as the candidate
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)
_SIZE_ATTRIBUTES = re.compile(r'\s(?:width|height)="[^"]*"')


def _figure(top: float = 0.96) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=_SIZE)
    # Fixed margins: a layout engine would halve the rendering speed for the same picture.
    figure.subplots_adjust(left=0.085, right=0.985, bottom=0.14, top=top)
    return figure


def _svg(figure: Figure) -> str:
    """The figure as an inline ``<svg>`` element that scales with the page.

    Dropped: the XML prologue (not allowed inline), the RDF metadata block (bytes, no
    use), and the root's fixed width and height (the viewBox keeps the aspect ratio).
    """
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = _METADATA.sub("", text, count=1)
    root_end = text.index(">")
    root = _SIZE_ATTRIBUTES.sub("", text[:root_end])
    return root + text[root_end:]


def _finite(values: list[float]) -> list[float]:
    return [v if math.isfinite(v) else math.nan for v in values]


def _positive(values: list[float]) -> list[float]:
    # A log axis cannot show zero; a gap says "equal here" better than a clipped floor.
    return [v if math.isfinite(v) and v > 0 else math.nan for v in values]


def _mark_steps(axes: Axes, first_step: int | None, first_outside: int | None) -> None:
    if first_step is not None:
        axes.axvline(
            first_step,
            color=_PARTED,
            linestyle=":",
            linewidth=1.2,
            label=f"first difference (step {first_step})",
        )
    if first_outside is not None:
        axes.axvline(
            first_outside,
            color=_BOUND,
            linestyle=":",
            linewidth=1.2,
            label=f"first step outside the band ({first_outside})",
        )


def _style_context() -> Any:
    import matplotlib

    return matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # text stays text: smaller, and selectable in the browser
            "svg.hashsalt": "repro",  # stable element ids: the same comparison, the same SVG
            "font.size": 9.0,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": True,
            "grid.alpha": 0.3,
        }
    )


def loss_svg(curves: dict[str, Any], first_step: int | None = None) -> str:
    """Training loss per step, the candidate drawn over the reference."""
    with _style_context():
        figure = _figure()
        axes = figure.add_subplot()
        reference = _finite(curves.get("reference_loss", []))
        candidate = _finite(curves.get("candidate_loss", []))
        axes.plot(
            range(len(reference)),
            reference,
            color=_REFERENCE,
            linewidth=3.0,
            alpha=0.45,
            label="reference",
        )
        axes.plot(
            range(len(candidate)), candidate, color=_CANDIDATE, linewidth=1.3, label="candidate"
        )
        _mark_steps(axes, first_step, None)
        axes.set_xlabel("step")
        axes.set_ylabel("training loss")
        axes.legend(loc="upper right", frameon=False)
        return _svg(figure)


def deviation_svg(
    curves: dict[str, Any], first_step: int | None = None, first_outside: int | None = None
) -> str | None:
    """|candidate - reference| loss per step on a log axis, against the numerics band.

    None when no step has a positive finite deviation: there is nothing a log axis can show.
    """
    deviation = _positive(curves.get("deviation", []))
    band_max = _positive(curves.get("band_max", []))
    bound = _positive(curves.get("band_threshold", []))
    if all(math.isnan(v) for v in deviation + band_max + bound):
        return None
    with _style_context():
        figure = _figure(top=0.83)  # room above the axes for the legend
        axes = figure.add_subplot()
        axes.set_yscale("log")
        if any(math.isfinite(v) for v in bound):
            axes.step(
                range(len(bound)),
                bound,
                where="mid",
                color=_BOUND,
                linestyle="--",
                linewidth=1.2,
                label="band bound (per window)",
            )
        if any(math.isfinite(v) for v in band_max):
            axes.plot(
                range(len(band_max)),
                band_max,
                color=_BAND,
                linewidth=1.0,
                label="largest band member",
            )
        if any(math.isfinite(v) for v in deviation):
            axes.plot(
                range(len(deviation)),
                deviation,
                color=_CANDIDATE,
                linewidth=1.4,
                marker=".",
                markersize=3,
                label="candidate",
            )
        _mark_steps(axes, first_step, first_outside)
        axes.set_xlim(left=0)
        axes.set_xlabel("step")
        axes.set_ylabel("|loss - reference loss|")
        # Above the axes: a deviation curve can run anywhere inside them.
        figure.legend(loc="upper center", ncols=3, frameon=False)
        return _svg(figure)


def group_curve_svg(bands: dict[str, dict[str, list[float]]], scalar: str) -> str:
    """Each group's runs of one logged scalar as a band: median line, min-max shading."""
    with _style_context():
        figure = _figure()
        axes = figure.add_subplot()
        for colour, (name, band) in zip(_GROUPS, bands.items()):
            steps = band["steps"]
            axes.fill_between(
                steps,
                _finite(band["low"]),
                _finite(band["high"]),
                color=colour,
                alpha=0.2,
                linewidth=0,
            )
            axes.plot(
                steps,
                _finite(band["median"]),
                color=colour,
                linewidth=1.3,
                label=f"{name}: median, min-max shaded",
            )
        axes.set_xlabel("step")
        axes.set_ylabel(scalar)
        axes.legend(loc="upper right", frameon=False)
        return _svg(figure)


def group_finals_svg(values: dict[str, list[float]], metric: str) -> str:
    """One point per run of a final metric, each group in its own column, with its mean."""
    with _style_context():
        figure = _figure()
        axes = figure.add_subplot()
        for column, (colour, (_name, points)) in enumerate(zip(_GROUPS, values.items())):
            # A fixed, evenly spread horizontal offset: the same runs draw the same picture.
            spread = [column + 0.25 * ((i + 0.5) / len(points) - 0.5) for i in range(len(points))]
            axes.scatter(spread, points, color=colour, s=18, zorder=3)
            mean = sum(points) / len(points)
            axes.hlines(mean, column - 0.2, column + 0.2, color=colour, linewidth=2)
        axes.set_xticks(range(len(values)), list(values))
        axes.set_xlim(-0.6, len(values) - 0.4)
        axes.set_ylabel(metric)
        return _svg(figure)
