"""Python, operating system, libc, kernel and Triton: from the platform module and metadata."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import sys
from typing import Any

from repro.clock import utc_now
from repro.manifest.probe import guarded, is_unavailable, read_each, unavailable
from repro.manifest.redact import redact_argv

# Triton ships under several distribution names; importing it would cost seconds.
_TRITON_DISTRIBUTIONS = ("triton", "pytorch-triton", "pytorch-triton-rocm", "pytorch-triton-xpu")


def python() -> dict[str, Any]:
    return read_each(
        {
            "version": platform.python_version,
            "implementation": platform.python_implementation,
        }
    )


def operating_system() -> dict[str, Any]:
    release = guarded(platform.freedesktop_os_release)

    def field(name: str) -> Any:
        if is_unavailable(release):
            return release
        if name not in release:
            return unavailable(f"/etc/os-release has no {name}")
        return release[name]

    return read_each(
        {
            "system": platform.system,
            "name": lambda: field("PRETTY_NAME"),
            "id": lambda: field("ID"),
            "version_id": lambda: field("VERSION_ID"),
        }
    )


def libc() -> str:
    name, version = platform.libc_ver()  # os.confstr, no reading of the executable
    if not name:
        raise RuntimeError("the C library does not report its version")
    return f"{name} {version}"


def triton() -> Any:
    for name in _TRITON_DISTRIBUTIONS:
        try:
            return {"distribution": name, "version": importlib.metadata.version(name)}
        except importlib.metadata.PackageNotFoundError:
            continue
    return unavailable("triton is not installed")


def invocation(argv: list[str] | None = None) -> dict[str, Any]:
    return read_each(
        {
            "hostname": socket.gethostname,
            "time_utc": utc_now,
            # A token passed on the command line is never recorded.
            "argv": lambda: redact_argv(list(sys.argv if argv is None else argv)),
        }
    )
