"""Environment variables that can change numerics, kernels or communication; nothing else.

An allowlist, not a denylist: a manifest is shared with other people, and HOME, PATH or
cloud credentials have no business in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

PREFIXES = (
    "CUDA_",
    "CUBLAS",
    "CUDNN_",
    "NCCL_",
    "TORCH",
    "PYTORCH_",
    "OMP_",
    "MKL_",
    "KMP_",
    "OPENBLAS_",
    "ATEN_",
    "DNNL_",
    "ONEDNN_",
    "NVIDIA_",
    "TRITON_",
    "GLOO_",
)
EXACT = frozenset({"PYTHONHASHSEED", "CUDA_VISIBLE_DEVICES", "LD_PRELOAD", "LD_LIBRARY_PATH"})
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL")
REDACTED = "<redacted>"


def is_recorded(name: str) -> bool:
    return name in EXACT or name.startswith(PREFIXES)


def looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(marker in upper for marker in SECRET_MARKERS)


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {
        name: REDACTED if looks_secret(name) else value
        for name, value in sorted(environ.items())
        if is_recorded(name)
    }
