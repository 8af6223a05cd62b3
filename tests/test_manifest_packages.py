"""Packages probe: folder-name parsing, metadata fallback, and agreement with importlib."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from repro.manifest.packages import (
    digest,
    installed_distributions,
    normalize_name,
    packages,
    parse_metadata_folder,
)


@pytest.mark.parametrize(
    ("folder", "parsed"),
    [
        ("torch-2.13.0+cpu.dist-info", ("torch", "2.13.0+cpu")),
        ("types_PyYAML-6.0.12.dist-info", ("types-pyyaml", "6.0.12")),
        ("zope.interface-6.1.dist-info", ("zope-interface", "6.1")),
        ("legacy_pkg-0.9-py3.11.egg-info", ("legacy-pkg", "0.9")),
        ("repro.egg-info", None),
        ("weird-notaversion.dist-info", None),
    ],
)
def test_parse_metadata_folder(folder: str, parsed: tuple[str, str] | None) -> None:
    assert parse_metadata_folder(folder) == parsed


def test_first_on_the_path_wins_and_metadata_fills_gaps(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "Foo_Bar-1.2.dist-info").mkdir(parents=True)
    (first / "noversion.egg-info").mkdir()
    (first / "noversion.egg-info/PKG-INFO").write_text("Name: No.Version\nVersion: 3.0\n")
    (first / "broken.egg-info").mkdir()
    (second / "foo_bar-9.9.dist-info").mkdir(parents=True)
    (second / "other-0.1.dist-info").mkdir()

    found = installed_distributions([str(first), str(second), str(tmp_path / "missing")])

    assert found == {"foo-bar": "1.2", "no-version": "3.0", "other": "0.1"}


def test_packages_of_this_environment_agree_with_importlib() -> None:
    reading = packages()
    lines = reading["distributions"]

    assert lines == sorted(set(lines))
    assert reading["count"] == len(lines)
    assert reading["sha256"] == digest(lines)
    expected = {
        normalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    recorded = dict(line.split("==", 1) for line in lines)
    assert recorded.keys() == expected.keys()
    assert recorded["torch"] == importlib.metadata.version("torch")
    assert recorded["pyyaml"] == importlib.metadata.version("pyyaml")
