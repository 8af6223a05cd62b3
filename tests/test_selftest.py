"""The self-test's rows, run as tests on the shared session (one definition, two uses)."""

from __future__ import annotations

import pytest

from repro.selftest import check, judge_case, load_cases, run_cases

CASES = load_cases()


@pytest.mark.parametrize("case", [c for c in CASES if not c.gpu], ids=lambda c: c.name)
def test_row(case, smoke_session):
    if case.name in smoke_session.skipped:
        pytest.skip(smoke_session.skipped[case.name])
    comparison = judge_case(case, smoke_session)
    assert check(case, comparison) == [], comparison.summary


@pytest.mark.gpu
@pytest.mark.parametrize("case", [c for c in CASES if c.gpu], ids=lambda c: c.name)
def test_gpu_row(case, tmp_path):
    from repro.selftest import run_session

    session = run_session("full", [case], workdir=tmp_path, cuda=True)
    assert check(case, judge_case(case, session)) == []


def test_negative_control_fails_every_row(smoke_session):
    results = run_cases(smoke_session, [c for c in CASES if not c.gpu])
    for result in results:
        if result.comparison is not None:
            assert result.control_failed_row, (
                f"the unperturbed record passes row {result.case.name}"
            )
