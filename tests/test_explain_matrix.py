"""`repro explain` across CPU numerics classes: the other machine's caps are read from its
recorded CPU facts, never from variables it set (smoke profile, real reruns).

One "other machine" per distinct numerics class of (ATen level, oneDNN ISA) at or below
this CPU's own: a run made here under both caps, whose manifest is then given the ISA
flags of a CPU that implies them, with the variables and the dispatch fields removed
(as an older manifest from that machine would read). On the smoke profile the classes
measured distinct are {AVX-512 with any AVX-512 oneDNN level}, {AVX2, AVX2} and
{default, AVX} (SSE4.1 equals AVX there); see README, "explain".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.cli import main
from repro.explain.explain import DEFAULT_MAX_RUNS
from repro.manifest import dispatch
from repro.manifest.cpu import (
    CPUINFO,
    first_cpu_block,
    isa_flags,
    parse_cpuinfo_block,
    this_cpu_highest_kernel_level,
)

pytestmark = pytest.mark.slow
_LEVELS = ("default", "avx2", "avx512")
_NO_AVX512_EXTRAS = ("avx512_", "amx")  # VNNI, BF16, FP16, ...: Skylake-SP has none

# (class, ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, the flags of a CPU that implies both)
CLASSES = (
    ("avx512-core", "avx512", "AVX512_CORE", None),  # None: this CPU's flags, extras removed
    ("avx2", "avx2", "AVX2", ["avx", "avx2", "f16c", "fma"]),
    ("avx", "default", "AVX", ["avx", "f16c"]),
)


def _this_cpu_flags() -> list[str]:
    return isa_flags(parse_cpuinfo_block(first_cpu_block(CPUINFO)).get("flags", ""))


def _run(runs: Path, **env: str) -> Path:
    before = set(runs.iterdir()) if runs.is_dir() else set()
    command = [sys.executable, "-m", "repro", "run", "--profile", "smoke", "--quiet"]
    done = subprocess.run(
        [*command, "--runs-dir", str(runs)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (new,) = set(runs.iterdir()) - before
    return new


def _as_other_machine(run: Path, flags: list[str]) -> None:
    """The run's manifest as that CPU would have written it, with no variable set."""
    path = run / "manifest.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["hardware"]["cpu"]["isa_flags"] = sorted(flags)
    for name in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"):
        manifest["env"].pop(name, None)
    for library, field in (("onednn", "isa"), ("mkl", "code_path")):
        for key in (field, f"{field}_source"):
            manifest["libraries"][library].pop(key, None)
    path.write_text(yaml.safe_dump(manifest))


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    ceiling = this_cpu_highest_kernel_level()
    if ceiling not in ("avx2", "avx512"):
        pytest.skip("needs an x86-64 CPU with AVX2")
    root = tmp_path_factory.mktemp("matrix")
    own = _this_cpu_flags()
    others = {}
    for name, level, cap, flags in CLASSES:
        if _LEVELS.index(level) > _LEVELS.index(ceiling):
            continue  # above this CPU: the ranks would die (SIGILL)
        flags = flags or [f for f in own if not f.startswith(_NO_AVX512_EXTRAS)]
        run = _run(root / name, ATEN_CPU_CAPABILITY=level, ONEDNN_MAX_CPU_ISA=cap)
        _as_other_machine(run, flags)
        others[name] = (run, cap.lower())
    return {"here": _run(root / "here"), "others": others, "root": root}


@pytest.mark.parametrize("name", [c[0] for c in CLASSES])
def test_explain_confirms_the_smallest_set_from_the_other_cpus_facts(
    matrix: dict[str, Any], name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if name not in matrix["others"]:
        pytest.skip(f"{name} is above this CPU")
    other, cap = matrix["others"][name]
    recorded = yaml.safe_load((other / "manifest.yaml").read_text())["hardware"]["cpu"]
    assert dispatch.onednn_isa_from_flags(recorded["isa_flags"]) == cap
    runs = matrix["root"] / f"reruns-{name}"
    code = main(
        ["explain", str(other), "--here", str(matrix["here"]), "--runs-dir", str(runs), "--json"]
    )
    data = json.loads(capsys.readouterr().out)
    assert code == 0, data["conclusion"]
    if data["search"] is None:  # this CPU already computes like that one
        assert data["conclusion"].startswith("nothing to explain") and data["runs"] == []
        return
    search, knobs = data["search"], {k["name"]: k for k in data["knobs"]}
    assert search["outcome"] == "confirmed" and len(search["trials"]) <= DEFAULT_MAX_RUNS
    found = set(search["knobs"])
    assert found <= {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA"}, found
    if "ONEDNN_MAX_CPU_ISA" in knobs:  # read from the flags: the variable was removed
        assert knobs["ONEDNN_MAX_CPU_ISA"]["other"] == cap.upper()
    # The smallest: without any one of the set, a rerun was tried and differed (with one
    # knob, the run here without it is the one that differs).
    for knob in found if len(found) > 1 else ():
        assert any(
            knob not in t["knobs"] and found - {knob} <= set(t["knobs"]) and not t["identical"]
            for t in search["trials"]
        ), (knob, search["trials"])
    assert search["trials"][-1]["identical"] and set(search["trials"][-1]["knobs"]) == found
    print(f"{name}: {sorted(found)} confirmed in {len(search['trials'])} reruns")
