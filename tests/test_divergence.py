"""Where two records part, on hand-made records: the step, and the stage within it."""

from __future__ import annotations

import copy
from typing import Any

from repro.judge.divergence import first_difference
from repro.runs.runview import RunView

NAMES = ["blocks.0.attn.qkv.weight", "head.weight"]


def _record(steps: int = 3) -> dict[str, Any]:
    return {
        "param_names": NAMES,
        "initial_params": ["aa", "bb"],
        "steps": [
            {
                "step": k,
                "loss": 2.0 - 0.1 * k,
                "grad_norm": 1.0,
                "lr": 1e-3,
                "loss_scale": 1.0,
                "global_batch": f"g{k}",
                "rank_batches": [f"r{k}a", f"r{k}b"],
                "params": [f"p{k}a", f"p{k}b"],
            }
            for k in range(steps)
        ],
        "final": {"eval_loss": 1.5},
    }


def _view(record: dict[str, Any]) -> RunView:
    return RunView("r", "r", {"status": "COMPLETE"}, {}, {}, record)


def test_identical_records_do_not_part():
    assert first_difference(_view(_record()), _view(_record())) is None


def test_the_earliest_stage_of_the_first_differing_step_is_named():
    a, b = _record(), _record()
    b["steps"][1]["params"][1] = "xx"
    b["steps"][1]["loss"] = 9.0
    b["steps"][2]["global_batch"] = "other"
    d = first_difference(_view(a), _view(b))
    assert d is not None and (d.step, d.where) == (1, "loss")
    assert "step not traced" in d.detail  # nothing fingerprinted the forward
    assert any("head.weight" in line or "head" in line for line in d.also)


def test_a_different_batch_comes_before_everything_it_causes():
    a, b = _record(), _record()
    b["steps"][0]["global_batch"] = "other"
    b["steps"][0]["loss"] = 9.0
    b["initial_params"] = ["aa", "cc"]
    d = first_difference(_view(a), _view(b))
    assert d is not None and (d.step, d.where) == (0, "global_batch")
    # The initialisation comes next: before the forward, after the data.
    assert d.also[0].startswith("the initial parameters differ")


def test_a_traced_step_names_the_module_whose_forward_parted():
    a, b = _record(), _record()
    trace = {
        "forward": [["blocks.0.attn", "01"], ["head", "02"]],
        "grad_local": [],
        "grad_reduced": [],
    }
    a["steps"][0]["trace"] = [copy.deepcopy(trace)]
    trace["forward"][1][1] = "03"
    b["steps"][0]["trace"] = [trace]
    b["steps"][0]["loss"] = 9.0
    d = first_difference(_view(a), _view(b))
    assert d is not None and (d.where, d.traced) == ("forward", True)
    assert d.module == "output head"  # named as a reader knows it (repro.names)


def test_a_shorter_record_or_another_final_parts_after_the_steps():
    a, b = _record(3), _record(2)
    d = first_difference(_view(a), _view(b))
    assert d is not None and (d.step, d.where) == (2, "record")
    c = _record()
    c["final"] = {"eval_loss": 1.6}
    d = first_difference(_view(_record()), _view(c))
    assert d is not None and d.where == "final"
