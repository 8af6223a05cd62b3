"""Readers of the logs other tools keep, each turning a folder into a tracked run that
``repro compare`` (pairs and ``--group``) judges like one ``repro.track`` wrote.

- ``huggingface``: a ``Trainer`` output folder or ``checkpoint-N/`` (``trainer_state.json``)
- ``lightning_csv``: a Lightning ``CSVLogger`` version folder (``metrics.csv``, ``hparams.yaml``)
- ``mlflow``: an MLflow run, ``mlflow.db#<run>`` (SQLite) or ``mlruns/<experiment>/<run>/``

No reader needs the tool that wrote the files. A ``manifest.yaml`` beside the logs (or one
folder up) supplies the environment; without one the report says that no environment
facts exist to compare, instead of guessing.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from repro.runs.tracked import Tracked


def _readers() -> tuple[ModuleType, ...]:
    # Imported on first use: they bring sqlite3, csv and pickle, which a command that reads
    # no logs (`repro --help`, whose report modules import this one) never needs.
    from repro.runs.readers import huggingface, lightning_csv, mlflow

    return (huggingface, lightning_csv, mlflow)


def reader_for(path: Path) -> ModuleType | None:
    """The reader whose files ``path`` holds (a folder, or an address such as
    ``mlflow.db#<run>``), or None."""
    return next((reader for reader in _readers() if reader.detect(path)), None)


def is_foreign(path: Path) -> bool:
    return reader_for(path) is not None


def load_foreign(path: Path) -> Tracked:
    reader = reader_for(path)
    assert reader is not None, f"{path} holds no logs a reader knows"
    tracked: Tracked = reader.load(path)
    return tracked


def foreign_files(path: Path) -> list[Path]:
    """The files a reader reads: what makes two runs' records copies of one another."""
    reader = reader_for(path)
    return list(reader.source_files(path)) if reader is not None else []
