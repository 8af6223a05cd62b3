"""GPU probes through NVML (nvidia-ml-py), which needs no CUDA context and no nvidia-smi.

Each field is its own guarded read: consumer GPUs, MIG slices and containers refuse some
queries (ECC, clocks, power) with NVMLError_NotSupported or NoPermission.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from repro.errors import UserError
from repro.manifest.probe import (
    cuda_version,
    guarded,
    is_unavailable,
    read_each,
    reason_for,
    unavailable,
)

_MIB = 2**20
_MILLIWATTS_PER_WATT = 1000


def _text(value: str | bytes) -> str:
    # nvidia-ml-py returns str; older pynvml releases returned bytes.
    return value.decode() if isinstance(value, bytes) else value


def hash_uuid(uuid: str) -> str:
    """First 16 hex digits of the UUID's sha256: tells GPUs apart without naming the board."""
    return hashlib.sha256(uuid.encode()).hexdigest()[:16]


def hash_visible_devices(value: str) -> str:
    """A ``CUDA_VISIBLE_DEVICES`` value with each ``GPU-``/``MIG-`` UUID hashed by
    ``hash_uuid`` (as ``run.cuda_visible_device`` is); indices stay as written."""
    entries = [entry.strip() for entry in value.split(",")]
    return ",".join(hash_uuid(e) if e.upper().startswith(("GPU-", "MIG-")) else e for e in entries)


def bare_uuid(uuid: str) -> str:
    """A UUID without its ``GPU-``/``MIG-`` prefix, in lower case: how torch spells it."""
    lowered = uuid.lower()
    return lowered.removeprefix("gpu-").removeprefix("mig-")


def decode_cuda_driver_version(version: int) -> str:
    """NVML's CUDA driver version 12040 -> "12.4"."""
    return cuda_version(version)


def _sm_count(uuid: Any, sm_counts: Any) -> Any:
    for reading in (uuid, sm_counts):
        if is_unavailable(reading):
            return reading
    if not sm_counts:
        return unavailable("CUDA is not available to torch in this process")
    count = sm_counts.get(bare_uuid(uuid))
    if count is None:
        return unavailable("no CUDA device of this process has this GPU's UUID")
    return count


def _device(nvml: Any, index: int, sm_counts: Any) -> dict[str, Any]:
    handle = guarded(lambda: nvml.nvmlDeviceGetHandleByIndex(index))
    if is_unavailable(handle):
        return {"index": index, "handle": handle}
    uuid = guarded(lambda: _text(nvml.nvmlDeviceGetUUID(handle)))
    device = read_each(
        {
            "index": lambda: index,
            "name": lambda: _text(nvml.nvmlDeviceGetName(handle)),
            "uuid_sha256": lambda: hash_uuid(uuid) if isinstance(uuid, str) else uuid,
            "compute_capability": (
                lambda: "{}.{}".format(*nvml.nvmlDeviceGetCudaComputeCapability(handle))
            ),
            "sm_count": lambda: _sm_count(uuid, sm_counts),
            "memory_total_mib": lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB,
            "ecc_mode": lambda: bool(nvml.nvmlDeviceGetEccMode(handle)[0]),
            "mig_mode": lambda: bool(nvml.nvmlDeviceGetMigMode(handle)[0]),
            "persistence_mode": lambda: bool(nvml.nvmlDeviceGetPersistenceMode(handle)),
            "power_limit_w": (
                lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle) / _MILLIWATTS_PER_WATT
            ),
        }
    )
    # The current clocks and PCIe link are volatile readings (keys.yaml): they follow load,
    # power and temperature, and an idle link trains down to a lower generation and width.
    # They are recorded for preflight and never compared; the maximum clocks are the card's.
    sm, memory = nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM
    device["clocks_mhz"] = read_each(
        {
            "sm": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, sm)),
            "sm_max": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, sm)),
            "memory": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, memory)),
            "memory_max": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, memory)),
        }
    )
    device["pcie"] = read_each(
        {
            "generation": lambda: int(nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle)),
            "width": lambda: int(nvml.nvmlDeviceGetCurrPcieLinkWidth(handle)),
        }
    )
    return device


def _import_pynvml() -> Any:
    import pynvml

    return pynvml


def gpu_probes(sm_counts: Any = None, nvml: Any = None) -> dict[str, Any]:
    """``{"nvml": driver fields, "gpus": [one dict per GPU]}``; each says why if NVML is absent.

    ``sm_counts`` maps bare UUIDs to SM counts (or says why there are none); ``nvml`` is
    the pynvml module by default, tests pass a fake with the same functions.
    """
    if nvml is None:
        nvml = guarded(_import_pynvml)
        if is_unavailable(nvml):
            return {"nvml": nvml, "gpus": nvml}
    try:
        nvml.nvmlInit()
    except Exception as exc:
        why = unavailable(f"NVML cannot be initialised ({reason_for(exc)})")
        return {"nvml": why, "gpus": why}
    try:
        count = guarded(lambda: int(nvml.nvmlDeviceGetCount()))
        driver = read_each(
            {
                "driver_version": lambda: _text(nvml.nvmlSystemGetDriverVersion()),
                "cuda_driver_version": (
                    lambda: decode_cuda_driver_version(nvml.nvmlSystemGetCudaDriverVersion())
                ),
                "gpu_count": lambda: count,
            }
        )
        if not isinstance(count, int):
            return {"nvml": driver, "gpus": count}
        gpus = [_device(nvml, index, sm_counts or {}) for index in range(count)]
        return {"nvml": driver, "gpus": gpus}
    finally:
        guarded(nvml.nvmlShutdown)


def _mig_enabled(nvml: Any, handle: Any) -> bool:
    try:
        current, _pending = nvml.nvmlDeviceGetMigMode(handle)
    except Exception:  # NotSupported: a GPU without MIG
        return False
    return bool(current == nvml.NVML_DEVICE_MIG_ENABLE)


_NO_PERMISSION = 4  # NVML_ERROR_NO_PERMISSION


def refused_by_cgroup(exc: BaseException) -> bool:
    """NVML refused a GPU's handle because this job may not use it (a scheduler's cgroup)."""
    return getattr(exc, "value", None) == _NO_PERMISSION


@dataclass(frozen=True)
class NvmlGpu:
    """One GPU NVML counts: its handle and UUID, or why NVML cannot reach it."""

    index: int  # NVML's index (PCI bus order, not CUDA's)
    handle: Any = None
    uuid: str = ""
    instances: tuple[tuple[str, Any], ...] = ()  # (MIG- UUID, handle) per MIG instance
    mig: bool = False
    error: BaseException | None = None

    def cuda_uuids(self) -> list[str]:
        """The UUIDs CUDA can run on: the GPU's, or in MIG mode each instance's (none if no
        instance exists: CUDA cannot use a MIG-mode GPU whole)."""
        return [uuid for uuid, _ in self.instances] if self.mig else [self.uuid]


def _mig_instances(nvml: Any, handle: Any) -> tuple[tuple[str, Any], ...]:
    instances = []
    for slot in range(int(nvml.nvmlDeviceGetMaxMigDeviceCount(handle))):
        try:
            instance = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
        except nvml.NVMLError:  # NotFound: an empty slot
            continue
        instances.append((_text(nvml.nvmlDeviceGetUUID(instance)), instance))
    return tuple(instances)


def nvml_gpus(nvml: Any) -> list[NvmlGpu]:
    """Every GPU NVML counts, in NVML's order; call it between ``nvmlInit`` and ``nvmlShutdown``."""
    gpus = []
    for index in range(int(nvml.nvmlDeviceGetCount())):
        try:
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            uuid = _text(nvml.nvmlDeviceGetUUID(handle))
            mig = _mig_enabled(nvml, handle)
            instances = _mig_instances(nvml, handle) if mig else ()
        except Exception as exc:
            gpus.append(NvmlGpu(index, error=exc))
            continue
        gpus.append(NvmlGpu(index, handle, uuid, instances, mig))
    return gpus


def cuda_device_uuids(nvml: Any = None) -> list[str]:
    """Every device CUDA can run on, by the UUID ``CUDA_VISIBLE_DEVICES`` accepts, in NVML's order.

    One ``GPU-...`` per GPU, or, where MIG mode is on, one ``MIG-...`` per MIG instance (CUDA
    cannot use such a GPU whole). Empty without NVML. A GPU whose handle NVML refuses for lack
    of permission is outside this job's cgroup and is left out; a GPU NVML cannot read for any
    other reason raises ``UserError``: it may be the faulty card a per-device check is looking for.
    """
    if nvml is None:
        nvml = guarded(_import_pynvml)
        if is_unavailable(nvml):
            return []
    try:
        nvml.nvmlInit()
    except Exception:
        return []
    try:
        uuids: list[str] = []
        for gpu in nvml_gpus(nvml):
            if gpu.error is not None and refused_by_cgroup(gpu.error):
                continue
            if gpu.error is not None:
                raise UserError(
                    f"NVML cannot read GPU {gpu.index} ({reason_for(gpu.error)}); check it with "
                    "`nvidia-smi`, or set CUDA_VISIBLE_DEVICES to the GPUs to test."
                )
            uuids += gpu.cuda_uuids()
        return uuids
    finally:
        guarded(nvml.nvmlShutdown)
