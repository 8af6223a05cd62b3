"""Print and write the report formats a command asked for: ``--json`` (one shape whatever
the command), the terminal report, ``--md``, ``--html`` and ``--junit`` files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from repro import atomic, strict_json
from repro.errors import ReportNotWritten
from repro.outputs import describe
from repro.report import html, markdown, terminal
from repro.report.blocks import Report, Tone
from repro.report.junit import write_junit
from repro.report.render import build_reports
from repro.verdict import Verdict


def silence_stdout() -> None:
    """The reader closed the pipe (``repro compare A B | head``): send what is left of
    stdout, including the flush at exit, to /dev/null instead of a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print(text: str) -> None:
    """A report on stdout. A reader that stops early has what it wanted: the files asked
    for are still written and the verdict's exit code stands."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        silence_stdout()


def emit_blocks(
    args: argparse.Namespace,
    title: str,
    tone: Tone,
    conclusion: str,
    blocks: list[Any],
    data: dict[str, Any],
) -> None:
    """A report built of blocks whose first is its conclusion (explain, probe): ``--json``
    prints ``data``, else the terminal report; ``--md`` and ``--html`` files as asked."""
    if getattr(args, "json", False):
        print(strict_json.dumps(data, indent=1, default=str))
    else:
        print(terminal.render_terminal_blocks(title, tone, blocks), end="")
    rest = blocks[1:]  # the conclusion is the headline there
    if getattr(args, "md", None):
        atomic.write_text(Path(args.md), markdown.render_markdown_blocks(title, conclusion, rest))
    if getattr(args, "html", None):
        atomic.write_text(Path(args.html), html.render_html_blocks(title, conclusion, tone, rest))


def emit(judged: list[Any], args: argparse.Namespace, group_report: Report | None = None) -> None:
    """Print and write the report formats a command asked for. ``judged``: each comparison
    with its curves (``repro.judge.curves.Judged``), or, with ``group_report`` (the one
    report of a group comparison), the group comparison alone. The reports are built once,
    here; each renderer takes them finished."""
    drawn = (
        not getattr(args, "json", False) or getattr(args, "md", None) or getattr(args, "html", None)
    )
    if group_report is None:
        results = [j.comparison for j in judged]
        reports = build_reports(judged) if drawn else []
    else:
        results, reports = judged, [group_report]
    if getattr(args, "json", False):
        # One shape whatever the count: the worst verdict and its exit code, then each comparison.
        worst = Verdict.worst([c.verdict for c in results])
        data = {
            "verdict": worst,
            "exit_code": worst.exit_code,
            "comparisons": [c.to_dict() for c in results],
        }
        _print(strict_json.dumps(data, indent=1, default=str))
    else:
        _print(terminal.render(reports))
    try:
        _write_files(reports, results, args)
    except OSError as exc:  # past the up-front check: a disk filled, a folder went away
        raise ReportNotWritten(
            f"{describe(exc)}; the verdict above stands, but that report file was not written"
        ) from None


def _write_files(reports: list[Report], results: list[Any], args: argparse.Namespace) -> None:
    if getattr(args, "md", None):
        atomic.write_text(Path(args.md), markdown.render(reports))
    if getattr(args, "html", None):
        atomic.write_text(Path(args.html), html.render(reports))
    if getattr(args, "junit", None):
        write_junit(Path(args.junit), results)
