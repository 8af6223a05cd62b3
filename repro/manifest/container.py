"""Is this a container, and which image: the marker files and variables images leave behind."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from repro.manifest.probe import read_each

# Set by NGC, Docker Hub pytorch/cuda and similar images; they name the image's stack.
IMAGE_VARIABLES = (
    "NVIDIA_PYTORCH_VERSION",
    "PYTORCH_VERSION",
    "PYTORCH_BUILD_VERSION",
    "CUDA_VERSION",
    "CUDA_DRIVER_VERSION",
    "CUDNN_VERSION",
    "CUBLAS_VERSION",
    "NCCL_VERSION",
    "NV_CUDA_LIB_VERSION",
    "NV_CUDNN_VERSION",
    "NV_LIBNCCL_PACKAGE_VERSION",
    "NVIDIA_REQUIRE_CUDA",
    "NVIDIA_PRODUCT_NAME",
    "NVIDIA_BUILD_ID",
)
_CGROUP_MARKERS = ("docker", "kubepods", "containerd", "libpod", "podman", "lxc", "crio")


def cgroup_hints(text: str) -> list[str]:
    """Container runtimes named in a /proc/1/cgroup listing (empty under cgroup namespaces)."""
    return sorted({marker for marker in _CGROUP_MARKERS if marker in text})


def container(root: Path = Path("/"), environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    environ = os.environ if environ is None else environ
    reading = read_each(
        {
            "dockerenv": lambda: (root / ".dockerenv").exists(),
            "containerenv": lambda: (root / "run/.containerenv").exists(),
            "cgroup_hints": lambda: cgroup_hints((root / "proc/1/cgroup").read_text()),
            "kubernetes": lambda: "KUBERNETES_SERVICE_HOST" in environ,
            "image_env": lambda: {
                name: environ[name] for name in IMAGE_VARIABLES if name in environ
            },
        }
    )
    reading["in_container"] = _in_container(reading, environ)
    return reading


def _in_container(reading: dict[str, Any], environ: Mapping[str, str]) -> bool:
    # Unavailable readings are dicts, so `is True` and the list check skip them.
    markers = (reading["dockerenv"], reading["containerenv"], reading["kubernetes"])
    hints = reading["cgroup_hints"]
    return (
        any(marker is True for marker in markers)
        or (isinstance(hints, list) and bool(hints))
        # systemd-nspawn, podman and LXC set `container` in the environment they start.
        or "container" in environ
    )
