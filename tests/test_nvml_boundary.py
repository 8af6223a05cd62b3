"""NVML at the C boundary: the real pynvml loads FakeLibNVML, a libnvidia-ml.so.1 built
from tests/fake_libnvml/fake_nvml.c, so every call repro makes crosses ctypes exactly as it
would on a GPU node: a struct passed by value or a wrong version field reaches C as it is.

pynvml loads its library once per process, so each test runs repro in a child process with
``LD_LIBRARY_PATH`` pointing at the fake and ``FAKE_NVML_STATE`` choosing the node. The fake
writes odd readings (699937 mW, 85520809984 bytes, fabric status 999, 7 of 18 NVLinks up)
and the tests look for exactly those in repro's output: a value that did not cross the
boundary cannot appear there. Any misuse the fake detects is written to a log that must
stay empty.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from repro.manifest.nvml import hash_uuid
from repro.preflight.devices import job_device_uuids
from repro.preflight.run import _expectation

FAKE_SOURCE = Path(__file__).parent / "fake_libnvml" / "fake_nvml.c"
H100_SXM = "NVIDIA H100 80GB HBM3"


def gpu_uuid(index: int) -> str:
    """The UUID FakeLibNVML gives GPU ``index`` (as fake_nvml.c's uuid_of spells it)."""
    return f"GPU-{0x0C0FFEE0 + index:08x}-4b1d-4e8f-9a0b-1c2d3e4f5a6b"


def mig_uuid(slot: int) -> str:
    """The UUID of GPU 0's MIG instance in ``slot`` in the fake's mig state."""
    return f"MIG-{0x5A1CE000 + slot:08x}-7a1e-5c3d-9b2f-{0x600DCAFE:012x}"


@pytest.fixture(scope="session")
def libnvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding FakeLibNVML's libnvidia-ml.so.1, compiled once per test session."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed, so the fake libnvidia-ml.so.1 cannot be built")
    folder = tmp_path_factory.mktemp("libnvml")
    library = folder / "libnvidia-ml.so.1"
    flags = ["-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror"]
    subprocess.run([gcc, *flags, "-o", str(library), str(FAKE_SOURCE)], check=True)
    return folder


class Node:
    """One FakeLibNVML state: runs repro in child processes that load the fake."""

    def __init__(self, libnvml: Path, state: str, tmp_path: Path) -> None:
        self.log = tmp_path / f"{state}-misuse.log"
        paths = [str(libnvml), os.environ.get("LD_LIBRARY_PATH", "")]
        self.env = {
            **os.environ,
            "LD_LIBRARY_PATH": ":".join(p for p in paths if p),
            "FAKE_NVML_STATE": state,
            "FAKE_NVML_LOG": str(self.log),
        }

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, *argv], env=self.env, capture_output=True, text=True, timeout=300
        )
        misuse = self.log.read_text() if self.log.exists() else ""
        assert not misuse, f"repro misused the NVML API:\n{misuse}"
        return done

    def python(self, code: str, *args: Any) -> Any:
        done = self.run("-c", code, *(json.dumps(a) for a in args))
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    def preflight(self, devices: list[str]) -> dict[str, dict[str, Any]]:
        """Every check of a CUDA profile's preflight, by name, for a job using ``devices``."""
        return dict(self.python(_PREFLIGHT, devices))


_PREFLIGHT = """
import json, sys
from repro.preflight.run import run_preflight
health = run_preflight(
    ranks=1, threads=1, device="cuda", collectives=False, job_devices=json.loads(sys.argv[1])
)
# The host checks read this machine, not the fake: only the GPU checks are the fake's.
gpu = [c for c in health.checks if c.name.startswith("gpu")]
print(json.dumps({c.name: c.to_dict() for c in gpu}, default=str))
"""
_PER_DEVICE_PLAN = """
import json
from repro.manifest.nvml import cuda_device_uuids
from repro.commands.verify import devices_to_test
print(json.dumps(devices_to_test(None, cuda_device_uuids())))
"""
ALL_EIGHT = [gpu_uuid(i) for i in range(8)]


@pytest.fixture
def node(libnvml: Path, tmp_path: Path) -> Any:
    return lambda state: Node(libnvml, state, tmp_path)


def test_the_manifest_shows_exactly_what_the_driver_wrote(node, tmp_path):
    out = tmp_path / "manifest.json"
    done = node("healthy-h100-sxm8").run("-m", "repro", "manifest", "--out", str(out))
    assert done.returncode == 0, done.stderr
    hardware = json.loads(out.read_text())["hardware"]
    assert hardware["nvml"] == {
        "driver_version": "570.133.20",
        "cuda_driver_version": "12.8",
        "gpu_count": 8,
    }
    gpu = hardware["gpus"][5]
    assert gpu["uuid_sha256"] == hash_uuid(gpu_uuid(5))
    assert (gpu["name"], gpu["compute_capability"]) == (H100_SXM, "9.0")
    assert gpu["memory_total_mib"] == 81559  # 85520809984 bytes
    assert gpu["power_limit_w"] == 699.937  # 699937 mW
    assert gpu["clocks_mhz"] == {"sm": 1755, "sm_max": 1980, "memory": 2619, "memory_max": 2619}
    assert gpu["pcie"] == {"generation": 5, "width": 16}
    assert (gpu["ecc_mode"], gpu["mig_mode"], gpu["persistence_mode"]) == (True, False, True)


def test_a_healthy_h100_node_passes_with_its_fabric_and_links_read_back(node):
    checks = node("healthy-h100-sxm8").preflight(ALL_EIGHT)
    bad = {n: c for n, c in checks.items() if c["status"] in ("fail", "warn")}
    assert not bad, bad
    assert [d["nvml_index"] for d in checks["gpus.job"]["value"]] == list(range(8))
    for index in range(8):
        assert checks[f"gpu{index}.fabric"]["status"] == "ok"  # read: COMPLETED, not zeros
        assert checks[f"gpu{index}.fabric"]["value"] == 3
    nvlink = checks["gpu7.nvlink"]
    assert (nvlink["value"], nvlink["source"]) == ("18/18 up", "NVML, 18 links wired")
    assert checks["gpu3.power_limit"]["value"] == "699 W"
    assert checks["gpu3.application_clock"]["value"] == "1755 MHz"
    assert checks["gpus.vbios"]["value"] == "96.00.99.00.1F"


@pytest.mark.parametrize(
    ("state", "check", "status", "value", "words"),
    [
        ("row-remap-pending", "memory_repair", "fail", [2, 1, 1, 0], "row remap is pending"),
        ("pcie-x8", "pcie_width", "warn", "x8", "trained at x8 of x16"),
        ("thermal-slowdown", "clock_events", "fail", "0x60", "hardware thermal slowdown"),
        ("foreign-process", "processes", "fail", 1, "(pid 31337)"),
        ("fabric-degraded", "fabric", "fail", {"state": 3, "status": 999}, "status 999"),
        ("fabric-degraded", "nvlink", "fail", "7/18 up", "[1, 3, 4, 6, 7, 9, 10, 12, 14, 15, 17]"),
    ],
)
def test_each_fault_is_named_on_the_card_that_has_it(node, state, check, status, value, words):
    checks = node(state).preflight(ALL_EIGHT)
    found = checks[f"gpu5.{check}"]
    assert (found["status"], found["value"]) == (status, value), found
    assert words in found["reason"]
    assert checks[f"gpu4.{check}"]["status"] == "ok"  # the card beside it is healthy


def test_a_driver_that_supports_nothing_costs_fields_never_the_verdict(node):
    checks = node("not-supported").preflight(ALL_EIGHT[:2])
    per_gpu = {n: c["status"] for n, c in checks.items() if n.startswith("gpu1.")}
    assert per_gpu and set(per_gpu.values()) == {"unavailable"}, per_gpu
    assert not [c for c in checks.values() if c["status"] == "fail"]


def test_a_cgroup_job_checks_its_own_gpus_and_never_the_hidden_ones(node):
    cgroup = node("cgroup-refused")
    checks = cgroup.preflight([gpu_uuid(3), gpu_uuid(2)])
    assert [d["nvml_index"] for d in checks["gpus.job"]["value"]] == [3, 2]
    assert not [c for c in checks.values() if c["status"] in ("fail", "warn")]
    assert {n.split(".")[0] for n in checks if n.startswith("gpu") and n[3].isdigit()} == {
        "gpu2",
        "gpu3",
    }
    assert cgroup.python(_PER_DEVICE_PLAN) == [gpu_uuid(2), gpu_uuid(3)]
    # A device CUDA uses that NVML cannot reach is named, with the GPUs NVML refused.
    outside = cgroup.preflight([gpu_uuid(0)])["gpus.job"]
    assert outside["status"] == "fail"
    assert "NVML refused GPU(s) [0, 1, 4, 5, 6, 7]" in outside["reason"]


def test_a_mig_slice_is_checked_on_its_card_without_the_other_slices_jobs(node):
    mig = node("mig")
    assert mig.python(_PER_DEVICE_PLAN) == [mig_uuid(0), mig_uuid(2), *ALL_EIGHT[1:]]
    checks = mig.preflight([mig_uuid(2)])
    assert checks["gpus.job"]["value"] == [{"nvml_index": 0, "name": H100_SXM, "mig": True}]
    assert checks["gpu0.mig_mode"]["value"] is True
    # pid 4711 runs on GPU instance 12, another job's slice: not foreign to instance 9.
    assert (checks["gpu0.processes"]["status"], checks["gpu0.processes"]["value"]) == ("ok", 0)


def test_unwired_nvlink_slots_are_not_links_down(node):
    checks = node("h100-nvl-pair").preflight([gpu_uuid(0), gpu_uuid(1)])
    nvlink = checks["gpu1.nvlink"]
    assert (nvlink["status"], nvlink["value"]) == ("ok", "12/12 up")
    assert checks["gpu1.fabric"]["status"] == "unavailable"  # no NVSwitch: state 0, read back
    names = [d["name"] for d in checks["gpus.job"]["value"]]
    assert names == ["NVIDIA H100 NVL"] * 2
    assert _expectation(names, 2)[0] is None


def test_bandwidth_rows_match_the_whole_gpu_name():
    assert _expectation([H100_SXM] * 8, 8)[0] == 200
    assert _expectation(["NVIDIA H200"] * 8, 8)[0] == 200
    for part in ("NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200 NVL"):
        assert _expectation([part] * 8, 8)[0] is None, part
    assert _expectation([H100_SXM] * 4, 4)[0] is None  # rows are per rank count


def test_preflight_command_on_a_gpu_node_follows_the_profile(node):
    healthy = node("healthy-h100-sxm8")
    done = healthy.run("-m", "repro", "preflight", "--json")  # quick: a CPU profile
    assert done.returncode == 0, done.stderr
    checks = {c["name"]: c for c in json.loads(done.stdout)["preflight"]["checks"]}
    assert checks["gpus.count"]["value"] == 8
    assert checks["gpus.job"]["value"] == []  # the CPU job uses no GPU: none is checked
    assert not [n for n in checks if n.startswith("gpu0.")]
    assert "gloo" in checks["collective.allreduce.bytes"]["source"]  # never NCCL for a CPU job
    # A CUDA profile with a torch that sees no CUDA device (this machine's) is unfit, by name.
    done = healthy.run("-m", "repro", "preflight", "--json", "--profile", "full")
    data = json.loads(done.stdout)
    assert (done.returncode, data["verdict"]) == (5, "UNFIT"), done.stderr
    checks = {c["name"]: c for c in data["preflight"]["checks"]}
    assert checks["gpus.cuda"]["status"] == "fail"
    assert "torch sees no CUDA device" in checks["gpus.cuda"]["reason"]
    assert not [n for n in checks if n.startswith("collective.")]


def test_torch_in_a_child_lists_the_jobs_cuda_devices():
    # The production path on this CPU machine: torch sees no CUDA device, whatever is visible.
    assert job_device_uuids() == []
    assert job_device_uuids({**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"}) == []


# -- the device used in the environment key; GPU UUIDs never recorded raw ---------------------


def _gpu_run(name: str, sm_count: int, mig: bool) -> dict[str, Any]:
    used = {"name": name, "sm_count": sm_count, "mig": mig}
    return {"hardware": {"cuda": {"available": True, "used": used}}}


def test_a_mig_slice_and_its_full_card_have_different_environment_keys():
    from repro.baselines.baseline import _mismatch_score
    from repro.manifest.keys import environment_key

    full = environment_key(_gpu_run(H100_SXM, 132, False))
    slice_ = environment_key(_gpu_run(f"{H100_SXM} MIG 3g.40gb", 60, True))
    _, differing = _mismatch_score(slice_, full)
    assert differing == [
        "hardware.cuda.used.mig",
        "hardware.cuda.used.name",
        "hardware.cuda.used.sm_count",
    ]
    # A baseline recorded before these keys existed lacks them and is not judged on them.
    older = {k: v for k, v in full.items() if not k.startswith("hardware.cuda.used.")}
    assert _mismatch_score(slice_, older) == (0.0, [])


def test_a_cpu_run_reads_absent_for_the_device_used():
    from repro.manifest.capture import capture_manifest
    from repro.manifest.keys import environment_key

    key = environment_key(capture_manifest())
    assert {k: v for k, v in key.items() if k.startswith("hardware.cuda.used.")} == {
        "hardware.cuda.used.mig": "absent",
        "hardware.cuda.used.name": "absent",
        "hardware.cuda.used.sm_count": "absent",
    }


def test_visible_device_uuids_are_hashed_in_the_manifest(monkeypatch):
    from repro.manifest.capture import _environment

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{gpu_uuid(5)},{mig_uuid(0)}")
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", "3")
    recorded = _environment()
    assert recorded["CUDA_VISIBLE_DEVICES"] == f"{hash_uuid(gpu_uuid(5))},{hash_uuid(mig_uuid(0))}"
    assert recorded["NVIDIA_VISIBLE_DEVICES"] == "3"  # an index names no board
