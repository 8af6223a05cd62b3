"""The blocks a report is made of, and how numbers are written in them.

``render.build_report`` arranges them; the terminal, Markdown and HTML renderers each
draw every kind of block. Nothing here knows what a comparison is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from repro.verdict import Verdict

Tone = Literal["good", "bad", "warn", "muted"] | None

# How each verdict looks; what it means and which is worse live on the Verdict type.
VERDICT_TONES: dict[Verdict, Tone] = {
    Verdict.UNFIT: "bad",
    Verdict.FAILED: "bad",
    Verdict.NO_RESULT: "bad",
    Verdict.NONDETERMINISTIC: "bad",
    Verdict.NO_BASELINE: "warn",
    Verdict.DRIFT: "bad",
    Verdict.DIFFERENT: "bad",
    Verdict.UNRESOLVED: "warn",
    Verdict.EQUIVALENT: "good",
    Verdict.SAME: "good",
    Verdict.IDENTICAL: "good",
}


@dataclass(frozen=True)
class Text:
    """A paragraph."""

    text: str
    tone: Tone = None
    strong: bool = False


@dataclass(frozen=True)
class Item:
    """One entry of a list: ``[tag] text``, with indented detail lines below it."""

    text: str
    tag: str | None = None
    tone: Tone = None
    details: tuple[str, ...] = ()


@dataclass(frozen=True)
class Items:
    items: tuple[Item, ...]
    title: str | None = None
    numbered: bool = False


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    tones: tuple[Tone, ...]  # one per row
    numeric: tuple[bool, ...]  # one per column: right-aligned


@dataclass(frozen=True)
class Folded:
    """Detail a short report leaves out: the terminal prints only ``summary``."""

    summary: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Plot:
    """A figure drawn from the report's curves; only the HTML report draws it. ``subject``
    names the scalar or metric of a group comparison's figure."""

    kind: Literal["loss", "deviation", "group_curve", "group_finals"]
    caption: str
    subject: str = ""


@dataclass(frozen=True)
class Commands:
    commands: tuple[tuple[str, str], ...]  # (label, shell command)


Block = Text | Items | Table | Folded | Plot | Commands


@dataclass(frozen=True)
class Section:
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Report:
    verdict: Verdict
    tone: Tone
    meaning: str
    title: str  # "<candidate> vs <reference>"
    summary: str
    sections: tuple[Section, ...]  # in SECTION_TITLES order
    curves: dict[str, Any]
    first_step: int | None  # where the runs parted, marked on the plots
    first_outside: int | None  # first step outside the numerics band
    # The runs it is about, by name: a report on several comparisons lists each candidate.
    candidate: str = ""
    reference: str | None = None


# -- numbers --------------------------------------------------------------------------------


def fmt_value(x: float) -> str:
    """A loss or metric: enough digits to see two close runs differ."""
    return f"{x:.6g}" if math.isfinite(x) else str(x)


def fmt_small(x: float) -> str:
    """A deviation or bound; a bound below zero is float noise of its floor term."""
    if not math.isfinite(x):
        return str(x)
    return "0" if x <= 0 else f"{x:.2e}"


def fmt_interval(low: float, high: float) -> str:
    return f"{low:.4f}–{high:.4f}"


def code_spans(text: str) -> list[tuple[str, bool]]:
    """Split ``text`` at backticks into (part, is_code); an unpaired backtick stays text."""
    parts = text.split("`")
    if len(parts) % 2 == 0:
        parts[-2:] = [parts[-2] + "`" + parts[-1]]
    return [(part, i % 2 == 1) for i, part in enumerate(parts) if part]
