"""FakeNVML: stands in for the ``pynvml`` module in in-process tests of the check logic.

Torch and git are never faked; NVML is, because the CPU test machines have no driver.
Readings are per-GPU dicts; an exception as a value is raised by its getter, the way
NVML refuses a query (e.g. ECC on a consumer GPU). A Python object cannot see how ctypes
would pass an argument to C: the NVML calls themselves are tested against FakeLibNVML,
a C libnvidia-ml.so.1 the real pynvml loads (tests/test_nvml_boundary.py). This one takes
pynvml's own struct types, and only by reference, so it at least refuses a struct by value.
"""

from __future__ import annotations

import ctypes
from types import SimpleNamespace
from typing import Any

import pynvml


class FakeNVMLError(Exception):
    """Plays pynvml.NVMLError."""


class FakeNVMLErrorNotSupported(FakeNVMLError):
    def __str__(self) -> str:
        return "Not Supported"


class FakeNVMLErrorNotFound(FakeNVMLError):
    def __str__(self) -> str:
        return "Not Found"


class FakeNVMLErrorGpuIsLost(FakeNVMLError):
    def __str__(self) -> str:
        return "GPU is lost"


H100: dict[str, Any] = {
    "name": "NVIDIA H100 80GB HBM3",
    "uuid": "GPU-3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
    "capability": (9, 0),
    "memory_total": 80 * 2**30,
    "ecc": [1, 1],
    "mig": [0, 0],
    "persistence": 1,
    "power_limit_mw": 700_000,
    "clocks": {1: 1980, 2: 2619},
    "max_clocks": {1: 1980, 2: 2619},
    "pcie_generation": 5,
    "pcie_width": 16,
    # Health readings (repro preflight): a healthy H100 in an NVSwitch node.
    "processes": [],
    "ecc_uncorrected": 0,
    "remapped_rows": [0, 0, 0, 0],  # corrected, uncorrected, pending, failure
    "retired_pending": 0,
    "pcie_max_width": 16,
    "clock_events": 0x1,  # idle only
    "app_clock": 1980,
    "default_app_clock": 1980,
    "default_power_limit_mw": 700_000,
    "vbios": "96.00.74.00.01",
    "inforom": "G520.0200.00.05",
    "nvlink_states": [1] * 18,
    "nvlink_errors": 0,
    "pcie_replays": 0,
    "fabric": (3, 0),  # NVML_GPU_FABRIC_STATE_COMPLETED, NVML_SUCCESS
}
RTX_4090: dict[str, Any] = {
    **H100,
    "name": "NVIDIA GeForce RTX 4090",
    "uuid": "GPU-00000000-1111-2222-3333-444444444444",
    "capability": (8, 9),
    "ecc": FakeNVMLErrorNotSupported(),
}
# An A100 in MIG mode with two instances; slot 1 is empty (NVML says NotFound).
A100_MIG: dict[str, Any] = {
    **H100,
    "name": "NVIDIA A100-SXM4-40GB",
    "uuid": "GPU-aaaaaaaa-0000-4000-8000-000000000000",
    "capability": (8, 0),
    "mig": [1, 1],
    "mig_devices": [
        {"uuid": "MIG-11111111-2222-5333-8444-555555555555"},
        None,
        {"uuid": "MIG-66666666-7777-5888-8999-aaaaaaaaaaaa"},
    ],
}


class FakeNVML:
    """The subset of pynvml the probes call, over fixed per-GPU readings."""

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_DEVICE_MIG_ENABLE = 1
    NVMLError = FakeNVMLError

    def __init__(
        self,
        gpus: list[dict[str, Any] | Exception] | None = None,
        init_error: Exception | None = None,
    ) -> None:
        self.gpus = [H100, RTX_4090] if gpus is None else gpus
        self.init_error = init_error
        self.initialised = False
        self.shut_down = False

    @staticmethod
    def _read(handle: dict[str, Any], name: str) -> Any:
        value = handle[name]
        if isinstance(value, Exception):
            raise value
        return value

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.init_error
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.shut_down = True

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        return 12040

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        gpu = self.gpus[index]
        if isinstance(gpu, Exception):  # a GPU NVML cannot reach (fallen off the bus)
            raise gpu
        return gpu

    def nvmlDeviceGetName(self, handle: dict[str, Any]) -> str:
        return str(self._read(handle, "name"))

    def nvmlDeviceGetUUID(self, handle: dict[str, Any]) -> str:
        return str(self._read(handle, "uuid"))

    def nvmlDeviceGetCudaComputeCapability(self, handle: dict[str, Any]) -> tuple[int, int]:
        major, minor = self._read(handle, "capability")
        return int(major), int(minor)

    def nvmlDeviceGetMemoryInfo(self, handle: dict[str, Any]) -> SimpleNamespace:
        total = self._read(handle, "memory_total")
        return SimpleNamespace(total=total, free=total, used=0)

    def nvmlDeviceGetEccMode(self, handle: dict[str, Any]) -> list[int]:
        return list(self._read(handle, "ecc"))

    def nvmlDeviceGetMigMode(self, handle: dict[str, Any]) -> list[int]:
        return list(self._read(handle, "mig"))

    def nvmlDeviceGetPersistenceMode(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "persistence"))

    def nvmlDeviceGetPowerManagementLimit(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "power_limit_mw"))

    def nvmlDeviceGetClockInfo(self, handle: dict[str, Any], clock: int) -> int:
        return int(self._read(handle, "clocks")[clock])

    def nvmlDeviceGetMaxClockInfo(self, handle: dict[str, Any], clock: int) -> int:
        return int(self._read(handle, "max_clocks")[clock])

    def nvmlDeviceGetCurrPcieLinkGeneration(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "pcie_generation"))

    def nvmlDeviceGetCurrPcieLinkWidth(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "pcie_width"))

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: dict[str, Any]) -> int:
        return len(handle.get("mig_devices", []))

    def nvmlDeviceGetMigDeviceHandleByIndex(
        self, handle: dict[str, Any], index: int
    ) -> dict[str, Any]:
        instance = handle.get("mig_devices", [])[index]
        if instance is None:
            raise FakeNVMLErrorNotFound()
        return dict(instance)

    # -- health readings (repro preflight) ---------------------------------------------------

    def nvmlDeviceGetComputeRunningProcesses(self, handle: dict[str, Any]) -> list[SimpleNamespace]:
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=2**30) for pid in self._read(handle, "processes")
        ]

    def nvmlDeviceGetTotalEccErrors(self, handle: dict[str, Any], kind: int, counter: int) -> int:
        return int(self._read(handle, "ecc_uncorrected"))

    def nvmlDeviceGetRemappedRows(self, handle: dict[str, Any]) -> list[int]:
        return list(self._read(handle, "remapped_rows"))

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "retired_pending"))

    def nvmlDeviceGetMaxPcieLinkWidth(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "pcie_max_width"))

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "clock_events"))

    def nvmlDeviceGetApplicationsClock(self, handle: dict[str, Any], clock: int) -> int:
        return int(self._read(handle, "app_clock"))

    def nvmlDeviceGetDefaultApplicationsClock(self, handle: dict[str, Any], clock: int) -> int:
        return int(self._read(handle, "default_app_clock"))

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "default_power_limit_mw"))

    def nvmlDeviceGetVbiosVersion(self, handle: dict[str, Any]) -> str:
        return str(self._read(handle, "vbios"))

    def nvmlDeviceGetInforomImageVersion(self, handle: dict[str, Any]) -> str:
        return str(self._read(handle, "inforom"))

    def nvmlDeviceGetNvLinkState(self, handle: dict[str, Any], link: int) -> int:
        states = self._read(handle, "nvlink_states")
        if link >= len(states):
            raise FakeNVMLErrorNotSupported()
        return int(states[link])

    def nvmlDeviceGetNvLinkErrorCounter(
        self, handle: dict[str, Any], link: int, counter: int
    ) -> int:
        return int(self._read(handle, "nvlink_errors"))

    def nvmlDeviceGetPcieReplayCounter(self, handle: dict[str, Any]) -> int:
        return int(self._read(handle, "pcie_replays"))

    c_nvmlGpuFabricInfo_t = pynvml.c_nvmlGpuFabricInfo_t
    c_nvmlGpuFabricInfo_v2_t = pynvml.c_nvmlGpuFabricInfo_v2_t

    def nvmlDeviceGetGpuFabricInfoV(self, handle: dict[str, Any], info: Any) -> None:
        struct = _by_reference(info)
        if struct.version != pynvml.nvmlGpuFabricInfo_v2:
            raise FakeNVMLError(f"version field {struct.version:#x} is not v2")
        struct.state, struct.status = self._read(handle, "fabric")

    def nvmlDeviceGetGpuFabricInfo(self, handle: dict[str, Any], info: Any) -> None:
        struct = _by_reference(info)
        struct.state, struct.status = self._read(handle, "fabric")


def _by_reference(argument: Any) -> Any:
    """The struct behind ``ctypes.byref(struct)``; a struct itself would reach C by value."""
    if isinstance(argument, ctypes.Structure) or not hasattr(argument, "_obj"):
        raise TypeError("NVML takes this struct by reference: pass ctypes.byref(struct)")
    return argument._obj


def not_supported_everywhere(gpu: dict[str, Any]) -> dict[str, Any]:
    """A GPU whose driver refuses every health query (consumer cards, some containers)."""
    health = (
        "processes", "ecc", "ecc_uncorrected", "remapped_rows", "retired_pending", "pcie_max_width",
        "clock_events", "app_clock", "default_app_clock", "default_power_limit_mw", "vbios",
        "inforom", "nvlink_states", "nvlink_errors", "pcie_replays", "fabric", "persistence", "mig",
    )  # fmt: skip
    return {**gpu, **{key: FakeNVMLErrorNotSupported() for key in health}}
