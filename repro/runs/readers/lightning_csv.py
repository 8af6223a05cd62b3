"""A Lightning ``CSVLogger`` version folder (``lightning_logs/version_N/``) read as a
tracked run: each line of ``metrics.csv`` a row at its ``step`` (its empty cells left
out), ``hparams.yaml`` the config.

Lightning writes each value with Python's ``repr`` of the float, so values read back
exactly. Final metrics are each metric's last value (not ``epoch`` or ``step``).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.runs.readers.common import tracked_run
from repro.runs.tracked import Tracked

METRICS, HPARAMS = "metrics.csv", "hparams.yaml"


def detect(path: Path) -> bool:
    if not (path / METRICS).is_file():
        return False
    try:
        with open(path / METRICS, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError):
        return True  # its own file name says what it is; load() says what is wrong
    return "step" in header


def source_files(path: Path) -> list[Path]:
    return [path / METRICS, path / HPARAMS]


def load(path: Path) -> Tracked:
    rows = _rows(path / METRICS)
    final: dict[str, Any] = {}
    for row in rows:
        final.update({k: v for k, v in row.items() if k not in ("step", "epoch")})
    return tracked_run(
        path,
        kind="lightning-csv",
        config=_hparams(path / HPARAMS),
        seed=None,
        rows=rows,
        final=final,
        notes=[],
    )


def _rows(metrics: Path) -> list[dict[str, Any]]:
    try:
        with open(metrics, encoding="utf-8", newline="") as f:
            lines = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{metrics} cannot be read as CSV ({exc}); pass a CSVLogger folder."
        ) from None
    header, body = (lines[0], lines[1:]) if lines else ([], [])
    if "step" not in header:
        raise UserError(
            f"{metrics} has no step column (not the layout Lightning's CSVLogger writes); "
            "pass a CSVLogger version folder."
        )
    rows = []
    for number, line in enumerate(body, start=2):
        if len(line) != len(header):
            raise UserError(
                f"{metrics} line {number} has {len(line)} cells for {len(header)} columns "
                "(a truncated or foreign file); pass a folder Lightning finished writing."
            )
        try:
            row = {name: _number(cell) for name, cell in zip(header, line) if cell != ""}
            row["step"] = int(row["step"])
        except (KeyError, ValueError):
            raise UserError(
                f"{metrics} line {number} holds a value that is not a number or no step; "
                "pass a CSVLogger version folder."
            ) from None
        rows.append(row)
    return rows


def _number(cell: str) -> float | int:
    value = float(cell)
    if math.isfinite(value) and value.is_integer() and "." not in cell and "e" not in cell:
        return int(value)
    return value


def _hparams(path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        return {}
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(
            f"{path} is not plain YAML ({str(exc).splitlines()[0]}); repro reads it without "
            "constructing Python objects, so save plain hyperparameters."
        ) from None
    return loaded if isinstance(loaded, dict) else {}
