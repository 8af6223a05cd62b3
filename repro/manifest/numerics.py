"""Math-mode flags: every torch setting that changes which kernels run or how they round.

Each flag is its own probe: torch raises from some getters when the legacy and the new
TF32 APIs were both used, and that must cost one reading, not the section.
"""

from __future__ import annotations

from typing import Any

import torch

from repro.manifest.probe import guarded, read_each

# Typed Any: these attributes come and go between torch releases (and the stubs lag);
# a missing one is an unavailable reading, not a type error.
_backends: Any = torch.backends


def _cuda_matmul() -> dict[str, Any]:
    matmul = _backends.cuda.matmul
    return read_each(
        {
            "fp32_precision": lambda: matmul.fp32_precision,
            "allow_tf32": lambda: matmul.allow_tf32,
            "float32_matmul_precision": torch.get_float32_matmul_precision,
            "allow_fp16_reduced_precision_reduction": (
                lambda: matmul.allow_fp16_reduced_precision_reduction
            ),
            "allow_bf16_reduced_precision_reduction": (
                lambda: matmul.allow_bf16_reduced_precision_reduction
            ),
            "allow_fp16_accumulation": lambda: matmul.allow_fp16_accumulation,
            "preferred_blas_library": lambda: _backends.cuda.preferred_blas_library().name,
        }
    )


def _cudnn() -> dict[str, Any]:
    cudnn = _backends.cudnn
    return read_each(
        {
            "enabled": lambda: cudnn.enabled,
            "deterministic": lambda: cudnn.deterministic,
            "benchmark": lambda: cudnn.benchmark,
            "allow_tf32": lambda: cudnn.allow_tf32,
            "conv_fp32_precision": lambda: cudnn.conv.fp32_precision,
            "rnn_fp32_precision": lambda: cudnn.rnn.fp32_precision,
        }
    )


def _mkldnn() -> dict[str, Any]:
    mkldnn = _backends.mkldnn
    return read_each(
        {
            "enabled": lambda: mkldnn.enabled,
            "deterministic": lambda: mkldnn.deterministic,
            "fp32_precision": lambda: mkldnn.fp32_precision,
        }
    )


def _deterministic() -> dict[str, Any]:
    return read_each(
        {
            "algorithms": torch.are_deterministic_algorithms_enabled,
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled,
            "fill_uninitialized_memory": (
                lambda: torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
            ),
        }
    )


def _sdpa() -> dict[str, Any]:
    cuda = _backends.cuda
    return read_each(
        {
            "flash": cuda.flash_sdp_enabled,
            "mem_efficient": cuda.mem_efficient_sdp_enabled,
            "math": cuda.math_sdp_enabled,
            "cudnn": cuda.cudnn_sdp_enabled,
        }
    )


def _threads() -> dict[str, Any]:
    return read_each(
        {
            "intra_op": torch.get_num_threads,
            # Reading does not start the inter-op pool, so set_num_interop_threads still works.
            "inter_op": torch.get_num_interop_threads,
        }
    )


def numerics() -> dict[str, Any]:
    return {
        "fp32_precision": guarded(lambda: _backends.fp32_precision),
        "matmul": _cuda_matmul(),
        "cudnn": _cudnn(),
        "mkldnn": _mkldnn(),
        "deterministic": _deterministic(),
        "sdpa": _sdpa(),
        "threads": _threads(),
    }
