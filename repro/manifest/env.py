"""Environment variables that can change numerics, kernels or communication; nothing else.

An allowlist, not a denylist: a manifest is shared with other people, and HOME, PATH or
cloud credentials have no business in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from repro.manifest.redact import REDACTED, looks_secret, redact_text

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


def is_recorded(name: str) -> bool:
    return name in EXACT or name.startswith(PREFIXES)


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    environ = os.environ if environ is None else environ
    return {
        name: REDACTED if looks_secret(name) else redact_text(value)
        for name, value in sorted(environ.items())
        if is_recorded(name)
    }
