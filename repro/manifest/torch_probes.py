"""Probes of the torch build and the CUDA, cuDNN, NCCL and CPU math libraries it uses.

Read in-process from torch: never ``torch.cuda.init()`` or any call that would start CUDA
when it is unavailable.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from repro.manifest.loaded_libs import cublas_version, cudart_version
from repro.manifest.probe import guarded, is_unavailable, read_each, unavailable


def decode_cudnn_version(version: int) -> str:
    """cuDNN's integer version as text: up to 8.x it is M*1000+m*100+p, from 9.0 M*10000+m*100+p.

    >>> decode_cudnn_version(8902), decode_cudnn_version(90100)
    ('8.9.2', '9.1.0')
    """
    if version >= 10000:
        major, rest = divmod(version, 10000)
    else:
        major, rest = divmod(version, 1000)
    minor, patch = divmod(rest, 100)
    return f"{major}.{minor}.{patch}"


def encode_cudnn_version(major: int, minor: int, patch: int) -> int:
    """The inverse of ``decode_cudnn_version``, for versions torch reports as a tuple."""
    return major * (10000 if major >= 9 else 1000) + minor * 100 + patch


def torch_build() -> dict[str, Any]:
    return read_each(
        {
            "version": lambda: str(torch.__version__),
            "git_version": lambda: torch.version.git_version,
            "debug": lambda: bool(torch.version.debug),
        }
    )


def cuda_build(loaded: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return read_each(
        {
            "build": lambda: torch.version.cuda,  # None on CPU-only builds
            "runtime": lambda: cudart_version(loaded),
        }
    )


def cuda_devices() -> dict[str, Any]:
    # is_available() asks the driver for a device count; unlike torch.cuda.init() it does
    # not create CUDA state in torch, so a CPU-only machine is left untouched.
    return read_each(
        {
            "available": torch.cuda.is_available,
            "device_count": torch.cuda.device_count,
        }
    )


ABSENT = "absent"  # an environment-key field that does not apply here (a CPU run)


def device_used(mig_uuids: Any) -> dict[str, Any]:
    """The CUDA device this process computes on (rank 0's, so the run's): its name, SM count
    and whether it is a MIG slice, which has fewer SMs than its card and so other kernels.

    ``mig_uuids``: the MIG instances' bare UUIDs NVML lists (or why it cannot). Every field
    reads ``"absent"`` where CUDA is unavailable.
    """
    if not torch.cuda.is_available():
        return {"name": ABSENT, "sm_count": ABSENT, "mig": ABSENT}
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    bare = str(properties.uuid).lower().removeprefix("gpu-").removeprefix("mig-")
    return {
        "name": str(properties.name),
        "sm_count": int(properties.multi_processor_count),
        "mig": mig_uuids if is_unavailable(mig_uuids) else bare in mig_uuids,
    }


def sm_count_by_uuid() -> dict[str, int]:
    """Streaming multiprocessors per GPU, keyed by UUID; empty when CUDA is unavailable."""
    if not torch.cuda.is_available():
        return {}
    counts = {}
    for index in range(torch.cuda.device_count()):
        properties = torch.cuda.get_device_properties(index)
        # Bare, lower-case UUID, the form nvml.py matches against.
        counts[str(properties.uuid).lower().removeprefix("gpu-")] = int(
            properties.multi_processor_count
        )
    return counts


def cudnn() -> Any:
    if not torch.backends.cudnn.is_available():  # type: ignore[no-untyped-call]
        return unavailable("torch was built without cuDNN")

    def runtime_version() -> int:
        version = torch.backends.cudnn.version()  # type: ignore[no-untyped-call]
        if version is None:
            raise RuntimeError("cuDNN could not be loaded")
        return int(version)

    def compiled() -> tuple[int, int, int]:
        major, minor, patch = torch._C._cudnn.getCompileVersion()
        return int(major), int(minor), int(patch)

    return read_each(
        {
            "runtime_version": runtime_version,
            "runtime": lambda: decode_cudnn_version(runtime_version()),
            "compiled_version": lambda: encode_cudnn_version(*compiled()),
            "compiled": lambda: "{}.{}.{}".format(*compiled()),
        }
    )


def cublas(loaded: dict[str, dict[str, Any]]) -> Any:
    if not torch.cuda.is_available():
        return unavailable("CUDA is not available")
    return cublas_version(loaded)


def nccl() -> Any:
    if not hasattr(torch._C, "_nccl_version"):
        return unavailable("torch was built without NCCL")
    return ".".join(str(part) for part in torch.cuda.nccl.version())  # type: ignore[no-untyped-call]


def cpu_capability() -> str:
    """The kernel level ATen dispatches to (DEFAULT, AVX2, AVX512, ...; ATEN_CPU_CAPABILITY)."""
    return str(torch.backends.cpu.get_cpu_capability())


def _search(pattern: str, text: Any) -> Any:
    if is_unavailable(text):
        return text  # why torch.__config__.show() failed
    match = re.search(pattern, text)
    if match is None:
        return unavailable("not listed in torch.__config__.show()")
    return match[1]


def cpu_math_libraries() -> dict[str, Any]:
    """MKL, oneDNN and OpenMP as torch reports them (``torch.__config__.show()``)."""
    config = guarded(torch.__config__.show)
    return {
        "blas": read_each({"name": lambda: _search(r"BLAS_INFO=([^,\s]+)", config)}),
        "mkl": read_each(
            {
                "available": torch.backends.mkl.is_available,
                "version": lambda: _search(
                    r"Math Kernel Library Version (.+?)(?: for |\n|$)", config
                ),
            }
        ),
        "onednn": read_each(
            {
                "available": torch.backends.mkldnn.is_available,
                "version": lambda: _search(r"MKL-DNN v(\S+)", config),
                "git_hash": lambda: _search(r"MKL-DNN v\S+ \(Git Hash (\w+)\)", config),
            }
        ),
        "openmp": read_each(
            {
                "available": torch.backends.openmp.is_available,
                "version": lambda: _search(r"OpenMP (\d+)", config),
            }
        ),
    }
