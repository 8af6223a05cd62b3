"""A tracked run that a framework's hooks open and close, where ``repro.track`` has a ``with``.

A framework calls its callback's start hook and, on success, its end hook; on an exception
Lightning calls ``on_exception``, but the Hugging Face ``Trainer`` calls nothing. A run
still open when the process ends is therefore closed at exit: FAILED with the uncaught
exception that ended the process (seen by a chained ``sys.excepthook``), or with "ended
before the training did" when none was raised.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from repro.tracking import TrackedRun

_open_runs: list[FrameworkRun] = []
_uncaught: list[BaseException] = []  # the exception ending the process, once one has
_hooks_installed = threading.Lock()
_installed = False


class EndedEarly(RuntimeError):
    """The process ended while the framework's training was still running."""


class FrameworkRun(TrackedRun):
    """``TrackedRun`` with the rank the framework knows, and optionally the framework's own
    way of telling every rank the folder rank 0 created (Lightning's ``broadcast``: all
    ranks are alive at the start hook, so the collective cannot strand one)."""

    def __init__(
        self,
        config: dict[str, Any],
        *,
        seed: int | None,
        runs_dir: str | Path,
        flush_every: int,
        rank: int,
        world_size: int,
        share_name: Callable[[str | None], str] | None = None,
    ) -> None:
        if flush_every < 1:
            raise ValueError(f"flush_every={flush_every} must be at least 1")
        super().__init__(config, seed, Path(runs_dir), flush_every, None)
        self.rank, self.world_size = rank, world_size
        self._share_name = share_name
        self.is_open = False

    def _folder(self) -> Path:
        if self._share_name is None:
            return super()._folder()  # the launch's store names the folder
        from repro.manifest.git_info import head_sha
        from repro.runs.store import create_unique_run_dir

        name = None
        if self.rank == 0:
            name = create_unique_run_dir(self.runs_dir, head_sha(self.repo)).name
        return self.runs_dir / self._share_name(name)

    def start(self) -> None:
        _install_exit_hooks()
        self.__enter__()
        self.is_open = True
        _open_runs.append(self)

    def end(self, error: BaseException | None = None) -> None:
        """COMPLETE without an error; FAILED (INTERRUPTED for Ctrl-C) with one. Once."""
        if not self.is_open:
            return
        self.is_open = False
        if self in _open_runs:
            _open_runs.remove(self)
        tb: TracebackType | None = error.__traceback__ if error is not None else None
        self.__exit__(type(error) if error is not None else None, error, tb)


def _install_exit_hooks() -> None:
    global _installed
    with _hooks_installed:
        if _installed:
            return
        _installed = True
        previous = sys.excepthook

        def remember(kind: type[BaseException], error: BaseException, tb: Any) -> None:
            _uncaught.append(error)
            previous(kind, error, tb)

        sys.excepthook = remember
        atexit.register(_close_open_runs)


def _close_open_runs() -> None:
    for run in list(_open_runs):
        error = _uncaught[-1] if _uncaught else None
        run.end(error or EndedEarly("the process ended before the training's end hook ran"))
