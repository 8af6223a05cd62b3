"""A run as the judge sees it: its status, settings, manifest and record, already loaded.

``RunView`` is built from a run folder or from a baseline; ``series`` reads its per-step
scalars. Nothing here judges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict, cast

from repro.errors import UserError
from repro.runs.store import open_run

Scalar = Literal["loss", "grad_norm", "lr", "loss_scale"]
SCALARS: tuple[Scalar, ...] = ("loss", "grad_norm", "lr", "loss_scale")  # recorded every step
FINAL_METRICS = ("eval_loss", "eval_accuracy")


class _Step(TypedDict):
    step: int
    loss: float
    grad_norm: float | None  # None where the GradScaler skipped the step
    lr: float
    loss_scale: float
    global_batch: str  # digest of the samples every rank's batch held, sorted
    rank_batches: list[str]  # each rank's digest
    params: list[str]  # each parameter's fingerprint after the update, hex


class StepRecord(_Step, total=False):
    """One step of record.json as rank 0 writes it (``repro.reference.loop``); the judge
    reads steps through this type, so a key it reads is a key the record has."""

    skipped: bool
    trace: list[dict[str, Any]]  # traced steps only: each rank's module fingerprints


@dataclass(frozen=True)
class RunView:
    """What the judge needs of a run; built from a run directory or a baseline."""

    name: str
    path: str
    status: dict[str, Any]
    config: dict[str, Any]
    manifest: dict[str, Any]
    record: dict[str, Any] | None
    resume: dict[str, Any] | None = None  # resume.json: where a resumed run came from

    @classmethod
    def from_run_dir(cls, path: Any) -> RunView:
        """Load a run directory; a run that did not complete may lack its record."""
        import json
        from pathlib import Path

        run = open_run(Path(path))
        complete = run.status["status"] == "COMPLETE"
        has_record = (run.path / "record.json").exists()
        record = run.record if complete or has_record else None
        # A launch that failed before rank 0 started has no manifest; it is still a FAILED run.
        manifest = run.manifest if complete or (run.path / "manifest.yaml").exists() else {}
        resume_file = run.path / "resume.json"
        resume = json.loads(resume_file.read_text()) if resume_file.is_file() else None
        view = cls(run.run_id, str(run.path), run.status, run.config, manifest, record, resume)
        if complete:
            view.check_complete(run.path / "record.json")
        return view

    def check_complete(self, where: Any) -> None:
        """A complete run's record holds every step its settings ask for, or it is bad input."""
        expected = int(self.config["settings"]["steps"])
        if len(self.steps) != expected or not self.final:
            raise UserError(
                f"{where} holds {len(self.steps)} steps{'' if self.final else ' and no final metrics'} "
                f"but its config asks for {expected}: the record is incomplete or edited; rerun it."
            )

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config.get("settings", {}))

    @property
    def seed(self) -> int:
        return int(self.config["settings"]["seed"])

    @property
    def steps(self) -> list[StepRecord]:
        return cast(list[StepRecord], list((self.record or {}).get("steps", [])))

    @property
    def final(self) -> dict[str, Any] | None:
        return (self.record or {}).get("final")


def series(steps: list[StepRecord]) -> dict[str, list[float]]:
    """Each scalar per step; a step the GradScaler skipped has no gradient norm (None)."""
    return {s: [_number(step[s]) for step in steps] for s in SCALARS}


def _number(value: Any) -> Any:
    return None if value is None else float(value)


def deviations(run: list[float], primary: list[float], start: int, end: int) -> list[float | None]:
    """|run - primary| per step; None where either has no value (a skipped step's norm):
    a skip is judged through the loss it changes, not through a norm it does not have."""
    return [
        None if run[i] is None or primary[i] is None else abs(run[i] - primary[i])
        for i in range(start, end)
    ]


def records_identical(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b:
        return False
    return all(a.get(k) == b.get(k) for k in ("initial_params", "steps", "final"))


def first_list_difference(a: list[Any], b: list[Any]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))
