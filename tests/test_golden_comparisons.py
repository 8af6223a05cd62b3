"""The judge's answers on the cached smoke runs, frozen: a refactor changes no verdict,
number or word of a comparison.

``tests/golden/`` holds each self-test row's ``Comparison.to_dict()`` with what differs
between two sessions of the same runs removed (folders, run names, the workload hash a
reworded hashed module changes). The numbers are this machine's arithmetic, so the check
runs where the files were written (the same environment key as the session's baseline:
torch, CPU kernel level, libraries) and is skipped elsewhere. To write them anew::

    REPRO_WRITE_GOLDEN=1 python -m pytest tests/test_golden_comparisons.py
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from repro.baselines.selftest import judge_case, load_cases

GOLDEN = Path(__file__).parent / "golden"
# The nondet row's runs draw dropout masks from the OS: their numbers change every session.
CASES = [c for c in load_cases() if not c.gpu and c.name != "nondet"]

RUN_NAME = re.compile(r"\d{8}T\d{6}Z-[A-Za-z0-9._-]+")


def machine(session: Any) -> str:
    """The baseline's environment key, digested (equal keys give equal records), with the
    variables that steer kernels in this environment (they appear in every reproduce
    command and environment difference)."""
    from repro.runs.prepare import steering_env

    key = [session.baseline.meta["environment_key"], steering_env(dict(os.environ))]
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def scrubbed(comparison: dict[str, Any], workdir: Path) -> str:
    # When each run started is shown in a report, but it is no part of the judgement.
    comparison["env_differences"] = [
        d for d in comparison["env_differences"] if d["key"] != "invocation.time_utc"
    ]
    for side in ("candidate", "reference"):
        if isinstance(comparison.get(side), dict):
            comparison[side].pop("path", None)
            comparison[side].pop("workload_hash", None)
    text = json.dumps(comparison, indent=1, sort_keys=True)
    text = text.replace(str(workdir), "<workdir>")
    return RUN_NAME.sub("<run>", text) + "\n"


@pytest.fixture(scope="module")
def golden_machine(smoke_session: Any) -> str:
    here = machine(smoke_session)
    if os.environ.get("REPRO_WRITE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / "machine.txt").write_text(here + "\n")
        return here
    written = (GOLDEN / "machine.txt").read_text().strip()
    if written != here:
        pytest.skip(
            "the golden comparisons were written on another machine or with other "
            "kernel-steering variables (ATEN_*, ONEDNN_*, ...)"
        )
    return here


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_comparison_is_unchanged(case, smoke_session, golden_machine):
    if case.name in smoke_session.skipped:
        pytest.skip(smoke_session.skipped[case.name])
    workdir = smoke_session.baseline.path.parent.parent
    text = scrubbed(judge_case(case, smoke_session).to_dict(), workdir)
    path = GOLDEN / f"{case.name}.json"
    if os.environ.get("REPRO_WRITE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_a_kept_comparison_reads_back_typed(path):
    """verdict.json (``to_dict``) reads back into the same typed parts, whole."""
    from repro.judge.bands import BandCheck, SeedCheck
    from repro.judge.comparison import Comparison
    from repro.judge.divergence import Divergence
    from repro.verdict import Verdict

    data = json.loads(path.read_text())
    comparison = Comparison.from_dict(data)
    assert isinstance(comparison.verdict, Verdict) and isinstance(comparison.numerics, BandCheck)
    assert isinstance(comparison.seed, SeedCheck)
    assert comparison.first_difference is None or isinstance(
        comparison.first_difference, Divergence
    )
    assert all(type(c).__name__ == "Cause" for c in comparison.causes)
    assert comparison.to_dict() == data
