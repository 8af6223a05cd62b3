"""Helpers shared by the tests (the session cache of runs lives in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from repro.baseline import load_baseline
from repro.judge import Comparison, compare
from repro.runview import RunView


def view(path: Path) -> RunView:
    return RunView.from_run_dir(path)


def compare_runs(
    candidate: Path,
    reference: Path | None,
    baseline_path: Path | None = None,
    repeats: list[Path] | None = None,
) -> Comparison:
    """Judge ``candidate`` against ``reference`` (or the baseline's primary when reference is None)."""
    bands = None
    ref = view(reference) if reference is not None else None
    if baseline_path is not None:
        baseline = load_baseline(baseline_path)
        bands = baseline.bands()
        if ref is None:
            ref = baseline.primary()
    return compare(view(candidate), ref, bands=bands, repeats=[view(p) for p in repeats or []])
