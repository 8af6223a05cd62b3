"""Options every training command shares: the profile, the overrides, where runs go."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def runs_dir(args: argparse.Namespace) -> Path:
    from repro.runs.store import default_runs_dir

    return Path(args.runs_dir) if args.runs_dir else default_runs_dir()


def profile_name(args: argparse.Namespace) -> str:
    if args.profile:
        return str(args.profile)
    from repro.profile import default_profile_name

    name = default_profile_name()
    print(f"repro: using the {name} profile (pass --profile to choose)", file=sys.stderr)
    return name


def common_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile", help="smoke, quick (CPU default), full (GPU default) or a profile .yaml"
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile field (repeatable); the run becomes non-reference",
    )
    p.add_argument("--runs-dir", help="where run folders go (default: $REPRO_HOME/runs or ./runs)")
    p.add_argument(
        "--repo", help="git repository whose state is recorded (default: the current folder)"
    )
    p.add_argument("--quiet", action="store_true", help="no per-step progress")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show the launcher's own output (torchrun's log and traceback; always in launcher.log)",
    )
