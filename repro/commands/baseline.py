"""``repro baseline record`` and ``repro baseline list``."""

from __future__ import annotations

import argparse
from typing import Any

from repro.baselines.band_sizes import DEFAULT_NUMERICS, DEFAULT_SEEDS, MIN_MEMBERS
from repro.commands.options import profile_name, runs_dir
from repro.errors import EXIT_OK


def add_baseline(sub: Any, command: Any) -> None:
    p = command(sub, "baseline", "record or list baselines")
    bsub = p.add_subparsers(dest="baseline_command", required=True, metavar="ACTION")
    r = command(bsub, "record", "record a baseline: primary run, numerics band, seed band")
    r.add_argument("--name", help="default: named by profile and hardware key")
    r.add_argument("--profile")
    r.add_argument(
        "--numerics",
        type=int,
        default=DEFAULT_NUMERICS,
        metavar="K1",
        help=f"numerics-band members (default {DEFAULT_NUMERICS}, at least {MIN_MEMBERS})",
    )
    r.add_argument(
        "--seeds",
        type=int,
        default=DEFAULT_SEEDS,
        metavar="K2",
        help=f"master seeds in the seed band (default {DEFAULT_SEEDS}, at least {MIN_MEMBERS})",
    )
    r.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="record for another training or precision than the profile's (repeatable)",
    )
    r.add_argument("--force", action="store_true", help="replace an existing baseline")
    r.add_argument("--baseline-dir")
    r.add_argument("--runs-dir")
    r.add_argument("--repo")
    r.add_argument("--quiet", action="store_true", help="no per-step progress")
    r.set_defaults(handler=cmd_record)
    ls = command(bsub, "list", "list baselines and whether they match the current workload")
    ls.add_argument("--baseline-dir")
    ls.set_defaults(handler=cmd_list)


def cmd_record(args: argparse.Namespace) -> int:
    from repro.baselines.baseline import write_dir
    from repro.baselines.recording import record_baseline

    profile = profile_name(args)
    path, summary = record_baseline(
        profile,
        name=args.name,
        numerics=args.numerics,
        seeds=args.seeds,
        root=write_dir(args.baseline_dir),
        runs_dir=runs_dir(args),
        force=args.force,
        repo=args.repo,
        quiet=args.quiet,
        sets=args.set,
    )
    replaced, added = summary["replaced"], summary.get("added_for_tails", 0)
    print(
        f"recorded baseline {path} ({len(replaced)} of {args.numerics} members failed leave-one-out "
        f"and were replaced{': ' + ', '.join(replaced) if replaced else ''}"
        + (
            f"; {added} members were added because the first {args.numerics} looked "
            "heavier-tailed than normal (see `repro baseline list`)"
            if added
            else ""
        )
        + ")"
    )
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from repro.baselines.baseline import search_dirs, survey_baselines

    for b in survey_baselines(search_dirs(args.baseline_dir)):
        why = f"  ({b.problem})" if b.problem else ""
        print(f"{b.name:40s} {b.profile:6s} {b.workload_hash}  {b.state}  {b.path}{why}")
        if b.tails:  # the band's tail diagnostics, recorded with it
            print(f"{'':40s} {b.tails}")
    return EXIT_OK
