"""The command line of ``repro probe FILE.py:FUNCTION`` and its report.

Exit codes are the verdicts': 0 (IDENTICAL) when every repeat of the step was
bit-identical, 4 (NONDETERMINISTIC) when one differed; 2 for a factory that cannot be
loaded, 4 (FAILED) for a step that raises.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro.probing.probe import ProbeResult
    from repro.report.blocks import Block

_DEFAULT_REPEATS, _DEFAULT_THREADS = 20, 2  # repro.probing.probe's (kept free of torch here)


def add_probe(sub: Any, command: Any) -> None:
    p = command(sub, "probe", "find the first nondeterministic module of your own training step")
    p.add_argument(
        "factory",
        metavar="FILE.py:FUNCTION",
        help="a function returning (model, batch[, loss_fn[, optimizer]])",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=_DEFAULT_REPEATS,
        help=f"runs of the step per setting ({_DEFAULT_REPEATS})",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=_DEFAULT_THREADS,
        help=f"torch threads while probing ({_DEFAULT_THREADS}: thread races need two)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--md", metavar="FILE", help="also write it as Markdown")
    p.add_argument("--html", metavar="FILE", help="also write it as a self-contained HTML page")
    p.set_defaults(handler=cmd_probe)


def blocks(result: ProbeResult) -> list[Block]:
    from repro.report.blocks import Item, Items, Text

    out: list[Block] = [Text(result.conclusion, strong=True)]
    first = result.first
    if first is not None:
        out.append(Items((Item(
            f"{first.where}: {first.point.what}", tag=first.point.phase, tone="bad",
            details=(first.sentence(), f"first seen in repeat {first.repeat} of {result.plain.repeats}")),),
            title="First difference (execution order)"))  # fmt: skip
    if result.flagged:
        out.append(Items(tuple(
            Item(f"{f.op}" + (f" in {f.module or 'the model'}" if f.module else ""), tag=f.phase, tone="warn")
            for f in result.flagged),
            title="Ops torch flags as nondeterministic (use_deterministic_algorithms warn_only)"))  # fmt: skip
    if result.fixes:
        out.append(Items(tuple(
            Item(t.describe(), tag="fixes it" if t.repeatable else "does not", tone="good" if t.repeatable else "muted")
            for t in result.fixes), title="Settings tried", numbered=True))  # fmt: skip
    if result.generators:
        out.append(Text("Generators the modules hold: " + ", ".join(result.generators) +
                        " (seed them from your seed and save their state with checkpoints).", tone="muted"))  # fmt: skip
    out.append(
        Text(
            f"One traced step took {result.step_seconds * 1000:.1f} ms (median of "
            f"{len(result.plain.seconds)}).",
            tone="muted",
        )
    )
    return out


def cmd_probe(args: argparse.Namespace) -> int:
    from repro.errors import RunFailed, UserError
    from repro.runs.factory import build

    if args.repeats < 2:
        raise UserError(f"--repeats {args.repeats}: at least 2 runs are needed to compare.")
    if args.threads < 1:
        raise UserError(f"--threads {args.threads} must be at least 1.")
    made = build(args.factory)
    from repro.probing.probe import probe
    from repro.report.blocks import VERDICT_TONES
    from repro.report.emit import emit_blocks

    try:
        result = probe(
            made.model, made.batch, made.loss_fn, made.optimizer,
            repeats=args.repeats, threads=args.threads,
        )  # fmt: skip
    except Exception as exc:  # the user's code raised: a FAILED step, said in one line
        raise RunFailed(
            f"the training step from {args.factory} raised {type(exc).__name__}: {exc}"
        ) from exc
    verdict = result.verdict
    title = f"repro probe {args.factory}: {verdict}"
    tone = VERDICT_TONES[verdict]
    data = {"exit_code": verdict.exit_code, **result.to_dict()}
    emit_blocks(args, title, tone, result.conclusion, blocks(result), data)
    return verdict.exit_code
