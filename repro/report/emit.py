"""Print and write the report formats a command asked for: ``--json`` (one shape whatever
the command), the terminal report, ``--md``, ``--html`` and ``--junit`` files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro import strict_json
from repro.verdict import Verdict

if TYPE_CHECKING:
    from repro.report.blocks import Report, Tone


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
    from repro import atomic

    if getattr(args, "json", False):
        print(strict_json.dumps(data, indent=1, default=str))
    else:
        from repro.report.terminal import render_terminal_blocks

        print(render_terminal_blocks(title, tone, blocks), end="")
    rest = blocks[1:]  # the conclusion is the headline there
    if getattr(args, "md", None):
        from repro.report.markdown import render_markdown_blocks

        atomic.write_text(Path(args.md), render_markdown_blocks(title, conclusion, rest))
    if getattr(args, "html", None):
        from repro.report.html import render_html_blocks

        atomic.write_text(Path(args.html), render_html_blocks(title, conclusion, tone, rest))


def emit(judged: list[Any], args: argparse.Namespace, group_report: Report | None = None) -> None:
    """Print and write the report formats a command asked for. ``judged``: each comparison
    with its curves (``repro.report.curves.Judged``), or, with ``group_report`` (the one
    report of a group comparison, drawn instead), the group comparison alone."""

    comparisons = [j.comparison for j in judged] if group_report is None else judged

    if getattr(args, "json", False):
        # One shape whatever the count: the worst verdict and its exit code, then each comparison.
        worst = Verdict.worst([c.verdict for c in comparisons])
        data = {
            "verdict": worst,
            "exit_code": worst.exit_code,
            "comparisons": [c.to_dict() for c in comparisons],
        }
        _print(strict_json.dumps(data, indent=1, default=str))
    elif group_report is not None:
        from repro.report.terminal import render_terminal_report

        _print(render_terminal_report(group_report))
    else:
        from repro.report.terminal import render_terminal_many

        _print(render_terminal_many(judged))
    try:
        _write_files(judged, comparisons, args, group_report)
    except OSError as exc:  # past the up-front check: a disk filled, a folder went away
        from repro.errors import ReportNotWritten
        from repro.outputs import describe

        raise ReportNotWritten(
            f"{describe(exc)}; the verdict above stands, but that report file was not written"
        ) from None


def _write_files(
    judged: list[Any],
    comparisons: list[Any],
    args: argparse.Namespace,
    group_report: Report | None,
) -> None:
    from repro import atomic

    if getattr(args, "md", None):
        from repro.report.markdown import render_markdown_many, render_markdown_report

        text = (
            render_markdown_report(group_report) if group_report else render_markdown_many(judged)
        )
        atomic.write_text(Path(args.md), text)
    if getattr(args, "html", None):
        from repro.report.html import render_html_many, render_html_report

        text = render_html_report(group_report) if group_report else render_html_many(judged)
        atomic.write_text(Path(args.html), text)
    if getattr(args, "junit", None):
        from repro.report.junit import write_junit

        write_junit(Path(args.junit), comparisons)
