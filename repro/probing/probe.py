"""``repro.probe``: which module of a user's own training step is nondeterministic.

    result = repro.probe(model, batch, loss_fn=lambda out: F.cross_entropy(out, y), optimizer=opt)
    print(result.conclusion)        # "... first differs in backward: emb (Embedding) ..."

The step (forward, loss, backward, optimizer update) runs ``repeats`` times, each from
the same saved state (parameters, buffers, optimizer state, every global random
generator). Each repeat's trace (see ``repro.probing.trace``) is compared with the
first; the earliest point where any repeat parts names the module and the phase. One
more step runs under ``torch.use_deterministic_algorithms(True, warn_only=True)`` to
list the operations torch itself flags. When the repeats differ, candidate fixes
(deterministic mode, resetting the generators the modules hold, one thread) are each
rerun ``repeats`` times: a fix is reported as verified only when every repeat under it
is identical, after the plain repeats were seen to differ.

Thread races are why kernels such as ``index_put_(accumulate=True)`` differ on a CPU,
and they need at least two threads: the probe runs at ``threads`` (2) and puts the
user's setting back, with the model, the optimizer and every generator, when it ends.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from repro.probing.step import (
    LossFn,
    Setting,
    Snapshot,
    applied,
    module_generators,
    run_step,
)
from repro.probing.trace import Point, Recorder
from repro.verdict import Verdict

DEFAULT_REPEATS = 20
DEFAULT_THREADS = 2
_FLAG_TEXT = " does not have a deterministic implementation"


@dataclass(frozen=True)
class Difference:
    """The earliest point of the step where a repeat parted from the first run."""

    point: Point
    index: int  # its position in the step's trace
    repeat: int  # the first repeat (1-based; 0 is the reference) that showed it
    module_class: str

    @property
    def where(self) -> str:
        name = self.point.module or "the model"
        return f"{name} ({self.module_class})"

    def sentence(self) -> str:
        """Which code made the difference, read from where it was first seen."""
        p = self.point
        parent = p.module.rpartition(".")[0] or "the model"
        if p.what == "loss":
            return "the loss function gives a different loss from the same model output"
        if p.phase == "forward" and p.what.startswith("input"):
            return f"the {p.what} of {self.where} already differs: the code of {parent} before it"
        if p.phase == "forward":
            return f"{self.where} computes a different {p.what} from the same inputs (forward)"
        if p.what == "gradient of its output":
            return f"the gradient reaching the output of {self.where} differs: the code after it in {parent}'s forward (backward)"
        if p.phase == "backward":
            return f"the backward of {self.where} computes a different {p.what}"
        return f"the optimizer computes a different {p.what} of {self.where} from the same gradients (update)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.point.phase,
            "module": self.point.module,
            "module_class": self.module_class,
            "tensor": self.point.what,
            "repeat": self.repeat,
            "trace_index": self.index,
            "sentence": self.sentence(),
        }


@dataclass(frozen=True)
class Trial:
    """``repeats`` runs of the step under one setting, each compared with its first."""

    setting: Setting
    repeats: int
    differing: int  # repeats whose trace differs anywhere from the first
    first: Difference | None
    error: str | None = None
    seconds: list[float] = field(default_factory=list)

    @property
    def repeatable(self) -> bool:
        return self.error is None and self.differing == 0

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.setting.name}: the step raised {self.error}"
        return f"{self.setting.name}: {self.repeats - self.differing} of {self.repeats} repeats identical to the first"

    def to_dict(self) -> dict[str, Any]:
        return {
            "setting": asdict(self.setting),
            "repeats": self.repeats,
            "differing": self.differing,
            "repeatable": self.repeatable,
            "first_difference": None if self.first is None else self.first.to_dict(),
            "error": self.error,
        }


@dataclass(frozen=True)
class FlaggedOp:
    """An operation torch reports as having no deterministic implementation."""

    op: str
    phase: str
    module: str  # the innermost module running it; "" outside any (or in backward)
    count: int


@dataclass(frozen=True)
class ProbeResult:
    plain: Trial
    flagged: tuple[FlaggedOp, ...]
    fixes: tuple[Trial, ...]
    generators: tuple[str, ...]  # generators held by modules (not reset by the plain runs)

    @property
    def verdict(self) -> Verdict:
        return Verdict.IDENTICAL if self.plain.repeatable else Verdict.NONDETERMINISTIC

    @property
    def first(self) -> Difference | None:
        return self.plain.first

    @property
    def fix(self) -> Trial | None:
        """The first candidate setting under which every repeat was identical."""
        return next((t for t in self.fixes if t.repeatable), None)

    @property
    def step_seconds(self) -> float:
        """The median wall time of one traced repeat of the plain step."""
        s = sorted(self.plain.seconds)
        return s[len(s) // 2] if s else 0.0

    @property
    def conclusion(self) -> str:
        n, threads = self.plain.repeats, self.plain.setting.threads
        if self.first is None:
            flagged = f"; torch flags {len(self.flagged)} op(s) as nondeterministic (below)"
            return f"{n} repeats of the step at {threads} threads were bit-identical" + (
                flagged if self.flagged else ""
            )
        head = (
            f"{self.plain.differing} of {n - 1} repeats differed from the first at {threads} "
            f"threads; first in {self.first.point.phase}: {self.first.sentence()}"
        )
        fix = self.fix
        if fix is None:
            return f"{head}; no setting tried made the step repeatable"
        return f"{head}; verified fix: {fix.setting.name} ({fix.repeats} of {fix.repeats} repeats identical)"

    def to_dict(self) -> dict[str, Any]:
        fix = self.fix
        return {
            "verdict": self.verdict.value,
            "conclusion": self.conclusion,
            "threads": self.plain.setting.threads,
            "repeats": self.plain.repeats,
            "first_difference": None if self.first is None else self.first.to_dict(),
            "plain": self.plain.to_dict(),
            "flagged_ops": [asdict(f) for f in self.flagged],
            "fixes_tried": [t.to_dict() for t in self.fixes],
            "fix": None if fix is None else fix.setting.name,
            "module_generators": list(self.generators),
            "step_seconds": self.step_seconds,
        }


def probe(
    model: nn.Module,
    batch: Any,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    *,
    repeats: int = DEFAULT_REPEATS,
    threads: int = DEFAULT_THREADS,
) -> ProbeResult:
    """Run one training step ``repeats`` times from the same state and say where it differs.

    ``batch`` is passed to the model as is (a tuple as positional arguments, a dict as
    keyword arguments); ``loss_fn(output)`` gives the loss (default: the output if it is
    a scalar, its ``loss`` if it has one, else the sum of its floating tensors). The
    model, the optimizer, gradients, threads, flags and generators are as they were when
    it returns.
    """
    if repeats < 2:
        raise ValueError(f"repeats={repeats}: at least 2 runs are needed to compare")
    if threads < 1:
        raise ValueError(f"threads={threads} must be at least 1")
    snapshot = Snapshot(model, optimizer)
    recorder = Recorder(model)
    generators = tuple(module_generators(model))
    try:
        plain = _trial(
            Setting("as given", threads),
            repeats,
            snapshot,
            recorder,
            model,
            batch,
            loss_fn,
            optimizer,
        )
        flagged = _flagged_ops(threads, snapshot, recorder, model, batch, loss_fn, optimizer)
        fixes: list[Trial] = []
        if plain.first is not None:
            for setting in _candidates(plain.first, threads, bool(generators)):
                trial = _trial(
                    setting, repeats, snapshot, recorder, model, batch, loss_fn, optimizer
                )
                fixes.append(trial)
                if trial.repeatable:
                    break
    finally:
        recorder.close()
        snapshot.restore(generators=True, grads=True)
    return ProbeResult(plain, flagged, tuple(fixes), generators)


def _candidates(first: Difference, threads: int, generators: bool) -> list[Setting]:
    """The settings worth rerunning under, the likeliest first (fewest reruns on average)."""
    det = Setting(
        "deterministic mode: torch.use_deterministic_algorithms(True)", threads, deterministic=True
    )
    gen = Setting(
        "seeded generators: reset the generators the modules hold before each step",
        threads,
        restore_generators=True,
    )
    if not generators:
        order = [det]
    elif first.point.phase == "forward":
        order = [gen, det]
    else:
        order = [det, gen]
    if threads > 1:
        order.append(Setting("one thread: torch.set_num_threads(1)", 1))
    if len(order) > 1:  # causes can add up: a race and a generator in one step
        order.append(Setting("all of the above together", 1, True, generators))
    return order


def _trial(
    setting: Setting,
    repeats: int,
    snapshot: Snapshot,
    recorder: Recorder,
    model: nn.Module,
    batch: Any,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer | None,
) -> Trial:
    traces: list[tuple[list[Point], list[int]]] = []
    seconds: list[float] = []
    with applied(setting), warnings.catch_warnings():
        # Deterministic mode with warn_only warns once per flagged op per step; that list
        # is the flagged-ops run's job, not every repeat's.
        warnings.filterwarnings("ignore", message=".*" + _FLAG_TEXT)
        for _ in range(repeats):
            snapshot.restore(generators=setting.restore_generators or not traces)
            start = time.perf_counter()
            try:
                traces.append(run_step(recorder, model, batch, loss_fn, optimizer))
            except RuntimeError as exc:
                if setting.name == "as given":
                    raise
                return Trial(setting, repeats, 0, None, error=f"{type(exc).__name__}: {exc}")
            seconds.append(time.perf_counter() - start)
    differing, first = 0, None
    ref_points, ref_values = traces[0]
    for r, (points, values) in enumerate(traces[1:], start=1):
        index = _first_mismatch(ref_points, ref_values, points, values)
        if index is None:
            continue
        differing += 1
        if first is None or index < first.index:
            point = ref_points[index] if index < len(ref_points) else points[index]
            first = Difference(point, index, r, recorder.classes.get(point.module, "?"))
    return Trial(setting, repeats, differing, first, seconds=seconds)


def _first_mismatch(
    a_points: list[Point], a_values: list[int], b_points: list[Point], b_values: list[int]
) -> int | None:
    for i, (pa, va, pb, vb) in enumerate(zip(a_points, a_values, b_points, b_values)):
        if pa != pb or va != vb:
            return i
    if len(a_points) != len(b_points):
        return min(len(a_points), len(b_points))  # one run took a longer path
    return None


def _flagged_ops(
    threads: int,
    snapshot: Snapshot,
    recorder: Recorder,
    model: nn.Module,
    batch: Any,
    loss_fn: LossFn | None,
    optimizer: torch.optim.Optimizer | None,
) -> tuple[FlaggedOp, ...]:
    """One step under ``use_deterministic_algorithms(True, warn_only=True)``: each op torch
    warns about, with the phase and the innermost module running when it warned."""
    seen: dict[tuple[str, str, str], int] = {}

    def capture(message: Any, *_args: Any, **_kwargs: Any) -> None:
        text = str(message)
        if _FLAG_TEXT in text:
            module = recorder.module_stack[-1] if recorder.module_stack else ""
            key = (text.split(_FLAG_TEXT)[0].strip(), recorder.phase, module)
            seen[key] = seen.get(key, 0) + 1

    setting = Setting("deterministic mode, warn only", threads, deterministic=True)
    snapshot.restore()
    with applied(setting), warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = capture
        try:
            run_step(recorder, model, batch, loss_fn, optimizer)
        except RuntimeError:
            recorder.take()  # an op that errors even in warn_only: the fix trial says so
    return tuple(FlaggedOp(op, phase, module, n) for (op, phase, module), n in seen.items())
