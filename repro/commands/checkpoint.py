"""``repro checkpoint inspect PATH``: what a checkpoint holds and what a resume from it
cannot restore, with what to add to the saved dict (``repro.checkpoint.layouts``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from repro import strict_json
from repro.errors import EXIT_OK


def add_checkpoint(sub: Any, command: Any) -> None:
    p = command(sub, "checkpoint", "inspect a training checkpoint (reads files only)")
    inner = p.add_subparsers(dest="checkpoint_command", required=True, metavar="ACTION")
    inspect = command(
        inner, "inspect", "what a checkpoint holds and what a resume from it cannot restore"
    )
    inspect.description = (
        "PATH: a .pt/.pth/.ckpt file (a state_dict, a dict of pieces, a "
        "Lightning checkpoint) or a Hugging Face checkpoint-N folder."
    )
    inspect.add_argument("path", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print the inspection as JSON")
    inspect.set_defaults(handler=cmd_inspect)


def cmd_inspect(args: argparse.Namespace) -> int:
    from repro.checkpoint.layouts import inspect_checkpoint

    found = inspect_checkpoint(Path(args.path))
    if args.json:
        print(strict_json.dumps(found.to_dict(), indent=1))
    else:
        print(render(found.to_dict()))
    return EXIT_OK


def render(found: dict[str, Any]) -> str:
    """The inspection for people: what is in it, then what a resume would lose."""
    from repro.checkpoint.layouts import WORDS

    lines = [f"{found['path']}: {found['layout']}", "holds:"]
    lines += [f"  {WORDS[piece]:18} {what}" for piece, what in found["holds"].items()]
    if found["other"]:
        lines.append(f"  {'other keys':18} {', '.join(found['other'])}")
    missing = found["missing"]
    if not missing:
        lines.append("a resume from it can restore every piece of the training state.")
        return "\n".join(lines)
    lines.append("a resume from it cannot restore (add to the saved dict):")
    lines += [f"  {WORDS[piece]:18} {add}" for piece, add in missing.items()]
    return "\n".join(lines)
