"""Run directories: ids, exclusive creation, atomic writes and validated loading.

A run lives in ``<runs-dir>/<run-id>/``::

    status.yaml      RUNNING before launch, COMPLETE only as the run's last act
    config.yaml      the resolved profile, overrides, argv, workload hash
    manifest.yaml    the environment record (captured by rank 0)
    record.json      the exact record: identical runs give identical bytes
    timings.json     step times and throughput (never part of the exact record)
    checkpoint.pt    weights-only state_dict
    training_state.pt  a STOPPED run's full training state (``repro.reference.resume``)
    resume.json      a resumed run's origin, and what a partial resume lost, measured
    verdict.json     written by ``repro verify``
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import socket
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from repro import atomic
from repro.clock import utc_stamp
from repro.documents import load_document
from repro.errors import UserError
from repro.manifest.schema import load_manifest

RECORD_SCHEMA_VERSION = 1
# record.json: a line per step (the top level and its lists expanded, each step on one line).
RECORD_LINES = 2
STATUS_SCHEMA_VERSION = 1
CONFIG_SCHEMA_VERSION = 1

# STOPPED: ended on purpose after a step (``repro run --stop-at``), never COMPLETE.
STATUSES = ("RUNNING", "COMPLETE", "FAILED", "INTERRUPTED", "STOPPED")

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", text).strip("-")[:32] or "host"


def new_run_id(git_sha: str | None = None, *, host: str | None = None) -> str:
    """``<UTC time>-<host>-<short sha>-<random>``: sortable by time, unique across hosts."""
    stamp = utc_stamp()
    sha = (git_sha or "nogit")[:7]
    return f"{stamp}-{_slug(host or socket.gethostname())}-{sha}-{secrets.token_hex(3)}"


def validate_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise UserError(
            f"run id {run_id!r} is not valid; use letters, digits, '.', '_' and '-' only "
            "(no '/', no '..')."
        )
    return run_id


_created: list[Path] = []  # run folders this process made: from the first, a run has begun


def run_dirs_created() -> bool:
    """Whether this process has made a run folder (a failure after that is a FAILED run)."""
    return bool(_created)


def create_run_dir(runs_dir: Path, run_id: str) -> Path:
    """Create ``runs_dir/run_id`` exclusively; an existing run is never reused."""
    validate_run_id(run_id)
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    path = runs_dir / run_id
    if path.resolve().parent != runs_dir.resolve():
        raise UserError(f"run id {run_id!r} points outside {runs_dir}; choose another id.")
    try:
        path.mkdir()
    except FileExistsError:
        raise UserError(f"run directory {path} already exists; choose another run id.") from None
    _created.append(path)
    return path


def create_unique_run_dir(runs_dir: Path, git_sha: str | None = None) -> Path:
    """A fresh run directory; on the (rare) id collision draw a new random suffix."""
    for _ in range(8):
        try:
            return create_run_dir(runs_dir, new_run_id(git_sha))
        except UserError:
            if not Path(runs_dir).is_dir():
                raise
    raise UserError(f"could not create a unique run directory under {runs_dir}; check it.")


def write_status(run_dir: Path, status: str, **detail: Any) -> None:
    """``status.yaml``, atomically; on a full disk, rewritten in place instead.

    An atomic write needs room for a second copy, which a full disk does not have; the
    existing file's block does. A folder whose run failed for want of space must not read
    RUNNING forever, and a status written in place is still one whole YAML document once
    the write returns.
    """
    assert status in STATUSES, status
    doc = {"schema_version": STATUS_SCHEMA_VERSION, "status": status, **detail}
    path = Path(run_dir) / "status.yaml"
    try:
        atomic.write_yaml(path, doc)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or not path.exists():
            raise
        text = yaml.safe_dump(doc, sort_keys=True, default_flow_style=False).encode()
        with open(path, "r+b") as f:
            f.write(text)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())


@dataclass(frozen=True)
class Run:
    """A run directory read back from disk; files are validated when first used."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @cached_property
    def status(self) -> dict[str, Any]:
        return load_document(
            self.path / "status.yaml",
            kind="run status",
            schema_version=STATUS_SCHEMA_VERSION,
            required=("status",),
        )

    @cached_property
    def config(self) -> dict[str, Any]:
        return load_document(
            self.path / "config.yaml",
            kind="run config",
            schema_version=CONFIG_SCHEMA_VERSION,
            required=("profile", "workload_hash", "settings"),
        )

    @cached_property
    def manifest(self) -> dict[str, Any]:
        return load_manifest(self.path / "manifest.yaml")

    @cached_property
    def record(self) -> dict[str, Any]:
        return load_document(
            self.path / "record.json",
            kind="run record",
            schema_version=RECORD_SCHEMA_VERSION,
            required=("steps", "initial_params", "final", "param_names"),
        )

    @property
    def complete(self) -> bool:
        return bool(self.status["status"] == "COMPLETE")


def open_run(path: Path | str) -> Run:
    """A run directory, or ``UserError`` saying why ``path`` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path} is not a directory; pass a run folder made by `repro run`.")
    if not (path / "status.yaml").is_file():
        raise UserError(
            f"{path} is not a run directory (no status.yaml); pass a run folder made by `repro run`."
        )
    return Run(path)


def default_runs_dir() -> Path:
    home = os.environ.get("REPRO_HOME")
    return Path(home) / "runs" if home else Path("runs")
