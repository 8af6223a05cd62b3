"""What every reader shares: the loaded run, and the manifest beside the logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.manifest.redact import redact
from repro.runs.runview import RunView
from repro.runs.tracked import Tracked

NO_ENVIRONMENT = (
    "{name}: no manifest.yaml beside these logs, so no environment facts (versions, threads, "
    "flags, hardware) can be compared and no cause can be ranked from them; only the logged "
    "values and the config are judged"
)


def tracked_run(
    path: Path,
    *,
    kind: str,
    config: dict[str, Any],
    seed: int | None,
    rows: list[dict[str, Any]],
    final: dict[str, Any] | None,
    notes: list[str],
) -> Tracked:
    """The loaded run, with the manifest beside the logs where there is one."""
    config = redact(config)  # a report prints differing values: no secret may be among them
    manifest = manifest_beside(path)
    if manifest is None:
        notes = [*notes, NO_ENVIRONMENT.format(name=path.name)]
    described = {
        "kind": kind,
        "config": config,
        "settings": {"config": config, "seed": seed},
        "command": None,
    }
    view = RunView(
        path.name,
        str(path),
        {"status": "COMPLETE"},
        described,
        manifest or {},
        {"final": final or None, "fingerprint": None},
    )
    return Tracked(view, [rows], "; ".join(notes) or None)


def manifest_beside(path: Path) -> dict[str, Any] | None:
    import yaml

    here = path if path.is_dir() else path.parent  # mlflow.db#<run>: beside the file
    for folder in (here, here.parent):
        if (folder / "manifest.yaml").is_file():
            loaded = yaml.safe_load((folder / "manifest.yaml").read_text())
            return loaded if isinstance(loaded, dict) else None
    return None
