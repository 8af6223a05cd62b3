"""The CUDA-stack shared libraries actually mapped into this process, and their versions.

What torch was built against and what the dynamic linker loaded can differ (an
LD_LIBRARY_PATH entry, a system cuDNN shadowing the pip one); /proc/self/maps says which
file is in use. Versions come from the file name, or from the already-loaded library
itself; nothing new is ever loaded.
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path
from typing import Any

from repro.manifest.probe import cuda_version, unavailable

PROC_SELF_MAPS = Path("/proc/self/maps")

# libcudart.so.12.4.127, libcudnn_ops.so.9, libcublasLt.so.12, libnccl.so.2,
# libcuda.so.550.54.14; wheels repaired by auditwheel add a hash: libcudart-9335f6a2.so.12
_LIBRARY = re.compile(
    r"^(?P<stem>libcudart|libcudnn\w*|libcublas\w*|libnccl|libcuda)"
    r"(?:-[0-9a-f]{8})?\.so(?:\.(?P<version>\d[\d.]*))?$"
)
_STATUS_OK = 0
# libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL
_LIBRARY_PROPERTIES = (0, 1, 2)


def parse_maps(text: str) -> dict[str, dict[str, Any]]:
    """``{stem: {"path", "version"}}`` for the CUDA-stack libraries in a maps listing."""
    loaded: dict[str, dict[str, Any]] = {}
    for line in text.splitlines():
        if "libcu" not in line and "libnccl" not in line:
            continue  # most of the thousands of mappings; skip the split
        parts = line.split(maxsplit=5)
        if len(parts) < 6:
            continue
        path = parts[5]
        match = _LIBRARY.match(os.path.basename(path))
        if match and match["stem"] not in loaded:
            loaded[match["stem"]] = {"path": path, "version": match["version"]}
    return loaded


def loaded_libraries(maps: Path = PROC_SELF_MAPS) -> dict[str, dict[str, Any]]:
    return parse_maps(maps.read_text(encoding="utf-8", errors="replace"))


def _already_loaded(loaded: dict[str, dict[str, Any]], stem: str) -> ctypes.CDLL | None:
    if stem not in loaded:
        return None
    # RTLD_NOLOAD: a handle to the copy already in the process, or an error; never a load.
    return ctypes.CDLL(loaded[stem]["path"], mode=os.RTLD_NOLOAD | os.RTLD_LAZY)


def cudart_version(loaded: dict[str, dict[str, Any]]) -> Any:
    """The CUDA runtime version, e.g. "12.4" (cudaRuntimeGetVersion does not start CUDA)."""
    library = _already_loaded(loaded, "libcudart")
    if library is None:
        return unavailable("libcudart is not loaded in this process")
    version = ctypes.c_int()
    status = library.cudaRuntimeGetVersion(ctypes.byref(version))
    if status != _STATUS_OK:
        raise RuntimeError(f"cudaRuntimeGetVersion returned status {status}")
    return cuda_version(version.value)


def cublas_version(loaded: dict[str, dict[str, Any]]) -> Any:
    """The cuBLAS version, e.g. "12.4.5" (cublasGetProperty needs no handle or GPU)."""
    library = _already_loaded(loaded, "libcublas")
    if library is None:
        return unavailable("libcublas is not loaded in this process")
    parts = []
    for prop in _LIBRARY_PROPERTIES:
        value = ctypes.c_int()
        status = library.cublasGetProperty(prop, ctypes.byref(value))
        if status != _STATUS_OK:
            raise RuntimeError(f"cublasGetProperty returned status {status}")
        parts.append(str(value.value))
    return ".".join(parts)
