"""Every script in benchmarks/ runs to the end in its ``--smoke`` mode, so none can break
unnoticed: one crashed on main for weeks while a ``type: ignore`` hid the bad call.

A smoke run measures nothing: each case once, on the smoke profile, with tiny counts.
Scripts that judge runs get this session's shared smoke runs and test baseline rather
than recording their own (a baseline takes over a minute to record).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCHMARKS = REPO / "benchmarks"
# Every file that runs as a script; runner.py and results.py are the helpers they share.
SCRIPTS = sorted(
    path.stem
    for path in BENCHMARKS.glob("*.py")
    if 'if __name__ == "__main__":' in path.read_text()
)
# Codes under which mypy reports a call given arguments of the wrong type, number or name.
ARGUMENT_CODES = {"arg-type", "call-arg"}


def _shared_inputs(name: str, request: pytest.FixtureRequest) -> list[str]:
    """Arguments that hand a script the session's runs and baseline, or a cheap subset."""
    if name == "run_all":
        return ["--only", "bench_groups"]  # the orchestration; every script runs below anyway
    if name not in {"bench_compare", "bench_verify", "evidence", "bench_second_look"}:
        return []
    baseline: Path = request.getfixturevalue("smoke_baseline")
    args = ["--baseline-dir", str(baseline.parent)]
    if name == "bench_compare":
        runs = request.getfixturevalue("smoke_runs")
        args += ["--runs", str(runs["primary"]), str(runs["seed"])]
    return args


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_runs_to_the_end_in_its_smoke_mode(name, request, tmp_path):
    script = BENCHMARKS / f"{name}.py"
    command = [sys.executable, str(script), "--smoke", *_shared_inputs(name, request)]
    rows = tmp_path / "rows.json"
    gives_rows = "add_json_option(parser)" in script.read_text()
    if gives_rows:
        command += ["--json", str(rows)]
    env = {**os.environ, "REPRO_HOME": str(tmp_path / "home")}  # nothing into the checkout
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    if gives_rows:  # what run_all.py gathers into its table
        assert json.loads(rows.read_text())


def test_run_all_reads_back_the_tables_the_other_scripts_print(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    from run_all import parse_runner_tables

    from runner import Timing, format_table

    timings = [Timing("plain", (1.0, 1.2, 1.1)), Timing("tracked", (1.1, 1.3, 1.2))]
    text = f"title\n\n{format_table(timings, baseline='plain', unit='s')}\nafter the table\n"
    rows = parse_runner_tables("demo", text)
    assert [(r.case, r.n, r.value, r.unit) for r in rows] == [
        ("plain", 3, 1.1, "s"),
        ("tracked", 3, 1.2, "s"),
    ]
    assert rows[1].ratio == "1.09 x plain"


def test_no_type_ignore_in_benchmarks_silences_an_argument_type():
    silenced = []
    for path in sorted(BENCHMARKS.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"type:\s*ignore(?:\[([^\]]*)\])?", line):
                codes = {code.strip() for code in (match[1] or "").split(",") if code.strip()}
                if not codes or codes & ARGUMENT_CODES:  # a bare ignore silences them all
                    silenced.append(f"{path.name}:{number}: {line.strip()}")
    assert silenced == []
