"""Exact 64-bit fingerprints of any tensor, computed on the tensor's own device.

A copy of the generic part of ``repro.reference.fingerprint`` (with the ``hash32`` of
``repro.reference.model``): those modules are hashed into the reference workload's
identity, so the probe keeps its own copy rather than importing or editing them. Unlike
the reference, any dtype is accepted (bool, complex, 16-byte types) because a user's
model may return anything.

fingerprint(t) = sum_i bits(t)_i * w_i  (mod 2**64), with w_i fixed odd 64-bit weights:
a single-bit change to any element changes the sum, and the integer sum is exact in any
order, so the fingerprint itself is deterministic.
"""

from __future__ import annotations

import torch

_MASK32 = 0xFFFFFFFF
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int64 tensors holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _weights(n: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.int64, device=device)
    hi, lo = hash32(i), hash32(i ^ 0x5BD1E995)
    return (hi << 32) | lo | 1


class Fingerprinter:
    """Caches the weight vector per device, growing it to the largest tensor seen."""

    def __init__(self) -> None:
        self._w: dict[torch.device, torch.Tensor] = {}

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """A 0-dim int64 tensor on ``t.device``; ``t`` is read as raw bits."""
        flat = t.detach()
        if flat.is_complex():
            flat = torch.view_as_real(flat)
        flat = flat.contiguous().view(-1)
        size = flat.element_size()
        if size not in _INT_VIEW:  # no integer type this wide: read its bytes
            flat, size = flat.view(torch.uint8), 1
        bits = flat.view(_INT_VIEW[size]).to(torch.int64)
        n = bits.numel()
        w = self._w.get(t.device)
        if w is None or n > w.numel():
            w = _weights(max(n, 1024, 2 * (0 if w is None else w.numel())), t.device)
            self._w[t.device] = w
        return (bits * w[:n]).sum()
