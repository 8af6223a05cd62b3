"""The calibrated tolerance: how far the model's own outputs move when its weights move by
one unit in the last place.

Two identical eager runs on a CPU differ by exactly 0, so a tolerance taken from them
would call any reordering of a sum a failure. Instead each of K members nudges every
nonzero weight one ulp up or down at random (the weights' own dtype: the integer view
+-1), runs the eager model on every input set, and records, per output, the largest
absolute deviation from the unperturbed outputs. A format's deviation is judged
against a one-sided log-normal prediction bound over the members, as the numerics band
judges a run (``repro.judge.bands.window_bounds``):

    bound = exp(mean + t(1 - a, K - 1) * sd * sqrt(1 + 1/K))   over log(deviation + floor)

with ``a = alpha / N`` over the N outputs of all input sets, so each format's verdict
has a false-alarm rate of at most alpha against a difference the size of rounding
noise. An output no member moves (integers, an argmax) gets a bound of 0: exact.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from repro.export.subject import Inputs
from repro.judge.group_power import t_quantile
from repro.judge.group_stats import mean_sd

MIN_MEMBERS = 8
DEFAULT_MEMBERS = 16
DEFAULT_ALPHA = 0.01
_INT_VIEW = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def flatten(value: Any) -> list[torch.Tensor]:
    """The tensors of a model's output, in order (tuples, lists and dict values)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for key in value for t in flatten(value[key])]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in flatten(item)]
    return []


def run_eager(model: nn.Module, inputs: Inputs) -> list[torch.Tensor]:
    # no_grad is how an eval model is served; it also picks nn.TransformerEncoder's fast path.
    with torch.no_grad():
        return [t.detach().clone() for t in flatten(model(*inputs))]


@dataclass(frozen=True)
class OutputBound:
    """One output of one input set: the members' deviations and the bound they give."""

    input_set: int  # 1-based, as the report numbers them
    output: int  # 0-based position in the flattened outputs
    dtype: str
    shape: tuple[int, ...]
    deviations: tuple[float, ...]  # each member's max |member - eager|
    typical: float  # the members' geometric mean deviation
    bound: float  # a format deviating more than this is DRIFT


@dataclass(frozen=True)
class Calibration:
    members: int
    alpha: float
    level: float  # the per-output one-sided level a = alpha / N
    bounds: tuple[OutputBound, ...]
    seconds: float

    def bound(self, input_set: int, output: int) -> OutputBound:
        for b in self.bounds:
            if (b.input_set, b.output) == (input_set, output):
                return b
        raise KeyError((input_set, output))


def nudge(t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``t`` with every nonzero finite element moved one ulp away from or towards zero."""
    bits = t.detach().clone().contiguous().view(_INT_VIEW[t.element_size()])
    step = torch.randint(0, 2, bits.shape, generator=generator, dtype=torch.int64) * 2 - 1
    # Zeros stay zero (masks, padding rows); inf/nan would turn into other specials.
    movable = (t != 0) & torch.isfinite(t)
    bits += (step * movable.to(torch.int64)).to(bits.dtype)
    return bits.view(t.dtype)


@dataclass
class _Nudged:
    """Every floating parameter nudged in place for one member, put back afterwards."""

    model: nn.Module
    originals: dict[str, torch.Tensor]

    def apply(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.originals:
                    p.copy_(nudge(self.originals[name].cpu(), generator).to(p.device))

    def restore(self) -> None:
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if name in self.originals:
                    p.copy_(self.originals[name])


def _members(
    model: nn.Module, input_sets: list[Inputs], k: int
) -> Iterator[list[list[torch.Tensor]]]:
    originals = {
        n: p.detach().clone() for n, p in model.named_parameters() if p.is_floating_point()
    }
    nudged = _Nudged(model, originals)
    try:
        for member in range(k):
            nudged.apply(seed=1000 + member)
            yield [run_eager(model, inputs) for inputs in input_sets]
    finally:
        nudged.restore()


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max())


def log_normal_bound(deviations: list[float], scale: float, a: float) -> tuple[float, float]:
    """(typical, bound): the geometric mean and the one-sided (1 - a) prediction bound."""
    floor = 1e-9 * scale + 1e-30  # keeps log finite where a member did not move at all
    logs = [math.log(d + floor) for d in deviations]
    mean, sd = mean_sd(logs)
    k = len(deviations)
    top = mean + t_quantile(1 - a, k - 1) * sd * math.sqrt(1 + 1 / k)
    # Clamped: exp overflows past 709; a bound below the floor is 0 (exact).
    return max(0.0, math.exp(mean) - floor), max(0.0, math.exp(min(top, 700.0)) - floor)


def calibrate(
    model: nn.Module,
    input_sets: list[Inputs],
    references: list[list[torch.Tensor]],
    *,
    members: int = DEFAULT_MEMBERS,
    alpha: float = DEFAULT_ALPHA,
) -> Calibration:
    """Bounds per output of every input set from ``members`` one-ulp weight nudges."""
    if members < MIN_MEMBERS:
        raise ValueError(f"members={members}: a prediction bound needs at least {MIN_MEMBERS}")
    start = time.perf_counter()
    deviations: dict[tuple[int, int], list[float]] = {}
    for outputs in _members(model, input_sets, members):
        for s, (got, want) in enumerate(zip(outputs, references)):
            for o, (g, w) in enumerate(zip(got, want)):
                deviations.setdefault((s, o), []).append(max_abs(g, w))
    n = sum(len(outs) for outs in references)
    a = alpha / max(1, n)
    bounds = []
    for s, outs in enumerate(references):
        for o, ref in enumerate(outs):
            devs = deviations[(s, o)]
            scale = float(ref.double().abs().mean()) if ref.numel() else 0.0
            typical, bound = log_normal_bound(devs, scale, a)
            bounds.append(
                OutputBound(
                    s + 1,
                    o,
                    str(ref.dtype).removeprefix("torch."),
                    tuple(ref.shape),
                    tuple(devs),
                    typical,
                    bound,
                )
            )
    return Calibration(members, alpha, a, tuple(bounds), time.perf_counter() - start)
