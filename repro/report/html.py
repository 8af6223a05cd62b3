"""The compare report as one self-contained HTML file: inline CSS, inline SVG plots.

Nothing is loaded from elsewhere, so the file can be mailed, attached to a CI run, or
opened on an air-gapped machine. The verdict is the element with id ``verdict``; each
plot is a ``figure`` with class ``plot``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from repro.report import plots
from repro.report.blocks import (
    VERDICT_TONES,
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
    code_spans,
)
from repro.report.overview import overview, worst_verdict
from repro.verdict import Verdict

_CSS = """
:root { --good: #1b7f3b; --bad: #c62828; --warn: #a86400; --muted: #6b6b6b; --line: #e3e3e3; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f6f4; color: #1d1d1d;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 4rem; }
article, .overview { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1.25rem 1.5rem; margin-bottom: 1.5rem; }
h1 { font-size: 1.05rem; font-weight: 600; color: var(--muted); margin: 0 0 .25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 .6rem; padding-bottom: .3rem;
  border-bottom: 1px solid var(--line); }
h2.eyebrow { font-size: .8rem; letter-spacing: .08em; text-transform: uppercase;
  color: var(--muted); border: 0; margin: 0; padding: 0; }
h3 { font-size: .95rem; margin: 1rem 0 .3rem; color: #333; }
.verdict { font-size: 2.8rem; font-weight: 800; letter-spacing: .02em; line-height: 1.1;
  margin: .2rem 0 .4rem; }
.summary { font-size: 1.1rem; margin: .2rem 0; }
.meaning { color: var(--muted); margin: 0 0 .8rem; }
.good { color: var(--good); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.muted { color: var(--muted); }
p.bad, p.warn, p.good { font-weight: 500; }
p.warn.strong { border-left: 4px solid var(--warn); background: #fff7e6; padding: .5rem .75rem; }
ul, ol { margin: .3rem 0 .8rem; padding-left: 1.4rem; }
li { margin: .15rem 0; }
ul.details { list-style: none; padding-left: 1rem; color: #333; font-size: .93rem; }
.tag { display: inline-block; min-width: 3.2rem; padding: 0 .4rem; margin-right: .35rem;
  border-radius: 4px; font-size: .78rem; font-weight: 600; text-align: center;
  background: #eee; color: #333; }
.tag.good { background: #e3f3e7; color: var(--good); }
.tag.bad { background: #fde7e7; color: var(--bad); }
.tag.warn { background: #fff1d6; color: var(--warn); }
.tag.muted { background: #f0f0f0; color: var(--muted); }
code, pre { font: .88em/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { background: #f1f1ef; padding: .05rem .25rem; border-radius: 3px; }
pre { background: #1e1e1e; color: #f2f2f2; padding: .6rem .8rem; border-radius: 6px;
  overflow-x: auto; margin: .2rem 0 .8rem; }
pre code { background: none; padding: 0; color: inherit; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: .9rem; }
th, td { padding: .25rem .7rem; border-bottom: 1px solid var(--line); text-align: left; }
th { font-weight: 600; background: #fafafa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { color: var(--bad); font-weight: 500; }
details { margin: .4rem 0 1rem; }
summary { cursor: pointer; color: var(--muted); }
figure.plot { margin: .5rem 0 1.2rem; }
figure.plot svg { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: .88rem; }
dl.commands dt { color: var(--muted); font-size: .88rem; }
dl.commands dd { margin: 0; }
"""


def _inline(text: str) -> str:
    return "".join(
        f"<code>{html.escape(part)}</code>" if is_code else html.escape(part)
        for part, is_code in code_spans(text)
    )


def _classes(*names: str | None) -> str:
    joined = " ".join(n for n in names if n)
    return f' class="{joined}"' if joined else ""


def _text(block: Text) -> str:
    body = f"<strong>{_inline(block.text)}</strong>" if block.strong else _inline(block.text)
    return f"<p{_classes(block.tone, 'strong' if block.strong else None)}>{body}</p>"


def _tag(text: str | None, tone: Tone) -> str:
    return f"<span{_classes('tag', tone)}>{html.escape(text)}</span>" if text else ""


def _item(item: Item) -> str:
    details = "".join(f"<li>{_inline(d)}</li>" for d in item.details)
    sub = f'<ul class="details">{details}</ul>' if details else ""
    return f"<li>{_tag(item.tag, item.tone)}{_inline(item.text)}{sub}</li>"


def _items(block: Items) -> str:
    title = f"<h3>{_inline(block.title)}</h3>" if block.title else ""
    kind = "ol" if block.numbered else "ul"
    return f"{title}<{kind}>{''.join(_item(i) for i in block.items)}</{kind}>"


def _table(block: Table) -> str:
    def cells(row: tuple[str, ...], tag: str) -> str:
        return "".join(
            f"<{tag}{_classes('num' if right else None)}>{_inline(c)}</{tag}>"
            for c, right in zip(row, block.numeric, strict=True)
        )

    rows = zip(block.rows, block.tones, strict=True)
    body = "".join(f"<tr{_classes(tone)}>{cells(row, 'td')}</tr>" for row, tone in rows)
    return (
        f"<table><thead><tr>{cells(block.columns, 'th')}</tr></thead><tbody>{body}</tbody></table>"
    )


def _plot(block: Plot, report: Report) -> str:
    if block.kind == "loss":
        svg: str | None = plots.loss_svg(report.curves, report.first_step)
    elif block.kind == "deviation":
        svg = plots.deviation_svg(report.curves, report.first_step, report.first_outside)
    elif block.kind == "group_curve":
        svg = plots.group_curve_svg(report.curves["scalars"][block.subject], block.subject)
    else:
        svg = plots.group_finals_svg(report.curves["finals"][block.subject], block.subject)
    if svg is None:
        return ""
    caption = html.escape(block.caption)
    # role/aria-label: a screen reader announces the caption instead of the SVG's text soup.
    svg = svg.replace("<svg", f'<svg role="img" aria-label="{caption}"', 1)
    figure = f'<figure class="plot" data-kind="{block.kind}">'
    return f"{figure}{svg}<figcaption>{caption}</figcaption></figure>"


def _commands(block: Commands) -> str:
    rows = "".join(
        f"<dt>{html.escape(label)}</dt><dd><pre><code>{html.escape(command)}</code></pre></dd>"
        for label, command in block.commands
    )
    return f'<dl class="commands">{rows}</dl>'


def _block(block: Block, report: Report) -> str:
    if isinstance(block, Text):
        return _text(block)
    if isinstance(block, Items):
        return _items(block)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Folded):
        inner = "".join(_block(b, report) for b in block.blocks)
        return f"<details><summary>{_inline(block.summary)}</summary>{inner}</details>"
    if isinstance(block, Plot):
        return _plot(block, report)
    if isinstance(block, Commands):
        return _commands(block)
    raise TypeError(f"unknown report block {block!r}")


def _section(section: Section, report: Report) -> str:
    body = "".join(_block(b, report) for b in section.blocks)
    return f"<section><h2>{html.escape(section.title)}</h2>{body}</section>"


def _article(report: Report, verdict_id: str) -> str:
    verdict, *rest = report.sections
    head = (
        f"<h1>repro compare: {html.escape(report.title)}</h1>"
        f'<h2 class="eyebrow">{html.escape(verdict.title)}</h2>'
        f'<div id="{verdict_id}"{_classes("verdict", report.tone)}>{report.verdict}</div>'
        f"<p{_classes('summary', report.tone)}>{_inline(report.summary)}</p>"
        f'<p class="meaning">{_inline(report.meaning)}</p>'
    )
    body = "".join(_block(b, report) for b in verdict.blocks)
    sections = "".join(_section(s, report) for s in rest)
    return f"<article><section>{head}{body}</section>{sections}</article>"


def _document(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def render(reports: Sequence[Report]) -> str:
    """Finished reports as one self-contained HTML document. One report's verdict is the
    element with id ``verdict``; several open with the worst verdict (id ``verdict``) and an
    overview table, then one article per report (verdict ids ``verdict-1``, ...)."""
    if len(reports) == 1:
        report = reports[0]
        return _document(
            f"repro compare: {report.verdict}, {report.title}", _article(report, "verdict")
        )
    headline, table = overview(reports)
    worst = worst_verdict(reports)
    head = (
        '<div class="overview"><h1>repro compare</h1>'
        f'<div id="verdict"{_classes("verdict", VERDICT_TONES[worst])}>{worst}</div>'
        f'<p class="summary">{html.escape(headline)}</p>{_table(table)}</div>'
    )
    articles = "".join(_article(r, f"verdict-{i}") for i, r in enumerate(reports, start=1))
    return _document(f"repro compare: {worst}, {headline}", head + articles)


def render_html_blocks(title: str, headline: str, tone: Tone, blocks: list[Block]) -> str:
    """A headline and blocks with no verdict of their own (``repro explain``); no figures."""
    none = Report(Verdict.IDENTICAL, None, "", title, headline, (), {}, None, None)
    body = "".join(_block(b, none) for b in blocks if not isinstance(b, Plot))
    head = f"<h1>{html.escape(title)}</h1><p{_classes('summary', tone)}>{_inline(headline)}</p>"
    return _document(title, f"<article><section>{head}{body}</section></article>")
