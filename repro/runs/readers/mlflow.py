"""An MLflow run read as a tracked run, straight from MLflow's store: no server, no MLflow.

- the SQLite store (``mlflow.db``, the default since MLflow 3.7): name a run as
  ``mlflow.db#<run id or run name>``; the ``runs``, ``metrics`` and ``params`` tables are
  read with ``sqlite3``, read-only.
- the older file store: the run's folder, ``mlruns/<experiment id>/<run id>/``
  (``meta.yaml``, ``metrics/<key>`` lines ``timestamp value step``, ``params/<key>``).

Each step's metrics make one row (a key logged twice at one step: the later value); the
final metrics are each key's value at its last step; the params are the config (strings,
as MLflow keeps them), and a ``seed`` param is the seed. FINISHED reads as COMPLETE,
FAILED as FAILED, KILLED as INTERRUPTED, a run still RUNNING as RUNNING.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.runs.readers.common import tracked_run
from repro.runs.tracked import Tracked

_STATUS = {"FINISHED": "COMPLETE", "FAILED": "FAILED", "KILLED": "INTERRUPTED"}
# The file store's meta.yaml keeps mlflow.entities.RunStatus as its number.
_FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
# What the reader needs of each table; a store without it is another schema.
_COLUMNS = {
    "runs": {"run_uuid", "name", "status"},
    "metrics": {"key", "value", "timestamp", "step", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
}


def _sqlite_address(path: Path) -> tuple[Path, str] | None:
    database, hash_, run = str(path).rpartition("#")
    if not hash_ or not run or not Path(database).is_file():
        return None
    return Path(database), run


def detect(path: Path) -> bool:
    if _sqlite_address(path) is not None:
        return True
    return (path / "meta.yaml").is_file() and (path / "metrics").is_dir()


def source_files(path: Path) -> list[Path]:
    if _sqlite_address(path) is not None:
        return []  # one file holds every run: the run id tells runs apart
    return sorted(p for p in path.rglob("*") if p.is_file())


def load(path: Path) -> Tracked:
    address = _sqlite_address(path)
    if address is not None:
        run_id, name, status, params, metrics = _from_sqlite(*address)
    else:
        run_id, name, status, params, metrics = _from_files(path)
    by_step: dict[int, dict[str, Any]] = {}
    last: dict[str, tuple[int, int, float]] = {}  # key -> (step, timestamp, value)
    for key, value, timestamp, step in sorted(metrics, key=lambda m: (m[3], m[2])):
        by_step.setdefault(step, {"step": step})[key] = value
        last[key] = max(last.get(key, (step, timestamp, value)), (step, timestamp, value))
    seed = params.get("seed")
    tracked = tracked_run(
        path,
        kind="mlflow",
        config=dict(params),
        seed=int(seed) if seed is not None and seed.lstrip("-").isdigit() else None,
        rows=[by_step[step] for step in sorted(by_step)],
        final={key: value for key, (_, _, value) in sorted(last.items())},
        notes=[],
    )
    view = replace(
        tracked.view,
        name=name or run_id,
        status={"status": _STATUS.get(status, status)},
        config={**tracked.view.config, "run_id": run_id},
    )
    return replace(tracked, view=view)


def _from_sqlite(
    database: Path, run: str
) -> tuple[str, str, str, dict[str, str], list[tuple[str, float, int, int]]]:
    try:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise UserError(f"{database} cannot be opened as SQLite ({exc}).") from None
    try:
        _check_schema(connection, database)
        found = connection.execute(
            "SELECT run_uuid, name, status FROM runs WHERE run_uuid = ? OR name = ?", (run, run)
        ).fetchall()
        if len(found) != 1:
            what = "no run" if not found else f"{len(found)} runs"
            raise UserError(
                f"{database} holds {what} with the id or name {run!r}; name one run as "
                f"{database}#<run id>."
            )
        run_id, name, status = found[0]
        params = dict(
            connection.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,))
        )
        metrics = connection.execute(
            "SELECT key, value, timestamp, step FROM metrics WHERE run_uuid = ?", (run_id,)
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{database} is not a readable MLflow store ({exc}).") from None
    finally:
        connection.close()
    return run_id, name, status, params, [(k, float(v), int(t), int(s)) for k, v, t, s in metrics]


def _check_schema(connection: sqlite3.Connection, database: Path) -> None:
    for table, needed in _COLUMNS.items():
        columns = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        if not needed <= columns:
            version = _alembic_version(connection)
            raise UserError(
                f"{database} is not an MLflow store in a schema repro reads (table {table} "
                f"lacks {', '.join(sorted(needed - columns))}; schema version {version})."
            )


def _alembic_version(connection: sqlite3.Connection) -> str:
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return "unknown"
    return str(row[0]) if row else "unknown"


def _from_files(
    path: Path,
) -> tuple[str, str, str, dict[str, str], list[tuple[str, float, int, int]]]:
    import yaml

    try:
        meta = yaml.safe_load((path / "meta.yaml").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"{path / 'meta.yaml'} is not readable YAML ({exc}).") from None
    if not isinstance(meta, dict) or "run_id" not in meta or meta.get("status") not in _FILE_STATUS:
        raise UserError(
            f"{path / 'meta.yaml'} is not an MLflow run's meta.yaml in a layout repro reads "
            "(no run_id or status); pass a run folder mlruns/<experiment>/<run id>."
        )
    params = {
        str(p.relative_to(path / "params")): p.read_text()
        for p in sorted((path / "params").rglob("*"))
        if p.is_file()
    }
    metrics = []
    for file in sorted((path / "metrics").rglob("*")):
        if not file.is_file():
            continue
        key = str(file.relative_to(path / "metrics"))
        for number, line in enumerate(file.read_text().splitlines(), start=1):
            parts = line.split()
            try:
                timestamp, value, step = int(parts[0]), float(parts[1]), int(parts[2])
            except (IndexError, ValueError):
                raise UserError(
                    f"{file} line {number} is not 'timestamp value step' (a truncated or "
                    "foreign file)."
                ) from None
            metrics.append((key, value, timestamp, step))
    status = _FILE_STATUS[meta["status"]]
    return str(meta["run_id"]), str(meta.get("run_name") or ""), status, params, metrics
