"""Manifest files: write atomically, read back, and refuse bad ones with one sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from repro.errors import UserError
from repro.manifest.schema import (
    MANIFEST_SCHEMA_VERSION,
    SECTIONS,
    load_manifest,
    write_manifest,
)


def minimal_manifest(**changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {"schema_version": MANIFEST_SCHEMA_VERSION}
    manifest.update({section: {} for section in SECTIONS})
    manifest["hardware"] = {"cpu": {"torch_capability": "AVX512"}}
    manifest.update(changes)
    return manifest


@pytest.mark.parametrize("name", ["manifest.yaml", "manifest.json", "m.yml"])
def test_round_trip(tmp_path: Path, name: str) -> None:
    manifest = minimal_manifest()

    path = write_manifest(tmp_path / name, manifest)

    assert load_manifest(path) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary files left


def test_json_by_suffix(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.json", minimal_manifest())

    assert json.loads((tmp_path / "m.json").read_text())["schema_version"] == 1


def test_run_directory_means_its_manifest_yaml(tmp_path: Path) -> None:
    write_manifest(tmp_path, minimal_manifest())

    assert (tmp_path / "manifest.yaml").is_file()
    assert load_manifest(tmp_path)["hardware"]["cpu"]["torch_capability"] == "AVX512"


def _write(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_newer_schema_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "new.yaml", minimal_manifest(schema_version=99))

    with pytest.raises(UserError, match=r"new\.yaml has schema_version 99, newer"):
        load_manifest(path)


def test_unknown_older_schema_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "old.yaml", minimal_manifest(schema_version=0))

    with pytest.raises(UserError, match=r"old\.yaml .*cannot migrate"):
        load_manifest(path)


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("hardware: [unclosed\n")

    with pytest.raises(UserError, match=r"bad\.yaml is malformed"):
        load_manifest(path)


def test_missing_section(tmp_path: Path) -> None:
    manifest = minimal_manifest()
    del manifest["env"]
    path = _write(tmp_path / "partial.yaml", manifest)

    with pytest.raises(UserError, match=r"partial\.yaml is missing required key\(s\) env"):
        load_manifest(path)


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path / "odd.yaml", minimal_manifest(numerics=[1, 2]))

    with pytest.raises(UserError, match=r"odd\.yaml has section\(s\) numerics"):
        load_manifest(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        load_manifest(tmp_path / "nowhere.yaml")
