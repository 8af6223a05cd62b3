"""Stopped and resumed runs, parent side: prepare them, and measure what a partial resume lost.

``repro run --stop-at K`` is a run whose plan entry says where to stop; ``repro run --resume
DIR`` prepares a new run of the stopped run's settings whose entry names the stopped run
and the pieces to restore (``repro.reference.resume.PIECES``). Its ``resume.json`` says where
it resumed from. A weights-only resume also reruns the resume beside it, restoring every
piece, each piece alone and all but each piece, in the same launch, and ``resume.json``
keeps where each rerun parts from the full resume and how far apart it ends: the ranking
``repro compare`` reports is that measurement. Never imports torch.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from repro import atomic, strict_json
from repro.errors import UserError
from repro.runs.prepare import PlanEntry, prepare_run
from repro.runs.runview import first_list_difference
from repro.runs.store import Run, open_run

RESUME_FILE = "resume.json"
STATE_FILE = "training_state.pt"  # repro.reference.resume.STATE_FILE, without importing torch
PIECES = ("optimizer", "loss_scale", "schedule", "rng", "sampler")
PIECES_DIR = "pieces"  # a weights-only resume's reruns, inside its own folder


def prepare_stop(
    profile: str, sets: list[str], stop_at: int, *, runs_dir: Path, **options: Any
) -> PlanEntry:
    """A run that stops after step ``stop_at`` and writes its full training state."""
    entry = prepare_run(profile, sets, runs_dir=runs_dir, **options)
    steps = int(entry.settings["steps"])
    if not 0 <= stop_at < steps - 1:
        Path(entry.run_dir, "status.yaml").unlink()
        Path(entry.run_dir, "config.yaml").unlink()
        Path(entry.run_dir).rmdir()
        raise UserError(
            f"--stop-at {stop_at} must be a step before the last: 0 to {steps - 2} "
            f"for this profile's {steps} steps."
        )
    return replace(entry, stop_at=stop_at)


def stopped_run(source: Path | str) -> Run:
    """A STOPPED run with its training state, or ``UserError`` saying why not."""
    run = open_run(source)
    status = run.status["status"]
    if status != "STOPPED":
        raise UserError(
            f"{source} is a {status} run, not a stopped one; resume a run made by "
            "`repro run --stop-at K`."
        )
    if not (run.path / STATE_FILE).is_file():
        raise UserError(f"{source} has no {STATE_FILE}; stop the run again with --stop-at.")
    return run


def _source_sets(run: Run) -> list[str]:
    values = {**run.config.get("overrides", {}), **run.config.get("internal", {})}
    return [f"{key}={_word(value)}" for key, value in values.items()]


def _word(value: Any) -> str:
    """A ``--set`` value as a user types it: a plain string bare, anything else as JSON
    (which ``parse_overrides`` reads back as YAML)."""
    if isinstance(value, str) and yaml.safe_load(value) == value:
        return value
    return strict_json.dumps(value)


def prepare_resume(
    source: Run,
    restore: tuple[str, ...],
    *,
    runs_dir: Path,
    **options: Any,
) -> PlanEntry:
    """A new run that resumes ``source`` restoring ``restore`` (weights always)."""
    entry = prepare_run(
        str(source.config["profile"]), _source_sets(source), runs_dir=runs_dir, **options
    )
    if entry.settings != source.config["settings"]:
        raise UserError(
            f"the settings of {source.path} no longer resolve to the same training (its "
            "profile file changed); resume it where it was made."
        )
    record = source.record
    step = int(source.status["step"])
    atomic.write_json(
        Path(entry.run_dir) / RESUME_FILE,
        {
            "from": str(source.path),
            "from_run": source.run_id,
            "step": step,
            "restored": list(restore),
            "lost": [piece for piece in PIECES if piece not in restore],
        },
    )
    resume = {
        "from": str(source.path),
        "step": step,
        "restore": list(restore),
        "steps": record["steps"],
    }
    return replace(entry, resume=resume)


def variant_restores(settings: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """The reruns of a weights-only resume: name -> pieces restored. The loss scale is a
    piece only where a GradScaler runs (fp16)."""
    pieces = [p for p in PIECES if p != "loss_scale" or settings.get("amp_dtype") == "float16"]
    variants: dict[str, tuple[str, ...]] = {"full": tuple(pieces)}
    for piece in pieces:
        variants[f"alone:{piece}"] = (piece,)
        variants[f"without:{piece}"] = tuple(p for p in pieces if p != piece)
    return variants


def _distance(run: Run, full: Run, start: int) -> dict[str, Any]:
    """Where ``run`` parts from ``full`` (from step ``start``) and how far apart they end."""
    steps, ref = run.record["steps"][start:], full.record["steps"][start:]
    at = first_list_difference(steps, ref)
    final, ref_final = run.record.get("final") or {}, full.record.get("final") or {}
    last_loss = abs(steps[-1]["loss"] - ref[-1]["loss"]) if steps and ref else None
    eval_loss = (
        abs(final["eval_loss"] - ref_final["eval_loss"])
        if "eval_loss" in final and "eval_loss" in ref_final
        else None
    )
    return {
        "first_difference": None if at is None else start + at,
        "last_loss_delta": last_loss,
        "eval_loss_delta": eval_loss,
    }


def measure_pieces(main: Path, variants: dict[str, Path], start: int) -> dict[str, Any]:
    """Each rerun against the full resume; writes the result into ``main``'s resume.json."""
    full = Run(variants["full"])
    if not full.complete:
        raise UserError(f"the full-state rerun {full.path} did not complete; see its status.yaml.")
    measured: dict[str, Any] = {"weights_only": _distance(Run(main), full, start)}
    for name, path in variants.items():
        run = Run(path)
        if name != "full":
            measured[name] = _distance(run, full, start) if run.complete else {"failed": True}
    doc: dict[str, Any] = json.loads(Path(main, RESUME_FILE).read_text())
    doc["measured"] = measured
    doc["reruns"] = {name: str(Path(path).relative_to(main)) for name, path in variants.items()}
    atomic.write_json(Path(main) / RESUME_FILE, doc)
    return doc
