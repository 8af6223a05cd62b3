"""The compare report as terminal text: a coloured summary that fits ``width`` columns.

Plots and folded detail are left to the HTML report; everything else is here.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from repro.report.blocks import (
    Block,
    Commands,
    Folded,
    Item,
    Items,
    Plot,
    Report,
    Section,
    Table,
    Text,
    Tone,
)
from repro.report.overview import overview, worst_verdict

_CODES = {"good": "32", "bad": "31", "warn": "33", "muted": "2"}  # SGR: green, red, yellow, dim
_BOLD = "1"
_INDENT = "  "


def color_wanted() -> bool:
    """Colour only for a person at a terminal who has not asked for none (no-color.org)."""
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty()) and not os.environ.get("NO_COLOR")


@dataclass(frozen=True)
class _Style:
    color: bool
    width: int

    def paint(self, text: str, tone: Tone = None, bold: bool = False) -> str:
        codes = [_CODES[tone]] if tone else []
        if bold:
            codes.insert(0, _BOLD)
        if not self.color or not codes or not text:
            return text
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m"

    def wrap(self, text: str, indent: str = "", hang: str | None = None) -> list[str]:
        # Code spans are marked with backticks for Markdown and HTML; plain text drops them.
        return textwrap.wrap(
            text.replace("`", ""),
            width=self.width,
            initial_indent=indent,
            subsequent_indent=indent if hang is None else hang,
            break_on_hyphens=False,
        ) or [indent.rstrip()]


def _text(block: Text, style: _Style) -> list[str]:
    return [style.paint(line, block.tone, block.strong) for line in style.wrap(block.text)]


def _item(item: Item, style: _Style, indent: str, number: int | None) -> list[str]:
    lead = f"{number}. " if number is not None else ""
    tag = f"[{item.tag}] " if item.tag else ""
    prefix = indent + lead + tag
    lines = style.wrap(item.text, prefix, indent + " " * len(lead + tag))
    if tag and lines[0].startswith(prefix):
        lines[0] = indent + lead + style.paint(tag, item.tone, bold=True) + lines[0][len(prefix) :]
    detail_indent = indent + " " * (len(lead) + 2)
    for detail in item.details:
        lines += style.wrap(detail, detail_indent, detail_indent + "  ")
    return lines


def _items(block: Items, style: _Style) -> list[str]:
    lines, indent = [], _INDENT
    if block.title:
        lines += [style.paint(line, bold=True) for line in style.wrap(block.title, _INDENT)]
        indent = _INDENT * 2
    for n, item in enumerate(block.items, start=1):
        lines += _item(item, style, indent, n if block.numbered else None)
    return lines


def _fit(widths: list[int], limit: int) -> list[int]:
    """Shrink the widest columns until the row fits ``limit`` columns."""
    widths = list(widths)
    gaps = 2 * (len(widths) - 1) + len(_INDENT)
    while sum(widths) + gaps > limit and max(widths) > 4:
        widths[widths.index(max(widths))] -= 1
    return widths


def _cell(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def _table(block: Table, style: _Style) -> list[str]:
    every = [block.columns, *block.rows]
    natural = [max(len(row[i]) for row in every) for i in range(len(block.columns))]
    widths = _fit(natural, style.width)

    def line(row: tuple[str, ...]) -> str:
        cells = (_cell(t, w, r) for t, w, r in zip(row, widths, block.numeric, strict=True))
        return (_INDENT + "  ".join(cells)).rstrip()

    lines = [style.paint(line(block.columns), bold=True)]
    toned = zip(block.rows, block.tones, strict=True)
    lines += [style.paint(line(row), tone) for row, tone in toned]
    return lines


def _command(command: str, width: int) -> list[str]:
    """Wrap at spaces with shell line continuations, so a copied command still runs."""
    indent, lines, current = _INDENT * 2, [], ""
    for word in command.split(" "):
        candidate = f"{current} {word}" if current else word
        if current and len(indent) + len(candidate) + 2 > width:
            lines.append(f"{indent}{current} \\")
            current = word
        else:
            current = candidate
    lines.append(indent + current)
    # A single word longer than the line (a long path) is broken; it cannot be helped.
    return [part for line in lines for part in textwrap.wrap(line, width, drop_whitespace=False)]


def _commands(block: Commands, style: _Style) -> list[str]:
    lines = []
    for label, command in block.commands:
        lines.append(style.paint(f"{_INDENT}{label}:", "muted"))
        lines += _command(command, style.width)
    return lines


def _block(block: Block, style: _Style) -> list[str]:
    if isinstance(block, Text):
        return _text(block, style)
    if isinstance(block, Items):
        return _items(block, style)
    if isinstance(block, Table):
        return _table(block, style)
    if isinstance(block, Folded):
        return [style.paint(line, "muted") for line in style.wrap(block.summary, _INDENT)]
    if isinstance(block, Commands):
        return _commands(block, style)
    if isinstance(block, Plot):
        return []  # drawn only in the HTML report
    raise TypeError(f"unknown report block {block!r}")


def _heading(title: str, style: _Style) -> str:
    rule = "─" * max(3, style.width - len(title) - 4)
    return style.paint(f"── {title} {rule}"[: style.width], bold=True)


def _section(section: Section, style: _Style) -> list[str]:
    lines = ["", _heading(section.title, style)]
    for block in section.blocks:
        lines += _block(block, style)
    return lines


def _report_lines(report: Report, style: _Style) -> list[str]:
    head = style.wrap(f"{report.verdict}  {report.title}")
    lines = [style.paint(line, report.tone, bold=True) for line in head]
    lines += _text(Text(report.summary, report.tone), style)
    verdict, *rest = report.sections
    for block in verdict.blocks:  # the verdict's section has the verdict line as its heading
        lines += _block(block, style)
    for section in rest:
        lines += _section(section, style)
    return lines


def render(reports: Sequence[Report], *, color: bool | None = None, width: int = 80) -> str:
    """Finished reports (a comparison's, a group comparison's) as text for a terminal;
    several open with an overview line per candidate, then each full report. ``color``
    None means only when stdout is a tty."""
    style = _Style(color_wanted() if color is None else color, width)
    if len(reports) == 1:
        return "\n".join(_report_lines(reports[0], style)) + "\n"
    headline, table = overview(reports)
    worst = worst_verdict(reports)
    # The worst verdict opens the output, as the single verdict does for one comparison.
    lines = [style.paint(line, bold=True) for line in style.wrap(f"{worst}  {headline}")]
    lines += _table(table, style)
    for report in reports:
        lines += ["", style.paint("━" * width, bold=True)]
        lines += _report_lines(report, style)
    return "\n".join(lines) + "\n"


def render_terminal_blocks(
    headline: str, tone: Tone, blocks: list[Block], *, color: bool | None = None, width: int = 80
) -> str:
    """A headline and blocks with no verdict of their own (``repro preflight``)."""
    style = _Style(color_wanted() if color is None else color, width)
    lines = [style.paint(line, tone, bold=True) for line in style.wrap(headline)]
    for block in blocks:
        lines += _block(block, style)
    return "\n".join(lines) + "\n"
