"""The fleet matrix for people (terminal, Markdown, HTML) and machines (JSON, JUnit, the
node exporter's textfile format). Content is built once as blocks; each renderer draws it."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from repro.fleet.matrix import Matrix, Row
from repro.fleet.node import FACTS, FIT
from repro.report.blocks import VERDICT_TONES, Block, Table, Text, Tone
from repro.report.html import render_html_blocks
from repro.report.markdown import render_markdown_blocks
from repro.report.terminal import render_terminal_blocks
from repro.verdict import Verdict

TITLE = "repro fleet matrix"


def tone_of(verdict: str) -> Tone:
    return "good" if verdict == FIT else VERDICT_TONES[Verdict(verdict)]


def _short(key: str) -> str:
    """A column head for an environment-key fact: its last two parts."""
    return ".".join(key.split(".")[-2:])


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if len(value) <= 4 else f"{len(value)} items"
    if isinstance(value, dict):
        return "n/a" if "unavailable" in value else "…"
    return "absent" if value is None else str(value)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _row(row: Row, differing: list[str]) -> tuple[str, ...]:
    r = row.result
    if r is None:
        return (row.node, row.verdict, "-", *["-"] * len(FACTS), "-", "-", *["-"] * len(differing))
    facts = tuple(r.facts.get(f, "n/a") for f in FACTS)
    digest = r.record_digest or "-"
    diff = tuple(_cell(r.env_key.get(k)) for k in differing)
    return (row.node, row.verdict, row.env_class, *facts, digest, _ratio(r.worst_ratio), *diff)


def blocks(matrix: Matrix) -> list[Block]:
    columns: tuple[str, ...] = ("node", "verdict", "class", *FACTS, "record", "worst ratio")
    columns += tuple(_short(k) for k in matrix.differing)
    table = Table(
        columns=columns,
        rows=tuple(_row(r, matrix.differing) for r in matrix.rows),
        tones=tuple(tone_of(r.verdict) for r in matrix.rows),
        numeric=tuple(c == "worst ratio" for c in columns),
    )
    classes = ", ".join(f"{label}: {n} node(s)" for label, n in matrix.classes)
    out: list[Block] = [table, Text(f"Environment classes, largest first: {classes or 'none'}.")]
    if matrix.differing:
        out.append(Text("Facts that differ across the fleet: " + ", ".join(matrix.differing)))
    findings = [f"{r.node}: {r.peer}" for r in matrix.rows if r.peer]
    findings += [
        f"{r.node}: {r.result.summary}"
        for r in matrix.rows
        if r.result is not None and r.exit_code != 0 and not r.peer
    ]
    findings += [f"{r.node}: wrote no result" for r in matrix.rows if r.result is None]
    if findings:
        out.append(Text("Findings: " + "; ".join(findings), tone="bad"))
    return out


def render_terminal(matrix: Matrix, *, color: bool | None = None) -> str:
    parts = blocks(matrix)
    table = parts[0]
    assert isinstance(table, Table)
    # As wide as the table's widest cells: a matrix is read across, never cut to 80 columns.
    width = sum(max(len(c) for c in column) + 2 for column in zip(table.columns, *table.rows))
    return render_terminal_blocks(
        matrix.headline, tone_of(matrix.verdict), parts, color=color, width=max(80, width)
    )


def render_markdown(matrix: Matrix) -> str:
    return render_markdown_blocks(TITLE, matrix.headline, blocks(matrix))


def render_html(matrix: Matrix) -> str:
    page = render_html_blocks(TITLE, matrix.headline, tone_of(matrix.verdict), blocks(matrix))
    # The verdict as an element of its own, as every repro HTML report has it.
    marker = f'<div id="verdict" class="verdict {tone_of(matrix.verdict)}">{matrix.verdict}</div>'
    return page.replace("</h1>", "</h1>" + marker, 1)


def to_dict(matrix: Matrix) -> dict[str, Any]:
    return {
        "verdict": matrix.verdict,
        "exit_code": matrix.exit_code,
        "classes": [{"class": label, "nodes": n} for label, n in matrix.classes],
        "differing": matrix.differing,
        "rows": [
            {
                "node": r.node,
                "verdict": r.verdict,
                "exit_code": r.exit_code,
                "class": r.env_class,
                "peer": r.peer,
                "outlier": r.outlier,
                "result": r.result.to_dict() if r.result else None,
            }
            for r in matrix.rows
        ],
    }


def render_junit(matrix: Matrix) -> str:
    """One testcase per node; a failure exactly when the node's exit code is not 0."""
    suite = ET.Element(
        "testsuite",
        {
            "name": "repro fleet",
            "tests": str(len(matrix.rows)),
            "failures": str(sum(r.exit_code != 0 for r in matrix.rows)),
        },
    )
    for r in matrix.rows:
        case = ET.SubElement(suite, "testcase", {"classname": "repro.fleet", "name": r.node})
        if r.exit_code != 0:
            why = r.peer or (r.result.summary if r.result else "the node wrote no result")
            failure = ET.SubElement(
                case, "failure", {"message": f"{r.verdict} (exit {r.exit_code})"}
            )
            failure.text = why
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def render_prom(matrix: Matrix) -> str:
    """The node exporter's textfile format: each node's verdict as a labelled 1."""
    lines = [
        "# HELP repro_fleet_verdict The verdict repro fleet matrix gives each node (1 = current).",
        "# TYPE repro_fleet_verdict gauge",
    ]
    # Node names are restricted to [A-Za-z0-9._-] (repro.fleet.node): no label escaping needed.
    lines += [
        f'repro_fleet_verdict{{node="{r.node}",verdict="{r.verdict}"}} 1' for r in matrix.rows
    ]
    lines += [
        "# HELP repro_fleet_exit_code The exit code of each node's verdict.",
        "# TYPE repro_fleet_exit_code gauge",
    ]
    lines += [f'repro_fleet_exit_code{{node="{r.node}"}} {r.exit_code}' for r in matrix.rows]
    return "\n".join(lines) + "\n"
