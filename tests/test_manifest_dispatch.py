"""What the CPU numerics libraries dispatched to (manifest/dispatch.py), and what explain,
verify and compare make of it against a machine that set nothing."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys

import pytest

from repro.baselines.baseline import load_baseline, shipped_dir
from repro.explain.knobs import read_differences
from repro.judge.causes import lowering_words, render_try, rules
from repro.manifest import dispatch
from repro.manifest.cpu import CPUINFO, first_cpu_block, isa_flags, parse_cpuinfo_block
from repro.manifest.keys import judged_against, key_info
from repro.runs.runview import RunView

BASELINE = shipped_dir() / "quick-cpu-x86_64-avx2"
# A Zen 4 EPYC's ISA flags as the manifest keeps them (AVX-512 with bf16, no fp16, no AMX).
ZEN4 = sorted(
    {"avx", "avx2", "f16c", "fma", "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}
    | {"avx512_bf16", "avx512_vnni", "avx512ifma", "avx512vbmi"}
)


@pytest.mark.parametrize(
    ("line", "isa"),
    [
        ("onednn_verbose,v1,info,cpu,isa:Intel AVX2", "avx2"),
        ("onednn_verbose,v1,info,cpu,isa:Intel SSE4.1", "sse41"),
        (
            "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with AVX512BW, AVX512VL, and AVX512DQ extensions",
            "avx512_core",
        ),
        # "bfloat16" holds "float16": this is not the fp16 level.
        (
            "onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support",
            "avx512_core_bf16",
        ),
        ("onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71)", None),
    ],
)
def test_the_verbose_info_line_names_onednns_isa(line: str, isa: str | None) -> None:
    assert dispatch.onednn_isa_from_verbose(f"x\n{line}\ny") == isa


def test_the_documented_rule_takes_the_best_isa_the_cpu_has_capped_by_the_variable() -> None:
    assert dispatch.onednn_isa_from_flags(["avx", "avx2", "f16c", "fma"]) == "avx2"
    assert dispatch.onednn_isa_from_flags(ZEN4) == "avx512_core_bf16"
    assert dispatch.onednn_isa_from_flags(ZEN4, {"ONEDNN_MAX_CPU_ISA": "AVX2"}) == "avx2"
    assert dispatch.onednn_isa_from_flags(ZEN4, {"DNNL_MAX_CPU_ISA": "avx512_core"}) == (
        "avx512_core"
    )
    # A cap above the CPU changes nothing; without AVX repro records too little to say.
    capped = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}
    assert dispatch.onednn_isa_from_flags(["avx", "avx2", "fma"], capped) == "avx2"
    assert dispatch.onednn_isa_from_flags(["fma"]) is None


def _read_in_a_fresh_process(cap: str) -> dict[str, str]:
    code = (
        "import json; from repro.manifest.capture import capture_manifest;"
        "print(json.dumps(capture_manifest()['libraries']['onednn']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "ONEDNN_MAX_CPU_ISA": cap},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="oneDNN's x86 ISA caps")
def test_the_manifest_reads_the_isa_onednn_itself_reports_under_a_cap() -> None:
    # Caps at or below any x86-64 CPU with AVX2: the reading must follow the variable.
    for cap, isa in (("AVX2", "avx2"), ("SSE41", "sse41")):
        onednn = _read_in_a_fresh_process(cap)
        assert (onednn["isa"], onednn["isa_source"]) == (isa, dispatch.READ)


def test_the_shipped_baselines_dispatch_is_derived_on_reading_and_no_stored_file_changes() -> None:
    primary = load_baseline(BASELINE).primary()  # every digest of the baseline still holds
    onednn, mkl = primary.manifest["libraries"]["onednn"], primary.manifest["libraries"]["mkl"]
    assert (onednn["isa"], onednn["isa_source"]) == ("avx2", dispatch.DERIVED)
    assert (mkl["code_path"], mkl["code_path_source"]) == ("non-intel", dispatch.MKL_DERIVED)
    stored = (BASELINE / "manifest.yaml").read_text()
    assert "isa_source" not in stored and "code_path" not in stored
    # Added later: a baseline that lacks the key is not matched on it.
    assert key_info("libraries.onednn.isa").env_key
    assert not judged_against("libraries.onednn.isa", {"hardware.cpu.torch_capability": "AVX2"})


def _this_host(view: RunView, flags: list[str], vendor: str, model: str) -> RunView:
    """The shipped baseline's run as an AVX-512 machine would have recorded it."""
    manifest = copy.deepcopy(view.manifest)
    cpu = manifest["hardware"]["cpu"]
    cpu.update(isa_flags=flags, torch_capability="AVX512", vendor=vendor, model_name=model)
    for library in ("onednn", "mkl"):
        for field in ("isa", "isa_source", "code_path", "code_path_source"):
            manifest["libraries"][library].pop(field, None)
    dispatch.derive_missing(manifest)
    return dataclasses.replace(view, name="here", manifest=manifest)


def test_against_the_avx2_baseline_an_avx512_host_gets_both_knobs_and_the_pair_to_try() -> None:
    other = load_baseline(BASELINE).primary()
    here = _this_host(other, ZEN4, "AuthenticAMD", "AMD EPYC 9R14")
    found = read_differences(other, here)
    assert {k.name: (k.here, k.other, k.cannot) for k in found.knobs} == {
        "ATEN_CPU_CAPABILITY": ("avx512", "avx2", ""),
        "ONEDNN_MAX_CPU_ISA": ("AVX512_CORE_BF16", "AVX2", ""),
    }
    pair = "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2"
    assert lowering_words(here, other) == pair
    assert lowering_words(other, here) == pair  # the AVX2 run as candidate: same set, there
    (rule,) = [r for r in rules() if r["id"] == "kernel_selection"]
    assert f"`{pair} repro run --profile quick`" in render_try(rule, here, other)


def test_mkls_vendor_path_is_named_as_what_no_knob_reaches() -> None:
    other = load_baseline(BASELINE).primary()
    here = _this_host(other, ZEN4, "GenuineIntel", "Intel(R) Xeon(R) Platinum 8488C")
    found = read_differences(other, here)
    assert "MKL_ENABLE_INSTRUCTIONS" not in {k.name for k in found.knobs}
    assert any(
        b.startswith("MKL's code path: intel:avx512 here, non-intel there") for b in found.beyond
    )
    assert any(b.startswith("hardware.cpu.isa_flags: only here: avx512") for b in found.beyond)


def test_this_cpus_own_flags_give_a_known_isa() -> None:
    flags = isa_flags(parse_cpuinfo_block(first_cpu_block(CPUINFO)).get("flags", ""))
    if "avx" not in flags:
        pytest.skip("not an x86 CPU with AVX")
    assert dispatch.onednn_isa_from_flags(flags) in dispatch.ONEDNN_ISAS
