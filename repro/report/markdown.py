"""The compare report as GitHub-flavoured Markdown, for an issue or a pull request.

Plots are left to the HTML report; folded detail goes into ``<details>`` elements.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from repro.report.blocks import (
    Block,
    Commands,
    Folded,
    Item,
    Items,
    Plot,
    Report,
    Table,
    Text,
    code_spans,
)
from repro.report.overview import overview, worst_verdict

# Characters that would start markup; an underscore inside a word never does (GFM), and a
# ">" only at the start of a line, which no rendered text has.
_SPECIAL = re.compile(r"([\\*<\[\]|]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def _inline(text: str, in_table: bool = False) -> str:
    out = []
    for part, is_code in code_spans(text):
        if is_code:
            # A pipe ends a table cell even inside a code span.
            out.append(f"`{part.replace('|', chr(92) + '|') if in_table else part}`")
        else:
            out.append(_SPECIAL.sub(r"\\\1", part))
    return "".join(out)


def _text(block: Text) -> list[str]:
    text = _inline(block.text)
    return [f"**{text}**" if block.strong else text, ""]


def _item(item: Item, number: int | None) -> list[str]:
    lead = f"{number}." if number is not None else "-"
    tag = f"**{_inline(item.tag)}** " if item.tag else ""
    lines = [f"{lead} {tag}{_inline(item.text)}"]
    pad = " " * (len(lead) + 1)  # nested lists align under the parent's text
    lines += [f"{pad}- {_inline(detail)}" for detail in item.details]
    return lines


def _items(block: Items) -> list[str]:
    lines = [f"**{_inline(block.title)}**", ""] if block.title else []
    for n, item in enumerate(block.items, start=1):
        lines += _item(item, n if block.numbered else None)
    return [*lines, ""]


def _table(block: Table) -> list[str]:
    def row(cells: tuple[str, ...]) -> str:
        return "| " + " | ".join(_inline(c, in_table=True) for c in cells) + " |"

    rule = "|" + "|".join("---:" if right else "---" for right in block.numeric) + "|"
    return [row(block.columns), rule, *(row(r) for r in block.rows), ""]


def _commands(block: Commands) -> list[str]:
    lines = ["```sh"]
    for label, command in block.commands:
        lines += [f"# {label}", command]
    return [*lines, "```", ""]


def _block(block: Block) -> list[str]:
    if isinstance(block, Text):
        return _text(block)
    if isinstance(block, Items):
        return _items(block)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Folded):
        inner = [line for b in block.blocks for line in _block(b)]
        summary = html.escape(block.summary.replace("`", ""))
        return [f"<details><summary>{summary}</summary>", "", *inner, "</details>", ""]
    if isinstance(block, Commands):
        return _commands(block)
    if isinstance(block, Plot):
        return []  # drawn only in the HTML report
    raise TypeError(f"unknown report block {block!r}")


def _report_lines(report: Report, level: int) -> list[str]:
    h = "#" * level
    lines = [f"{h} repro compare: {_inline(report.title)}", ""]
    for i, section in enumerate(report.sections):
        lines += [f"{h}# {section.title}", ""]
        if i == 0:
            lines += [f"**{report.verdict}**: {_inline(report.summary)}", ""]
            lines += [f"*{_inline(report.meaning)}*", ""]
        for block in section.blocks:
            lines += _block(block)
    return lines


def render(reports: Sequence[Report]) -> str:
    """Finished reports as Markdown, sections as headings in reading order; several open
    with an overview table, each report one heading level down."""
    if len(reports) == 1:
        return "\n".join(_report_lines(reports[0], 1)).rstrip() + "\n"
    headline, table = overview(reports)
    worst = worst_verdict(reports)
    lines = [f"# repro compare: {worst}", "", _inline(headline), "", *_table(table)]
    for report in reports:
        lines += _report_lines(report, 2)
    return "\n".join(lines).rstrip() + "\n"


def render_markdown_blocks(title: str, headline: str, blocks: list[Block]) -> str:
    """A headline and blocks with no verdict of their own (``repro explain``)."""
    lines = [f"# {_inline(title)}", "", f"**{_inline(headline)}**", ""]
    for block in blocks:
        lines += _block(block)
    return "\n".join(lines).rstrip() + "\n"
