"""The Verdict type is the one source of exit codes, precedence and meanings."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from repro.cli import EXIT_CODES_HELP, _build_parser, main
from repro.report.html import render as render_html
from repro.report.render import build_reports
from repro.report.terminal import render as render_terminal
from repro.verdict import Verdict

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_table() -> dict[str, tuple[str, int]]:
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"^\| (\w+) \| (.+) \| (\d+) \|$", line)
        if m and m.group(1) in Verdict.__members__:
            rows[m.group(1)] = (m.group(2), int(m.group(3)))
    return rows


def test_the_readme_table_is_the_enum():
    rows = _readme_table()
    assert list(rows) == [v.value for v in Verdict], "rows are listed worst first"
    for v in Verdict:
        assert rows[v.value] == (v.meaning, v.exit_code), v


def test_the_readme_states_the_enum_precedence():
    order = " > ".join(v.value for v in Verdict)
    assert f"When several apply: {order}." in README.read_text()


def test_worst_follows_the_declared_order():
    assert Verdict.worst(["IDENTICAL", "DRIFT", "NO_BASELINE"]) is Verdict.NO_BASELINE
    assert Verdict.worst([Verdict.EQUIVALENT, Verdict.FAILED]) is Verdict.FAILED
    assert [v.passed for v in Verdict] == [False] * 8 + [True] * 3
    assert Verdict.worst(["SAME", "UNRESOLVED", "DIFFERENT"]) is Verdict.DIFFERENT
    assert Verdict.worst(["SAME", "UNRESOLVED"]) is Verdict.UNRESOLVED
    # A fleet node that wrote nothing is as bad as one that crashed, worse than a node's drift.
    assert Verdict.worst(["NONDETERMINISTIC", "NO_RESULT", "DRIFT"]) is Verdict.NO_RESULT
    assert Verdict.NO_RESULT.exit_code == Verdict.FAILED.exit_code == 4
    with pytest.raises(ValueError):
        Verdict.worst([])


def test_a_verdict_reads_as_its_name():
    assert f"{Verdict.DRIFT}" == "DRIFT" == str(Verdict.DRIFT)
    assert f"{Verdict.DRIFT:12}|" == "DRIFT       |"


def test_mixed_verdicts_show_one_worst_everywhere(smoke_runs, smoke_baseline, tmp_path, capsys):
    """Terminal headline, HTML headline and exit code agree for `repro compare A B C D`."""
    from repro.commands.compare import compare_runs

    args = [str(smoke_runs[n]) for n in ("primary", "threads", "lr", "amp")]
    judged = compare_runs(args, baseline_dir=str(smoke_baseline.parent))
    verdicts = {j.comparison.verdict for j in judged}
    assert verdicts == {Verdict.EQUIVALENT, Verdict.DRIFT, Verdict.NO_BASELINE}
    worst = Verdict.worst(list(verdicts))
    html = tmp_path / "report.html"
    code = main(
        ["compare", *args, "--baseline-dir", str(smoke_baseline.parent), "--html", str(html)]
    )
    assert code == worst.exit_code == 3
    terminal = capsys.readouterr().out
    assert terminal.startswith(str(worst)) or f"worst: {worst}" in terminal.splitlines()[0]
    assert 'id="verdict"' in html.read_text()
    assert re.search(rf'id="verdict"[^>]*>{worst}<', html.read_text())
    assert render_terminal(build_reports(judged)).splitlines()[0] == terminal.splitlines()[0]
    assert str(worst) in render_html(build_reports(judged))


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command line that names a subcommand, nested ones included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += [(*path, name), *_commands(child, (*path, name))]
    return found


def test_every_subcommands_help_lists_the_exit_codes(capsys):
    """A user reads the exit codes where they read a command's flags: every subcommand is
    registered in the one form that gives its --help the table."""
    commands = _commands(_build_parser())
    assert {("manifest",), ("verify",), ("baseline", "list"), ("checkpoint", "inspect")} <= set(
        commands
    )
    for words in commands:
        with pytest.raises(SystemExit):
            main([*words, "--help"])
        out = capsys.readouterr().out
        assert EXIT_CODES_HELP.splitlines()[1] in out, words
