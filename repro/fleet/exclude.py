"""Keeping bad nodes out with the engine's own mechanism: a Slurm drain with a reason, or a
Kubernetes label and ``NoSchedule`` taint. Printed always, run only when asked.

Acted on: UNFIT, FAILED, NONDETERMINISTIC, DRIFT and peer outliers. Never on NO_BASELINE
(nothing judged the node) or EQUIVALENT (inside every band), nor on NO_RESULT (the node
may only have been busy; the engine marks nodes that are down), nor on a class whose
peers disagree with no majority (nothing says which node is the bad one).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass

from repro.fleet.matrix import Matrix, Row
from repro.verdict import Verdict

ACTED_ON = {
    Verdict.UNFIT.value,
    Verdict.FAILED.value,
    Verdict.NONDETERMINISTIC.value,
    Verdict.DRIFT.value,
}
LABEL = "repro.dev/verdict"
_REASON_CHARS = 120  # a drain reason is read in `sinfo -R`: one short line


@dataclass(frozen=True)
class Action:
    node: str
    verdict: str
    reason: str
    commands: tuple[tuple[str, ...], ...]


def _acted_on(row: Row) -> bool:
    if row.result is None or (row.peer and not row.outlier):
        return False
    return row.outlier or row.verdict in ACTED_ON


def reason(row: Row) -> str:
    """``repro: DRIFT <first cause>``, one line, short enough for ``sinfo -R``."""
    why = row.peer or (row.result.first_cause if row.result else None) or ""
    if not why and row.result is not None:
        why = row.result.summary
    text = " ".join(f"repro: {row.verdict} {why}".split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


def commands_for(row: Row, engine: str) -> tuple[tuple[str, ...], ...]:
    if engine == "slurm":
        return (
            ("scontrol", "update", f"nodename={row.node}", "state=drain", f"reason={reason(row)}"),
        )
    value = f"{LABEL}={row.verdict}"
    return (
        ("kubectl", "label", "node", row.node, value, "--overwrite"),
        ("kubectl", "taint", "node", row.node, f"{value}:NoSchedule", "--overwrite"),
    )


def plan(matrix: Matrix, engine: str) -> tuple[list[Action], list[str]]:
    """(what to do to each bad node, why each other non-passing node is left alone)."""
    actions, left = [], []
    for row in matrix.rows:
        if _acted_on(row):
            actions.append(Action(row.node, row.verdict, reason(row), commands_for(row, engine)))
        elif row.exit_code != 0:
            why = (
                "its peers disagree with no majority"
                if row.peer
                else f"{row.verdict} is never acted on"
            )
            left.append(f"{row.node} ({row.verdict}): left alone, {why}")
    return actions, left


def apply(actions: list[Action]) -> list[str]:
    """Run every command; the failures, one sentence each (none: all applied)."""
    failures = []
    for action in actions:
        for argv in action.commands:
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                failures.append(f"{shlex.join(argv)} could not run: {exc}")
                continue
            if done.returncode != 0:
                said = (done.stderr or done.stdout).strip().splitlines()
                failures.append(
                    f"{shlex.join(argv)} exited {done.returncode}: {said[-1] if said else 'no output'}"
                )
    return failures
