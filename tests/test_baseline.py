"""Baselines: the leave-one-out self-check, atomic writes, selection, bad input, the shipped one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from helpers import view
from repro.baseline import (
    BandRejected,
    assemble_baseline,
    load_baseline,
    record_command,
    search_dirs,
    select_baseline,
    shipped_dir,
)
from repro.cli import main
from repro.errors import UserError
from repro.profile import load_profile
from repro.workload import workload_hash


def _members(smoke_session, broken: list[str]):
    runs = smoke_session.baseline_runs
    good = [view(p) for p in runs[1:9]]
    return (
        [view(runs[0])] + good[: 8 - len(broken)] + [view(smoke_session.runs[n][0]) for n in broken]
    )


def test_a_band_with_two_broken_members_is_refused(smoke_session, tmp_path):
    views = _members(smoke_session, ["lr", "sampler"]) + [
        view(p) for p in smoke_session.baseline_runs[9:]
    ]
    with pytest.raises(
        BandRejected, match=r"2 of 8 members fail the leave-one-out check but at most 1"
    ):
        assemble_baseline(
            views, numerics=8, seed_list=list(range(8)), root=tmp_path, name="broken", force=False
        )
    assert list(tmp_path.iterdir()) == []


def test_one_outlier_is_what_alpha_explains(smoke_session, tmp_path):
    views = _members(smoke_session, ["lr"]) + [view(p) for p in smoke_session.baseline_runs[9:]]
    path, summary = assemble_baseline(
        views, numerics=8, seed_list=list(range(8)), root=tmp_path, name="ok", force=False
    )
    assert summary["leave_one_out_failures"] <= summary["allowed"] == 1
    assert load_baseline(path).meta["profile"] == "smoke"


def test_never_overwrites_without_force(smoke_baseline, tmp_path):
    copy = tmp_path / "smoke-test"
    shutil.copytree(smoke_baseline, copy)
    meta = (copy / "baseline.yaml").read_bytes()
    with pytest.raises(UserError, match="already exists; pass --force"):
        from repro.baseline import write_baseline

        write_baseline(
            tmp_path,
            "smoke-test",
            load_baseline(copy).primary(),
            {},
            numerics=8,
            seeds=[0],
            force=False,
        )
    assert (copy / "baseline.yaml").read_bytes() == meta


def test_selection_prefers_the_closest_environment(smoke_baseline, smoke_runs):
    manifest = view(smoke_runs["threads"]).manifest
    workload = workload_hash(load_profile("smoke").to_dict())
    chosen = select_baseline("smoke", workload, manifest, [smoke_baseline.parent])
    assert chosen.baseline is not None and chosen.baseline.path == smoke_baseline
    assert any("threads" in key for key in chosen.differing_keys)


def _stale_copy(smoke_baseline: Path, tmp_path: Path) -> Path:
    copy = tmp_path / smoke_baseline.name
    shutil.copytree(smoke_baseline, copy)
    meta = yaml.safe_load((copy / "baseline.yaml").read_text())
    meta["workload_hash"] = "0000000000000000"
    (copy / "baseline.yaml").write_text(yaml.safe_dump(meta))
    return copy


def test_a_changed_workload_invalidates_old_baselines(smoke_baseline, smoke_runs, tmp_path):
    _stale_copy(smoke_baseline, tmp_path)
    manifest = view(smoke_runs["primary"]).manifest
    workload = workload_hash(load_profile("smoke").to_dict())
    selection = select_baseline("smoke", workload, manifest, [tmp_path])
    assert selection.baseline is None
    assert (
        "no longer apply" in selection.message
        and record_command("smoke", smoke_baseline.name, force=True) in selection.message
    )
    with pytest.raises(UserError, match="re-record it with"):
        select_baseline("smoke", workload, manifest, [tmp_path], name=smoke_baseline.name)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda d: (d / "record.json").write_text((d / "record.json").read_text()[:100]),
            "record.json is malformed or truncated",
        ),
        (
            lambda d: (d / "baseline.yaml").write_text("schema_version: 99\n"),
            "newer than this repro understands",
        ),
        (lambda d: (d / "band.json").unlink(), "band.json does not exist"),
    ],
)
def test_damaged_baselines_are_bad_input(
    smoke_baseline, smoke_runs, tmp_path, capsys, damage, message
):
    copy = tmp_path / "smoke-test"
    shutil.copytree(smoke_baseline, copy)
    damage(copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    # The damaged baseline is both the reference (its record) and the bands.
    code = main(
        ["compare", "smoke-test", str(smoke_runs["threads"]), "--baseline-dir", str(tmp_path)]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1  # one sentence, no traceback
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_missing_baseline_folder_and_unknown_name(tmp_path, capsys):
    with pytest.raises(UserError, match="does not exist"):
        search_dirs(str(tmp_path / "nowhere"))
    assert (
        main(
            [
                "verify",
                "--profile",
                "smoke",
                "--baseline",
                "nope",
                "--baseline-dir",
                str(tmp_path),
                "--runs-dir",
                str(tmp_path / "runs"),
            ]
        )
        == 2
    )
    assert "no baseline named 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before any training


def test_shipped_baselines_match_the_current_workload():
    """Launches nothing: a changed reference workload must come with re-recorded baselines."""
    shipped = [p for p in shipped_dir().iterdir() if (p / "baseline.yaml").is_file()]
    assert any(load_baseline(p).meta["profile"] == "quick" for p in shipped), (
        "no quick baseline is shipped"
    )
    for path in shipped:
        meta = load_baseline(path).meta
        current = workload_hash(load_profile(meta["profile"]).to_dict())
        assert meta["workload_hash"] == current, (
            f"baseline {meta['name']} was recorded for workload {meta['workload_hash']}, the code is now "
            f"{current}; re-record it: {record_command(meta['profile'], meta['name'], force=True)}"
        )
