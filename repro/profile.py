"""Profiles: typed, validated data that fix everything that changes the numerics.

A profile never derives anything from the machine: a 64-core box runs the
``quick`` profile with the same ranks and threads per rank as a 2-core one, or
no two machines could ever match. ``--set key=value`` overrides any field
(dotted for nested ones: ``model.d_model=128``, ``fault.nan_step=5``); an
overridden run is marked non-reference and can never become a baseline.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import typing
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from repro.documents import read_data
from repro.errors import UserError
from repro.gc_freeze import frozen_imports
from repro.torch_build import torch_gpu_build

PROFILE_NAMES = ("smoke", "quick", "full")
AMP_DTYPES = ("bfloat16", "float16", "float32")
SDPA_BACKENDS = ("default", "math", "flash", "efficient", "cudnn")

# What a difference in a field means (README, "What counts as another training"):
#   semantic   defines the training: another value is another training
#   seed       the master seed: another value is another sample of the same training
#   precision  AMP dtype, TF32: judged only against a baseline at the same precision
#   execution  must not move the numbers beyond rounding: judged by the bands
#   harness    tracing, timeouts, faults, band settings, names
FieldClass = Literal["semantic", "seed", "precision", "execution", "harness"]
FIELD_CLASSES: tuple[FieldClass, ...] = typing.get_args(FieldClass)

T = TypeVar("T")


def _classed(kind: FieldClass, default: T) -> T:
    return field(default=default, metadata={"class": kind})


def semantic(default: T) -> T:
    return _classed("semantic", default)


def master_seed(default: T) -> T:
    return _classed("seed", default)


def precision(default: T) -> T:
    return _classed("precision", default)


def execution(default: T) -> T:
    return _classed("execution", default)


def harness(default: T) -> T:
    return _classed("harness", default)


@dataclass
class ModelConfig:
    vocab: int = semantic(16)
    """Token vocabulary size."""
    d_model: int = semantic(64)
    """Width of the residual stream."""
    n_layers: int = semantic(2)
    """Number of Transformer blocks."""
    n_heads: int = semantic(4)
    """Attention heads per block; must divide ``d_model``."""
    seq_len: int = semantic(32)
    """Tokens per sample."""
    dropout: float = semantic(0.1)
    """Dropout probability (masks derive from the global sample index)."""

    def __post_init__(self) -> None:
        _positive(self, "vocab", "d_model", "n_layers", "n_heads", "seq_len")
        if self.d_model % self.n_heads:
            raise ValueError(
                f"model.d_model={self.d_model} is not divisible by model.n_heads={self.n_heads}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout={self.dropout} must be in [0, 1)")
        if self.vocab < 4:
            raise ValueError(f"model.vocab={self.vocab} must be at least 4")


@dataclass
class DataConfig:
    train_samples: int = semantic(1024)
    """Training set size; one epoch is ``train_samples // global_batch`` steps."""
    eval_samples: int = semantic(256)
    """Held-out evaluation samples (evaluated on rank 0 alone, so world size cannot change it)."""
    label_noise: float = semantic(0.06)
    """Fraction of targets replaced by random tokens: keeps accuracy off a saturated 100 %."""

    def __post_init__(self) -> None:
        _positive(self, "train_samples", "eval_samples")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"data.label_noise={self.label_noise} must be in [0, 1)")


@dataclass
class Faults:
    """Deliberate faults for tests and the self-test; a run with any can never be a baseline."""

    nan_step: int | None = harness(None)
    """Make the loss NaN at this step."""
    overflow_step: int | None = harness(None)
    """Make this step's gradients Inf on ``fault_rank`` (the loss stays finite), as an fp16
    backward overflows: a GradScaler skips the step, training without one fails."""
    desync_step: int | None = harness(None)
    """Perturb one rank's parameters after this step's update."""
    lr_factor: float = harness(1.0)
    """Multiply the learning rate."""
    sampler_seed_offset: int = harness(0)
    """Shuffle with another sampler seed."""
    skip_set_epoch: bool = harness(False)
    """Forget ``DistributedSampler.set_epoch`` (every epoch repeats the first order)."""
    nondeterministic: bool = harness(False)
    """Seed dropout masks from the OS instead of the sample index."""
    raise_step: int | None = harness(None)
    """Raise an exception on ``fault_rank`` at this step."""
    hang_step: int | None = harness(None)
    """Hang ``fault_rank`` at this step (the collective timeout must end the run)."""
    fault_rank: int = harness(-1)
    """The rank that raises, hangs or desynchronises; -1 means the last rank."""
    update_scale: float = harness(0.0)
    """Multiply every parameter update p_{k+1} - p_k by (1 + this) after the optimiser step,
    on every rank; the logged learning rate is unchanged. The effect size of the power
    measurements: an effective learning rate the schedule does not show."""

    def active(self) -> dict[str, Any]:
        defaults = Faults()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "fault_rank" and getattr(self, f.name) != getattr(defaults, f.name)
        }


@dataclass
class Profile:
    name: str = harness("quick")
    """Profile name; baselines are recorded per profile."""
    description: str = harness("")
    """One line for people."""
    device: str = execution("cpu")
    """``cpu`` (gloo, bf16 autocast) or ``cuda`` (nccl, fp16 autocast + GradScaler)."""
    world_size: int = execution(2)
    """Ranks on this node."""
    threads_per_rank: int = execution(1)
    """Intra-op threads per rank (set before torch starts)."""
    amp_dtype: str = precision("bfloat16")
    """Autocast dtype: bfloat16, float16 (with GradScaler) or float32 (AMP off)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    global_batch: int = semantic(32)
    """Samples per optimiser step summed over ranks."""
    eval_batch: int = execution(128)
    """Samples per evaluation forward pass."""
    steps: int = semantic(300)
    """Optimiser steps."""
    warmup_steps: int = semantic(20)
    """Linear warm-up steps before the cosine decay."""
    lr: float = semantic(3e-3)
    """Peak learning rate."""
    min_lr_ratio: float = semantic(0.1)
    """Final learning rate as a fraction of the peak."""
    weight_decay: float = semantic(0.01)
    """AdamW weight decay."""
    betas: tuple[float, float] = semantic((0.9, 0.98))
    """AdamW betas."""
    grad_clip: float = semantic(1.0)
    """Clip the global gradient norm to this."""
    seed: int = master_seed(0)
    """Master seed: data, initialisation and dropout all derive from it."""
    num_workers: int = execution(1)
    """DataLoader worker processes per rank (at least 1)."""
    tf32: bool = precision(False)
    """Allow TF32 matmuls and convolutions on CUDA."""
    sdpa_backend: str = execution("default")
    """Force one scaled-dot-product-attention backend, or let torch choose."""
    trace_steps: int = harness(10)
    """Steps with localisation data (module outputs, gradients before and after all-reduce)."""
    check_every: int = harness(1)
    """Compare parameter fingerprints across ranks every this many steps."""
    converged_accuracy: float = harness(0.9)
    """Evaluation token accuracy a run must reach to count as converged."""
    collective_timeout_s: float = harness(60.0)
    """A rank that does not join a collective within this many seconds fails the run."""
    band_member: int | None = harness(None)
    """Internal: index of a numerics-band member (rounding-level perturbation)."""
    band_scale: float | None = harness(None)
    """Relative size of a band member's initial parameter perturbation; default half a unit
    in the last place of the compute dtype (bf16 2**-9, fp16 2**-12, fp32 2**-24), the
    finest change that autocast cannot absorb (``repro.reference.band``, which the workload
    hash covers)."""
    fault: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        _positive(self, "world_size", "threads_per_rank", "global_batch", "eval_batch", "steps")
        _positive(self, "num_workers", "check_every", "lr", "collective_timeout_s")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r} must be 'cpu' or 'cuda'")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"amp_dtype={self.amp_dtype!r} must be one of {', '.join(AMP_DTYPES)}")
        if self.sdpa_backend not in SDPA_BACKENDS:
            raise ValueError(
                f"sdpa_backend={self.sdpa_backend!r} must be one of {', '.join(SDPA_BACKENDS)}"
            )
        # torch's SDPA dispatch skips cuDNN attention under use_deterministic_algorithms
        # (sdp_utils.cpp, check_cudnn_deterministic), which the reference always sets: forcing
        # it leaves no kernel to run. With "default" torch passes over it and picks another.
        if self.sdpa_backend == "cudnn":
            raise ValueError(
                "sdpa_backend='cudnn' cannot run: torch refuses cuDNN attention under the "
                "deterministic algorithms the reference always uses; use math or default"
            )
        # CUDA flash attention has fp16 and bf16 kernels only; without autocast the attention
        # runs in float32. torch's CPU flash kernel takes float32, so the CPU is fine.
        if self.sdpa_backend == "flash" and self.device == "cuda" and self.amp_dtype == "float32":
            raise ValueError(
                "sdpa_backend='flash' with amp_dtype='float32' cannot run on CUDA (flash "
                "attention needs float16 or bfloat16); set amp_dtype=bfloat16 or sdpa_backend=math"
            )
        if self.global_batch % self.world_size:
            raise ValueError(
                f"global_batch={self.global_batch} is not divisible by world_size={self.world_size}"
            )
        if self.data.train_samples % self.global_batch:
            raise ValueError(
                f"data.train_samples={self.data.train_samples} is not a multiple of "
                f"global_batch={self.global_batch}"
            )
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} must be in [0, steps={self.steps})")
        if not 0 <= self.seed < 2**32:
            # Seed tuples hold 32-bit words; a larger seed would alias another tuple.
            raise ValueError(f"seed={self.seed} must be in [0, 2**32)")
        if self.trace_steps < 0:
            raise ValueError(f"trace_steps={self.trace_steps} must be >= 0")
        # A band member may carry the update-scale fault only: power is measured on
        # candidates perturbed as members are. Baselines never hold a faulted run.
        if self.band_member is not None and set(self.fault.active()) - {"update_scale"}:
            raise ValueError("a band member cannot also carry a fault other than update_scale")

    @property
    def steps_per_epoch(self) -> int:
        return self.data.train_samples // self.global_batch

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data


@functools.cache
def _nested_groups(cls: type) -> dict[str, type]:
    """The fields of ``cls`` that are themselves config dataclasses (``model``, ``data``, ``fault``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls) if dataclasses.is_dataclass(hints[f.name])}


def _leaf_classes(cls: type, prefix: str) -> dict[str, str]:
    groups = _nested_groups(cls)
    out: dict[str, str] = {}
    for f in fields(cls):
        if f.name in groups:
            out.update(_leaf_classes(groups[f.name], f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = f.metadata.get("class", "")
    return out


@functools.cache
def _field_classes() -> dict[str, str]:
    return _leaf_classes(Profile, "")


def field_classes() -> dict[str, str]:
    """Every leaf field's dotted name (``"lr"``, ``"model.d_model"``, ``"fault.nan_step"``) -> its class."""
    return dict(_field_classes())


def flatten_settings(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"d_model": 64}}`` -> ``{"model.d_model": 64}``; tuples read as lists, as in YAML."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, tuple) else value
    return flat


def differing_fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, list[str]]:
    """Two resolved settings dicts (``Profile.to_dict()`` form, as stored in config.yaml's
    ``settings``) -> ``{class: sorted dotted names whose values differ}``; classes with no
    difference are omitted.

    A name present on one side only differs. A name no field declares counts as semantic:
    an unexplained difference is treated as another training, never as noise.
    """
    flat_a, flat_b = flatten_settings(a), flatten_settings(b)
    missing = object()
    classes = _field_classes()
    found: dict[str, list[str]] = {}
    for name in sorted(flat_a.keys() | flat_b.keys()):
        if flat_a.get(name, missing) != flat_b.get(name, missing):
            kind = classes.get(name, "semantic")
            found.setdefault(kind if kind in FIELD_CLASSES else "semantic", []).append(name)
    return {kind: found[kind] for kind in FIELD_CLASSES if kind in found}


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name}={value!r} must be a positive number")


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Construct a (nested) config dataclass from a mapping, rejecting unknown keys."""
    if not isinstance(data, dict):
        raise ValueError(f"{where or 'profile'} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown field {where}{unknown[0]!r}; known: {', '.join(known)}")
    kwargs: dict[str, Any] = {}
    nested = _nested_groups(cls)
    for key, value in data.items():
        if key in nested:
            kwargs[key] = _build(nested[key], value, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(known[key], value, f"{where}{key}")
    return cls(**kwargs)


def _coerce(f: dataclasses.Field[Any], value: Any, name: str) -> Any:
    kind = str(f.type)
    if kind.startswith("tuple"):
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise ValueError(f"{name}={value!r} must be a pair of numbers")
        return tuple(float(v) for v in value)
    if value is None:
        if "None" not in kind:
            raise ValueError(f"{name} cannot be empty")
        return None
    if kind.startswith("bool"):
        if not isinstance(value, bool):
            raise ValueError(f"{name}={value!r} must be true or false")
        return value
    if kind.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}={value!r} must be an integer")
        return value
    if kind.startswith("float"):
        if isinstance(value, str):  # YAML reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name}={value!r} must be a number")
        return float(value)
    if kind.startswith("str"):
        return str(value)
    return value


def profile_source(name_or_path: str) -> tuple[dict[str, Any], str]:
    """The raw mapping of a shipped profile name or a YAML file, and where it came from."""
    if name_or_path in PROFILE_NAMES:
        text = resources.files("repro.profiles").joinpath(f"{name_or_path}.yaml").read_text()
        return yaml.safe_load(text), f"profile {name_or_path!r}"
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml") or not path.exists():
        raise UserError(
            f"profile {name_or_path!r} is neither a known profile ({', '.join(PROFILE_NAMES)}) "
            "nor an existing .yaml file; pick one of those."
        )
    data = read_data(path)
    return data, str(path)


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    """``["lr=0.0045", "fault.nan_step=5"]`` -> ``{"lr": 0.0045, "fault.nan_step": 5}``."""
    overrides: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {pair!r} is not key=value; write e.g. --set lr=0.0045.")
        try:
            overrides[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {pair!r} has a value that cannot be parsed.") from None
    return overrides


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = _deepcopy(data)
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise UserError(f"--set {dotted}: {part!r} is not a group of settings.")
            node = child
        node[leaf] = value
    return merged


def _deepcopy(data: dict[str, Any]) -> dict[str, Any]:
    return {k: _deepcopy(v) if isinstance(v, dict) else v for k, v in data.items()}


def build_profile(data: dict[str, Any], where: str) -> Profile:
    try:
        profile: Profile = _build(Profile, data, "")
        return profile
    except (ValueError, TypeError) as exc:
        raise UserError(f"{where}: {exc}; fix the profile or the --set value.") from None


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    data, where = profile_source(name_or_path)
    return build_profile(apply_overrides(data, overrides or {}), where)


def default_profile_name() -> str:
    """``full`` where CUDA is usable, else ``quick``; the caller prints the choice.

    A torch built without CUDA (or ROCm, which torch.cuda also drives) answers from its
    ``version.py`` alone: importing torch to ask would cost a CPU ``repro verify`` the
    second and a half it otherwise spends beside the launcher's start."""
    if not torch_gpu_build():
        return "quick"
    with frozen_imports():  # the CLI keeps torch (preflight) to its end
        import torch

    return "full" if torch.cuda.is_available() else "quick"
