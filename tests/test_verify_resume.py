"""`repro verify --resume-at K`: the resume is one exact row, its own JUnit testcase.

Real torch and torchrun on the CPU (smoke profile, 2 ranks): the candidate and the run that
stops after K share one launch, the full-state resume takes a second. No baseline is given,
so the verdict is NO_BASELINE unless the resume row fails, which makes it DRIFT.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from repro.cli import main
from repro.judge.comparison import compare
from repro.judge.resumes import resume_check
from repro.report.junit import write_junit
from repro.runs.resumes import prepare_resume, stopped_run
from repro.runs.runner import launch
from repro.runs.runview import RunView
from repro.verdict import Verdict

STOP = 37  # late in the smoke profile's 40 steps: the resumed launch trains two steps


def _verify(tmp_path: Path, *extra: str) -> tuple[int, Path]:
    baselines = tmp_path / "baselines"
    baselines.mkdir(exist_ok=True)
    junit = tmp_path / "verify.xml"
    argv = ["verify", "--profile", "smoke", "--baseline-dir", str(baselines)]
    argv += ["--runs-dir", str(tmp_path / "runs"), "--junit", str(junit), "--no-preflight"]
    return main([*argv, "--quiet", *extra]), junit


def _cases(junit: Path) -> dict[str, ET.Element]:
    return {str(c.get("name")): c for c in ET.parse(junit).getroot().iter("testcase")}


@pytest.mark.slow
def test_resume_at_adds_a_passing_exact_row_and_a_lossy_resume_fails_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, junit = _verify(tmp_path, "--resume-at", str(STOP))
    out = capsys.readouterr().out
    assert code == Verdict.NO_BASELINE.exit_code, out
    row = _cases(junit)[f"resume at step {STOP}"]
    assert row.find("failure") is None and row.find("skipped") is None
    # The stopped and the resumed run are the candidate's evidence, inside its folder.
    (run_dir,) = (tmp_path / "runs").iterdir()
    kept = json.loads((run_dir / "verdict.json").read_text())
    assert {"name": f"resume at step {STOP}", "ok": True} in [
        {k: e[k] for k in ("name", "ok")} for e in kept["exact"]
    ]
    assert any(f"resumed at step {STOP}" in note for note in kept["notes"])

    # The same row for a resume that restores the weights alone: it parts right after the
    # stop, the verdict is DRIFT and the row's testcase fails, naming the step.
    (stopped_dir,) = [
        p for p in (run_dir / "resume").iterdir() if p.joinpath("training_state.pt").exists()
    ]
    lossy = prepare_resume(stopped_run(stopped_dir), (), runs_dir=tmp_path / "lossy", quiet=True)
    (outcome,) = launch([lossy])
    candidate = RunView.from_run_dir(run_dir)
    checks, _ = resume_check(RunView.from_run_dir(outcome.run_dir), candidate)
    comparison = compare(candidate, None, checks=checks)
    assert comparison.verdict is Verdict.DRIFT
    assert f"parts from the uninterrupted run at step {STOP + 1}" in comparison.summary
    write_junit(tmp_path / "lossy.xml", comparison)
    failure = _cases(tmp_path / "lossy.xml")[f"resume at step {STOP}"].find("failure")
    assert failure is not None and f"step {STOP + 1}" in str(failure.get("message"))


def test_a_resume_step_the_run_never_reaches_is_bad_input_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, junit = _verify(tmp_path, "--resume-at", "39")
    assert code == 2
    assert "--resume-at 39 must be a step before the last: 0 to 38" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not junit.exists()
