"""A TensorBoard event directory read as a tracked run (``pip install repro[tensorboard]``).

Scalars become logged values per step (tags ``final/<name>`` become final metrics); a
``manifest.yaml`` (and ``config.yaml``) in the directory or the one above it, as a
``repro.track`` folder holding the events has, supplies the environment. TensorBoard
stores float32, so "bit-identical" means identical at float32 resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.errors import UserError
from repro.runs.runview import RunView
from repro.runs.tracked import Tracked

FLOAT32_NOTE = (
    "TensorBoard stores scalars as float32: bit-identical here means identical at float32 "
    "resolution, not in the training's own precision."
)


def write_record_events(run_dir: Path) -> Path:
    """A reference run's record as TensorBoard scalars in ``run_dir/tensorboard``: the
    per-step loss, gradient norm, learning rate and loss scale, and ``final/<metric>``."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs `pip install repro[tensorboard]`.") from None
    view = RunView.from_run_dir(run_dir)
    folder = Path(run_dir) / "tensorboard"
    writer = SummaryWriter(str(folder))
    try:
        for step in view.steps:
            for name in ("loss", "grad_norm", "lr", "loss_scale"):
                if step.get(name) is not None:
                    writer.add_scalar(name, step[name], step["step"])
        for name, value in (view.final or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                writer.add_scalar(f"final/{name}", value, len(view.steps))
    finally:
        writer.close()
    return folder


# Other tools' tags for what repro calls the loss (torchtitan's metrics logger writes
# its mean loss across ranks as loss_metrics/global_avg_loss); the rest keep their tags.
TAG_NAMES = {"loss_metrics/global_avg_loss": "loss"}


def is_event_dir(path: Path) -> bool:
    return path.is_dir() and any(path.glob("events.out.tfevents.*"))


def load_event_dir(path: Path) -> Tracked:
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise UserError(
            f"{path} is a TensorBoard log; reading it needs `pip install repro[tensorboard]`."
        ) from None
    events = EventAccumulator(str(path), size_guidance={"scalars": 0})
    events.Reload()
    rows: dict[int, dict[str, Any]] = {}
    final: dict[str, Any] = {}
    for tag in sorted(events.Tags().get("scalars", [])):
        for event in events.Scalars(tag):
            if tag.startswith("final/"):
                final[tag.removeprefix("final/")] = float(event.value)
            else:
                name = TAG_NAMES.get(tag, tag)
                rows.setdefault(int(event.step), {"step": int(event.step)})[name] = float(
                    event.value
                )
    losses = [rows[step]["loss"] for step in sorted(rows) if "loss" in rows[step]]
    if not final and losses:  # a log without final/ tags (torchtitan's): its last loss
        final["loss"] = losses[-1]
    beside = _beside(path)
    config = beside.get("config.yaml") or {}
    settings = {"config": config.get("config", {}), "seed": config.get("seed")}
    view = RunView(
        path.name,
        str(path),
        {"status": "COMPLETE"},
        {**config, "settings": settings, "command": None},
        beside.get("manifest.yaml") or {},
        {"final": final or None, "fingerprint": None},
    )
    return Tracked(view, [[rows[step] for step in sorted(rows)]], FLOAT32_NOTE)


def _beside(path: Path) -> dict[str, Any]:
    """``manifest.yaml`` and ``config.yaml`` from the directory or its parent, when there."""
    import yaml

    found: dict[str, Any] = {}
    for name in ("manifest.yaml", "config.yaml"):
        for folder in (path, path.parent):
            if (folder / name).is_file():
                found[name] = yaml.safe_load((folder / name).read_text())
                break
    return found
