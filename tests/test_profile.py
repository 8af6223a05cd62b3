"""Profiles are validated data; --set overrides any field with a clear error when wrong."""

from __future__ import annotations

import pytest

from repro.cli import main
from repro.errors import UserError
from repro.profile import PROFILE_NAMES, load_profile, parse_overrides


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_shipped_profiles_load(name):
    profile = load_profile(name)
    assert profile.name == name
    assert profile.global_batch % profile.world_size == 0


def test_profiles_fix_the_numerics_not_the_machine():
    quick = load_profile("quick")
    assert (quick.world_size, quick.threads_per_rank, quick.amp_dtype) == (2, 1, "bfloat16")
    assert quick.converged_accuracy >= 0.9


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
