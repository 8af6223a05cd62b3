"""``capture_manifest``: run every probe, section by section, into a plain YAML-safe dict.

Costs about 10 ms after ``import torch``; see benchmarks/bench_manifest.py.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import repro
from repro.manifest import (
    container,
    cpu,
    dispatch,
    env,
    git_info,
    loaded_libs,
    numerics,
    nvml,
    packages,
    system,
    torch_probes,
)
from repro.manifest.probe import guarded, is_unavailable
from repro.manifest.schema import MANIFEST_SCHEMA_VERSION


def _mig_uuids() -> list[str]:
    return [nvml.bare_uuid(u) for u in nvml.cuda_device_uuids() if u.upper().startswith("MIG-")]


def _hardware() -> dict[str, Any]:
    cpu_reading = cpu.cpu_info()
    cpu_reading["torch_capability"] = guarded(torch_probes.cpu_capability)
    cuda = torch_probes.cuda_devices()
    cuda["used"] = torch_probes.device_used(guarded(_mig_uuids))
    return {
        "cpu": cpu_reading,
        "cuda": cuda,
        **nvml.gpu_probes(sm_counts=guarded(torch_probes.sm_count_by_uuid)),
    }


def _environment() -> dict[str, str]:
    """The allowlisted variables, with GPU UUIDs hashed: a manifest never names a board."""
    found = env.environment()
    for name in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
        if name in found:
            found[name] = nvml.hash_visible_devices(found[name])
    return found


def _libraries() -> dict[str, Any]:
    loaded = guarded(loaded_libs.loaded_libraries)
    found = {} if is_unavailable(loaded) else cast(dict[str, dict[str, Any]], loaded)
    return {
        "torch": torch_probes.torch_build(),
        "cuda": torch_probes.cuda_build(found),
        "cudnn": guarded(torch_probes.cudnn),
        "cublas": guarded(lambda: torch_probes.cublas(found)),
        "nccl": guarded(torch_probes.nccl),
        "loaded": loaded,
        **torch_probes.cpu_math_libraries(),
        "triton": guarded(system.triton),
        "python": system.python(),
        "os": system.operating_system(),
        "libc": guarded(system.libc),
        "kernel": guarded(platform.release),
    }


def _code(repo: str | Path | None) -> dict[str, Any]:
    return {
        "git": guarded(lambda: git_info.repository_state(repo)),
        "repro_version": repro.__version__,
        "repro_sha": guarded(git_info.repro_checkout_sha),
    }


def _add_dispatch(manifest: dict[str, Any]) -> None:
    """oneDNN's ISA as oneDNN reports it (derived where it cannot say) and MKL's path,
    beside each library's version: what they ran, not only what was set."""
    libraries = manifest.get("libraries")
    onednn = libraries.get("onednn") if isinstance(libraries, dict) else None
    if isinstance(onednn, dict) and onednn.get("available") is True:
        read = guarded(dispatch.read_onednn_isa)
        cpu_reading = manifest.get("hardware", {}).get("cpu", {})
        flags = cpu_reading.get("isa_flags") if isinstance(cpu_reading, dict) else None
        found = dispatch.onednn_dispatch(
            flags, env.environment(), read if isinstance(read, str) else None
        )
        onednn.update(found)
    dispatch.derive_missing(manifest)


def to_plain(value: Any) -> Any:
    """A copy made of str/int/float/bool/None, lists and str-keyed dicts only.

    Probes hand back torch's own types (``TorchVersion`` is a str subclass, backends are
    enums, versions are tuples), which ``yaml.safe_dump`` refuses.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(item) for item in value]
    return str(value)


def capture_manifest(
    repo: str | Path | None = None, argv: list[str] | None = None
) -> dict[str, Any]:
    """The environment manifest of this process: every section, never an exception.

    ``repo`` is the code being verified (default: the working directory); ``argv`` is
    recorded as the invocation (default: ``sys.argv``).
    """
    sections: dict[str, Callable[[], Any]] = {
        "hardware": _hardware,
        "libraries": _libraries,
        "numerics": numerics.numerics,
        "env": _environment,
        "code": lambda: _code(repo),
        "packages": packages.packages,
        "container": container.container,
        "invocation": lambda: system.invocation(argv),
    }
    manifest: dict[str, Any] = {"schema_version": MANIFEST_SCHEMA_VERSION}
    for name, build in sections.items():
        manifest[name] = guarded(build)
    _add_dispatch(manifest)
    return cast(dict[str, Any], to_plain(manifest))
