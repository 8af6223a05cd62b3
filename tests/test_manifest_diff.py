"""Manifest diffs: which keys differ, in what order, and how they read."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

from repro.manifest.diff import ABSENT, Difference, diff_manifests, format_differences


def manifest(**env: str) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "hardware": {"cpu": {"torch_capability": "AVX512", "model_name": "Xeon", "vendor": "x"}},
        "libraries": {"torch": {"version": "2.13.0"}},
        "numerics": {"threads": {"intra_op": 2}},
        "env": dict(env),
        "code": {"git": {"sha": "a" * 40}},
        "packages": {"distributions": ["numpy==2.0.0", "torch==2.13.0"], "sha256": "1"},
        "container": {},
        "invocation": {"hostname": "a", "time_utc": "2026-01-01T00:00:00Z", "argv": ["repro"]},
    }


def test_identical_manifests_have_no_differences() -> None:
    assert diff_manifests(manifest(), manifest()) == []


def test_changed_keys_only_with_absent_sentinel_and_row_data() -> None:
    a, b = manifest(), manifest(ATEN_CPU_CAPABILITY="avx2")
    b["hardware"]["cpu"]["torch_capability"] = "AVX2"

    differences = {d.key: d for d in diff_manifests(a, b)}

    assert set(differences) == {"hardware.cpu.torch_capability", "env.ATEN_CPU_CAPABILITY"}
    capability = differences["hardware.cpu.torch_capability"]
    assert (capability.a, capability.b) == ("AVX512", "AVX2")
    assert (capability.impact, capability.env_key, capability.section) == (
        "high",
        True,
        "hardware",
    )
    assert differences["env.ATEN_CPU_CAPABILITY"].a == ABSENT


def test_order_is_section_then_impact_then_key() -> None:
    a, b = manifest(NCCL_DEBUG="INFO"), manifest(NCCL_DEBUG="WARN")
    b["invocation"].update(hostname="b", time_utc="2026-01-02T00:00:00Z")
    b["hardware"]["cpu"].update(torch_capability="AVX2", model_name="Epyc", vendor="y")
    b["run"] = {"world_size": 2}

    keys = [d.key for d in diff_manifests(a, b)]

    assert keys == [
        "run.world_size",
        "hardware.cpu.torch_capability",
        "hardware.cpu.model_name",
        "hardware.cpu.vendor",
        "env.NCCL_DEBUG",
        "invocation.hostname",
        "invocation.time_utc",
    ]


def test_types_matter() -> None:
    a, b = manifest(), manifest()
    b["numerics"]["threads"]["intra_op"] = 2.0

    assert [d.key for d in diff_manifests(a, b)] == ["numerics.threads.intra_op"]


def test_format_tags_impact_hints_high_and_folds_low() -> None:
    a, b = manifest(), manifest(ATEN_CPU_CAPABILITY="avx2")
    b["hardware"]["cpu"]["torch_capability"] = "AVX2"
    b["invocation"]["hostname"] = "b"
    b["packages"]["distributions"] = ["numpy==2.1.0", "torch==2.13.0"]

    differences = diff_manifests(a, b)
    text = format_differences(differences)

    assert "[high] hardware.cpu.torch_capability: AVX512 -> AVX2" in text
    assert "try: set ATEN_CPU_CAPABILITY" in text
    assert "[high] env.ATEN_CPU_CAPABILITY: <absent> -> avx2" in text
    assert "[low] 1 more: invocation.hostname" in text
    assert "torch==2.13.0" not in text  # unchanged list items are not repeated
    assert "in the environment key" in text.splitlines()[0]
    unfolded = format_differences(differences, fold_low=False)
    assert "[low] invocation.hostname: a -> b" in unfolded
    assert "[low] packages.distributions: -numpy==2.0.0, +numpy==2.1.0" in unfolded


def test_format_no_differences() -> None:
    assert format_differences([]) == "no differences\n"


def test_unavailable_values_read_as_such() -> None:
    difference = Difference(
        key="hardware.gpus",
        section="hardware",
        a={"unavailable": "no driver"},
        b=ABSENT,
        impact="high",
        env_key=True,
        hint="",
    )

    assert "hardware.gpus: unavailable (no driver) -> <absent>" in format_differences([difference])


def test_diff_and_keys_do_not_import_torch() -> None:
    code = (
        "import sys, repro.manifest.diff, repro.manifest.keys, repro.commands.manifest;"
        "repro.manifest.keys.table();"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_deep_copies_do_not_differ() -> None:
    a = manifest(NCCL_DEBUG="INFO")

    assert diff_manifests(a, copy.deepcopy(a)) == []


def test_volatile_readings_are_not_compared() -> None:
    a, b = manifest(), manifest()
    a["hardware"]["gpus"] = [{"name": "H100", "clocks_mhz": {"sm": 1980}, "pcie": {"width": 16}}]
    b["hardware"]["gpus"] = [{"name": "H100", "clocks_mhz": {"sm": 345}, "pcie": {"width": 8}}]

    assert diff_manifests(a, b) == []
    b["hardware"]["gpus"][0]["name"] = "A100"
    assert [d.key for d in diff_manifests(a, b)] == ["hardware.gpus.0.name"]
