"""CPU probes: /proc/cpuinfo parsing, ISA flags and cgroup CPU limits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from repro.manifest import cpu

X86_BLOCK = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx avx2 fma f16c smep avx512f avx512_bf16 amx_tile amx_bf16 ibrs
"""
ARM_BLOCK = """processor\t: 0
BogoMIPS\t: 2000.00
Features\t: fp asimd asimdhp sve sve2 bf16 i8mm sme
CPU implementer\t: 0x41
"""


def test_first_cpu_block_stops_at_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(X86_BLOCK + "\n" + X86_BLOCK.replace(": 0", ": 1") + "\n")

    block = cpu.first_cpu_block(cpuinfo)

    assert block == X86_BLOCK.rstrip("\n")


@pytest.mark.parametrize(
    ("block", "flags"),
    [
        (
            X86_BLOCK,
            ["amx_bf16", "amx_tile", "avx", "avx2", "avx512_bf16", "avx512f", "f16c", "fma"],
        ),
        (ARM_BLOCK, ["asimd", "asimdhp", "bf16", "i8mm", "sme", "sve", "sve2"]),
    ],
)
def test_isa_flags_keep_only_kernel_selecting_flags(block: str, flags: list[str]) -> None:
    fields = cpu.parse_cpuinfo_block(block)

    assert cpu.isa_flags(fields.get("flags") or fields["Features"]) == flags


def test_parse_cpu_max() -> None:
    assert cpu.parse_cpu_max("max 100000\n") is None
    assert cpu.parse_cpu_max("250000 100000\n") == 2.5


def test_cgroup_v2_takes_the_tightest_limit_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "a/cpu.max").write_text("400000 100000\n")
    (tmp_path / "a/b/cpu.max").write_text("150000 100000\n")
    proc_self_cgroup = tmp_path / "cgroup"
    proc_self_cgroup.write_text("0::/a/b\n")

    assert cpu.cgroup_cpu_limit(tmp_path, proc_self_cgroup) == 1.5


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct/job").mkdir(parents=True)
    (tmp_path / "cpu,cpuacct/job/cpu.cfs_quota_us").write_text("200000\n")
    (tmp_path / "cpu,cpuacct/job/cpu.cfs_period_us").write_text("100000\n")
    proc_self_cgroup = tmp_path / "cgroup"
    proc_self_cgroup.write_text("4:memory:/job\n3:cpu,cpuacct:/job\n")

    assert cpu.cgroup_cpu_limit(tmp_path, proc_self_cgroup) == 2.0


def test_no_quota_means_no_limit(tmp_path: Path) -> None:
    proc_self_cgroup = tmp_path / "cgroup"
    proc_self_cgroup.write_text("0::/\n")

    assert cpu.cgroup_cpu_limit(tmp_path, proc_self_cgroup) is None


def test_usable_cpus_is_affinity_capped_by_quota() -> None:
    assert cpu.usable_cpus(8, 1.5) == 2
    assert cpu.usable_cpus(2, 16.0) == 2
    assert cpu.usable_cpus(4, None) == 4


def test_cpu_info_on_this_machine() -> None:
    reading = cpu.cpu_info()

    assert reading["logical_cpus"] == os.cpu_count()
    assert reading["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert 1 <= reading["usable_cpus"] <= reading["affinity_cpus"]
    assert isinstance(reading["isa_flags"], list)
    assert isinstance(reading["model_name"], (str, dict))


def test_unreadable_cpuinfo_says_why(tmp_path: Path) -> None:
    reading = cpu.cpu_info(tmp_path / "missing")

    assert "FileNotFoundError" in reading["model_name"]["unavailable"]
    assert reading["logical_cpus"] == os.cpu_count()
