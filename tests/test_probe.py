"""repro.probe and `repro probe`: the first module where repeats of one training step part.

Every nondeterminism here is real (tests/probe_factories.py): a CPU kernel's thread race,
a generator a module holds, an op torch flags. About 6 s in all on 2 loaded cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import repro
from repro.cli import main
from repro.errors import UserError
from repro.runs.factory import build
from repro.verdict import Verdict

FACTORIES = Path(__file__).resolve().parent / "probe_factories.py"


def _probe(capsys: pytest.CaptureFixture[str], name: str, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["probe", f"{FACTORIES}:{name}", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def test_a_deterministic_step_is_identical_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _probe(capsys, "deterministic", "--repeats", "5")
    assert (code, out["verdict"]) == (0, "IDENTICAL")
    assert out["first_difference"] is None and out["fixes_tried"] == []
    assert out["plain"]["differing"] == 0 and out["repeats"] == 5


def test_an_advanced_indexing_backward_is_named_in_backward_and_deterministic_mode_fixes_it() -> (
    None
):
    made = build(f"{FACTORIES}:embedding")
    result = repro.probe(made.model, made.batch, made.loss_fn, made.optimizer, repeats=5)
    assert result.verdict is Verdict.NONDETERMINISTIC
    first = result.first
    assert first is not None
    assert (first.point.phase, first.point.module, first.point.what) == (
        "backward",
        "emb",
        "gradient of weight",
    )
    fix = result.fix
    assert fix is not None and fix.setting.deterministic and fix.setting.threads == 2
    assert fix.differing == 0 and fix.repeats == 5
    assert "verified fix: deterministic mode" in result.conclusion


def test_a_module_drawing_from_its_own_unseeded_generator_is_named_in_forward(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = _probe(capsys, "unseeded", "--repeats", "4", "--md", str(tmp_path / "p.md"))
    assert "1 (Jitter): output" in (tmp_path / "p.md").read_text()
    assert (code, out["verdict"]) == (Verdict.NONDETERMINISTIC.exit_code, "NONDETERMINISTIC")
    first = out["first_difference"]
    assert (first["phase"], first["module"], first["module_class"], first["tensor"]) == (
        "forward",
        "1",
        "Jitter",
        "output",
    )
    assert out["module_generators"] == ["1.gen"]
    assert out["fix"].startswith("seeded generators")


def test_an_op_torch_flags_is_listed_with_its_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = _probe(capsys, "flagged", "--repeats", "3")
    assert code == 0  # flagged, but these indices never collide: the repeats agree
    forward = [f for f in out["flagged_ops"] if f["phase"] == "forward"]
    assert forward == [{"op": "put_", "phase": "forward", "module": "0", "count": 1}]


def test_the_probe_leaves_the_model_optimizer_generators_threads_and_flags_as_they_were() -> None:
    made = build(f"{FACTORIES}:deterministic")
    assert made.loss_fn is not None
    made.loss_fn(made.model(made.batch)).backward()
    made.optimizer.step()  # an optimizer with state, and gradients, to put back
    params = [p.detach().clone() for p in made.model.parameters()]
    grads = [p.grad.clone() for p in made.model.parameters() if p.grad is not None]
    assert made.optimizer.state_dict()["state"] and len(grads) == 4
    state = {k: v["exp_avg"].clone() for k, v in made.optimizer.state_dict()["state"].items()}
    torch.manual_seed(7)
    random.seed(7)
    threads = torch.get_num_threads()
    expect_torch, expect_py = torch.rand(3), random.random()
    torch.manual_seed(7)
    random.seed(7)
    repro.probe(made.model, made.batch, made.loss_fn, made.optimizer, repeats=2, threads=1)
    assert all(torch.equal(a, b) for a, b in zip(params, made.model.parameters()))
    assert all(torch.equal(g, p.grad) for g, p in zip(grads, made.model.parameters()))
    after = made.optimizer.state_dict()["state"]
    assert all(torch.equal(state[k], after[k]["exp_avg"]) for k in state)
    assert torch.equal(torch.rand(3), expect_torch) and random.random() == expect_py
    assert torch.get_num_threads() == threads
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("nofile.py:make", "no such file"),
        (f"{FACTORIES}", "is not FILE.py:FUNCTION"),
        (f"{FACTORIES}:absent", "has no function 'absent'"),
        (f"{FACTORIES}:not_a_model", "returned str as the model"),
    ],
)
def test_a_factory_that_cannot_give_a_model_and_batch_is_one_sentence_exit_2(
    capsys: pytest.CaptureFixture[str], spec: str, says: str
) -> None:
    assert main(["probe", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and err.count("\n") == 0
    with pytest.raises(UserError, match=says):
        build(spec)


def test_a_step_that_raises_is_failed_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", f"{FACTORIES}:crashes"]) == Verdict.FAILED.exit_code
    err = capsys.readouterr().err
    assert err.startswith("repro: FAILED: the training step from") and err.count("\n") == 1
