"""Where a command writes: checked before anything trains, and never a traceback or exit 1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from repro.cli import main


def _repro(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "repro", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _one_sentence(done: subprocess.CompletedProcess[str], code: int) -> str:
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("repro:")]
    return line


def test_repro_home_naming_a_file_is_bad_input_before_anything_runs(tmp_path: Path):
    home = tmp_path / "home"
    home.write_text("not a folder")
    done = _repro("run", "--profile", "smoke", "--quiet", env={"REPRO_HOME": str(home)})
    line = _one_sentence(done, 2)
    assert f"the runs folder {home / 'runs'}: {home} is a file, not a folder" in line


@pytest.mark.parametrize("option", ["--junit", "--md", "--html"])
def test_a_report_file_in_a_missing_folder_is_refused_before_training(tmp_path: Path, option: str):
    target = tmp_path / "missing" / "report"
    runs = tmp_path / "runs"
    done = _repro("verify", "--profile", "smoke", "--runs-dir", str(runs), option, str(target))
    line = _one_sentence(done, 2)
    assert f"{option} {target}: its folder {target.parent} does not exist" in line
    assert not runs.exists() or not any(runs.iterdir())  # nothing trained


def test_a_report_path_that_is_a_folder_is_refused(tmp_path: Path, capsys):
    code = main(["verify", "--profile", "smoke", "--junit", str(tmp_path)])
    assert code == 2
    assert f"--junit {tmp_path} is a folder" in capsys.readouterr().err


@pytest.fixture
def read_only_folder(tmpfs) -> Path:
    """What an unwritable folder is even to root."""
    return tmpfs("ro,size=64k")


def test_a_read_only_runs_folder_and_report_folder_are_named_with_their_error(
    read_only_folder: Path, tmp_path: Path
):
    done = _repro("run", "--profile", "smoke", "--runs-dir", str(read_only_folder / "runs"))
    assert "EROFS" in _one_sentence(done, 2)
    junit = read_only_folder / "verify.xml"
    done = _repro(
        "verify", "--profile", "smoke", "--runs-dir", str(tmp_path), "--junit", str(junit)
    )
    line = _one_sentence(done, 2)
    assert f"--junit's folder {read_only_folder} cannot be written" in line and "EROFS" in line


@pytest.mark.slow
def test_a_report_file_that_fails_after_the_verdict_keeps_the_verdict_and_exits_4(
    smoke_runs, tmp_path: Path, capsys, monkeypatch
):
    # A write that fails past the up-front check (a disk that filled, a folder removed
    # meanwhile): the verdict is still printed, and the exit code is FAILED's, never DRIFT's.
    import repro.cli

    monkeypatch.setattr(repro.cli, "check_outputs", lambda args, runs_dir: None)
    md = tmp_path / "gone" / "report.md"
    code = main(
        ["compare", str(smoke_runs["primary"]), str(smoke_runs["primary"]), "--md", str(md)]
    )
    out, err = capsys.readouterr()
    assert code == 4
    assert "IDENTICAL" in out
    assert f"repro: FAILED: no such file or directory writing {md}" in err
    assert "the verdict above stands" in err
