"""JUnit XML: a CI dashboard goes red exactly when `repro verify` exits non-zero."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import compare_runs
from repro.report.junit import write_junit

ROWS = ["rerun", "threads", "avx2", "seed", "world1", "lr", "amp", "weight_decay", "sampler", "nan"]


def _junit(comparison, tmp_path: Path) -> ET.Element:
    path = tmp_path / "verify.xml"
    write_junit(path, comparison)
    return ET.parse(path).getroot()


def _cases(suite: ET.Element) -> dict[str, str]:
    """testcase name -> "pass", "failure" or "skipped"."""
    out: dict[str, str] = {}
    for case in suite.iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        out[case.get("name", "")] = kinds[0] if kinds else "pass"
    return out


@pytest.mark.parametrize("name", ROWS)
def test_a_failure_appears_exactly_when_the_exit_code_is_non_zero(
    smoke_runs, smoke_baseline, tmp_path, name
):
    if name not in smoke_runs:
        pytest.skip(f"no {name!r} run on this machine")
    comparison = compare_runs(smoke_runs[name], None, smoke_baseline)
    suite = _junit(comparison, tmp_path)
    failed = int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
    assert (failed > 0) == (comparison.verdict.exit_code != 0), (comparison.verdict, _cases(suite))


def test_bitwise_is_skipped_where_bit_identity_is_not_expected(
    smoke_runs, smoke_baseline, tmp_path
):
    comparison = compare_runs(smoke_runs["threads"], None, smoke_baseline)
    assert comparison.verdict == "EQUIVALENT" and not comparison.env_key_match
    cases = _cases(_junit(comparison, tmp_path))
    assert cases["bitwise"] == "skipped" and cases["verdict"] == "pass"


def test_same_environment_key_and_settings_but_other_bits_is_drift(
    smoke_runs, smoke_baseline, tmp_path
):
    """What a faulty GPU or an unrecorded setting looks like: every recorded fact matches."""
    run = tmp_path / "tampered"
    shutil.copytree(smoke_runs["rerun"], run)
    record = json.loads((run / "record.json").read_text())
    last = record["steps"][-1]["params"]
    last[0] = format(int(last[0], 16) ^ 1, "016x")  # one bit of one parameter's fingerprint
    (run / "record.json").write_text(json.dumps(record))
    comparison = compare_runs(run, None, smoke_baseline)
    assert comparison.env_key_match and comparison.bitwise_expected
    assert comparison.verdict == "DRIFT" and comparison.verdict.exit_code == 1
    assert any("bit-identity is expected" in note for note in comparison.notes)
    cases = _cases(_junit(comparison, tmp_path))
    assert cases["bitwise"] == "failure" and cases["verdict"] == "failure"


def test_several_comparisons_give_one_suite_each(smoke_runs, tmp_path):
    # verify --per-device: one comparison per device, one suite per comparison.
    comparisons = [compare_runs(smoke_runs[n], smoke_runs["primary"]) for n in ("rerun", "lr")]
    path = tmp_path / "verify.xml"
    write_junit(path, comparisons)
    root = ET.parse(path).getroot()
    suites = root.findall("testsuite")
    assert root.tag == "testsuites" and len(suites) == 2
    assert [
        s.get("name", "").endswith(str(c.candidate.name)) for s, c in zip(suites, comparisons)
    ] == [
        True,
        True,
    ]
    assert [_cases(s)["verdict"] for s in suites] == ["pass", "failure"]
