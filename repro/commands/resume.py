"""``repro run --stop-at K`` and ``repro run --resume RUN_DIR [--weights-only]``.

``add_resume_options`` adds the options to ``repro run`` and wraps its handler: without
them ``repro run`` is unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repro.errors import EXIT_OK, RunFailed, UserError

Handler = Callable[[argparse.Namespace], int]


def add_resume_options(
    p: argparse.ArgumentParser,
    profile: Callable[[argparse.Namespace], str],
    runs_dir: Callable[[argparse.Namespace], Path],
) -> None:
    p.add_argument(
        "--stop-at",
        type=int,
        metavar="K",
        help="stop after step K and write the full training state (status STOPPED)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped run to the end, in a new run folder",
    )
    p.add_argument(
        "--weights-only",
        action="store_true",
        help="with --resume: restore the weights alone, as a model.state_dict() checkpoint "
        "would, and measure what each lost piece costs (reruns in the run's pieces/ folder)",
    )
    plain: Handler = p.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        if args.weights_only and not args.resume:
            raise UserError("--weights-only goes with --resume RUN_DIR.")
        if args.resume is not None:
            if args.stop_at is not None or args.profile or args.set:
                raise UserError(
                    "--resume takes the stopped run's own settings: drop --stop-at, --profile "
                    "and --set."
                )
            return _resume(args, runs_dir(args))
        if args.stop_at is not None:
            return _stop(args, profile(args), runs_dir(args))
        return plain(args)

    p.set_defaults(handler=handler)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"repo": args.repo, "quiet": args.quiet}


def _stop(args: argparse.Namespace, profile: str, runs_dir: Path) -> int:
    from repro.runs.resumes import prepare_stop
    from repro.runs.runner import launch

    entry = prepare_stop(profile, args.set, args.stop_at, runs_dir=runs_dir, **_options(args))
    print(f"repro: run {entry.run_dir}", file=sys.stderr)
    (outcome,) = launch([entry], verbose=args.verbose)
    if outcome.status != "STOPPED":
        raise RunFailed(outcome.reason or outcome.status, run_dir=str(outcome.run_dir))
    print(f"{outcome.run_dir}  STOPPED after step {args.stop_at}")
    print(f"repro: resume it with `repro run --resume {outcome.run_dir}`", file=sys.stderr)
    return EXIT_OK


def _resume(args: argparse.Namespace, runs_dir: Path) -> int:
    from repro.runs.resumes import (
        PIECES,
        PIECES_DIR,
        measure_pieces,
        prepare_resume,
        stopped_run,
        variant_restores,
    )
    from repro.runs.runner import launch

    source = stopped_run(args.resume)
    restore = () if args.weights_only else PIECES
    entry = prepare_resume(source, restore, runs_dir=runs_dir, **_options(args))
    print(f"repro: run {entry.run_dir} (resuming {source.path})", file=sys.stderr)
    entries, variants = [entry], {}
    if args.weights_only:
        pieces_dir = Path(entry.run_dir) / PIECES_DIR
        for name, pieces in variant_restores(entry.settings).items():
            rerun = prepare_resume(source, pieces, runs_dir=pieces_dir, repo=args.repo, quiet=True)
            entries.append(rerun)
            variants[name] = Path(rerun.run_dir)
    outcome, *_ = launch(entries, verbose=args.verbose)
    if (
        outcome.status not in ("COMPLETE", "FAILED")
        or not Path(outcome.run_dir, "record.json").exists()
    ):
        raise RunFailed(outcome.reason or outcome.status, run_dir=str(outcome.run_dir))
    if variants:
        from repro.judge.resumes import lost_pieces

        doc = measure_pieces(Path(entry.run_dir), variants, int(source.status["step"]) + 1)
        for line in lost_pieces(doc):
            print(f"  {line}")
    print(f"{outcome.run_dir}  {outcome.status}  resumed from {source.path}")
    if not outcome.ok:
        raise RunFailed(outcome.reason or outcome.status, run_dir=str(outcome.run_dir))
    return EXIT_OK
