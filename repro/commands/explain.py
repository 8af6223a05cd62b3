"""The command line of ``repro explain`` and its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro.explain.explain import Explanation
    from repro.report.blocks import Block, Tone

# Exit codes: 0 the cause is known (confirmed by reruns, named from the settings, or there
# is no difference), 1 nothing this machine can change explains it, 3 not settled here
# (out of runs, or the other machine must run the command shown), 130 interrupted.
EXIT_NOT_EXPLAINED, EXIT_UNSETTLED, EXIT_INTERRUPTED = 1, 3, 130


def add_explain(sub: Any, command: Any) -> None:
    p = command(
        sub, "explain", "prove the cause: rerun here with the other run's settings, knob by knob"
    )
    p.add_argument(
        "other", metavar="OTHER", help="a run folder (or baseline folder) from the other machine"
    )
    p.add_argument("--here", metavar="RUN", help="a run of this machine (default: run one now)")
    p.add_argument("--max-runs", type=int, default=8, help="reruns at most (8)")
    p.add_argument("--runs-dir", help="where the reruns go (default: $REPRO_HOME/runs or ./runs)")
    p.add_argument("--json", action="store_true", help="print the explanation as JSON")
    p.add_argument("--md", metavar="FILE", help="also write it as Markdown")
    p.add_argument("--html", metavar="FILE", help="also write it as a self-contained HTML page")
    p.set_defaults(handler=cmd_explain)


def exit_code(result: Explanation) -> int:
    if result.interrupted:
        return EXIT_INTERRUPTED
    search = result.search
    if search is None:
        if result.causes or not result.knobs:
            return 0
        return EXIT_UNSETTLED if result.untried else EXIT_NOT_EXPLAINED
    if search.outcome == "confirmed":
        return 0
    if search.outcome == "not explained":
        return EXIT_UNSETTLED if result.untried else EXIT_NOT_EXPLAINED
    return EXIT_UNSETTLED


def blocks(result: Explanation) -> list[Block]:
    from repro.report.blocks import Commands, Item, Items, Text

    out: list[Block] = [Text(result.conclusion, strong=True)]
    if result.knobs:
        out.append(Items(tuple(
            Item(f"{k.name}: {k.here} here, {k.other} there", tag="cannot be tried here" if k.cannot else "knob",
                 tone="muted" if k.cannot else None, details=(k.cannot,) if k.cannot else ())
            for k in result.knobs), title="Knobs (this machine -> the other)"))  # fmt: skip
    if result.search is not None:
        out.append(Items(tuple(
            Item(f"{', '.join(t.knobs) or 'no knob'}: {t.detail}", tag="identical" if t.identical else "differs",
                 tone="good" if t.identical else "muted")
            for t in result.search.trials), title="Reruns", numbered=True))  # fmt: skip
    seconds = [r["seconds"] for r in result.runs]
    if seconds:
        out.append(
            Text(
                f"{len(seconds)} runs here, {sum(seconds) / len(seconds):.1f} s each on average.",
                tone="muted",
            )
        )
    if result.beyond:
        out.append(Text("No knob changes: " + "; ".join(result.beyond), tone="muted"))
    if result.other_machine:
        out.append(Commands((("on the other machine", result.other_machine),)))
    return out


def cmd_explain(args: argparse.Namespace) -> int:
    from repro.explain.explain import explain
    from repro.report.emit import emit_blocks
    from repro.runs.store import default_runs_dir

    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    result = explain(args.other, args.here, runs_dir=runs_dir, max_runs=args.max_runs)
    code = exit_code(result)
    title = f"repro explain: {result.other} from {result.here}"
    tone: Tone = "good" if code == 0 else "warn"
    data = {"exit_code": code, **result.to_dict()}
    emit_blocks(args, title, tone, result.conclusion, blocks(result), data)
    return code
