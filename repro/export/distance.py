"""How far one output is from eager, in the units people already know: max absolute,
max relative and ulp distance, where the largest difference sits, and what the
conventional fixed tolerances would have said.

Relative error is reported but never judged: near zero it is meaningless (a 1e-9
output off by 1e-9 is "100 %"), which is why the verdict uses the calibrated bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# torch.testing.assert_close's defaults (rtol, atol) per dtype.
ASSERT_CLOSE = {
    torch.float16: (1e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-5),
    torch.float32: (1.3e-6, 1e-5),
    torch.float64: (1e-7, 1e-7),
}
# Hugging Face Optimum validates exported models with numpy.allclose(atol=1e-5), whose
# rtol default is 1e-5.
OPTIMUM = (1e-5, 1e-5)
_INT_VIEW = {2: torch.int16, 4: torch.int32, 8: torch.int64}


@dataclass(frozen=True)
class Distance:
    bit_equal: bool
    max_abs: float
    max_rel: float
    max_ulp: int | None  # None for integer outputs or dtypes that differ
    worst_index: tuple[int, ...] | None  # where |actual - expected| is largest
    actual_at_worst: float | None
    expected_at_worst: float | None
    assert_close: bool | None  # torch.testing.assert_close's dtype defaults; None: not float
    optimum: bool  # numpy.allclose(atol=1e-5, rtol=1e-5)


def _ordered(t: torch.Tensor) -> torch.Tensor:
    """Float bits mapped to integers whose difference counts the floats between them."""
    bits = t.contiguous().view(_INT_VIEW[t.element_size()]).to(torch.int64)
    top = -(2 ** (8 * t.element_size() - 1))
    return torch.where(bits < 0, top - bits, bits)


def ulp_distance(actual: torch.Tensor, expected: torch.Tensor) -> int | None:
    if actual.dtype != expected.dtype or not actual.is_floating_point():
        return None
    if actual.element_size() not in _INT_VIEW or actual.numel() == 0:
        return None
    return int((_ordered(actual) - _ordered(expected)).abs().max())


def _allclose(a: torch.Tensor, e: torch.Tensor, rtol: float, atol: float) -> bool:
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all()) and bool(
        (a.isnan() == e.isnan()).all()
    )


def distance(actual: torch.Tensor, expected: torch.Tensor) -> Distance:
    """``actual`` (a format's output) against ``expected`` (eager), same shape."""
    equal = actual.dtype == expected.dtype and torch.equal(actual, expected)
    a, e = actual.detach().double(), expected.detach().double()
    if a.numel() == 0:
        return Distance(equal, 0.0, 0.0, 0, None, None, None, True, True)
    diff = (a - e).abs()
    diff = torch.where(torch.isnan(diff) & (a.isnan() == e.isnan()), 0.0, diff)
    flat = int(torch.nan_to_num(diff, nan=float("inf")).argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    rel = diff / e.abs().clamp_min(torch.finfo(torch.float64).tiny)
    tolerance = ASSERT_CLOSE.get(expected.dtype)
    return Distance(
        bit_equal=equal,
        max_abs=float(diff.max()),
        max_rel=float(torch.nan_to_num(rel, nan=0.0).max()),
        max_ulp=ulp_distance(actual, expected),
        worst_index=index,
        actual_at_worst=float(a[index]),
        expected_at_worst=float(e[index]),
        assert_close=_allclose(a, e, *tolerance) if tolerance else None,
        optimum=_allclose(a, e, *OPTIMUM),
    )
