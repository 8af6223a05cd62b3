"""The command line of ``repro export-check``: load the factory, check, report.

    repro export-check models/tiny.py:build --formats export,onnx --junit export.xml

The logic lives in ``repro.export``; this module parses, calls and renders. The manifest
of the environment that ran the check goes into ``--json`` and beside every report file
(``<report>.manifest.yaml``), so a result can be read against the machine that made it.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from repro import strict_json


def add_export_check(sub: Any, command: Any) -> None:
    p = command(
        sub, "export-check", "does the exported model (torch.export, ONNX, TorchScript) compute what eager does?"
    )  # fmt: skip
    p.add_argument(
        "factory", metavar="FACTORY",
        help="file.py:function returning (model, example_inputs[, [more input sets]]), the model in eval mode",
    )  # fmt: skip
    p.add_argument(
        "--formats", default="export,onnx,torchscript",
        help="comma-separated: export, onnx, torchscript (default: all three)",
    )  # fmt: skip
    p.add_argument("--checkpoint", metavar="FILE", help="the model's weights must be this file's")
    p.add_argument(
        "--members", type=int, default=16, metavar="K",
        help="weight-nudged eager runs that calibrate the tolerance (default 16, at least 8)",
    )  # fmt: skip
    p.add_argument(
        "--alpha", type=float, default=0.01, help="false-alarm rate per format (default 0.01)"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--md", metavar="FILE", help="also write it as Markdown")
    p.add_argument("--html", metavar="FILE", help="also write it as a self-contained HTML page")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per format)")
    p.set_defaults(handler=cmd_export_check)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    from repro.errors import UserError
    from repro.export.tolerance import MIN_MEMBERS

    if args.members < MIN_MEMBERS:
        raise UserError(f"--members {args.members} is too few; give at least {MIN_MEMBERS}.")
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha {args.alpha} is not a rate; give a number between 0 and 1.")
    return {
        "formats": [f.strip() for f in args.formats.split(",") if f.strip()],
        "checkpoint": Path(args.checkpoint) if args.checkpoint else None,
        "members": args.members,
        "alpha": args.alpha,
    }


def cmd_export_check(args: argparse.Namespace) -> int:
    from repro import atomic
    from repro.export.check import check_subject
    from repro.export.subject import subject_from
    from repro.manifest import capture_manifest, write_manifest
    from repro.report import export_render as render
    from repro.report.terminal import render_terminal_blocks
    from repro.runs.factory import call

    options = _options(args)
    subject = subject_from(call(args.factory), args.factory)
    result = check_subject(subject, **options)
    result.manifest = capture_manifest()
    code = render.exit_code(result)
    title = f"repro export-check {args.factory}"
    blocks = render.export_blocks(result)
    if args.json:
        print(strict_json.dumps({"exit_code": code, **result.to_dict()}, indent=1, default=str))
    else:
        print(render_terminal_blocks(render.headline(result), render.tone(result), blocks), end="")
    written = []
    if args.md:
        from repro.report.markdown import render_markdown_blocks

        atomic.write_text(
            Path(args.md), render_markdown_blocks(title, render.headline(result), blocks)
        )
        written.append(Path(args.md))
    if args.html:
        from repro.report.html import render_html_blocks

        html = render_html_blocks(title, render.headline(result), render.tone(result), blocks)
        atomic.write_text(Path(args.html), html)
        written.append(Path(args.html))
    if args.junit:
        render.write_export_junit(Path(args.junit), result)
        written.append(Path(args.junit))
    for path in written:
        write_manifest(path.with_suffix(".manifest.yaml"), result.manifest)
    return code
