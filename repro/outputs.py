"""Where a command will write, checked before anything trains; and what a failed write says.

A read-only runs folder, ``REPRO_HOME`` naming a file, or an unwritable ``--junit`` found
after a 40-second training wastes the training and, worse, used to end in a traceback and
exit 1 -- DRIFT's code, which a CI gate reads as a verdict. Every output a command was given
is probed by creating (and removing) a file beside it; a write that still fails later is
one sentence naming the path and the error.
"""

from __future__ import annotations

import argparse
import errno
import os
import tempfile
from pathlib import Path

from repro.errors import UserError

REPORT_OPTIONS = ("md", "html", "junit", "out")
"""Options naming a file a command writes."""


def describe(exc: OSError) -> str:
    """``/x/report.md: Read-only file system (EROFS)``."""
    name = errno.errorcode.get(exc.errno or 0, "")
    where = exc.filename if exc.filename is not None else "a file"
    reason = (exc.strerror or str(exc)).lower()
    return f"{reason} writing {where}" + (f" ({name})" if name else "")


def probe_folder(folder: Path, what: str) -> None:
    """Check a file can be created in ``folder``, or, where it does not exist yet, that the
    nearest folder above it can take the folders to be made. Nothing is left behind."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} {folder}: {existing} is a file, not a folder; pick a folder.")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".repro-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(
            f"{what} {folder} cannot be written ({describe(exc)}); pass a folder you can write to."
        ) from None


def check_outputs(args: argparse.Namespace, runs_dir: Path | None) -> None:
    """Every path this command will write: its report files and, when it trains, its runs
    folder. Bad input (exit 2), before anything runs."""
    for option in REPORT_OPTIONS:
        value = getattr(args, option, None)
        if not value:
            continue
        path = Path(value)
        if path.is_dir():
            raise UserError(f"--{option} {path} is a folder; name a file to write.")
        if not path.parent.is_dir():
            raise UserError(
                f"--{option} {path}: its folder {path.parent} does not exist; create it or "
                "choose another path."
            )
        probe_folder(path.parent, f"--{option}'s folder")
    if runs_dir is not None:
        probe_folder(runs_dir, "the runs folder")
