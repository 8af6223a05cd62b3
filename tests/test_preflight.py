"""`repro preflight`: host and gloo checks for real, NVML checks against the fake in each
failure state (this machine has no GPU; the real probes run in test_gpu.py)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from fake_nvml import H100, FakeNVML, FakeNVMLErrorGpuIsLost, not_supported_everywhere
from repro.cli import main
from repro.preflight.check import Preflight
from repro.preflight.collective import allreduce_sweep, bus_bandwidth
from repro.preflight.gpu import gpu_checks
from repro.preflight.host import cpu_check, governor_check, memory_check
from repro.preflight.run import run_preflight
from repro.report.blocks import Items

H100_B = {**H100, "uuid": "GPU-3f2a9c1e-5b7d-4e8f-9a0b-000000000002"}


def _by_name(checks):
    return {c.name: c for c in checks}


def _node(**second):
    """Two H100s; the second with ``second``'s readings changed."""
    return _by_name(gpu_checks(2, FakeNVML([H100, {**H100_B, **second}])))


def test_a_healthy_node_passes_every_gpu_check():
    checks = gpu_checks(2, FakeNVML([H100, H100_B]))
    bad = [c for c in checks if c.status in ("fail", "warn")]
    assert not bad, bad
    names = {c.name for c in checks}
    for field in ("processes", "ecc_errors", "memory_repair", "pcie_width", "clock_events",
                  "application_clock", "power_limit", "nvlink", "pcie_replays", "fabric"):  # fmt: skip
        assert f"gpu1.{field}" in names
    assert _by_name(checks)["gpus.xid"].status == "unavailable"


@pytest.mark.parametrize(
    "readings, check, status, words",
    [
        ({"remapped_rows": [0, 1, 1, 0]}, "gpu1.memory_repair", "fail", "pending"),
        ({"remapped_rows": [0, 1, 0, 1]}, "gpu1.memory_repair", "fail", "failed"),
        ({"pcie_width": 8}, "gpu1.pcie_width", "warn", "x8 of x16"),
        ({"clock_events": 0x40 | 0x1}, "gpu1.clock_events", "fail", "hardware thermal"),
        ({"clock_events": 0x4}, "gpu1.clock_events", "warn", "software power cap"),
        ({"processes": [4242]}, "gpu1.processes", "fail", "pid 4242"),
        ({"vbios": "96.00.61.00.01"}, "gpus.vbios", "warn", "2 different vbios"),
        ({"ecc_uncorrected": 3}, "gpu1.ecc_errors", "fail", "3 uncorrected"),
        ({"ecc": [0, 0]}, "gpu1.ecc_mode", "warn", "ECC is off"),
        ({"nvlink_states": [1] * 17 + [0]}, "gpu1.nvlink", "fail", "[17] are down"),
        ({"nvlink_errors": 5}, "gpu1.nvlink", "warn", "NVLink errors"),
        ({"fabric": (2, 0)}, "gpu1.fabric", "fail", "fabric manager"),
        ({"default_power_limit_mw": 700_000, "power_limit_mw": 500_000}, "gpu1.power_limit", "warn", "500 W"),
        ({"app_clock": 1500}, "gpu1.application_clock", "warn", "someone changed it"),
        ({"pcie_replays": 12}, "gpu1.pcie_replays", "warn", "12 PCIe replays"),
    ],
)  # fmt: skip
def test_each_failure_state_is_named(readings, check, status, words):
    found = _node(**readings)[check]
    assert found.status == status and words in found.reason, found
    healthy = _by_name(gpu_checks(2, FakeNVML([H100, H100_B])))[check]
    assert healthy.status == "ok"  # the same check passes on the healthy card


def test_not_supported_everywhere_costs_fields_never_the_verdict():
    checks = gpu_checks(1, FakeNVML([not_supported_everywhere(H100)]))
    per_gpu = [c for c in checks if c.name.startswith("gpu0.")]
    assert per_gpu and all(c.status == "unavailable" for c in per_gpu), per_gpu
    assert not Preflight(tuple(checks), 0.0).unfit()


def test_a_missing_or_lost_gpu_fails():
    assert _by_name(gpu_checks(8, FakeNVML([H100, H100_B])))["gpus.count"].status == "fail"
    lost = _by_name(gpu_checks(2, FakeNVML([H100, FakeNVMLErrorGpuIsLost()])))
    assert lost["gpu1.reachable"].status == "fail"


def test_no_driver_is_unavailable_unless_gpus_were_expected():
    from fake_nvml import FakeNVMLError

    no_driver = FakeNVML(init_error=FakeNVMLError("Driver Not Loaded"))
    assert gpu_checks(None, no_driver)[0].status == "unavailable"
    assert gpu_checks(4, no_driver)[0].status == "fail"


def test_host_checks_read_what_they_say(tmp_path):
    assert cpu_check(2, 4, usable=2).status == "warn"
    assert cpu_check(2, 1, usable=2).status == "ok"
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 4000000 kB\nMemAvailable: 1000000 kB\n")
    assert memory_check(meminfo).status == "fail"
    meminfo.write_text("MemTotal: 40000000 kB\nMemAvailable: 30000000 kB\n")
    assert memory_check(meminfo).status == "ok"
    assert governor_check(tmp_path).status == "unavailable"
    for cpu, governor in (("cpu0", "performance"), ("cpu1", "powersave")):
        (tmp_path / cpu / "cpufreq").mkdir(parents=True)
        (tmp_path / cpu / "cpufreq" / "scaling_governor").write_text(governor + "\n")
    assert governor_check(tmp_path).status == "warn"


def test_a_real_gloo_all_reduce_is_exact_and_a_wrong_byte_is_caught():
    sweep = allreduce_sweep(2, "gloo", (8, 4096, 1024**2))
    assert [row["bytes"] for row in sweep] == [8, 4096, 1024**2]
    assert all(row["wrong"] == 0 and row["busbw_gbps"] == row["algbw_gbps"] for row in sweep)
    corrupt = allreduce_sweep(2, "gloo", (4096,), corrupt=True)
    assert corrupt[0]["wrong"] > 0
    assert bus_bandwidth(10.0, 8) == pytest.approx(17.5) and bus_bandwidth(1.0, 1) is None


def test_preflight_command_is_fit_here_and_unfit_with_a_wrong_collective(tmp_path, capsys):
    junit = tmp_path / "preflight.xml"
    assert main(["preflight", "--junit", str(junit)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FIT") and "collective.allreduce.bytes" in out
    cases = ET.parse(junit).getroot().findall("testcase")
    assert {c.get("name") for c in cases} >= {"host.cpus", "collective.allreduce.bytes"}
    assert main(["preflight", "--fault-collective", "--json"]) == 5
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "UNFIT" and data["exit_code"] == 5
    wrong = [c for c in data["preflight"]["checks"] if c["name"] == "collective.allreduce.bytes"]
    assert wrong[0]["status"] == "fail"


def test_strict_turns_a_warning_into_unfit():
    health = run_preflight(ranks=2, threads=64, collectives=False, nvml=FakeNVML([H100]))
    assert "host.cpus" in {c.name for c in health.unfit(strict=True)}  # oversubscribed: a warning
    assert "host.cpus" not in {c.name for c in health.unfit()}


def test_verify_stops_before_training_on_an_unfit_machine(tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["verify", "--profile", "smoke", "--runs-dir", str(runs), "--expect-gpus", "1"])
    out = capsys.readouterr().out
    assert code == 5 and out.startswith("UNFIT") and "gpus.count" in out
    assert not runs.exists() or not any(Path(runs).iterdir())  # nothing trained, nothing written


def test_a_runs_findings_show_in_the_compare_report_and_are_never_a_difference():
    from repro.judge.parts import RunDescription
    from repro.manifest.diff import diff_manifests
    from repro.report.preflight_render import preflight_findings

    finding = gpu_checks(2, FakeNVML([H100, {**H100_B, "pcie_width": 8}]))
    warn = [c.to_dict() for c in finding if c.status == "warn"]
    (block,) = preflight_findings(RunDescription("run-a", preflight=warn), None)
    assert isinstance(block, Items)
    assert "run-a: gpu1.pcie_width: x8 (expected x16)" in block.items[0].text
    base: dict = {"hardware": {}, "libraries": {}, "numerics": {}, "env": {}, "code": {}}
    with_preflight = {**base, "preflight": {"checks": warn, "seconds": 1.0}}
    assert diff_manifests(base, with_preflight) == []
