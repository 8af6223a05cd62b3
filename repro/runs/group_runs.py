"""A run as a group comparison takes it: a reference run, a tracked run, a TensorBoard log or
another tool's log (``repro.runs.readers``), loaded into one shape: its seed, whether it
completed, its final metrics as recorded, its logged scalars, and what identifies it (the
run id it recorded, else a digest of its record files)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.runs.readers import foreign_files, is_foreign, load_foreign
from repro.runs.runview import RunView
from repro.runs.tensorboard import is_event_dir, load_event_dir
from repro.runs.tracked import is_tracked, load_tracked, read_metrics


@dataclass(frozen=True)
class GroupRun:
    """What a group comparison needs of one run."""

    name: str
    path: str
    seed: Any
    complete: bool
    reason: str  # why it is not complete ("" when it is)
    final: dict[str, Any]  # the final metrics as recorded (a NaN may be a string "nan")
    scalars: dict[str, dict[int, float]]  # logged scalar -> step -> value (rank 0's view)
    kind: str = "tracked"  # "tracked", "tensorboard" or "reference"
    run_id: str | None = None  # as the run recorded it (config.yaml), whatever its folder
    digest: str = ""  # sha256 of its record files: equal for byte copies


def as_number(value: Any) -> float | None:
    """A recorded metric as a float (NaN and Inf included, also as the strings tracking
    writes them), or None when it is no number at all."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        return float(value)
    return None


def run_kind(path: Path) -> str:
    if is_tracked(path):
        return "tracked"
    if is_event_dir(path):
        return "tensorboard"
    return "foreign" if is_foreign(path) else "reference"


def load_group_run(argument: str) -> GroupRun:
    path = Path(argument)
    if not path.is_dir() and run_kind(path) != "foreign":  # mlflow.db#<run> is no folder
        raise UserError(
            f"{argument} is not a run folder; pass run folders after each --group NAME."
        )
    kind = run_kind(path)
    if kind != "reference":
        loaders = {"tensorboard": load_event_dir, "foreign": load_foreign}
        tracked = loaders.get(kind, load_tracked)(path)
        view, rows = tracked.view, tracked.ranks[0] if tracked.ranks else []
        scalars: dict[str, dict[int, float]] = {}
        for row in rows:
            for key, value in row.items():
                if key != "step" and (number := as_number(value)) is not None:
                    scalars.setdefault(key, {})[int(row["step"])] = number
        records = (
            sorted(path.glob("events.out.tfevents.*"))
            if kind == "tensorboard"
            else foreign_files(path)
            if kind == "foreign"
            else sorted(path.glob("metrics-rank*.jsonl"))
        )
    else:
        view = RunView.from_run_dir(path)
        scalars = {
            "loss": {s["step"]: float(s["loss"]) for s in view.steps},
            "grad_norm": {
                s["step"]: float(norm) for s in view.steps if (norm := s["grad_norm"]) is not None
            },
        }
        records = [path / "record.json"]
    status = str(view.status.get("status", "UNKNOWN"))
    final = dict(view.final or {})
    if kind == "tracked":  # as written: a loader may leave out what is not a number
        for record in read_metrics(path, 0):
            if "final" in record:
                final = dict(record["final"])
    complete = status == "COMPLETE" and bool(final)
    reason = (
        "" if complete else str(view.status.get("reason") or f"status {status}, no final metrics")
    )
    seed = view.config.get("settings", {}).get("seed")
    run_id = view.config.get("run_id") if kind != "tensorboard" else None
    return GroupRun(
        view.name,
        str(path),
        seed,
        complete,
        reason,
        final,
        scalars,
        kind,
        None if run_id is None else str(run_id),
        _digest(path, records),
    )


def _digest(root: Path, files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()
