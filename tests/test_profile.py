"""Profiles are validated data; --set overrides any field with a clear error when wrong."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from repro.cli import main
from repro.errors import UserError
from repro.profile import (
    FIELD_CLASSES,
    PROFILE_NAMES,
    Profile,
    build_profile,
    differing_fields,
    field_classes,
    flatten_settings,
    load_profile,
    parse_overrides,
)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_a_profile_survives_its_round_trip_through_a_plan(name):
    # The ranks rebuild the profile from the plan's resolved settings: nothing may be lost.
    profile = load_profile(name)
    assert profile.name == name
    assert build_profile(profile.to_dict(), "plan entry") == profile


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_profiles_fix_the_numerics_not_the_machine(name, monkeypatch):
    here = load_profile(name).to_dict()
    # Another machine: more cores, other thread and device settings in the environment.
    monkeypatch.setattr("os.cpu_count", lambda: 96)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(96)), raising=False)
    for key, value in {
        "OMP_NUM_THREADS": "48",
        "MKL_NUM_THREADS": "48",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",
        "ATEN_CPU_CAPABILITY": "default",
        "WORLD_SIZE": "8",
    }.items():
        monkeypatch.setenv(key, value)
    assert load_profile(name).to_dict() == here


def test_overrides_reach_nested_fields():
    profile = load_profile(
        "smoke", parse_overrides(["model.d_model=64", "fault.nan_step=3", "lr=1e-3"])
    )
    assert profile.model.d_model == 64 and profile.fault.nan_step == 3 and profile.lr == 1e-3
    assert profile.fault.active() == {"nan_step": 3}


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("model.d_model=31", "not divisible by model.n_heads"),
        ("colour=blue", "unknown field 'colour'"),
        ("model.width=3", "unknown field model.'width'"),
        ("amp_dtype=int8", "amp_dtype='int8' must be one of"),
        ("steps=-1", "steps=-1 must be a positive number"),
        ("world_size=3", "global_batch=16 is not divisible by world_size=3"),
        ("fault.skip_set_epoch=maybe", "must be true or false"),
    ],
)
def test_bad_overrides_name_the_value(pair, message):
    with pytest.raises(UserError, match="profile 'smoke'") as info:
        load_profile("smoke", parse_overrides([pair]))
    assert message in str(info.value)


def test_set_without_equals_is_a_usage_error():
    with pytest.raises(UserError, match="is not key=value"):
        parse_overrides(["lr"])


def test_unknown_profile_exits_2(tmp_path, capsys):
    assert main(["run", "--profile", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "neither a known profile" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_profile_file(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nsteps: 10\nwarmup_steps: 2\n")
    assert load_profile(str(path)).steps == 10
    path.write_text("name: [unclosed\n")
    with pytest.raises(UserError, match="malformed"):
        load_profile(str(path))


# -- field classes --------------------------------------------------------------------------------


def _leaf_fields(cls: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf field below ``cls``, found by walking the dataclasses themselves."""
    hints = typing.get_type_hints(cls)
    leaves: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            leaves.update(_leaf_fields(hints[f.name], f"{prefix}{f.name}."))
        else:
            leaves[f"{prefix}{f.name}"] = f
    return leaves


def test_every_field_has_a_class():
    leaves = _leaf_fields(Profile)
    unclassed = [name for name, f in leaves.items() if f.metadata.get("class") not in FIELD_CLASSES]
    assert unclassed == [], f"give these fields a class ({', '.join(FIELD_CLASSES)}): {unclassed}"
    # The walk reached every nested group, and field_classes() agrees with it.
    assert {name.split(".")[0] for name in leaves if "." in name} == {"model", "data", "fault"}
    assert field_classes() == {name: f.metadata["class"] for name, f in leaves.items()}
    assert set(field_classes()) == set(flatten_settings(Profile().to_dict()))


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("lr", "semantic"),
        ("betas", "semantic"),
        ("global_batch", "semantic"),
        ("model.dropout", "semantic"),
        ("data.label_noise", "semantic"),
        ("seed", "seed"),
        ("amp_dtype", "precision"),
        ("tf32", "precision"),
        ("threads_per_rank", "execution"),
        ("world_size", "execution"),
        ("eval_batch", "execution"),
        ("trace_steps", "harness"),
        ("band_scale", "harness"),
        ("fault.lr_factor", "harness"),
    ],
)
def test_field_classes_follow_the_design(name, kind):
    assert field_classes()[name] == kind


def test_differing_fields_groups_differences_by_class():
    base = load_profile("smoke").to_dict()
    other = load_profile(
        "smoke",
        parse_overrides(
            [
                "lr=0.004",
                "model.d_model=64",
                "seed=3",
                "tf32=true",
                "world_size=1",
                "fault.nan_step=2",
            ]
        ),
    ).to_dict()
    assert differing_fields(base, other) == {
        "semantic": ["lr", "model.d_model"],
        "seed": ["seed"],
        "precision": ["tf32"],
        "execution": ["world_size"],
        "harness": ["fault.nan_step"],
    }
    assert differing_fields(base, base) == {}


def test_differing_fields_is_conservative_about_unknown_and_missing_names():
    base = load_profile("smoke").to_dict()
    assert differing_fields(base, {**base, "colour": "blue"}) == {"semantic": ["colour"]}
    without_seed = {k: v for k, v in base.items() if k != "seed"}
    assert differing_fields(without_seed, base) == {"seed": ["seed"]}
    # YAML gives lists where the dataclass has tuples: the same value.
    assert differing_fields({**base, "betas": (0.9, 0.98)}, {**base, "betas": [0.9, 0.98]}) == {}


def test_seed_must_fit_a_seed_tuple_word():
    with pytest.raises(UserError, match=r"seed=4294967296 must be in \[0, 2\*\*32\)"):
        load_profile("smoke", parse_overrides(["seed=4294967296"]))


@pytest.mark.parametrize(
    ("profile", "pairs", "message", "remedy"),
    [
        ("smoke", ["sdpa_backend=cudnn"], "sdpa_backend='cudnn' cannot run", "use math or default"),
        ("full", ["sdpa_backend=cudnn"], "deterministic algorithms", "use math or default"),
        (
            "full",
            ["sdpa_backend=flash", "amp_dtype=float32"],
            "needs float16 or bfloat16",
            "set amp_dtype=bfloat16 or sdpa_backend=math",
        ),
    ],
)
def test_attention_backends_that_cannot_run_are_refused(profile, pairs, message, remedy):
    with pytest.raises(UserError, match=f"profile '{profile}'") as info:
        load_profile(profile, parse_overrides(pairs))
    assert message in str(info.value)
    assert remedy in str(info.value)


def test_attention_backend_errors_come_from_validation():
    with pytest.raises(ValueError, match="sdpa_backend='cudnn'"):
        Profile(sdpa_backend="cudnn")
    with pytest.raises(ValueError, match="amp_dtype='float32' cannot run on CUDA"):
        Profile(device="cuda", amp_dtype="float32", sdpa_backend="flash")


@pytest.mark.parametrize(
    ("profile", "pairs"),
    [
        ("full", ["sdpa_backend=flash"]),  # CUDA, float16
        ("full", ["sdpa_backend=flash", "amp_dtype=bfloat16"]),
        ("full", ["sdpa_backend=math", "amp_dtype=float32"]),
        ("full", ["sdpa_backend=efficient", "amp_dtype=float32"]),
        ("smoke", ["sdpa_backend=flash", "amp_dtype=float32"]),  # torch's CPU flash takes fp32
        ("smoke", ["sdpa_backend=default"]),
    ],
)
def test_attention_backends_that_can_run_still_load(profile, pairs):
    loaded = load_profile(profile, parse_overrides(pairs))
    assert loaded.sdpa_backend == parse_overrides(pairs)["sdpa_backend"]


def _default_profile_in(path: Path | None) -> list[str]:
    """``default_profile_name()`` in a fresh interpreter whose ``torch`` is the real one, or
    the fake package at ``path``; then whether it imported torch."""
    code = (
        "import sys; from repro.profile import default_profile_name as d; "
        "print(d(), 'torch' in sys.modules)"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(path or ""), *sys.path) if p),
    }
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_cpu_build_of_torch_picks_quick_without_importing_torch():
    # The verify's preflight imports torch beside the launcher's start; a default profile
    # chosen by importing torch first would put that second and a half back in front.
    assert _default_profile_in(None) == ["quick", "False"]


@pytest.mark.parametrize(
    ("lines", "asked"),
    [
        ("cuda: Optional[str] = '12.8'\nhip: Optional[str] = None", True),
        ("cuda = None\nhip = '6.4'", True),
        ("cuda: Optional[str] = None", True),  # says nothing of ROCm: torch is asked
        ("cuda: Optional[str] = None\nhip: Optional[str] = None", False),
    ],
)
def test_a_gpu_build_of_torch_is_asked_whether_cuda_works(tmp_path, lines, asked):
    # A fake torch package (this machine has no CUDA build): its version.py says what it
    # was built for; a GPU build is imported and asked, and here it answers "no CUDA".
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "version.py").write_text(f"from typing import Optional\n{lines}\n")
    (fake / "__init__.py").write_text(
        "class cuda:\n    @staticmethod\n    def is_available():\n        return False\n"
    )
    assert _default_profile_in(tmp_path) == ["quick", str(asked)]
