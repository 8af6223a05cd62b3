"""Tracked runs (``repro.track``) read back from their folders: status, metrics, and the
loaded run the judge and the group statistics take."""

from __future__ import annotations

import json
import os
import shlex
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import strict_json
from repro.errors import UserError
from repro.runs.runview import RunView

TRACK_SCHEMA_VERSION = 1
METRICS_FILE = "metrics-rank{rank}.jsonl"


@dataclass(frozen=True)
class Tracked:
    """A tracked run, loaded: its view for the cause ranking and every rank's records."""

    view: RunView
    ranks: list[list[dict[str, Any]]]  # per rank: {"step": k, ...} rows in order
    note: str | None = None  # what the reader of this source must know (float32 logs)
    # The last {"resumed": ...} record: the step, checkpoint, whether it held the full state.
    resumed: dict[str, Any] | None = None

    @property
    def final(self) -> dict[str, Any] | None:
        return self.view.final

    @property
    def fingerprint(self) -> str | None:
        return (self.view.record or {}).get("fingerprint")


def is_tracked(path: Path) -> bool:
    return (path / METRICS_FILE.format(rank=0)).is_file()


def load_tracked(path: Path) -> Tracked:
    import yaml

    try:
        config = yaml.safe_load((path / "config.yaml").read_text())
        manifest = yaml.safe_load((path / "manifest.yaml").read_text())
        status = tracked_status(path)
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(
            f"{path} is not a readable tracked run ({exc}); pass another folder."
        ) from None
    world = int(config.get("world_size", 1))
    ranks, last = [], {}  # the last final, fingerprint and resumed records of rank 0
    for rank in range(world):
        rows = []
        for record in read_metrics(path, rank):
            if "step" in record:
                rows.append(record)
            elif rank == 0:
                last.update(
                    {k: record[k] for k in ("final", "fingerprint", "resumed") if k in record}
                )
        ranks.append(rows)
    final, fingerprint = last.get("final"), last.get("fingerprint")
    settings = {"config": config.get("config", {}), "seed": config.get("seed")}
    command = shlex.join(["python", *config.get("argv", [])])
    described = {**config, "settings": settings, "command": command}
    # A final metric that is not a number (written before run.final() checked its values)
    # still counts for identity but is not shown as a number; the report says so.
    odd = sorted(k for k, v in (final or {}).items() if strict_json.number(v) is None)
    note = f"{path.name}: final {', '.join(odd)} is not a number and is not shown" if odd else None
    record = {"final": final, "fingerprint": fingerprint}
    view = RunView(path.name, str(path), status, described, manifest, record)
    return Tracked(view, ranks, note, last.get("resumed"))


def tracked_status(run_dir: Path) -> dict[str, Any]:
    """The run's status; a RUNNING run whose process is gone (same host) reads as FAILED."""
    import yaml

    status: dict[str, Any] = yaml.safe_load((run_dir / "status.yaml").read_text())
    if status.get("status") != "RUNNING" or status.get("host") != socket.gethostname():
        return status
    pid = int(status.get("pid", 0))
    if pid > 0 and not _alive(pid):
        return {
            **status,
            "status": "FAILED",
            "reason": f"its process ({pid}) ended without a status",
        }
    return status


def read_metrics(run_dir: Path, rank: int = 0) -> Iterator[dict[str, Any]]:
    """The records of one rank's metrics file, after its header line."""
    with open(run_dir / METRICS_FILE.format(rank=rank), encoding="utf-8") as f:
        header = json.loads(next(f))
        if header.get("schema_version") != TRACK_SCHEMA_VERSION:
            raise ValueError(
                f"{f.name}: schema {header.get('schema_version')}, expected {TRACK_SCHEMA_VERSION}"
            )
        for line in f:
            if not line.endswith("\n"):
                return  # a line a killed process left half-written: everything before it stands
            yield json.loads(line)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
