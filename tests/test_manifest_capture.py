"""capture_manifest on this machine: sections, plain types, no CUDA start, no processes."""

from __future__ import annotations

import json
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import git
import pytest
import torch
import yaml

from repro.manifest import MANIFEST_SCHEMA_VERSION, capture_manifest
from repro.manifest.probe import guarded
from repro.manifest.schema import SECTIONS

_started: list[list[Any]] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _started is not None and event in ("subprocess.Popen", "os.system", "os.posix_spawn"):
        _started.append([event, *args[:2]])


sys.addaudithook(_audit)  # hooks cannot be removed; it records only inside `processes_started`


@contextmanager
def processes_started() -> Iterator[list[list[Any]]]:
    global _started
    _started = []
    try:
        yield _started
    finally:
        _started = None


def _plain_types_only(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_types_only(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_types_only(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


def test_every_section_and_plain_types(tmp_path: Path) -> None:
    manifest = capture_manifest(repo=tmp_path, argv=["repro", "run"])

    assert manifest["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert set(manifest) == {"schema_version", *SECTIONS}
    assert _plain_types_only(manifest)
    assert yaml.safe_load(yaml.safe_dump(manifest)) == manifest
    assert json.loads(json.dumps(manifest)) == manifest


def test_readings_match_torch() -> None:
    manifest = capture_manifest()

    assert manifest["libraries"]["torch"]["version"] == torch.__version__
    assert manifest["libraries"]["torch"]["git_version"] == torch.version.git_version
    assert manifest["libraries"]["cuda"]["build"] == torch.version.cuda
    cpu_capability = torch.backends.cpu.get_cpu_capability()
    assert manifest["hardware"]["cpu"]["torch_capability"] == cpu_capability
    assert manifest["numerics"]["threads"]["intra_op"] == torch.get_num_threads()
    assert manifest["numerics"]["deterministic"]["algorithms"] == (
        torch.are_deterministic_algorithms_enabled()
    )
    assert manifest["hardware"]["cuda"]["available"] == torch.cuda.is_available()


def test_invocation() -> None:
    invocation = capture_manifest(argv=["repro", "verify"])["invocation"]

    assert invocation["argv"] == ["repro", "verify"]
    assert invocation["hostname"] == socket.gethostname()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", invocation["time_utc"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without CUDA")
def test_cuda_is_not_started_without_a_gpu() -> None:
    capture_manifest()

    assert not torch.cuda.is_initialized()


def test_a_raising_torch_getter_costs_one_reading() -> None:
    # Using the new TF32 API makes torch's legacy getters raise: a real failing probe.
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        numerics = capture_manifest()["numerics"]
    finally:
        matmul.fp32_precision = before

    assert "RuntimeError" in numerics["matmul"]["allow_tf32"]["unavailable"]
    assert numerics["matmul"]["fp32_precision"] == "tf32"
    assert numerics["threads"]["intra_op"] == torch.get_num_threads()


def test_guarded_turns_exceptions_into_reasons_and_ignores_warnings() -> None:
    def warns() -> int:
        import warnings

        warnings.warn("deprecated getter", DeprecationWarning, stacklevel=1)
        return 3

    assert guarded(lambda: 1 / 0) == {"unavailable": "ZeroDivisionError: division by zero"}
    assert guarded(warns) == 3


def test_no_process_is_started_outside_a_repository(tmp_path: Path) -> None:
    with processes_started() as started:
        capture_manifest(repo=tmp_path)

    assert started == []


def test_a_repository_costs_exactly_one_git_status(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a\n")
    with git.Repo.init(tmp_path) as repository:
        repository.index.add(["a.txt"])
        author = git.Actor("Test", "test@example.com")
        sha = repository.index.commit("first", author=author, committer=author).hexsha

    with processes_started() as started:
        code = capture_manifest(repo=tmp_path)["code"]

    assert code["git"]["sha"] == sha
    commands = [" ".join(map(str, args[2])) for args in started]
    assert len(commands) == 1 and " status " in f" {commands[0]} ", commands
