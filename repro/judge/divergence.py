"""Where two runs first part: the step, and where in the step (batch, forward, gradients, update).

Traced steps hold per-module forward and per-parameter gradient fingerprints, so the
difference is named down to a module; later steps are compared by their scalars and
parameter fingerprints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from repro.names import readable
from repro.runs.runview import RunView, StepRecord, first_list_difference


@dataclass(frozen=True)
class Divergence:
    step: int
    where: str  # global_batch | batch_split | initial | forward | loss | grad_local | grad_reduced | grad_norm | update | record
    detail: str
    module: str | None = None
    traced: bool = True
    also: list[str] = field(default_factory=list)


def _first_trace_difference(
    ta: list[dict[str, Any]], tb: list[dict[str, Any]], kind: str
) -> tuple[str, str] | None:
    """(readable module name, " on rank r") of the earliest differing entry over all ranks."""
    best: tuple[int, int, str] | None = None
    for rank, (ra, rb) in enumerate(zip(ta, tb)):
        i = first_list_difference(ra[kind], rb[kind])
        if i is not None and (best is None or i < best[0]):
            entries = ra[kind] if i < len(ra[kind]) else rb[kind]
            name = readable(str(entries[i][0])) if i < len(entries) else "a module"
            best = (i, rank, name)
    if best is None:
        return None
    return best[2], f" on rank {best[1]}" if len(ta) > 1 else ""


def first_difference(a: RunView, b: RunView) -> Divergence | None:
    """The first step whose record differs, and what differed first within it.

    Order inside a step follows the computation: the global batch, its split
    across ranks, (at step 0) the initialisation, each module's forward output,
    the loss, local gradients, reduced gradients, the gradient norm, and finally
    the update (learning rate, loss scale, parameters).
    """
    ra, rb = a.record or {}, b.record or {}
    steps_a, steps_b = a.steps, b.steps
    names = ra.get("param_names", [])
    for k, (sa, sb) in enumerate(zip(steps_a, steps_b)):
        found = _step_differences(sa, sb, names)
        if k == 0 and ra.get("initial_params") != rb.get("initial_params"):
            i = first_list_difference(ra.get("initial_params", []), rb.get("initial_params", []))
            what = _parameter(names, i)
            found.insert(
                _position(found, "initial"),
                ("initial", f"the initial parameters differ (first: {what})", what),
            )
        if found:
            where, detail, module = found[0]
            traced = bool(sa.get("trace")) and bool(sb.get("trace"))
            # A difference seen only after the loss, with nothing traced, may have started earlier in the step.
            if not traced and where in ("loss", "grad_norm"):
                detail += " (step not traced: the forward and gradients were not fingerprinted)"
            return Divergence(k, where, detail, module, traced, [f[1] for f in found[1:]])
    if len(steps_a) != len(steps_b):
        k = min(len(steps_a), len(steps_b))
        return Divergence(
            k, "record", f"one run has {len(steps_a)} steps, the other {len(steps_b)}", None, False
        )
    if ra.get("final") != rb.get("final"):
        return Divergence(
            len(steps_a),
            "final",
            "the final evaluation or checkpoint identity differs",
            None,
            False,
        )
    return None


# The stages of a step in the order the computation meets them.
_ORDER = (
    "global_batch",
    "batch_split",
    "initial",
    "forward",
    "loss",
    "grad_local",
    "grad_reduced",
    "grad_norm",
    "update",
)
Found = list[tuple[str, str, "str | None"]]


def _position(found: Found, where: str) -> int:
    rank = _ORDER.index(where)
    return next((i for i, f in enumerate(found) if _ORDER.index(f[0]) > rank), len(found))


def _parameter(names: list[str], index: int | None) -> str:
    return readable(names[index]) if index is not None and index < len(names) else "a parameter"


def _step_differences(sa: StepRecord, sb: StepRecord, names: list[str]) -> Found:
    """Everything that differs in one step's records, in computation order."""
    found: Found = []
    if sa.get("global_batch") != sb.get("global_batch"):
        found.append(
            ("global_batch", "the global batch's sample indices differ (data or sampler)", None)
        )
    if sa.get("rank_batches") != sb.get("rank_batches"):
        na, nb = len(sa.get("rank_batches", [])), len(sb.get("rank_batches", []))
        split = (
            f"({na} vs {nb} ranks)" if na != nb else f"(each of the {na} ranks got other samples)"
        )
        found.append(("batch_split", f"the batch is split across ranks differently {split}", None))
    ta: list[dict[str, Any]] = sa.get("trace") or []
    tb: list[dict[str, Any]] = sb.get("trace") or []
    traced = bool(ta) and bool(tb)
    if traced and (hit := _first_trace_difference(ta, tb, "forward")) is not None:
        found.append(("forward", f"{hit[0]}, forward output{hit[1]} differs first", hit[0]))
    if sa["loss"] != sb["loss"]:
        found.append(("loss", f"loss {sa['loss']!r} vs {sb['loss']!r}", None))
    for kind, label in (
        ("grad_local", "local gradient (before the all-reduce)"),
        ("grad_reduced", "gradient after the all-reduce"),
    ):
        if traced and (hit := _first_trace_difference(ta, tb, kind)) is not None:
            found.append((kind, f"{hit[0]}, {label}{hit[1]} differs first", hit[0]))
    if sa["grad_norm"] != sb["grad_norm"]:
        found.append(
            ("grad_norm", f"gradient norm {sa['grad_norm']!r} vs {sb['grad_norm']!r}", None)
        )
    if sa["lr"] != sb["lr"] or sa["loss_scale"] != sb["loss_scale"]:
        found.append(
            ("update", f"the update differs (learning rate {sa['lr']!r} vs {sb['lr']!r})", None)
        )
    if sa["params"] != sb["params"]:
        what = _parameter(names, first_list_difference(sa["params"], sb["params"]))
        found.append(("update", f"parameters after the update differ (first: {what})", what))
    return found
