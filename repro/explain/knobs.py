"""The knobs: settings a rerun can take from the other machine, read from the two runs.

A knob is a field of the execution or precision class (threads per rank, world size at
the same global batch, SDPA backend, AMP dtype, TF32), or a kernel-steering environment
variable (``KNOB_ENV``). The CPU kernel level is read from what the other run's torch
*used* (``hardware.cpu.torch_capability``), set or not; so are oneDNN's ISA and MKL's code
path (``libraries.onednn.isa``, ``libraries.mkl.code_path``: read, or derived from the
other machine's ISA flags and vendor where it set nothing), each becoming the variable
that caps it here. Knobs only go down: a level this CPU lacks (read from its ISA flags)
would kill the ranks (SIGILL) or be ignored, so it is "cannot be tried here". Semantic,
seed and fault differences are not knobs: they are named as the cause with no rerun.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repro.manifest import dispatch
from repro.manifest.cpu import ATEN_LEVELS, highest_kernel_level
from repro.profile import differing_fields, flatten_settings
from repro.runs.runview import RunView

# Environment variables a rerun may take from the other run (as recorded in its manifest).
KNOB_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS")
GPU_ENV = ("NCCL_ALGO", "NCCL_PROTO", "NCCL_NVLS_ENABLE")  # only where NCCL moves data
CAPABILITY = "ATEN_CPU_CAPABILITY"
ONEDNN_CAP, MKL_CAP = "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"
# The variables the effective values stand for: read from what ran, not from what was set.
_EFFECTIVE = (*dispatch.CAP_VARIABLES, MKL_CAP)
_ISA_TIERS = (
    ("AVX512", "avx512"),
    ("AMX", "avx512"),
    ("AVX2", "avx2"),
    ("AVX", "default"),
    ("SSE", "default"),
)


@dataclass(frozen=True)
class Knob:
    name: str  # "threads_per_rank", "ATEN_CPU_CAPABILITY", ...
    here: Any
    other: Any
    kind: str  # "setting" (--set name=value) or "env"
    cannot: str = ""  # why this machine cannot take it ("" when it can)

    @property
    def change(self) -> str:
        return (
            f"--set {self.name}={self.other}"
            if self.kind == "setting"
            else f"{self.name}={self.other}"
        )


@dataclass(frozen=True)
class Differences:
    knobs: tuple[Knob, ...]
    causes: tuple[str, ...]  # named without a rerun: another training, seed, fault
    beyond: tuple[str, ...]  # what no knob changes: library versions, hardware


def _level(text: Any) -> str | None:
    value = str(text or "").lower()
    return value if value in ATEN_LEVELS else None


def _isa_tier(isa: str) -> str | None:
    upper = isa.upper()
    return next((tier for prefix, tier in _ISA_TIERS if upper.startswith(prefix)), None)


@dataclass(frozen=True)
class _Here:
    """What this machine can take: its kernel ceiling, its GPUs, the run's world size."""

    level: str | None
    gpus: int
    world_size: int
    onednn: str | None = None  # the best oneDNN ISA of this CPU, uncapped
    mkl: str = "unknown"  # MKL's uncapped path on this CPU ("intel:avx512", "non-intel")


def _cannot(name: str, value: Any, here: _Here) -> str:
    here_level = here.level
    if name == CAPABILITY:
        level = _level(value)
        if level is None or here_level is None:
            return f"{value!r} is not a CPU kernel level repro knows"
        if ATEN_LEVELS.index(level) > ATEN_LEVELS.index(here_level):
            return f"this CPU's highest kernel level is {here_level}; {level} would kill the ranks (SIGILL)"
    if name == ONEDNN_CAP and here.onednn and dispatch.onednn_isa_name(value):
        isa = str(dispatch.onednn_isa_name(value))
        if not dispatch.at_or_below(isa, here.onednn):
            return f"this CPU's oneDNN tops out at {here.onednn.upper()}; {value} asks for more"
        return ""
    if name == MKL_CAP and here.mkl.startswith("intel:"):
        branches = _MKL_BRANCHES
        top, asked = here.mkl.removeprefix("intel:").upper(), str(value).upper()
        if asked in branches and branches.index(asked) > branches.index(top):
            return f"this CPU's MKL tops out at {top}; {value} asks for more"
    if name.endswith("_MAX_CPU_ISA"):
        tier = _isa_tier(str(value))
        if (
            tier is not None
            and here_level is not None
            and ATEN_LEVELS.index(tier) > ATEN_LEVELS.index(here_level)
        ):
            return f"this CPU tops out at {here_level}; a {value} cap asks for more"
    if name in GPU_ENV and not here.gpus:
        return "NCCL runs only on GPUs, and this machine has none"
    if name in GPU_ENV and here.world_size < 2:
        return "at world size 1 NCCL moves no data: its settings change nothing"
    if name == "world_size" and here.gpus and _int(value) > here.gpus:
        return f"this machine has {here.gpus} GPUs; {value} ranks need one each"
    return ""


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def read_differences(other: RunView, here: RunView) -> Differences:
    classes = differing_fields(other.settings, here.settings)
    causes = [f"another training: {name} differs" for name in classes.get("semantic", [])]
    if "seed" in classes:
        causes.append(
            f"another master seed ({other.seed} vs {here.seed}): no knob makes seeds agree"
        )
    causes += [
        f"a fault was injected: {n}" for n in classes.get("harness", []) if n.startswith("fault.")
    ]
    flat_other, flat_here = flatten_settings(other.settings), flatten_settings(here.settings)
    # The ceiling comes from this CPU's flags, not from the level the "here" run used: a run
    # made at a lowered level must not make a level this CPU can run "cannot be tried".
    level_here = _level(_cpu(here).get("torch_capability"))
    here_level = highest_kernel_level(_cpu(here).get("isa_flags")) or level_here
    hardware = here.manifest.get("hardware", {})
    gpus = hardware.get("gpus") if hardware.get("cuda", {}).get("available") else None
    this = _Here(
        here_level,
        len(gpus) if isinstance(gpus, list) and gpus else 0,
        _int(here.manifest.get("run", {}).get("world_size")),
        dispatch.onednn_isa_from_flags(_cpu(here).get("isa_flags")),
        dispatch.mkl_code_path(_cpu(here), {}),
    )
    knobs = [
        Knob(name, flat_here.get(name), flat_other.get(name), "setting")
        for kind in ("execution", "precision")
        for name in classes.get(kind, [])
    ]
    other_level = _level(_cpu(other).get("torch_capability"))
    if other_level and other_level != level_here:
        knobs.append(Knob(CAPABILITY, level_here, other_level, "env"))
    env_other, env_here = other.manifest.get("env", {}), here.manifest.get("env", {})
    effective, remains = _effective_knobs(other, here)
    knobs += effective
    for name in (*KNOB_ENV, *GPU_ENV):
        if name in _EFFECTIVE and any(k.name in (ONEDNN_CAP, MKL_CAP) for k in effective):
            continue  # the effective value above already stands for what was set there
        if name in dispatch.CAP_VARIABLES and _onednn_isa(other) == _onednn_isa(here):
            continue  # set there, and it changed nothing: both ran the same ISA
        if name in env_other and env_other.get(name) != env_here.get(name):
            knobs.append(Knob(name, env_here.get(name), env_other[name], "env"))
    knobs = [Knob(k.name, k.here, k.other, k.kind, _cannot(k.name, k.other, this)) for k in knobs]
    return Differences(tuple(knobs), tuple(causes), tuple(_beyond(other, here) + remains))


def _onednn_isa(view: RunView) -> str | None:
    onednn = view.manifest.get("libraries", {}).get("onednn", {})
    read = dispatch.onednn_isa_name(onednn.get("isa") if isinstance(onednn, dict) else None)
    env = view.manifest.get("env", {})
    return read or dispatch.onednn_isa_from_flags(_cpu(view).get("isa_flags"), env)


def _mkl_path(view: RunView) -> str:
    mkl = view.manifest.get("libraries", {}).get("mkl", {})
    path = mkl.get("code_path") if isinstance(mkl, dict) else None
    env = view.manifest.get("env", {})
    return str(path) if path else dispatch.mkl_code_path(_cpu(view), env)


def _effective_knobs(other: RunView, here: RunView) -> tuple[list[Knob], list[str]]:
    """Knobs for what the libraries ran there, set or not (oneDNN's ISA, MKL's Intel
    branch), and what no variable reaches (MKL's vendor path)."""
    knobs, remains = [], []
    isa_other, isa_here = _onednn_isa(other), _onednn_isa(here)
    if isa_other and isa_here and isa_other != isa_here:
        knobs.append(Knob(ONEDNN_CAP, isa_here.upper(), isa_other.upper(), "env"))
    path_other, path_here = _mkl_path(other), _mkl_path(here)
    if "unknown" not in (path_other, path_here) and path_other != path_here:
        if path_other.startswith("intel:") and path_here.startswith("intel:"):
            branch = path_other.removeprefix("intel:").upper()
            knobs.append(Knob(MKL_CAP, path_here.removeprefix("intel:").upper(), branch, "env"))
        elif not path_other.startswith("cbwr:"):  # a pinned branch is its MKL_CBWR knob
            remains.append(
                f"MKL's code path: {path_here} here, {path_other} there "
                "(MKL picks it by CPU vendor; no variable here reaches the other vendor's path)"
            )
    return knobs, remains


def _cpu(view: RunView) -> dict[str, Any]:
    cpu = view.manifest.get("hardware", {}).get("cpu", {})
    return cpu if isinstance(cpu, dict) else {}


def _few(flags: set[str], shown: int = 4) -> str:
    names = sorted(flags)
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _beyond(other: RunView, here: RunView) -> list[str]:
    """Library and hardware differences: what remains when every knob is matched."""
    found = []
    for section, keys in (
        ("libraries", ("torch", "cuda", "cudnn", "nccl", "onednn", "mkl", "python")),
        ("hardware", ("cpu",)),
    ):
        a, b = other.manifest.get(section, {}), here.manifest.get(section, {})
        for key in keys:
            va, vb = a.get(key), b.get(key)
            if isinstance(va, dict) and isinstance(vb, dict):
                va, vb = (
                    va.get("version", va.get("model_name")),
                    vb.get("version", vb.get("model_name")),
                )
            if va != vb and va is not None:
                found.append(f"{section}.{key}: {va} vs {vb}")
    flags_other, flags_here = (set(_cpu(v).get("isa_flags") or ()) for v in (other, here))
    if flags_other and flags_here and flags_other != flags_here:
        only = [f"{side}: {_few(f)}" for side, f in (
            ("only there", flags_other - flags_here), ("only here", flags_here - flags_other)) if f]  # fmt: skip
        found.append("hardware.cpu.isa_flags: " + "; ".join(only))
    return found


_DISPATCH = (CAPABILITY, ONEDNN_CAP, MKL_CAP)


_MKL_BRANCHES = ("SSE4_2", "AVX", "AVX2", "AVX512")


def _goes_down(knob: Knob) -> bool:
    """Whether the other run's value is below this run's (not only below this CPU's)."""
    here, other = str(knob.here).lower(), str(knob.other).lower()
    if knob.name == CAPABILITY:
        return (
            here in ATEN_LEVELS
            and other in ATEN_LEVELS
            and ATEN_LEVELS.index(other) < ATEN_LEVELS.index(here)
        )
    if knob.name == ONEDNN_CAP:
        a, b = dispatch.onednn_isa_name(other), dispatch.onednn_isa_name(here)
        return bool(a and b and a != b and dispatch.at_or_below(a, b))
    branches = [b.lower() for b in _MKL_BRANCHES]
    return here in branches and other in branches and branches.index(other) < branches.index(here)


def lowering(other: RunView, here: RunView) -> list[Knob]:
    """The CPU-dispatch knobs (ATen level, oneDNN ISA, MKL branch) that take this run's
    kernels down to the other's: the set ``repro explain`` starts its search from. Empty
    when there is none, or when one of them would go up or this CPU cannot take it."""
    knobs = [k for k in read_differences(other, here).knobs if k.name in _DISPATCH]
    return knobs if all(_goes_down(k) and not k.cannot for k in knobs) else []


def other_machine_command(profile: str, knobs: list[Knob]) -> str:
    """What to run on the other machine when this one cannot go where it went: there, the
    knobs go down to this machine's values instead."""
    env = [f"{k.name}={k.here}" for k in knobs if k.kind == "env" and k.here is not None]
    sets = [f"--set {k.name}={k.here}" for k in knobs if k.kind == "setting"]
    return " ".join([*env, "repro", "run", "--profile", profile, *sets])
