"""GPU probes: field mapping through FakeNVML, and the real NVML + CUDA path on a GPU."""

from __future__ import annotations

import hashlib
import sys

import pytest

from fake_nvml import H100, RTX_4090, FakeNVML, FakeNVMLError
from repro.manifest import capture_manifest
from repro.manifest.diff import diff_manifests
from repro.manifest.nvml import decode_cuda_driver_version, gpu_probes, hash_uuid


def test_fields_map_and_uuid_is_hashed_never_recorded() -> None:
    fake = FakeNVML()
    reading = gpu_probes(sm_counts={}, nvml=fake)

    assert reading["nvml"] == {
        "driver_version": "550.54.15",
        "cuda_driver_version": "12.4",
        "gpu_count": 2,
    }
    h100 = reading["gpus"][0]
    assert h100["index"] == 0
    assert h100["name"] == "NVIDIA H100 80GB HBM3"
    assert h100["uuid_sha256"] == hashlib.sha256(str(H100["uuid"]).encode()).hexdigest()[:16]
    assert h100["compute_capability"] == "9.0"
    assert h100["memory_total_mib"] == 80 * 1024
    assert (h100["ecc_mode"], h100["mig_mode"], h100["persistence_mode"]) == (True, False, True)
    assert h100["power_limit_w"] == 700.0
    assert h100["clocks_mhz"] == {"sm": 1980, "sm_max": 1980, "memory": 2619, "memory_max": 2619}
    assert h100["pcie"] == {"generation": 5, "width": 16}
    raw_uuid_fragment = str(H100["uuid"]).split("-")[1]
    assert raw_uuid_fragment not in repr(reading)
    assert fake.initialised and fake.shut_down


def test_a_refused_query_costs_one_field() -> None:
    rtx = gpu_probes(sm_counts={}, nvml=FakeNVML())["gpus"][1]

    assert rtx["ecc_mode"] == {"unavailable": "FakeNVMLErrorNotSupported: Not Supported"}
    assert rtx["name"] == RTX_4090["name"]
    assert rtx["compute_capability"] == "8.9"


def test_sm_count_is_matched_to_torch_devices_by_uuid() -> None:
    bare_uuid = str(H100["uuid"]).removeprefix("GPU-")
    gpus = gpu_probes(sm_counts={bare_uuid: 132}, nvml=FakeNVML())["gpus"]

    assert gpus[0]["sm_count"] == 132
    assert "unavailable" in gpus[1]["sm_count"]  # hidden from this process


def test_sm_count_without_cuda_says_why() -> None:
    gpus = gpu_probes(sm_counts={}, nvml=FakeNVML())["gpus"]

    assert gpus[0]["sm_count"] == {"unavailable": "CUDA is not available to torch in this process"}


def test_nvml_that_cannot_start_makes_gpus_unavailable() -> None:
    reading = gpu_probes(nvml=FakeNVML(init_error=FakeNVMLError("Driver Not Loaded")))

    assert reading["gpus"] == reading["nvml"]
    assert "Driver Not Loaded" in reading["gpus"]["unavailable"]


def test_capture_uses_the_pynvml_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNVML())

    hardware = capture_manifest()["hardware"]

    assert [gpu["name"] for gpu in hardware["gpus"]] == [H100["name"], RTX_4090["name"]]
    assert hardware["nvml"]["gpu_count"] == 2


def test_current_clocks_and_pcie_link_are_recorded_but_not_compared() -> None:
    # The same card, busy then idle: clocks down, the link trained down to save power.
    idle = {**H100, "clocks": {1: 345, 2: 405}, "pcie_generation": 1, "pcie_width": 4}
    busy_run = {"hardware": gpu_probes(sm_counts={}, nvml=FakeNVML([H100]))}
    idle_run = {"hardware": gpu_probes(sm_counts={}, nvml=FakeNVML([idle]))}

    gpu = idle_run["hardware"]["gpus"][0]
    assert gpu["clocks_mhz"]["sm"] == 345 and gpu["pcie"] == {"generation": 1, "width": 4}
    assert diff_manifests(busy_run, idle_run) == []


def test_cuda_driver_version_and_uuid_hash() -> None:
    assert decode_cuda_driver_version(12040) == "12.4"
    assert decode_cuda_driver_version(11080) == "11.8"
    assert len(hash_uuid("GPU-x")) == 16


@pytest.mark.gpu
def test_real_nvml_and_cuda_agree_with_torch() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")

    manifest = capture_manifest()
    gpus = manifest["hardware"]["gpus"]

    assert isinstance(gpus, list) and len(gpus) >= torch.cuda.device_count()
    properties = torch.cuda.get_device_properties(0)
    by_sm = [gpu for gpu in gpus if gpu.get("sm_count") == properties.multi_processor_count]
    assert by_sm, gpus
    assert by_sm[0]["name"] == properties.name
    major, minor = torch.cuda.get_device_capability(0)
    assert by_sm[0]["compute_capability"] == f"{major}.{minor}"
    libraries = manifest["libraries"]
    assert libraries["cudnn"]["runtime_version"] == torch.backends.cudnn.version()
    assert libraries["nccl"] == ".".join(map(str, torch.cuda.nccl.version()))
    assert isinstance(libraries["cublas"], str) and libraries["cublas"].count(".") == 2
    assert libraries["cuda"]["build"] == torch.version.cuda
    assert isinstance(libraries["cuda"]["runtime"], str)
    assert "libcublas" in libraries["loaded"]
