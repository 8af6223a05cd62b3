"""What a run argument names: a run folder, a baseline folder, or a baseline's name."""

from __future__ import annotations

from pathlib import Path

from repro.baselines.baseline import Baseline, find_baseline, load_baseline
from repro.errors import UserError
from repro.runs.runview import RunView


def resolve(argument: str, dirs: list[Path]) -> tuple[RunView, Baseline | None]:
    """A run directory, a baseline folder, or a baseline name."""
    path = Path(argument)
    if path.is_dir():
        if (path / "baseline.yaml").is_file():
            baseline = load_baseline(path)
            return baseline.primary(), baseline
        return RunView.from_run_dir(path), None
    if "/" in argument or argument.startswith("."):
        raise UserError(f"{argument} does not exist; pass a run directory or a baseline name.")
    baseline = find_baseline(argument, dirs)
    return baseline.primary(), baseline
