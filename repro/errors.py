"""Exceptions that carry what a user must be told and the exit code they end in.

Only ``repro.cli.main`` exits: it prints ``message`` and returns ``exit_code``
of whatever ``ReproError`` reaches it. Verdict exit codes live on
``repro.verdict.Verdict``; the ones here are for outcomes that are not verdicts.
"""

from __future__ import annotations

from typing import Any

from repro.verdict import Verdict

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_CLOSED_PIPE = 141  # stdout's reader went away (`| head`): 128 + SIGPIPE


class ReproError(Exception):
    """Base of the errors a user sees as one line, mapped to an exit code by the error itself."""

    exit_code = 1
    prefix = "error"

    @property
    def message(self) -> str:
        return f"repro: {self.prefix}: {self}"


class UserError(ReproError):
    """Bad input or usage: one sentence naming the file or value and what to do (exit 2)."""

    exit_code = EXIT_USAGE


class RunFailed(ReproError):
    """A training run crashed, hung, produced NaN/Inf or desynchronised (the FAILED exit code)."""

    exit_code = Verdict.FAILED.exit_code
    prefix = "FAILED"

    def __init__(self, reason: str, *, run_dir: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.run_dir = run_dir

    @property
    def message(self) -> str:
        where = f" ({self.run_dir})" if self.run_dir else ""
        return f"repro: FAILED: {self.reason}{where}"


class Unfit(ReproError):
    """A preflight check failed: the machine is not fit to be judged (the UNFIT exit code)."""

    exit_code = Verdict.UNFIT.exit_code
    prefix = "UNFIT"

    def __init__(self, preflight: Any, strict: bool = False) -> None:
        super().__init__(preflight.summary(strict))
        self.preflight, self.strict = preflight, strict


_STOPPED_BY = ["Ctrl-C"]  # what stopped this process, once something has


def stop_on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (a CI job's timeout, ``kill``) stops a command as Ctrl-C does, and says so."""
    _STOPPED_BY.append("SIGTERM")
    raise KeyboardInterrupt


def stopped_by() -> str:
    """``Ctrl-C`` or ``SIGTERM``: what a run marked INTERRUPTED was stopped by."""
    return _STOPPED_BY[-1]


class RunInterrupted(ReproError):
    """The user pressed Ctrl-C while a run was in progress (exit 130)."""

    exit_code = EXIT_INTERRUPTED

    @property
    def message(self) -> str:
        return "repro: interrupted"


class ReportNotWritten(ReproError):
    """A report file failed after the verdict was printed: the verdict stands on screen, but
    the file a CI gate reads is missing, so the command ends FAILED's code, never a verdict's."""

    exit_code = Verdict.FAILED.exit_code
    prefix = "FAILED"
