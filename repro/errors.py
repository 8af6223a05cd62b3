"""Exceptions that carry what a user must be told, and the exit codes they map to."""

from __future__ import annotations

# Exit codes, documented in the README. Only ``repro.cli.main`` exits.
EXIT_OK = 0
EXIT_DRIFT = 1
EXIT_USAGE = 2
EXIT_NO_BASELINE = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Bad input or usage: one sentence naming the file or value and what to do (exit 2)."""

    exit_code = EXIT_USAGE


class RunFailed(Exception):
    """A training run crashed, hung, produced NaN/Inf or desynchronised (exit 4)."""

    exit_code = EXIT_FAILED

    def __init__(self, reason: str, *, run_dir: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.run_dir = run_dir


class RunInterrupted(Exception):
    """The user pressed Ctrl-C while a run was in progress (exit 130)."""

    exit_code = EXIT_INTERRUPTED
