"""``repro selftest``: the verdicts proved on this machine (the engine: ``repro.baselines.selftest``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from repro import strict_json
from repro.errors import EXIT_OK
from repro.verdict import Verdict


def add_selftest(sub: Any, command: Any) -> None:
    p = command(
        sub, "selftest", "prove the verdicts on this machine under controlled perturbations"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke profile, shared launches (a few minutes on 2 cores)",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--md", metavar="FILE", help="also write the table as Markdown")
    p.set_defaults(handler=cmd_selftest)


def cmd_selftest(args: argparse.Namespace) -> int:
    from repro import atomic
    from repro.baselines.selftest import render_table, selftest, to_dict

    results = selftest(quick=args.quick)
    if args.json:
        print(strict_json.dumps(to_dict(results), indent=1))
    else:
        print(render_table(results))
    if args.md:
        table = render_table(results)
        atomic.write_text(Path(args.md), f"# repro selftest\n\n```\n{table}\n```\n")
    failed = [r for r in results if not r.passed]
    skipped = [r for r in results if r.comparison is None]
    if not args.json:
        passed = len(results) - len(failed) - len(skipped)
        print(f"\n{passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    return EXIT_OK if not failed else Verdict.FAILED.exit_code
