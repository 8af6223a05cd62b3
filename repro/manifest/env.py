"""Environment variables that can change numerics, kernels or communication; nothing else.

An allowlist, not a denylist: a manifest is shared with other people, and HOME, PATH or
cloud credentials have no business in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

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


def redact_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A config with every secret-looking key's value replaced, at any depth."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if looks_secret(str(key)):
            out[key] = REDACTED
        elif isinstance(value, Mapping):
            out[key] = redact_mapping(value)
        else:
            out[key] = value
    return out


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with the value of every secret-looking option replaced:
    ``--api-token=abc`` and ``--api-token abc`` both keep the option, not the value."""
    out: list[str] = []
    hide_next = False
    for word in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
        elif word.startswith("-") and looks_secret(word.split("=", 1)[0]):
            if "=" in word:
                out.append(word.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(word)
                hide_next = True
        else:
            out.append(word)
    return out
