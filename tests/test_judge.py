"""Verdicts on real smoke runs against the session's test baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import compare_runs


def _verdict(smoke_runs: dict[str, Path], smoke_baseline: Path, name: str):
    if name not in smoke_runs:
        pytest.skip(f"no {name!r} run on this machine (no lower CPU capability to dispatch to)")
    return compare_runs(smoke_runs[name], None, smoke_baseline)


@pytest.mark.parametrize(
    ("name", "verdict"),
    [
        ("rerun", "IDENTICAL"),
        ("threads", "EQUIVALENT"),
        ("avx2", "EQUIVALENT"),
        ("seed", "EQUIVALENT"),
        ("world1", "EQUIVALENT"),
        ("lr", "DRIFT"),
        # Another precision is judged only against a baseline of that precision.
        ("amp", "NO_BASELINE"),
        # Another training: never equivalent, though the band could not see it.
        ("weight_decay", "DRIFT"),
        ("sampler", "DRIFT"),
        ("nan", "FAILED"),
        ("desync", "FAILED"),
    ],
)
def test_verdict_against_baseline(smoke_runs, smoke_baseline, name, verdict):
    c = _verdict(smoke_runs, smoke_baseline, name)
    assert c.verdict == verdict, c.summary


def test_numerics_band_not_applied_for_another_seed(smoke_runs, smoke_baseline):
    c = _verdict(smoke_runs, smoke_baseline, "seed")
    assert not c.numerics.applied
    assert "seed" in c.numerics.reason
    assert c.seed.applied and c.seed.ok


def test_nondeterministic_repeats(smoke_runs, smoke_baseline):
    c = compare_runs(smoke_runs["nondet_a"], None, smoke_baseline, repeats=[smoke_runs["nondet_b"]])
    assert c.verdict == "NONDETERMINISTIC"


def test_failed_names_the_step(smoke_runs, smoke_baseline):
    nan = _verdict(smoke_runs, smoke_baseline, "nan")
    assert nan.failure.step == 5 and nan.failure.kind == "nonfinite"
    desync = _verdict(smoke_runs, smoke_baseline, "desync")
    assert desync.failure.step == 3 and desync.failure.kind == "desync"


def test_no_baseline(smoke_runs):
    c = compare_runs(smoke_runs["threads"], None)
    assert c.verdict == "NO_BASELINE"
