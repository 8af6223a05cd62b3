"""Every JSON text repro writes parses with a strict parser (no NaN or Infinity tokens)."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any

import pytest

import repro
from repro import atomic, strict_json

PACKAGE = Path(repro.__file__).parent
GOLDEN = Path(__file__).parent / "golden"


def strict_loads(text: str) -> Any:
    """What JavaScript's JSON.parse or Go's encoding/json accept: no NaN/Infinity tokens."""

    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_floats_are_written_as_strings_float_reads_back() -> None:
    data = {"score": math.inf, "low": -math.inf, "loss": [0.5, math.nan], "n": 3}
    parsed = strict_loads(strict_json.dumps(data, sort_keys=True))
    assert parsed == {"score": "inf", "low": "-inf", "loss": [0.5, "nan"], "n": 3}
    assert float(parsed["score"]) == math.inf and math.isnan(float(parsed["loss"][1]))


def test_a_value_json_cannot_hold_is_refused_not_written_as_text() -> None:
    with pytest.raises(TypeError):
        strict_json.dumps({"tags": {"a"}})


def test_a_kept_comparison_with_an_infinite_score_is_strict_json_and_reads_back(
    tmp_path: Path,
) -> None:
    """verdict.json: the semantic case ranks a training-settings cause with score inf."""
    from repro.judge.comparison import Comparison

    comparison = Comparison.from_dict(json.loads((GOLDEN / "semantic.json").read_text()))
    assert any(math.isinf(c.score) for c in comparison.causes)
    atomic.write_json(tmp_path / "verdict.json", comparison.to_dict())
    data = strict_loads((tmp_path / "verdict.json").read_text())
    assert Comparison.from_dict(data) == comparison


def test_record_lines_hold_a_nan_loss_as_a_string(tmp_path: Path) -> None:
    record = {"steps": [{"step": 0, "loss": 2.5}, {"step": 1, "loss": math.nan}]}
    atomic.write_json_lines(tmp_path / "record.json", record, expand=2)
    steps = strict_loads((tmp_path / "record.json").read_text())["steps"]
    assert steps[1]["loss"] == "nan"


def test_compare_json_of_two_trainings_is_strict_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The case found: another config is a training-settings cause, score inf."""
    from repro.cli import main

    for lr in (0.1, 0.2):
        with repro.track(config={"lr": lr}, runs_dir=tmp_path) as run:
            run.log(0, loss=lr)
            run.log(1, loss=float("nan"))
            run.final(eval_loss=float("inf"))
    a, b = sorted(p for p in tmp_path.iterdir() if not p.name.startswith("."))
    # FAILED: an infinite final is a broken run (the settings cause still leads)
    assert main(["compare", str(a), str(b), "--json"]) == 4
    data = strict_loads(capsys.readouterr().out)
    (comparison,) = data["comparisons"]
    assert comparison["causes"][0]["score"] == "inf"
    assert comparison["candidate"]["final"] == {"eval_loss": "inf"}
    for line in (a / "metrics-rank0.jsonl").read_text().splitlines():
        strict_loads(line)


def test_manifest_json_is_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    from repro.cli import main

    assert main(["manifest", "--json"]) == 0
    assert "schema_version" in strict_loads(capsys.readouterr().out)


def _writes_json_itself(path: Path) -> list[int]:
    """Lines of ``path`` that call json.dump or json.dumps."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("dump", "dumps")
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "json"
    ]


def test_every_json_repro_writes_goes_through_strict_json() -> None:
    # workload.py hashes settings through json.dumps: never written, and the hash of every
    # recorded baseline depends on those exact bytes.
    exempt = {PACKAGE / "strict_json.py", PACKAGE / "runs/workload.py"}
    found = {
        str(path.relative_to(PACKAGE)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if path not in exempt and (lines := _writes_json_itself(path))
    }
    assert found == {}
