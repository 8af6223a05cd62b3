"""Baselines: the leave-one-out self-check, atomic writes, selection, bad input, the shipped one."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import view
from repro.baselines.band_build import BandRejected
from repro.baselines.baseline import (
    load_baseline,
    record_command,
    search_dirs,
    select_baseline,
    shipped_dir,
)
from repro.baselines.integrity import file_digests
from repro.baselines.recording import assemble_baseline, baseline_plan, seal_baseline
from repro.cli import main
from repro.errors import UserError
from repro.profile import load_profile, parse_overrides
from repro.runs.workload import workload_hash


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


def test_a_flagged_member_is_left_out_and_replaced(smoke_session, tmp_path):
    """One lr x 1.5 member would widen the loss and gradient-norm bounds by orders of magnitude."""
    views = _members(smoke_session, ["lr"]) + [view(p) for p in smoke_session.baseline_runs[9:]]
    broken = views[8].name
    spare = view(smoke_session.runs["ulp"][0])  # a genuine band member (band_member=99)
    asked: list[list[int]] = []
    # Members the tail rule may add (an 8-member smoke band sits near its first look's limit).
    unused = [view(p) for p in smoke_session.baseline_runs[9:25]]

    def replace(indices: list[int]) -> list:
        asked.append(indices)
        return [spare] if len(asked) == 1 else unused[: len(indices)]

    path, summary = assemble_baseline(
        views,
        numerics=8,
        seed_list=list(range(8)),
        root=tmp_path,
        name="ok",
        force=False,
        replace=replace,
    )
    assert asked[0] == [8] and summary["replaced"] == [broken]
    members = [m["run"] for m in json.loads((path / "band.json").read_text())["members"]]
    assert broken not in members and spare.name in members
    assert len(members) == 8 + summary["added_for_tails"]


def test_a_flagged_member_without_a_replacement_refuses_the_band(smoke_session, tmp_path):
    views = _members(smoke_session, ["lr"]) + [view(p) for p in smoke_session.baseline_runs[9:]]
    with pytest.raises(BandRejected, match="none can be replaced"):
        assemble_baseline(
            views, numerics=8, seed_list=list(range(8)), root=tmp_path, name="no", force=False
        )
    assert list(tmp_path.iterdir()) == []


def _edit(path: Path, edit) -> None:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    else:
        data = yaml.safe_load(path.read_text())
        edit(data)
        path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        ("band.json", lambda d: d.update(members=[]), "holds 0 numerics members, fewer than the 8"),
        ("band.json", lambda d: d.update(seeds=d["seeds"][:3]), "holds 3 seeds, fewer than the 8"),
        ("baseline.yaml", lambda d: d.update(alpha=0.9), "alpha 0.9 is outside the sane range"),
        ("baseline.yaml", lambda d: d.update(windows=0), "windows 0 is outside the sane range"),
        (
            "record.json",
            lambda d: d.update(steps=d["steps"][:-3]),
            "holds 37 steps but its config asks for 40",
        ),
        ("baseline.yaml", lambda d: d.update(schema_version=1), "recorded under older rules"),
    ],
)
def test_an_absurd_baseline_never_passes(
    smoke_baseline, smoke_runs, tmp_path, capsys, file, edit, message
):
    copy = tmp_path / "smoke-test"
    shutil.copytree(smoke_baseline, copy)
    _edit(copy / file, edit)
    code = main(
        ["compare", "smoke-test", str(smoke_runs["threads"]), "--baseline-dir", str(tmp_path)]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1, err
    if "older rules" in message:
        assert "repro baseline record --profile smoke --name" in err


def test_a_truncated_candidate_is_bad_input(smoke_runs, tmp_path, capsys):
    run = tmp_path / "short"
    shutil.copytree(smoke_runs["threads"], run)
    _edit(run / "record.json", lambda d: d.update(steps=d["steps"][:10]))
    assert main(["compare", str(smoke_runs["primary"]), str(run)]) == 2
    assert "holds 10 steps but its config asks for 40" in capsys.readouterr().err


def test_a_baseline_holds_at_least_eight_members(tmp_path):
    with pytest.raises(UserError, match="must both be at least 8"):
        baseline_plan("smoke", 3, 8)
    with pytest.raises(UserError, match="harness setting"):
        baseline_plan("smoke", 8, 8, ["fault.lr_factor=1.3"])


def test_never_overwrites_without_force(smoke_baseline, tmp_path):
    copy = tmp_path / "smoke-test"
    shutil.copytree(smoke_baseline, copy)
    meta = (copy / "baseline.yaml").read_bytes()
    with pytest.raises(UserError, match="already exists; pass --force"):
        from repro.baselines.recording import write_baseline

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
        settings = load_profile(meta["profile"], parse_overrides(meta.get("sets"))).to_dict()
        current = workload_hash(settings)
        assert meta["workload_hash"] == current, (
            f"baseline {meta['name']} was recorded for workload {meta['workload_hash']}, the code is now "
            f"{current}; re-record it: {record_command(meta['profile'], meta['name'], force=True)}"
        )


@pytest.mark.parametrize(
    "sets", [["weight_decay=0.02"], ["seed=3", "lr=0.0036"], ["amp_dtype=float32"]]
)
def test_another_training_or_precision_selects_no_baseline(smoke_baseline, smoke_runs, sets):
    """The run's own hash (after overrides) decides: the profile's baseline never judges it."""
    manifest = view(smoke_runs["primary"]).manifest
    workload = workload_hash(load_profile("smoke", parse_overrides(sets)).to_dict())
    selection = select_baseline("smoke", workload, manifest, [smoke_baseline.parent], sets=sets)
    assert selection.baseline is None
    assert record_command("smoke", sets=sets) in selection.message
    assert "no longer apply" not in selection.message  # the baseline is not stale


@pytest.mark.parametrize("sets", [["seed=3"], ["threads_per_rank=2"], ["trace_steps=3"]])
def test_seed_execution_and_harness_overrides_keep_the_baseline(smoke_baseline, smoke_runs, sets):
    manifest = view(smoke_runs["primary"]).manifest
    workload = workload_hash(load_profile("smoke", parse_overrides(sets)).to_dict())
    selection = select_baseline("smoke", workload, manifest, [smoke_baseline.parent], sets=sets)
    assert selection.baseline is not None and selection.baseline.path == smoke_baseline


# -- a tampered or corrupt baseline is refused, never judged ---------------------------------

SHIPPED = "quick-cpu-x86_64-avx2"


def _shipped_copy(tmp_path: Path) -> Path:
    """A copy of the shipped quick baseline: real files, and no training needed to judge."""
    copy = tmp_path / "baselines" / SHIPPED
    shutil.copytree(shipped_dir() / SHIPPED, copy)
    return copy


def _band(edit):
    def damage(folder: Path) -> None:
        # json writes NaN and Infinity as bare literals, the way a hand edit or a careless
        # script would leave them.
        path = folder / "band.json"
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data, indent=1))

    return damage


def _set_member(i: int, **values):
    def edit(data) -> None:
        member = data["members"][i]
        for key, value in values.items():
            scalar, step = key.rsplit("_at_", 1)
            member["series"][scalar][int(step)] = value

    return edit


def _same_window(data) -> None:
    first = data["members"][0]["series"]["loss"]
    for member in data["members"][1:]:
        member["series"]["loss"][40:80] = first[40:80]


def _nudge_one_value(folder: Path) -> None:
    """One digit of one member's gradient norm changed: still a plausible band."""
    path = folder / "band.json"
    text = path.read_text()
    i = text.index('"grad_norm": [') + len('"grad_norm": [')
    j = text.index(",", i)
    path.write_text(text[:i] + repr(float(text[i:j]) * 1.0001) + text[j:])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        pytest.param(
            _band(lambda d: d["members"].pop(7)),
            "band.json holds 23 numerics members but baseline.yaml records 24: a member was deleted",
            id="member-deleted",
        ),
        pytest.param(
            _band(lambda d: d["members"].append(d["members"][3])),
            "band.json holds 25 numerics members but baseline.yaml records 24",
            id="member-duplicated",
        ),
        pytest.param(
            _band(lambda d: d["members"].__setitem__(9, d["members"][4])),
            "numerics members 4 and 9 are the same run",
            id="member-copied-over-another",
        ),
        pytest.param(
            _band(lambda d: d["seeds"].append(d["seeds"][0])),
            "but baseline.yaml records [0, 1, 2, 3, 4, 5, 6, 7]: a seed was deleted or duplicated",
            id="seed-duplicated",
        ),
        pytest.param(
            _band(_set_member(5, loss_at_12=math.nan)),
            "numerics member 5's loss is nan at step 12, not a finite number",
            id="nan-in-a-series",
        ),
        pytest.param(
            _band(lambda d: d["members"][2]["final"].update(eval_loss=math.inf)),
            "numerics member 2's final eval_loss is inf, not a finite number",
            id="inf-final-metric",
        ),
        pytest.param(
            _band(lambda d: d["seeds"][3].update(eval_accuracy=-math.inf)),
            "the seed 3 run's final eval_accuracy is -inf",
            id="inf-seed-metric",
        ),
        pytest.param(
            _band(_same_window),
            "every numerics member holds the same loss series in steps 40-79",
            id="identical-window-series",
        ),
        pytest.param(
            _nudge_one_value,
            "band.json does not match the sha256 that baseline.yaml records for it",
            id="one-value-edited",
        ),
        pytest.param(
            lambda d: (d / "band.json").write_text((d / "band.json").read_text()[:200_000]),
            "band.json is malformed or truncated",
            id="truncated",
        ),
        pytest.param(
            lambda d: (d / "baseline.yaml").write_text((d / "baseline.yaml").read_text()[:900]),
            "baseline.yaml is malformed or truncated",
            id="truncated-baseline-yaml",
        ),
        pytest.param(
            lambda d: (d / "record.json").write_text(
                (d / "record.json").read_text().replace('"loss": 2.', '"loss": NaN, "x": 2.', 1)
            ),
            "the primary run's loss is nan at step 0",
            id="nan-in-the-primary-record",
        ),
    ],
)
def test_a_tampered_baseline_is_refused_and_listed_as_damaged(tmp_path, capsys, damage, message):
    """Each edit that once got a verdict (EQUIVALENT, or a DRIFT blaming the machine)."""
    copy = _shipped_copy(tmp_path)
    damage(copy)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    runs = tmp_path / "runs"
    baselines = str(copy.parent)
    # verify refuses before anything trains (the issue's own command) ...
    verify = ["verify", "--profile", "quick", "--set", "threads_per_rank=2"]
    code = main([*verify, "--baseline-dir", baselines, "--runs-dir", str(runs), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1, err  # one sentence, no traceback
    if "truncated" not in message:
        assert f"repro baseline record --profile quick --name {SHIPPED} --force" in err
    assert not runs.exists()
    # ... compare refuses to judge with it ...
    assert main(["compare", str(copy), str(copy)]) == 2
    assert message in capsys.readouterr().err
    # ... and the list says which baseline is damaged, and why.
    assert main(["baseline", "list", "--baseline-dir", baselines]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.startswith(SHIPPED) and " damaged " in line and message in line, line
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before


def test_an_intact_baseline_is_listed_current(tmp_path, capsys):
    """Members share one final accuracy on the shipped baseline: that alone is no damage."""
    copy = _shipped_copy(tmp_path)
    band = json.loads((copy / "band.json").read_text())
    assert len({m["final"]["eval_accuracy"] for m in band["members"]}) == 1
    assert main(["baseline", "list", "--baseline-dir", str(copy.parent)]) == 0
    line, tails = capsys.readouterr().out.splitlines()
    assert line.startswith(SHIPPED) and "  current  " in line, line
    assert tails.strip().startswith("tails: normal or lighter"), tails  # its recorded diagnostics


def test_the_shipped_baseline_carries_what_it_was_recorded_with(tmp_path):
    """Counts and digests, computed from its stored files; sealing an intact copy changes
    nothing, so whoever rewrites one of its files sees here how to seal it again."""
    meta = load_baseline(shipped_dir() / SHIPPED).meta
    band = json.loads((shipped_dir() / SHIPPED / "band.json").read_text())
    assert meta["numerics_members"] == len(band["members"]) == 24
    assert meta["seeds"] == [s["seed"] for s in band["seeds"]] == list(range(8))
    copy = _shipped_copy(tmp_path)
    assert seal_baseline(copy) == meta, (
        f"the files of the shipped baseline {SHIPPED} changed: if that was meant, seal it again with "
        f"`python -c 'from repro.baselines.recording import seal_baseline; from repro.baselines.baseline import "
        f'shipped_dir; seal_baseline(shipped_dir() / "{SHIPPED}")\'`'
    )


def test_sealing_never_blesses_a_damaged_baseline(tmp_path):
    copy = _shipped_copy(tmp_path)
    meta = yaml.safe_load((copy / "baseline.yaml").read_text())
    del meta["sha256"]
    (copy / "baseline.yaml").write_text(yaml.safe_dump(meta))
    _band(lambda d: d["members"].pop())(copy)
    with pytest.raises(UserError, match=r"holds 23 numerics members but baseline\.yaml records 24"):
        seal_baseline(copy)
    assert "sha256" not in yaml.safe_load((copy / "baseline.yaml").read_text())


def test_a_recorded_baseline_carries_its_digests(smoke_baseline):
    meta = load_baseline(smoke_baseline).meta
    assert meta["sha256"] == file_digests(smoke_baseline)
    assert meta["numerics_members"] == len(load_baseline(smoke_baseline).bands().members)


# -- baseline record checks every input before the first training ----------------------------


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--name", "../x", "baseline name '../x' is not valid"),
        ("--name", "a/b", "baseline name 'a/b' is not valid"),
        ("--baseline-dir", "a-file/baselines", "is a file, not a folder"),
        ("--runs-dir", "a-file", "is a file, not a folder"),
    ],
)
def test_baseline_record_refuses_bad_input_before_training(
    tmp_path, capsys, option, value, message
):
    (tmp_path / "a-file").write_text("")
    paths = {"--baseline-dir": str(tmp_path / "baselines"), "--runs-dir": str(tmp_path / "runs")}
    paths[option] = str(tmp_path / value) if option != "--name" else value
    code = main(
        ["baseline", "record", "--profile", "smoke", "--quiet"]
        + [word for pair in paths.items() for word in pair]
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]  # nothing trained or written
