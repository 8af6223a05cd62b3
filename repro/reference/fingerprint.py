"""Exact 64-bit fingerprints of tensors, computed on the tensor's own device.

fingerprint(t) = sum_i bits(t)_i * w_i  (mod 2**64), with w_i fixed odd 64-bit
weights. Any single-bit change to any element changes the sum (an odd weight
times +-2**k is never 0 mod 2**64), integer sums are exact in any order, and
only the 8-byte result ever leaves the device.
"""

from __future__ import annotations

import hashlib

import torch

from repro.reference.model import hash32

_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _weights(n: int, device: torch.device) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.int64, device=device)
    hi, lo = hash32(i), hash32(i ^ 0x5BD1E995)
    return (hi << 32) | lo | 1


class Fingerprinter:
    """Caches the weight vector per device, growing it to the largest tensor seen."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._w = _weights(1024, device)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        """A 0-dim int64 tensor on ``t.device``; ``t`` is read as raw bits."""
        flat = t.detach().contiguous().view(-1)
        bits = flat.view(_INT_VIEW[flat.element_size()]).to(torch.int64)
        n = bits.numel()
        if n > self._w.numel():
            self._w = _weights(max(n, 2 * self._w.numel()), self.device)
        return (bits * self._w[:n]).sum()


def to_hex(value: int) -> str:
    return f"{value & 0xFFFFFFFFFFFFFFFF:016x}"


def digest_ints(values: list[int]) -> str:
    """A short sha256 of a list of integers (batch composition)."""
    return hashlib.sha256(",".join(map(str, values)).encode()).hexdigest()[:16]


def state_dict_identity(state: dict[str, torch.Tensor]) -> str:
    """sha256 over each tensor's name, dtype, shape and raw bytes, in sorted name order.

    Unlike the file's sha256 this does not change with the name ``torch.save``
    embeds in the archive.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
