"""Environment-variable allowlist with redaction, and container hints."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.manifest import capture_manifest
from repro.manifest.container import container
from repro.manifest.env import environment


def test_allowlisted_variables_are_kept_and_secrets_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NCCL_DEBUG", "INFO")
    monkeypatch.setenv("TORCH_API_TOKEN", "abc123")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    monkeypatch.setenv("HOME", "/home/someone")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")

    recorded = environment()

    assert recorded["NCCL_DEBUG"] == "INFO"
    assert recorded["TORCH_API_TOKEN"] == "<redacted>"
    assert recorded["PYTHONHASHSEED"] == "0"
    assert "HOME" not in recorded
    assert "AWS_SECRET_ACCESS_KEY" not in recorded
    assert "abc123" not in repr(capture_manifest())


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("CUBLAS_WORKSPACE_CONFIG", True),
        ("LD_LIBRARY_PATH", True),
        ("LD_DEBUG", False),
        ("PYTHONPATH", False),
        ("ONEDNN_MAX_CPU_ISA", True),
        ("PATH", False),
    ],
)
def test_allowlist(name: str, kept: bool) -> None:
    assert (name in environment({name: "x"})) is kept


def test_docker_marker_and_cgroup(tmp_path: Path) -> None:
    (tmp_path / ".dockerenv").touch()
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text("12:cpu:/kubepods/pod1/docker-abc.scope\n")
    environ = {"NVIDIA_PYTORCH_VERSION": "24.05", "HOME": "/root"}

    reading = container(tmp_path, environ)

    assert reading["in_container"] is True
    assert reading["dockerenv"] is True
    assert reading["cgroup_hints"] == ["docker", "kubepods"]
    assert reading["image_env"] == {"NVIDIA_PYTORCH_VERSION": "24.05"}


def test_bare_machine_is_not_a_container(tmp_path: Path) -> None:
    reading = container(tmp_path, {})

    assert reading["in_container"] is False
    assert reading["image_env"] == {}
    assert "unavailable" in reading["cgroup_hints"]  # no /proc/1/cgroup under tmp_path
