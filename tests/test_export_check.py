"""``repro export-check``: exported models judged against eager with a calibrated tolerance.

Real exporters and a real ONNX Runtime throughout; the one substitution is the ONNX
file's weight changed after export (the eager model untouched), which a broken
exporter would produce.
"""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import torch

from repro.cli import main
from repro.verdict import Verdict

HERE = Path(__file__).resolve().parent


def _check(capsys, *args: str) -> tuple[int, dict]:
    code = main(["export-check", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def _formats(result: dict) -> dict[str, dict]:
    return {f["format"]: f for f in result["formats"]}


@pytest.mark.slow
def test_an_eval_transformer_matches_in_every_format(capsys, tmp_path):
    pytest.importorskip("onnxruntime", reason="needs the export extra: pip install 'repro[export]'")
    junit = tmp_path / "export.xml"
    code, result = _check(capsys, f"{HERE / 'export_models.py'}:transformer", "--junit", str(junit))
    formats = _formats(result)
    assert code == 0, result["summary"]
    assert formats["export"]["verdict"] in ("IDENTICAL", "EQUIVALENT")
    assert formats["onnx"]["verdict"] in ("IDENTICAL", "EQUIVALENT")
    assert formats["torchscript"]["verdict"] == "IDENTICAL"
    assert formats["torchscript"]["deprecated"]
    onnx = formats["onnx"]["facts"]
    assert onnx["opset"] >= 18 and onnx["providers"] == ["CPUExecutionProvider"]
    # The bound comes from 16 one-ulp weight nudges and is not a hand-picked constant.
    bounds = result["calibration"]["bounds"]
    assert result["calibration"]["members"] == 16
    assert all(0 < b["bound"] < 1e-4 for b in bounds)
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "0" and suite.get("tests") == "4"
    assert (tmp_path / "export.manifest.yaml").is_file() and result["manifest"]["libraries"]


def test_a_model_in_train_mode_is_bad_input(capsys):
    code = main(["export-check", f"{HERE / 'export_models.py'}:transformer_in_train_mode"])
    assert code == 2
    assert "call model.eval() before exporting" in capsys.readouterr().err


def test_a_trace_that_specialised_drifts_on_the_second_input_set(capsys):
    spec = f"{HERE / 'export_models.py'}:branches"
    code, result = _check(capsys, spec, "--formats", "torchscript")
    script = _formats(result)["torchscript"]
    assert code == Verdict.DRIFT.exit_code
    assert script["verdict"] == "DRIFT"
    assert "input set 2" in script["summary"] and "input set 1 matches" in script["summary"]
    assert {o["verdict"] for o in script["outputs"] if o["input_set"] == 1} == {"IDENTICAL"}


def test_a_weight_changed_in_the_onnx_file_is_drift_at_its_node(capsys, monkeypatch):
    pytest.importorskip("onnxruntime", reason="needs the export extra: pip install 'repro[export]'")
    import onnx_ir as ir

    from repro.export import onnx_format

    real_export = onnx_format.export_onnx

    def export_then_corrupt(model, example, dynamic):
        program = real_export(model, example, dynamic)
        weight = program.model.graph.initializers["2.bias"]  # the last Linear's bias
        value = weight.const_value.numpy().copy()
        value[0] += 0.25
        weight.const_value = ir.Tensor(value)
        return program

    monkeypatch.setattr(onnx_format, "export_onnx", export_then_corrupt)
    code, result = _check(capsys, f"{HERE / 'export_models.py'}:mlp", "--formats", "onnx")
    onnx = _formats(result)["onnx"]
    assert code == Verdict.DRIFT.exit_code and onnx["verdict"] == "DRIFT"
    first = onnx["first_diverging"]
    assert first["op_type"] in ("Gemm", "Add", "MatMul") and first["max_abs"] == pytest.approx(
        0.25, rel=1e-3
    )


def test_without_the_extra_onnx_is_unavailable_with_the_install_command(capsys, monkeypatch):
    from repro.export import onnx_format

    monkeypatch.setattr(onnx_format, "missing_packages", lambda: ["onnxruntime"])
    code, result = _check(
        capsys, f"{HERE / 'export_models.py'}:mlp", "--formats", "onnx,torchscript"
    )
    onnx = _formats(result)["onnx"]
    assert onnx["verdict"] is None
    assert "pip install 'repro[export]'" in onnx["summary"]
    assert code == 0 and result["verdict"] == "IDENTICAL"


def test_weights_other_than_the_checkpoint_are_bad_input(capsys, tmp_path):
    other = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4))
    torch.save(other.state_dict(), tmp_path / "other.pt")
    spec = f"{HERE / 'export_models.py'}:mlp"
    code = main(["export-check", spec, "--checkpoint", str(tmp_path / "other.pt")])
    assert code == 2
    assert "are not those of" in capsys.readouterr().err
