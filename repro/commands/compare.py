"""``repro compare A B [C ...]``: judge runs (or baselines) against the first. Reads files only."""

from __future__ import annotations

from pathlib import Path

from repro.baselines.baseline import find_baseline, search_dirs, select_baseline
from repro.baselines.resolve import resolve
from repro.errors import UserError
from repro.judge.bands import Bands
from repro.judge.comparison import compare
from repro.judge.curves import Judged, judged
from repro.judge.tracked import compare_tracked
from repro.runs.readers import is_foreign, load_foreign
from repro.runs.runview import RunView
from repro.runs.tensorboard import is_event_dir, load_event_dir
from repro.runs.tracked import Tracked, is_tracked, load_tracked


def _load_tracked(path: Path) -> Tracked:
    if is_event_dir(path):
        return load_event_dir(path)
    return load_foreign(path) if is_foreign(path) else load_tracked(path)


def _matching_bands(view: RunView, dirs: list[Path]) -> Bands | None:
    """The bands of the baseline ``repro verify`` would pick for this run, if any."""
    profile, workload = view.config.get("profile"), view.config.get("workload_hash")
    selection = select_baseline(str(profile), str(workload), view.manifest, dirs)
    return selection.baseline.bands() if selection.baseline else None


def compare_runs(
    arguments: list[str], *, baseline_name: str | None = None, baseline_dir: str | None = None
) -> list[Judged]:
    if len(arguments) < 2:
        raise UserError(
            "compare needs at least two runs or baselines, e.g. `repro compare runs/A runs/B`."
        )
    try:
        dirs = search_dirs(baseline_dir)
    except UserError:
        if baseline_name is not None:
            raise
        dirs = []
    tracked = [
        is_tracked(Path(a)) or is_event_dir(Path(a)) or is_foreign(Path(a)) for a in arguments
    ]
    if any(tracked):
        if not all(tracked):
            raise UserError(
                "compare tracked runs (repro.track; TensorBoard, Hugging Face, Lightning CSV or "
                "MLflow logs) with tracked runs and reference runs with reference runs: "
                + ", ".join(a for a, t in zip(arguments, tracked) if not t)
                + " is not a tracked run."
            )
        first, *others = (_load_tracked(Path(a)) for a in arguments)
        return [compare_tracked(other, first) for other in others]
    views = [resolve(a, dirs) for a in arguments]
    reference, reference_baseline = views[0]
    if baseline_name is not None:
        bands: Bands | None = find_baseline(baseline_name, dirs).bands()
    elif reference_baseline is not None:
        bands = reference_baseline.bands()
    else:
        bands = _matching_bands(reference, dirs)
    # The reference is the first argument; each other run is the candidate judged against it.
    return [
        judged(compare(view, reference, bands=bands), view, reference, bands)
        for view, _ in views[1:]
    ]
