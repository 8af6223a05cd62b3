"""Helpers shared by the tests (the session cache of runs lives in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from repro.baselines.baseline import load_baseline
from repro.judge.comparison import Comparison, compare
from repro.judge.curves import Judged, judged
from repro.runs.runview import RunView


def view(path: Path) -> RunView:
    return RunView.from_run_dir(path)


def judge_runs(
    candidate: Path,
    reference: Path | None,
    baseline_path: Path | None = None,
    repeats: list[Path] | None = None,
) -> Judged:
    """Judge ``candidate`` against ``reference`` (or the baseline's primary when reference is
    None); the comparison and the curves its report draws."""
    bands = None
    ref = view(reference) if reference is not None else None
    if baseline_path is not None:
        baseline = load_baseline(baseline_path)
        bands = baseline.bands()
        if ref is None:
            ref = baseline.primary()
    candidate_view = view(candidate)
    comparison = compare(candidate_view, ref, bands=bands, repeats=[view(p) for p in repeats or []])
    return judged(comparison, candidate_view, ref, bands)


def compare_runs(
    candidate: Path,
    reference: Path | None,
    baseline_path: Path | None = None,
    repeats: list[Path] | None = None,
) -> Comparison:
    """The comparison alone (see ``judge_runs``)."""
    return judge_runs(candidate, reference, baseline_path, repeats).comparison
