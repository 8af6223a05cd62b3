"""What each CPU numerics library dispatched to: oneDNN's ISA and MKL's code path.

oneDNN picks the best instruction set of the CPU unless ``ONEDNN_MAX_CPU_ISA`` (or the
older ``DNNL_MAX_CPU_ISA``) caps it, so two machines differ here without anyone setting a
variable. oneDNN's own answer is its verbose info line (``onednn_verbose,...,cpu,isa:Intel
AVX2``), printed by C code on file descriptor 1 the first time verbose output is on; it is
read in a tiny reorder primitive. Where it cannot be read (torch without oneDNN, the line
already printed under ``ONEDNN_VERBOSE``, an older manifest) the ISA is *derived* from the
CPU's recorded flags by oneDNN's documented rule (the best ISA the CPU has, capped by the
variable), and the manifest says so. MKL's path is always derived: MKL states no public
way to ask it, and its rule is documented (vendor, then ISA, then the caps).

No torch at import: the rules run when a baseline from another machine is read.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

# oneDNN's CPU ISAs (ONEDNN_MAX_CPU_ISA spelling, lower case) and, for each, the
# /proc/cpuinfo flags it needs (cpu_isa_traits' mayiuse) and the ISAs at or below it: the
# order is partial (doc: dev_guide_cpu_dispatcher_control), so "below" is a set, not an index.
_AVX512 = frozenset({"avx512f", "avx512bw", "avx512vl", "avx512dq"})
ONEDNN_ISAS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "sse41": (frozenset(), frozenset()),  # AVX implies SSE4.1; repro records no SSE flags
    "avx": (frozenset({"avx"}), frozenset({"sse41"})),
    "avx2": (frozenset({"avx2"}), frozenset({"sse41", "avx"})),
    "avx2_vnni": (frozenset({"avx2", "avx_vnni"}), frozenset({"sse41", "avx", "avx2"})),
    "avx2_vnni_2": (
        frozenset({"avx2", "avx_vnni", "avx_vnni_int8", "avx_ne_convert"}),
        frozenset({"sse41", "avx", "avx2", "avx2_vnni"}),
    ),
    "avx512_core": (_AVX512, frozenset({"sse41", "avx", "avx2"})),
    "avx512_core_vnni": (
        _AVX512 | {"avx512_vnni"},
        frozenset({"sse41", "avx", "avx2", "avx512_core"}),
    ),
    "avx512_core_bf16": (
        _AVX512 | {"avx512_vnni", "avx512_bf16"},
        frozenset({"sse41", "avx", "avx2", "avx512_core", "avx512_core_vnni"}),
    ),
    "avx512_core_fp16": (
        _AVX512 | {"avx512_vnni", "avx512_bf16", "avx512_fp16"},
        frozenset(
            {"sse41", "avx", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni"}
            | {"avx512_core_bf16"}
        ),
    ),
    "avx512_core_amx": (
        _AVX512 | {"avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_int8", "amx_bf16"},
        frozenset(
            {"sse41", "avx", "avx2", "avx2_vnni", "avx512_core", "avx512_core_vnni"}
            | {"avx512_core_bf16", "avx512_core_fp16"}
        ),
    ),
}
# The AVX10.1 names oneDNN accepts as aliases of the AVX-512 ones.
_ALIASES = {"avx10_1_512": "avx512_core_fp16", "avx10_1_512_amx": "avx512_core_amx"}
CAP_VARIABLES = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")  # the first one set wins

READ = "read from oneDNN's verbose info line"
DERIVED = "derived from the CPU's ISA flags and the cap variables (oneDNN's documented rule)"
MKL_DERIVED = "derived from the CPU's vendor, ISA flags and MKL's variables (MKL's documented rule)"


def onednn_isa_name(value: Any) -> str | None:
    """``AVX2`` or ``avx10_1_512`` -> oneDNN's lower-case ISA name; None if it is not one."""
    name = str(value or "").strip().lower()
    name = _ALIASES.get(name, name)
    return name if name in ONEDNN_ISAS else None


def at_or_below(isa: str, cap: str) -> bool:
    return isa == cap or isa in ONEDNN_ISAS[cap][1]


def onednn_isa_from_flags(flags: Any, env: Mapping[str, Any] | None = None) -> str | None:
    """The ISA oneDNN dispatches to on a CPU with these ISA flags under these variables:
    the highest ISA the CPU has, at or below the cap. None when the flags are unknown."""
    if not isinstance(flags, (list, tuple, set, frozenset)):
        return None
    present = {str(flag).lower() for flag in flags}
    if "avx" not in present:
        return None  # SSE4.1 or below: repro does not record SSE flags, so do not guess
    cap = _cap(env or {})
    usable = [
        isa
        for isa, (needs, _) in ONEDNN_ISAS.items()
        if needs <= present and (cap is None or at_or_below(isa, cap))
    ]
    # The partial order's top among them: the one every other one is below.
    tops = [isa for isa in usable if all(at_or_below(other, isa) for other in usable)]
    return tops[0] if tops else usable[-1]


def _cap(env: Mapping[str, Any]) -> str | None:
    for name in CAP_VARIABLES:
        if env.get(name) not in (None, ""):
            return onednn_isa_name(env[name]) if str(env[name]).lower() != "default" else None
    return None


def onednn_isa_from_verbose(text: str) -> str | None:
    """The ISA named by oneDNN's ``info,cpu,isa:`` verbose line (its descriptions, as in
    the dispatcher-control table), or None when the text holds no such line."""
    line = next((ln for ln in text.splitlines() if ",cpu,isa:" in ln), None)
    if line is None:
        return None
    desc = line.split(",cpu,isa:", 1)[1]
    fp16 = re.search(r"\bfloat16", desc) is not None  # not the "float16" in "bfloat16"
    if "AMX" in desc:
        return "avx512_core_amx"  # the AMX-with-float16 level is preview-only in DEFAULT
    if "AVX10.1" in desc or ("AVX-512" in desc and fp16):
        return "avx512_core_fp16"
    if "AVX-512" in desc:
        if "bfloat16" in desc:
            return "avx512_core_bf16"
        return "avx512_core_vnni" if "DL Boost" in desc else "avx512_core"
    if "AVX2" in desc:
        if fp16 or "8-bit" in desc:
            return "avx2_vnni_2"
        return "avx2_vnni" if "DL Boost" in desc else "avx2"
    if "AVX" in desc:
        return "avx"
    return "sse41" if "SSE4.1" in desc else None


@contextlib.contextmanager
def _stdout_fd_captured() -> Iterator[list[str]]:
    """Whatever C code writes to file descriptor 1 meanwhile (Python's sys.stdout is a
    layer above it and would miss it); restored on every exit path."""
    import ctypes
    import sys

    sys.stdout.flush()
    libc = ctypes.CDLL(None)
    captured: list[str] = []
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured
            libc.fflush(None)  # C stdio buffers what goes to a file
        finally:
            os.dup2(saved, 1)
            os.close(saved)
        sink.seek(0)
        captured.append(sink.read().decode("utf-8", "replace"))


@functools.cache
def read_onednn_isa() -> str | None:
    """oneDNN's ISA as oneDNN reports it, or None when torch cannot make it say.

    Read once a process: oneDNN prints its info line (the ISA) only the first time verbose
    mode is on, and fixes its ISA at its first use, so a second capture in the same process
    would fall back to the derived value and two manifests of one process would differ.
    """
    import torch

    mkldnn: Any = torch.backends.mkldnn
    if not mkldnn.is_available():
        return None
    with _stdout_fd_captured() as captured, mkldnn.verbose(mkldnn.VERBOSE_ON):
        torch.ones(2, 2).to_mkldnn()  # one reorder primitive: always oneDNN's
    return onednn_isa_from_verbose(captured[0] if captured else "")


def onednn_dispatch(flags: Any, env: Mapping[str, Any], read: str | None) -> dict[str, Any]:
    """The manifest's ``libraries.onednn`` dispatch fields: read where oneDNN said it."""
    if read is not None:
        return {"isa": read, "isa_source": READ}
    return {"isa": onednn_isa_from_flags(flags, env) or "unknown", "isa_source": DERIVED}


# MKL's branches by ISA on Intel CPUs, highest first, and the flags each needs.
_MKL_BRANCHES = (
    ("avx512", _AVX512 | {"avx512cd"}),
    ("avx2", frozenset({"avx2", "fma"})),
    ("avx", frozenset({"avx"})),
)
_MKL_ORDER = ("sse4_2", "avx", "avx2", "avx512")


def vendor_of(cpu: Mapping[str, Any]) -> str | None:
    """``GenuineIntel``, ``AuthenticAMD``, ...: the recorded vendor, else read from the
    model name (older manifests record no vendor)."""
    vendor = cpu.get("vendor")
    if isinstance(vendor, str) and vendor:
        return vendor
    model = str(cpu.get("model_name") or "")
    if model.startswith("AMD"):
        return "AuthenticAMD"
    return "GenuineIntel" if model.startswith("Intel") else None


def mkl_code_path(cpu: Mapping[str, Any], env: Mapping[str, Any]) -> str:
    """MKL's code path: ``MKL_CBWR`` pins a branch outright; otherwise Intel CPUs take
    the best ISA branch (capped by ``MKL_ENABLE_INSTRUCTIONS``) and other vendors MKL's
    non-Intel path, which no variable here moves to an Intel branch."""
    cbwr = str(env.get("MKL_CBWR") or "").strip()
    if cbwr and cbwr.upper() != "AUTO":
        return f"cbwr:{cbwr.lower()}"
    vendor = vendor_of(cpu)
    if vendor is None:
        return "unknown"
    if vendor != "GenuineIntel":
        return "non-intel"
    flags = cpu.get("isa_flags")
    present = {str(f).lower() for f in flags} if isinstance(flags, list) else set()
    branch = next((name for name, needs in _MKL_BRANCHES if needs <= present), "sse4_2")
    cap = str(env.get("MKL_ENABLE_INSTRUCTIONS") or "").lower().removesuffix("_e1")
    if cap in _MKL_ORDER and _MKL_ORDER.index(cap) < _MKL_ORDER.index(branch):
        branch = cap
    return f"intel:{branch}"


def derive_missing(manifest: dict[str, Any]) -> list[str]:
    """Fill in the dispatch fields an older manifest lacks, from its recorded facts, in
    place; the dotted keys filled. A manifest that has them is left as it is."""
    hardware, libraries = manifest.get("hardware"), manifest.get("libraries")
    if not isinstance(hardware, dict) or not isinstance(libraries, dict):
        return []
    cpu = hardware.get("cpu")
    env = manifest.get("env")
    env = env if isinstance(env, dict) else {}
    if not isinstance(cpu, dict) or str(cpu.get("arch", "x86_64")) != "x86_64":
        return []
    filled = []
    onednn, mkl = libraries.get("onednn"), libraries.get("mkl")
    if isinstance(onednn, dict) and "isa" not in onednn and onednn.get("available") is True:
        onednn.update(onednn_dispatch(cpu.get("isa_flags"), env, None))
        filled += ["libraries.onednn.isa", "libraries.onednn.isa_source"]
    if isinstance(mkl, dict) and "code_path" not in mkl and mkl.get("available") is True:
        mkl.update({"code_path": mkl_code_path(cpu, env), "code_path_source": MKL_DERIVED})
        filled += ["libraries.mkl.code_path", "libraries.mkl.code_path_source"]
    return filled
