"""The self-test's rows, run as tests on the shared session (one definition, two uses)."""

from __future__ import annotations

import dataclasses

import pytest

from repro.baselines.selftest import check, judge_case, load_cases, run_cases

CASES = load_cases()
BY_NAME = {c.name: c for c in CASES}


@pytest.mark.parametrize("case", [c for c in CASES if not c.gpu], ids=lambda c: c.name)
def test_row(case, smoke_session):
    if case.name in smoke_session.skipped:
        pytest.skip(smoke_session.skipped[case.name])
    comparison = judge_case(case, smoke_session)
    assert check(case, comparison) == [], comparison.summary


@pytest.mark.gpu
@pytest.mark.parametrize("case", [c for c in CASES if c.gpu], ids=lambda c: c.name)
def test_gpu_row(case, tmp_path):
    from repro.baselines.selftest import run_session

    needed = [case] + ([BY_NAME[case.against]] if case.against else [])
    session = run_session("full", needed, workdir=tmp_path, cuda=True)
    assert check(case, judge_case(case, session)) == []


def test_every_row_judged_against_another_names_a_row_of_its_own_device():
    for case in CASES:
        if case.against is not None:
            assert BY_NAME[case.against].gpu == case.gpu, case.name


def test_a_row_judged_against_another_rows_run_sees_only_their_difference(smoke_session):
    # The amp row (fp32) against the baseline's primary names the AMP dtype; judged against
    # the rerun row (the baseline's own settings) instead, it must say the same: one
    # setting apart, no band, so NO_BASELINE with the AMP dtype as the cause.
    case = dataclasses.replace(BY_NAME["amp"], against="rerun")
    comparison = judge_case(case, smoke_session)
    assert check(case, comparison) == [], comparison.summary
    assert comparison.baseline is None  # no band was used


def test_negative_control_fails_every_row(smoke_session):
    results = run_cases(smoke_session, [c for c in CASES if not c.gpu])
    for result in results:
        if result.comparison is not None:
            assert result.control_failed_row, (
                f"the unperturbed record passes row {result.case.name}"
            )


def test_rows_can_be_judged_against_a_baseline_recorded_before(smoke_session, tmp_path):
    # The GPU check records one baseline and judges every stage's rows against it.
    from repro.baselines.selftest import run_session

    rerun = BY_NAME["rerun"]
    session = run_session("smoke", [rerun], workdir=tmp_path, baseline=smoke_session.baseline.path)
    assert session.baseline_runs == [] and len(session.runs["rerun"]) == rerun.repeat
    assert check(rerun, judge_case(rerun, session)) == []
