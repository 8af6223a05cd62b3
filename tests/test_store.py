"""Run directories, atomic writes and validated loading."""

from __future__ import annotations

import json
import os
import re

import pytest

from repro import atomic
from repro.documents import load_document
from repro.errors import UserError
from repro.runs.store import (
    create_run_dir,
    create_unique_run_dir,
    new_run_id,
    open_run,
    validate_run_id,
    write_status,
)


def test_run_id_shape():
    run_id = new_run_id("0123456789abcdef", host="my.host:1")
    assert re.fullmatch(r"\d{8}T\d{6}Z-my-host-1-0123456-[0-9a-f]{6}", run_id), run_id
    assert validate_run_id(run_id) == run_id
    assert new_run_id(None, host="h").split("-")[2] == "nogit"


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", "", ".hidden", "x" * 200])
def test_bad_run_ids_are_refused(bad, tmp_path):
    with pytest.raises(UserError, match="run id"):
        create_run_dir(tmp_path, bad)
    assert list(tmp_path.iterdir()) == []


def test_run_directories_are_created_exclusively(tmp_path):
    create_run_dir(tmp_path, "one")
    with pytest.raises(UserError, match="already exists"):
        create_run_dir(tmp_path, "one")
    ids = {create_unique_run_dir(tmp_path).name for _ in range(20)}
    assert len(ids) == 20


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "data.json"
    atomic.write_json(path, {"a": 1})

    class Boom:
        pass

    with pytest.raises(TypeError):
        atomic.write_json(path, {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["data.json"]


def test_identical_data_gives_identical_bytes(tmp_path):
    atomic.write_json(tmp_path / "a.json", {"b": 1, "a": [1.5, 0.1]})
    atomic.write_json(tmp_path / "b.json", {"a": [1.5, 0.1], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def _doc(tmp_path, text, name="doc.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_document_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match=r"doc.yaml is malformed or truncated"):
        load_document(_doc(tmp_path, "a: [1, 2\n"), kind="thing", schema_version=1)
    with pytest.raises(UserError, match=r"doc.json is malformed or truncated"):
        load_document(
            _doc(tmp_path, '{"schema_version": 1, "a": [', "doc.json"),
            kind="thing",
            schema_version=1,
        )
    with pytest.raises(UserError, match="newer than this repro understands"):
        load_document(_doc(tmp_path, "schema_version: 9\n"), kind="thing", schema_version=1)
    with pytest.raises(UserError, match="missing required key"):
        load_document(
            _doc(tmp_path, "schema_version: 1\n"),
            kind="thing",
            schema_version=1,
            required=("steps",),
        )
    with pytest.raises(UserError, match="no integer schema_version"):
        load_document(_doc(tmp_path, "a: 1\n"), kind="thing", schema_version=1)


def test_older_schema_is_migrated_on_read(tmp_path):
    path = _doc(tmp_path, "schema_version: 1\nold_name: 3\n")
    data = load_document(
        path,
        kind="thing",
        schema_version=2,
        migrations={
            1: lambda d: {
                **{k: v for k, v in d.items() if k != "old_name"},
                "new_name": d["old_name"],
            }
        },
    )
    assert data == {"schema_version": 2, "new_name": 3}
    assert "old_name" in path.read_text()  # migration happens in memory, the file is untouched


def test_open_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="not a run directory"):
        open_run(tmp_path)
    write_status(tmp_path, "RUNNING")
    assert open_run(tmp_path).status["status"] == "RUNNING"
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    os.remove(tmp_path / "status.yaml")
