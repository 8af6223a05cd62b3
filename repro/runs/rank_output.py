"""What a rank leaves on disk as it goes, for the parent to read when it dies without a word.

A rank that native code aborts (NCCL's watchdog after a collective timeout: SIGABRT) writes
no error file and no record. What survives is what was already on disk:

- ``rank{N}.log``: the rank's standard error, Python's and native code's alike (the
  watchdog's log line), captured when the launcher names a folder in ``RANK_LOG_DIR_ENV``;
- ``progress-rank{N}``: the last step the rank finished, rewritten in place after each step
  (one ``pwrite``: no rename, no flush to disk, microseconds a step).

Neither imports torch.
"""

from __future__ import annotations

import errno
import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

EXIT_NO_SPACE = errno.ENOSPC
"""A rank's exit status when its run folder's disk is full (nothing else can be written)."""
_NEARLY_FULL = 1 << 20  # bytes: below this a disk counts as full (torch.save's error has no errno)

RANK_LOG_DIR_ENV = "REPRO_RANK_LOG_DIR"
"""Set by ``repro.runs.runner`` for its ranks: the folder their ``rank{N}.log`` go to."""


def rank_log(folder: Path, rank: int) -> Path:
    return folder / f"rank{rank}.log"


def progress_file(run_dir: Path, rank: int) -> Path:
    return run_dir / f"progress-rank{rank}"


def capture_output(rank: int) -> TextIO:
    """Send this process's standard error (file descriptor 2, so native code's too) to its
    ``rank{N}.log``, and return a stream on the terminal for rank 0's progress line.

    Without ``RANK_LOG_DIR_ENV`` (a direct torchrun) nothing moves: the terminal keeps all.
    """
    folder = os.environ.get(RANK_LOG_DIR_ENV)
    if not folder:
        return sys.stderr
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    log = os.open(rank_log(Path(folder), rank), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    return terminal


class Progress:
    """``progress-rank{N}`` of one run: the last finished step, as decimal digits."""

    def __init__(self, run_dir: Path, rank: int) -> None:
        self.path = progress_file(run_dir, rank)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def finished(self, step: int) -> None:
        if self._fd is not None:
            # Steps only grow, so the new digits always cover the old ones.
            os.pwrite(self._fd, f"{step}\n".encode(), 0)

    def close(self, *, remove: bool) -> None:
        """Close the file; ``remove`` when the run ended in a way its own files say."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove:
            self.path.unlink(missing_ok=True)


def last_finished_step(run_dir: Path, rank: int) -> int | None:
    """The step ``progress-rank{N}`` holds; None when the rank finished none (or left no file)."""
    try:
        text = progress_file(run_dir, rank).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def out_of_space(folder: Path, exc: BaseException) -> bool:
    """Whether ``exc`` came from a full disk under ``folder``: an ENOSPC or EDQUOT in its
    chain, or (torch.save reports a full disk as a bare RuntimeError) a disk with next to
    nothing left."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        return shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        return False
