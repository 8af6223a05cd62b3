"""`repro verify` end to end: one real launch per case, judged against the session's baseline."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest
import yaml

from repro.cli import main


@pytest.mark.slow
def test_verify_identical_on_the_recording_machine(smoke_baseline, tmp_path, capsys):
    junit = tmp_path / "verify.xml"
    code = main(
        [
            "verify",
            "--profile",
            "smoke",
            "--baseline-dir",
            str(smoke_baseline.parent),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--junit",
            str(junit),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "IDENTICAL" in out and smoke_baseline.name in out
    suite = ET.parse(junit).getroot()
    assert [c.get("name") for c in suite.iter("testcase")] == [
        "bitwise",
        "exact sequences",
        "numerics band",
        "seed interval",
        "consistency",
        "verdict",
    ]
    assert suite.get("failures") == "0"
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "verdict.json").read_text())["verdict"] == "IDENTICAL"
    # The preflight went into the run's manifest, and being a reading of the moment it is
    # never compared: the verdict above is IDENTICAL with the baseline that has none.
    checks = yaml.safe_load((run_dir / "manifest.yaml").read_text())["preflight"]["checks"]
    assert {"host.cpus", "collective.allreduce.bytes"} <= {c["name"] for c in checks}


@pytest.mark.slow
def test_verify_repeat_finds_nondeterminism(smoke_baseline, tmp_path, capsys):
    code = main(
        [
            "verify",
            "--profile",
            "smoke",
            "--baseline-dir",
            str(smoke_baseline.parent),
            "--repeat",
            "2",
            "--set",
            "fault.nondeterministic=true",
            "--runs-dir",
            str(tmp_path),
            "--json",
            "--quiet",
        ]
    )
    assert code == 4
    data = json.loads(capsys.readouterr().out)
    # One shape for one comparison or many: the headline, its exit code, the comparisons.
    assert (data["verdict"], data["exit_code"]) == ("NONDETERMINISTIC", code)
    assert [c["verdict"] for c in data["comparisons"]] == ["NONDETERMINISTIC"]


@pytest.mark.slow
def test_verify_without_a_baseline_says_how_to_record_one(tmp_path, capsys):
    empty = tmp_path / "baselines"
    empty.mkdir()
    code = main(
        [
            "verify",
            "--profile",
            "smoke",
            "--baseline-dir",
            str(empty),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 3
    # The command records where this verify looks: the --baseline-dir the user gave.
    command = re.sub(r" \\\n\s*", " ", out)  # joined at the report's line continuations
    assert "NO_BASELINE" in out
    assert f"repro baseline record --profile smoke --baseline-dir {empty}\n" in command
    assert list(empty.iterdir()) == []


def test_verify_with_a_semantic_override_finds_no_baseline(smoke_baseline, tmp_path, capsys):
    """Double weight decay is another training: no baseline of the profile may judge it."""
    code = main(
        [
            "verify",
            "--profile",
            "smoke",
            "--set",
            "weight_decay=0.02",
            "--baseline-dir",
            str(smoke_baseline.parent),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 3, out
    assert "NO_BASELINE" in out
    assert "repro baseline record --profile smoke --set weight_decay=0.02" in out.replace(
        "\\\n", ""
    )


def test_repeat_must_be_positive(tmp_path, capsys):
    assert main(["verify", "--profile", "smoke", "--repeat", "0", "--runs-dir", str(tmp_path)]) == 2
    assert "--repeat 0" in capsys.readouterr().err


def test_record_missing_refuses_a_harness_setting_before_anything_trains(tmp_path, capsys):
    """--record-missing would record a baseline after the verdict: a --set no baseline may
    hold is bad input at the start, not after the training."""
    runs = tmp_path / "runs"
    argv = ["verify", "--profile", "smoke", "--record-missing", "--set", "fault.lr_factor=1.3"]
    code = main([*argv, "--no-preflight", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--set fault.lr_factor is a harness setting" in err
    assert not runs.exists()


@pytest.mark.parametrize("command", ["verify", "preflight"])
def test_a_negative_gpu_count_is_bad_input(tmp_path, capsys, command):
    """No machine has -1 GPUs: the value is wrong, not the machine (UNFIT would blame it)."""
    runs = tmp_path / "runs"
    argv = [command, "--expect-gpus", "-1"]
    code = main(
        argv + (["--profile", "smoke", "--runs-dir", str(runs)] if command == "verify" else [])
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert "--expect-gpus -1 is negative" in err and err.count("\n") == 1, err
    assert not runs.exists()


def test_per_device_needs_gpus(tmp_path, capsys):
    from repro.commands.verify import gpu_count

    if gpu_count() > 0:
        pytest.skip("this machine has GPUs")
    assert main(["verify", "--per-device", "--runs-dir", str(tmp_path)]) == 2
    assert "--per-device needs NVIDIA GPUs" in capsys.readouterr().err
