"""The command line of ``repro preflight``, and what ``repro verify`` shows when it is UNFIT."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repro import strict_json
from repro.verdict import Verdict

if TYPE_CHECKING:
    from repro.preflight.check import Preflight


def health_options(p: argparse.ArgumentParser) -> None:
    """The options ``preflight`` and ``verify`` share."""
    p.add_argument("--strict", action="store_true", help="a preflight warning is UNFIT too")
    p.add_argument("--expect-gpus", type=int, metavar="N", help="fail unless NVML sees N GPUs")


def add_preflight(sub: Any, command: Any) -> None:
    p = command(
        sub, "preflight", "is this machine fit to be judged? (health and collective checks)"
    )
    p.add_argument("--profile", default="quick", help="the ranks and threads to check for (quick)")
    health_options(p)
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per check)")
    p.add_argument("--dcgm", action="store_true", help="also run `dcgmi diag -r 1` (DCGM)")
    p.add_argument("--fault-collective", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_preflight)


def cmd_preflight(args: argparse.Namespace) -> int:
    from repro.preflight.run import run_preflight
    from repro.profile import load_profile

    profile = load_profile(args.profile, {})
    preflight = run_preflight(
        ranks=profile.world_size,
        threads=profile.threads_per_rank,
        device=profile.device,
        expect_gpus=args.expect_gpus,
        dcgm=args.dcgm,
        corrupt_collective=args.fault_collective,
    )
    return show(preflight, args)


def show(preflight: Preflight, args: argparse.Namespace) -> int:
    """Print the checks (``--json``: the verdict shape every command prints), write
    ``--junit``; the exit code: UNFIT's, or 0."""
    strict = bool(getattr(args, "strict", False))
    unfit = bool(preflight.unfit(strict))
    code = Verdict.UNFIT.exit_code if unfit else 0
    if getattr(args, "json", False):
        data: dict[str, Any] = {
            "verdict": Verdict.UNFIT.value if unfit else None,
            "exit_code": code,
            "comparisons": [],
            "preflight": preflight.to_dict(),
        }
        print(strict_json.dumps(data, indent=1, default=str))
    else:
        from repro.report.preflight_render import preflight_blocks
        from repro.report.terminal import render_terminal_blocks

        print(render_terminal_blocks(*preflight_blocks(preflight, strict)), end="")
    if getattr(args, "junit", None):
        from repro.report.preflight_render import write_preflight_junit

        write_preflight_junit(Path(args.junit), preflight, strict)
    return code
