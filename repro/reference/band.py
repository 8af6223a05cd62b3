"""Numerics-band members: the same run with its parameters perturbed at rounding level.

A member stands in for "another machine's arithmetic". Its initial parameters
get relative noise of ``perturbation_size`` and every update a perturbation 32x
smaller, so members part from the primary within the first steps and do not
re-merge (autocast absorbs finer changes; see DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from repro.reference.determinism import Stream, derive_seed

if TYPE_CHECKING:
    from repro.profile import Profile

# Half a unit in the last place of each compute dtype: the finest change autocast cannot absorb.
_HALF_ULP = {"bfloat16": 2.0**-9, "float16": 2.0**-12, "float32": 2.0**-24}
_PER_STEP_DIVISOR = 32


def perturbation_size(profile: Profile) -> float:
    """Relative size of a member's initial perturbation: ``band_scale`` or half an ulp."""
    if profile.band_scale is not None:
        return profile.band_scale
    return _HALF_ULP[profile.amp_dtype]


def _scale(params: Iterable[torch.Tensor], size: float, generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in params:
            noise = torch.rand(p.shape, generator=generator, device=p.device) * 2 - 1
            p.mul_(1 + size * noise)


def perturb_initial(profile: Profile, params: Iterable[torch.Tensor], device: torch.device) -> None:
    """p_0 of a member (no-op for a run that is not one)."""
    if profile.band_member is None:
        return
    generator = torch.Generator(device=device).manual_seed(
        derive_seed(profile.seed, Stream.BAND_INITIAL, member=profile.band_member)
    )
    _scale(params, perturbation_size(profile), generator)


def perturb_update(
    profile: Profile, params: Iterable[torch.Tensor], step: int, device: torch.device
) -> None:
    """After update ``step`` of a member (no-op for a run that is not one)."""
    if profile.band_member is None:
        return
    generator = torch.Generator(device=device).manual_seed(
        derive_seed(profile.seed, Stream.BAND_STEP, member=profile.band_member, step=step)
    )
    _scale(params, perturbation_size(profile) / _PER_STEP_DIVISOR, generator)
