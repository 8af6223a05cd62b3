"""``export_check``: does each exported form of an eval model compute what eager computes?

    result = repro.export_check(model, (tokens,), [(longer_tokens,)])
    print(result.verdict, result.summary)

Order: the preconditions (eval mode, the checkpoint's weights, a forward pass that
changes no buffer), eager's outputs (twice: a model whose eager outputs differ run to
run is NONDETERMINISTIC, and no tolerance can judge it), the calibrated tolerance, then
each format built from the first input set and run on every set. Per output: IDENTICAL
when bit-equal, EQUIVALENT inside the calibrated bound, DRIFT outside it; FAILED when an
exporter or runtime refuses. A format that matches on the first input set and not on a
later one specialised on the example (a shape or a Python branch fixed at trace time).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from repro.errors import UserError
from repro.export.built import Built, Unavailable
from repro.export.distance import Distance, distance
from repro.export.formats import DEPRECATED, FORMATS, builder
from repro.export.onnx_format import first_diverging_value
from repro.export.subject import (
    Inputs,
    Subject,
    require_checkpoint,
    require_eval_mode,
    subject_from,
    weights_identity,
)
from repro.export.tolerance import DEFAULT_ALPHA, DEFAULT_MEMBERS, Calibration, calibrate, run_eager
from repro.verdict import Verdict


@dataclass(frozen=True)
class OutputCheck:
    input_set: int  # 1-based
    output: int  # 0-based
    verdict: Verdict
    bound: float
    distance: Distance | None  # None when the shapes or dtypes differ
    reason: str = ""


@dataclass
class FormatCheck:
    format: str
    verdict: Verdict | None  # None: unavailable here
    summary: str
    outputs: list[OutputCheck] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    export_seconds: float = 0.0
    run_seconds: float = 0.0
    first_diverging: dict[str, Any] | None = None
    causes: list[str] = field(default_factory=list)
    deprecated: str | None = None


@dataclass
class ExportCheck:
    verdict: Verdict
    summary: str
    origin: str
    formats: list[FormatCheck]
    calibration: Calibration
    input_shapes: list[list[list[int]]]
    weights_identity: str
    checkpoint: str | None
    eager_repeatable: bool
    parameters: int
    seconds: float
    manifest: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shapes(inputs: Inputs) -> list[list[int]]:
    return [list(t.shape) for t in inputs]


def _judge_output(
    s: int, o: int, got: torch.Tensor, want: torch.Tensor, bound: float
) -> OutputCheck:
    if got.shape != want.shape or got.dtype != want.dtype:
        reason = f"gives {str(got.dtype).removeprefix('torch.')}{list(got.shape)}, eager {str(want.dtype).removeprefix('torch.')}{list(want.shape)}"
        return OutputCheck(s, o, Verdict.DRIFT, bound, None, reason)
    d = distance(got, want)
    if d.bit_equal:
        return OutputCheck(s, o, Verdict.IDENTICAL, bound, d)
    return OutputCheck(s, o, Verdict.EQUIVALENT if d.max_abs <= bound else Verdict.DRIFT, bound, d)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def _run_format(
    fmt: FormatCheck,
    built: Built,
    subject: Subject,
    references: list[list[torch.Tensor]],
    cal: Calibration,
) -> list[str]:
    """Run every input set; returns the refusals (FAILED reasons), one per set refused."""
    refused = []
    start = time.perf_counter()
    for s, (inputs, want) in enumerate(zip(subject.input_sets, references), start=1):
        try:
            got = built.run(inputs)
        except Exception as exc:
            refused.append(f"input set {s} {_shapes(inputs)} is refused: {_first_line(exc)}")
            continue
        if len(got) != len(want):
            fmt.outputs.append(
                OutputCheck(
                    s, -1, Verdict.DRIFT, 0.0, None, f"gives {len(got)} outputs, eager {len(want)}"
                )
            )
            continue
        for o, (g, w) in enumerate(zip(got, want)):
            fmt.outputs.append(_judge_output(s, o, g, w, cal.bound(s, o).bound))
    fmt.run_seconds = time.perf_counter() - start
    return refused


def _summarise(fmt: FormatCheck, refused: list[str]) -> None:
    verdicts = [o.verdict for o in fmt.outputs] + [Verdict.FAILED] * len(refused)
    fmt.verdict = Verdict.worst(verdicts) if verdicts else Verdict.FAILED
    bad = [o for o in fmt.outputs if o.verdict == Verdict.DRIFT]
    if refused:
        fmt.summary = refused[0]
        if all(not r.startswith("input set 1 ") for r in refused):
            fmt.causes.append("the exported graph specialised on the example input's shapes")
    elif bad:
        worst = max(bad, key=lambda o: o.distance.max_abs if o.distance else float("inf"))
        fmt.summary = _drift_text(worst)
        if all(o.input_set > 1 for o in bad):
            fmt.summary += " while input set 1 matches: the graph specialised on the example input"
            fmt.causes.append(
                "specialised at export time: a shape or a Python branch was fixed by the "
                "first input set (see the exporter's warnings)"
            )
    elif fmt.verdict == Verdict.IDENTICAL:
        fmt.summary = (
            f"bit-identical to eager on {len({o.input_set for o in fmt.outputs})} input set(s)"
        )
    else:
        most = max(
            fmt.outputs,
            key=lambda o: o.distance.max_abs / o.bound if o.distance and o.bound else 0.0,
        )
        d = most.distance
        assert d is not None
        fmt.summary = (
            f"differs from eager by at most {d.max_abs:.3g} ({d.max_ulp} ulp) on input set "
            f"{most.input_set} output {most.output}, inside the calibrated bound {most.bound:.3g}"
        )


def _drift_text(o: OutputCheck) -> str:
    where = f"input set {o.input_set} output {o.output}"
    if o.distance is None:
        return f"{where} {o.reason}"
    ratio = f", {o.distance.max_abs / o.bound:.3g}x" if o.bound > 0 else " (exact expected)"
    return f"{where} differs by {o.distance.max_abs:.3g}, bound {o.bound:.3g}{ratio}"


def _causes(fmt: FormatCheck, cal: Calibration) -> None:
    """Probable causes of a mismatch from what the format recorded (ONNX mostly)."""
    if fmt.verdict not in (Verdict.DRIFT, Verdict.FAILED):
        return
    facts = fmt.facts
    if "Resize" in facts.get("ops", []):
        fmt.causes.append(
            f"Resize/interpolate semantics depend on the opset (here {facts.get('opset')}) and its coordinate mode"
        )
    if (
        "CUDAExecutionProvider" in facts.get("providers", [])
        and facts.get("NVIDIA_TF32_OVERRIDE") != "0"
    ):
        fmt.causes.append(
            "ONNX Runtime's CUDA provider uses TF32 by default (set NVIDIA_TF32_OVERRIDE=0)"
        )
    halves = any(b.dtype == "float16" for b in cal.bounds)
    if halves and facts.get("providers", [None])[0] == "CPUExecutionProvider":
        fmt.causes.append("the CPU provider computes some fp16 operations in fp32")


def _diverging(fmt: FormatCheck, built: Built, subject: Subject) -> None:
    """On an ONNX DRIFT, the first value inside the graph over the tolerance."""
    if fmt.format != "onnx" or fmt.verdict != Verdict.DRIFT or built.program is None:
        return
    bad = next(o for o in fmt.outputs if o.verdict == Verdict.DRIFT)

    try:
        found = first_diverging_value(
            built.program, subject.input_sets[bad.input_set - 1], bad.bound
        )
    except Exception as exc:
        fmt.first_diverging = {"error": _first_line(exc)}
        return
    if found is not None:
        fmt.first_diverging = asdict(found)


def check_format(
    name: str, subject: Subject, references: list[list[torch.Tensor]], cal: Calibration
) -> FormatCheck:
    fmt = FormatCheck(name, None, "", deprecated=DEPRECATED.get(name))
    try:
        built = builder(name)(subject.model, subject.example, len(subject.input_sets) > 1)
    except Unavailable as exc:
        fmt.summary = f"unavailable: {exc}"
        return fmt
    except Exception as exc:
        fmt.verdict, fmt.summary = (
            Verdict.FAILED,
            f"the exporter refused the model: {_first_line(exc)}",
        )
        return fmt
    fmt.facts, fmt.warnings, fmt.export_seconds = built.facts, built.warnings, built.seconds
    refused = _run_format(fmt, built, subject, references, cal)
    _summarise(fmt, refused)
    _diverging(fmt, built, subject)
    _causes(fmt, cal)
    return fmt


def _parse_formats(formats: Sequence[str]) -> list[str]:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise UserError(
            f"unknown format {', '.join(unknown) or '(none)'}; choose from {','.join(FORMATS)}."
        )
    return list(dict.fromkeys(formats))


def _eager(subject: Subject) -> tuple[list[list[torch.Tensor]], bool]:
    before = weights_identity(subject.model)
    references = [run_eager(subject.model, s) for s in subject.input_sets]
    again = [run_eager(subject.model, s) for s in subject.input_sets]
    if weights_identity(subject.model) != before:
        raise UserError(
            "the model's forward pass changes its parameters or buffers (a batch-norm update?); call model.eval() before exporting."
        )
    repeatable = all(
        len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))
        for a, b in zip(references, again)
    )
    return references, repeatable


def check_subject(
    subject: Subject,
    *,
    formats: Sequence[str] = FORMATS,
    checkpoint: Path | None = None,
    members: int = DEFAULT_MEMBERS,
    alpha: float = DEFAULT_ALPHA,
) -> ExportCheck:
    start = time.perf_counter()
    names = _parse_formats(formats)
    require_eval_mode(subject.model)
    if checkpoint is not None:
        require_checkpoint(subject.model, checkpoint)
    identity = weights_identity(subject.model)
    references, repeatable = _eager(subject)
    cal = calibrate(subject.model, subject.input_sets, references, members=members, alpha=alpha)
    checks = [check_format(name, subject, references, cal) for name in names]
    judged = [f.verdict for f in checks if f.verdict is not None]
    if not judged:
        raise UserError(f"no format could be checked here: {'; '.join(f.summary for f in checks)}.")
    verdict = Verdict.NONDETERMINISTIC if not repeatable else Verdict.worst(judged)
    parts = [f"{f.format} {f.verdict or 'unavailable'}" for f in checks]
    summary = "eager's own outputs differ run to run" if not repeatable else "; ".join(parts)
    return ExportCheck(
        verdict, summary, subject.origin, checks, cal, [_shapes(s) for s in subject.input_sets],
        identity, str(checkpoint) if checkpoint else None, repeatable,
        sum(p.numel() for p in subject.model.parameters()), time.perf_counter() - start,
    )  # fmt: skip


def export_check(
    model: nn.Module,
    inputs: Any,
    more_inputs: list[Any] | None = None,
    **options: Any,
) -> ExportCheck:
    """The Python form of ``repro export-check``: ``inputs`` a tensor or a tuple of them,
    ``more_inputs`` further input sets (other batch sizes, sequence lengths)."""
    made = (model, inputs) if more_inputs is None else (model, inputs, more_inputs)
    return check_subject(subject_from(made, "python"), **options)
