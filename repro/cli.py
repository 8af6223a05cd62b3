"""Command line: parse, call, map the result to an exit code. Only ``run`` exits."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

from repro import __version__
from repro.commands.baseline import add_baseline
from repro.commands.checkpoint import add_checkpoint
from repro.commands.explain import add_explain
from repro.commands.options import common_run_options as _common_run_options
from repro.commands.options import profile_name as _profile
from repro.commands.options import runs_dir as _runs_dir
from repro.commands.preflight import add_preflight, health_options
from repro.commands.preflight import show as show_preflight
from repro.commands.probe import add_probe
from repro.commands.resume import add_resume_options
from repro.commands.selftest import add_selftest
from repro.errors import (
    EXIT_CLOSED_PIPE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ReproError,
    RunFailed,
    Unfit,
    UserError,
    stop_on_sigterm,
)
from repro.outputs import check_outputs, describe
from repro.report.emit import emit, silence_stdout
from repro.verdict import Verdict, exit_codes_help

EXIT_CODES_HELP = exit_codes_help(
    {
        EXIT_USAGE: "bad input or usage",
        EXIT_INTERRUPTED: "interrupted",
        EXIT_CLOSED_PIPE: "stdout closed early (`| head`), except a report's: it keeps its verdict's code",
    }
)


# -- handlers ---------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from repro.runs.prepare import prepare_run
    from repro.runs.runner import launch

    entry = prepare_run(
        _profile(args), args.set, runs_dir=_runs_dir(args), repo=args.repo, quiet=args.quiet
    )
    print(f"repro: run {entry.run_dir}", file=sys.stderr)
    (outcome,) = launch([entry], verbose=args.verbose)
    if not outcome.ok:
        raise RunFailed(outcome.reason or outcome.status, run_dir=str(outcome.run_dir))
    from repro.runs.runview import RunView

    final = RunView.from_run_dir(outcome.run_dir).final or {}
    if args.tensorboard:
        from repro.runs.tensorboard import write_record_events

        print(
            f"repro: TensorBoard events in {write_record_events(outcome.run_dir)}", file=sys.stderr
        )
    print(
        f"{outcome.run_dir}  COMPLETE  eval_loss {final.get('eval_loss', float('nan')):.6f}  "
        f"eval_accuracy {final.get('eval_accuracy', float('nan')):.4f}"
    )
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    from repro.commands.verify import VerifyOptions, verify, verify_per_device

    options = VerifyOptions.from_args(args)
    try:
        results = verify_per_device(options) if args.per_device else [verify(options)]
    except Unfit as unfit:  # nothing trained: the checks are the report
        return show_preflight(unfit.preflight, args)
    emit([r.judged for r in results], args)
    for r in results:
        if r.recorded is not None:
            print(
                f"repro: recorded a new baseline at {r.recorded}; keep it (a cache or an "
                "artifact) for the next run. This run's verdict stands.",
                file=sys.stderr,
            )
    return Verdict.worst([r.comparison.verdict for r in results]).exit_code


def _cmd_compare(args: argparse.Namespace) -> int:
    if args.group:
        return _compare_groups(args)
    if args.metric or args.margin or args.resolution or args.unpaired:
        raise UserError(
            "--metric, --margin, --resolution and --unpaired apply to groups: `repro compare --group A RUN... --group B RUN...`."
        )
    from repro.commands.compare import compare_runs

    judged = compare_runs(args.runs, baseline_name=args.baseline, baseline_dir=args.baseline_dir)
    emit(judged, args)
    return Verdict.worst([j.comparison.verdict for j in judged]).exit_code


def _compare_groups(args: argparse.Namespace) -> int:
    from repro.judge.group_inputs import parse_margin, parse_resolution
    from repro.judge.groups import compare_groups
    from repro.report.group_render import build_group_report
    from repro.runs.group_runs import load_group_run

    if args.runs:
        raise UserError(
            f"{args.runs[0]} belongs to no group: with --group, name every run after a group "
            "(`repro compare --group A RUN... --group B RUN...`)."
        )
    groups = [(name, [load_group_run(r) for r in runs]) for name, *runs in args.group]
    comparison = compare_groups(
        groups,
        metrics=args.metric,
        margins=[parse_margin(m) for m in args.margin or []],
        resolutions=dict(parse_resolution(r) for r in args.resolution or []),
        alpha=args.alpha,
        unpaired=args.unpaired,
    )
    emit([comparison], args, group_report=build_group_report(comparison))
    return comparison.verdict.exit_code


# -- parser -----------------------------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="repro",
        description="Verify that this machine reproduces the reference PyTorch training numbers.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"repro {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from repro.commands import export_check, fleet, manifest

    # One form for every subcommand: add_<name>(sub, command), command making the parser.
    for add in (
        manifest.add_manifest,
        _add_run,
        _add_verify,
        _add_compare,
        add_selftest,
        add_baseline,
        add_preflight,
        add_explain,
        fleet.add_fleet,
        export_check.add_export_check,
        add_probe,
        add_checkpoint,
    ):
        add(sub, _command)
    return parser


def _command(sub: Any, name: str, help: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--md", metavar="FILE", help="also write a Markdown report")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report")


def _add_run(sub: Any, command: Any) -> None:
    p = command(sub, "run", "run the reference training once")
    _common_run_options(p)
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write the record as TensorBoard events (run folder/tensorboard)",
    )
    p.set_defaults(handler=_cmd_run)
    add_resume_options(p, _profile, _runs_dir)


def _add_verify(sub: Any, command: Any) -> None:
    p = command(sub, "verify", "run the reference and judge it against a baseline")
    _common_run_options(p)
    p.add_argument(
        "--baseline", help="baseline name (default: best match on profile, workload, environment)"
    )
    p.add_argument(
        "--baseline-dir",
        help="baseline folder (default: $REPRO_HOME/baselines or ./manifests/baselines, then the shipped ones)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="run N times; differing repeats are NONDETERMINISTIC"
    )
    p.add_argument(
        "--per-device", action="store_true", help="run the full profile on each GPU and report each"
    )
    p.add_argument(
        "--record-missing",
        action="store_true",
        help="record a baseline when none matches (still exits 3)",
    )
    p.add_argument(
        "--resume-at",
        type=int,
        metavar="K",
        help="also stop a run after step K, resume it with its full state, and check it "
        "equals the run that never stopped (one exact row)",
    )
    p.add_argument(
        "--seed-runs",
        metavar="N",
        help="also run N >= 3 new seeds in the same launch and compare them with the "
        "baseline's stored seed runs at its alpha (the band is never changed)",
    )
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per check)")
    p.add_argument("--no-preflight", action="store_true", help="skip the health checks")
    health_options(p)
    _report_options(p)
    p.set_defaults(handler=_cmd_verify)


def _add_compare(sub: Any, command: Any) -> None:
    p = command(sub, "compare", "explain why runs disagree (reads files only)")
    p.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run directories or baseline names; each is compared with the first",
    )
    p.add_argument("--baseline", help="judge against this baseline's bands")
    p.add_argument("--baseline-dir")
    g = p.add_argument_group(
        "groups of runs", "is a setting different, the same, or unresolved? (twice --group)"
    )
    g.add_argument(
        "--group",
        nargs="+",
        action="append",
        metavar=("NAME", "RUN"),
        help="a group's name and its runs (reference, tracked or TensorBoard folders)",
    )
    g.add_argument(
        "--metric",
        action="append",
        help="a final metric, or SCALAR@STEP (default: every numeric final metric the runs share)",
    )
    g.add_argument(
        "--margin",
        action="append",
        help="for SAME: 0.002 (the metric's units), 0.3pp (points of a share), 0.5%% (of the mean of both groups); METRIC=... for one metric",
    )
    g.add_argument(
        "--resolution",
        action="append",
        metavar="METRIC=STEP",
        help="the smallest step a metric shows, e.g. eval_accuracy=1/50 (default: the grid its values sit on)",
    )
    g.add_argument(
        "--alpha", type=float, default=0.05, help="false-DIFFERENT rate over all metrics (0.05)"
    )
    g.add_argument("--unpaired", action="store_true", help="do not pair runs by seed")
    _report_options(p)
    p.set_defaults(handler=_cmd_compare)


def _check_counts(args: argparse.Namespace) -> None:
    """A count no machine can have is bad input, not a machine unfit to be judged."""
    expect = getattr(args, "expect_gpus", None)
    if expect is not None and expect < 0:
        raise UserError(
            f"--expect-gpus {expect} is negative; pass the number of GPUs this machine should "
            "have (0 or more)."
        )


def main(argv: Sequence[str] | None = None) -> int:
    # A shell that starts a job in the background may leave SIGINT ignored; repro
    # promises that Ctrl-C (or a CI runner's SIGINT) stops every rank, so take it back.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # A CI job timeout sends SIGTERM: stop the ranks the same way as on Ctrl-C.
        signal.signal(signal.SIGTERM, stop_on_sigterm)
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        _check_counts(args)
        check_outputs(args, _runs_dir(args) if hasattr(args, "runs_dir") else None)
        return int(args.handler(args))
    except ReproError as exc:
        print(exc.message, file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        # What the up-front checks could not foresee (a disk that filled, a folder removed
        # meanwhile): one sentence, never DRIFT's exit code. Once a run folder exists the
        # run has begun, so it is a FAILED run.
        from repro.runs.store import run_dirs_created

        if run_dirs_created():
            print(f"repro: FAILED: {describe(exc)}", file=sys.stderr)
            return Verdict.FAILED.exit_code
        print(f"repro: error: {describe(exc)}; check the path and try again.", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("repro: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output other than a report (which finishes its files and keeps its verdict's
        # code) cut short by a closed pipe: 128 + SIGPIPE, as a shell reports it.
        silence_stdout()
        return EXIT_CLOSED_PIPE


def run() -> NoReturn:
    """The ``repro`` program: ``main`` on the command line, then the process ends at once.

    Nothing is left to tidy when ``main`` returns (runs written, launches reaped, temporary
    folders removed), and the interpreter's teardown of what a command imported (torch and
    SciPy, about a tenth of a second) would only delay the exit code."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: main said so already
            stream.flush()
    os._exit(code)
