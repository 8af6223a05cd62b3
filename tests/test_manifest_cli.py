"""``repro manifest``: stdout, --out, --json and --diff through ``repro.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.cli import main
from repro.manifest import capture_manifest
from repro.manifest.schema import load_manifest, write_manifest


def test_stdout_yaml_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest"]) == 0
    as_yaml = yaml.safe_load(capsys.readouterr().out)
    assert main(["manifest", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)

    assert as_yaml["schema_version"] == as_json["schema_version"] == 1
    assert as_yaml["libraries"] == as_json["libraries"]


@pytest.mark.parametrize("name", ["manifest.yaml", "manifest.json"])
def test_out_replaces_the_file_atomically(
    tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / name
    out.write_text("old contents\n")

    assert main(["manifest", "--out", str(out), "--repo", str(tmp_path)]) == 0

    manifest = load_manifest(out)
    assert manifest["code"]["git"] == {"unavailable": "not a git repository"}
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind
    assert capsys.readouterr().out == f"wrote {out}\n"


def test_out_in_a_missing_folder_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["manifest", "--out", str(tmp_path / "no/such/m.yaml")]) == 2
    error = capsys.readouterr().err

    assert error.count("\n") == 1 and "does not exist" in error
    assert not (tmp_path / "no").exists()


def test_json_flag_with_a_yaml_name_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--json", "--out", "m.yaml"]) == 2
    assert "--json" in capsys.readouterr().err


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """Run directories whose manifests differ in the CPU kernel level, as avx2 vs avx512."""
    a = capture_manifest(argv=["repro", "run"])
    b = capture_manifest(argv=["repro", "run", "--set", "seed=1"])
    a["hardware"]["cpu"]["torch_capability"] = "AVX512"
    a["env"].pop("ATEN_CPU_CAPABILITY", None)
    b["hardware"]["cpu"]["torch_capability"] = "AVX2"
    b["env"]["ATEN_CPU_CAPABILITY"] = "avx2"
    (tmp_path / "run-a").mkdir()
    (tmp_path / "run-b").mkdir()
    write_manifest(tmp_path / "run-a", a)
    write_manifest(tmp_path / "run-b/manifest.json", b)
    return tmp_path / "run-a", tmp_path / "run-b/manifest.json"


def test_diff_shows_the_change_tagged_high_and_hides_unchanged_keys(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["manifest", "--diff", *map(str, two_runs)]) == 0
    out = capsys.readouterr().out

    assert "[high] hardware.cpu.torch_capability: AVX512 -> AVX2" in out
    assert "[high] env.ATEN_CPU_CAPABILITY: <absent> -> avx2" in out
    assert "try: set ATEN_CPU_CAPABILITY" in out
    assert "libraries.torch.version" not in out
    assert "invocation.argv" in out  # low impact, folded


def test_diff_as_json(two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["manifest", "--diff", *map(str, two_runs), "--json"]) == 0
    differences = json.loads(capsys.readouterr().out)

    assert {"key": "hardware.cpu.torch_capability", "a": "AVX512", "b": "AVX2"}.items() <= (
        differences[0].items()
    )


def test_diff_of_a_manifest_with_itself(
    two_runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["manifest", "--diff", str(two_runs[0]), str(two_runs[0])]) == 0
    assert capsys.readouterr().out.endswith("no differences\n")


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (None, "does not exist"),
        ("hardware: [unclosed\n", "is malformed"),
        ("schema_version: 7\n", "newer than this repro understands"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(
    two_runs: tuple[Path, Path],
    tmp_path: Path,
    contents: str | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bad = tmp_path / "bad.yaml"
    if contents is not None:
        bad.write_text(contents)

    assert main(["manifest", "--diff", str(two_runs[0]), str(bad)]) == 2
    error = capsys.readouterr().err

    assert error.startswith("repro: error: ") and error.count("\n") == 1
    assert str(bad) in error and message in error


def test_diff_runs_without_torch(two_runs: tuple[Path, Path]) -> None:
    code = (
        "import sys; from repro.cli import main;"
        f"assert main(['manifest', '--diff', {str(two_runs[0])!r}, {str(two_runs[1])!r}]) == 0;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    )

    assert "hardware.cpu.torch_capability" in result.stdout
