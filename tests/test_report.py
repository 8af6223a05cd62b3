"""Reports of real smoke-run comparisons: terminal width and colour, Markdown section order,
a self-contained HTML file, and that HTML as headless Chromium lays it out."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import judge_runs
from repro.judge.curves import Judged
from repro.report.blocks import code_spans
from repro.report.html import render as render_html
from repro.report.markdown import render as render_markdown
from repro.report.render import SECTION_TITLES, build_reports
from repro.report.terminal import render as render_terminal

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# A fetch from elsewhere: a src/href/url() pointing at the network, or a stylesheet link.
REMOTE = re.compile(
    r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|<link\b""", re.I
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")

# name -> (candidate run, reference run or None for the baseline's primary, with bands)
CASES = {
    "rerun": ("rerun", None, True),
    "threads": ("threads", None, True),
    "avx2": ("avx2", None, True),
    "seed": ("seed", None, True),
    "lr": ("lr", None, True),
    "world1": ("world1", None, True),
    "band0": ("band0", None, True),
    "no_baseline": ("threads", "primary", False),
}


@pytest.fixture(scope="module")
def comparisons(smoke_runs: dict[str, Path], smoke_baseline: Path) -> dict[str, Judged]:
    out = {}
    for name, (candidate, reference, bands) in CASES.items():
        if candidate not in smoke_runs:
            continue  # avx2 exists only on a CPU with a lower kernel level to fall back to
        out[name] = judge_runs(
            smoke_runs[candidate],
            smoke_runs[reference] if reference else None,
            smoke_baseline if bands else None,
        )
    return out


def _case(comparisons: dict[str, Judged], name: str) -> Judged:
    if name not in comparisons:
        pytest.skip(f"no {name!r} run on this machine (no lower CPU kernel level)")
    return comparisons[name]


# -- terminal -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_terminal_fits_80_columns_and_opens_with_the_verdict(
    comparisons: dict[str, Judged], name: str
) -> None:
    judged = _case(comparisons, name)
    comparison = judged.comparison
    text = ANSI.sub("", render_terminal(build_reports([judged]), color=True))
    too_wide = [line for line in text.splitlines() if len(line) > 80]
    assert not too_wide, f"{len(too_wide)} lines wider than 80 columns, first: {too_wide[0]!r}"
    assert text.splitlines()[0].startswith(comparison.verdict)
    assert comparison.summary.split()[0] in text


@pytest.mark.parametrize("name", CASES)
def test_terminal_without_color_has_no_escape_codes(
    comparisons: dict[str, Judged], name: str
) -> None:
    assert "\x1b" not in render_terminal(build_reports([_case(comparisons, name)]), color=False)


def test_terminal_colors_drift_red_and_identical_green(comparisons: dict[str, Judged]) -> None:
    drift, same = comparisons["lr"], comparisons["rerun"]
    assert (drift.comparison.verdict, same.comparison.verdict) == ("DRIFT", "IDENTICAL")
    assert render_terminal(build_reports([drift]), color=True).startswith("\x1b[1;31mDRIFT")
    assert render_terminal(build_reports([same]), color=True).startswith("\x1b[1;32mIDENTICAL")


class _Stream:
    def __init__(self, tty: bool) -> None:
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_terminal_color_follows_the_tty_and_no_color(
    comparisons: dict[str, Judged], monkeypatch: pytest.MonkeyPatch
) -> None:
    judged = comparisons["lr"]
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", _Stream(tty=True))
    assert "\x1b[" in render_terminal(build_reports([judged]))
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in render_terminal(build_reports([judged]))
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys, "stdout", _Stream(tty=False))
    assert "\x1b[" not in render_terminal(build_reports([judged]))


def test_terminal_folds_low_impact_differences(comparisons: dict[str, Judged]) -> None:
    judged = comparisons["threads"]
    comparison = judged.comparison
    low = [d for d in comparison.env_differences if d.impact == "low"]
    if not low:
        pytest.skip("these two runs have no low-impact differences")
    text = render_terminal(build_reports([judged]), color=False)
    assert f"and {len(low)} low-impact difference" in text
    assert low[0].key not in text


def test_terminal_names_where_and_what_for_drift(comparisons: dict[str, Judged]) -> None:
    judged = comparisons["lr"]
    comparison = judged.comparison
    text = render_terminal(build_reports([judged]), color=False)
    assert comparison.first_difference is not None
    assert f"Step {comparison.first_difference.step}," in text
    assert "First step outside the numerics band" in text
    assert comparison.causes[0].cause in text
    # A long command (a user's ATEN_CPU_CAPABILITY in front of it) is wrapped with `\`
    # continuations that still paste: joined again, it is the recorded command.
    pasted = re.sub(r" \\\n\s+", " ", text)
    assert str(comparison.candidate.command) in pasted


# -- Markdown -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_markdown_has_the_sections_in_order(comparisons: dict[str, Judged], name: str) -> None:
    judged = _case(comparisons, name)
    comparison = judged.comparison
    text = render_markdown(build_reports([judged]))
    positions = [text.find(f"\n## {title}\n") for title in SECTION_TITLES]
    found = dict(zip(SECTION_TITLES, positions, strict=True))
    assert -1 not in positions, f"missing a section: {found}"
    assert positions == sorted(positions)
    assert f"**{comparison.verdict}**" in text


@pytest.mark.parametrize("name", CASES)
def test_markdown_leaves_no_stray_html_tags(comparisons: dict[str, Judged], name: str) -> None:
    # A value such as <absent> outside a code span would vanish as an unknown HTML tag.
    text = re.sub(r"`[^`]*`", "", render_markdown(build_reports([_case(comparisons, name)])))
    tags = set(re.findall(r"(?<!\\)</?([A-Za-z][\w-]*)", text))
    assert tags <= {"details", "summary"}, tags


# -- HTML -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_html_is_self_contained(comparisons: dict[str, Judged], name: str) -> None:
    judged = _case(comparisons, name)
    comparison = judged.comparison
    page = render_html(build_reports([judged]))
    assert page.startswith("<!DOCTYPE html>")
    assert not REMOTE.search(page), REMOTE.search(page)
    assert "<script" not in page
    assert re.search(rf'<div id="verdict"[^>]*>{comparison.verdict}</div>', page)
    assert '<figure class="plot"' in page and "<svg" in page
    assert "<?xml" not in page  # an XML prologue is invalid inside HTML


def test_html_shows_the_band_plot_and_folds_low_impact(comparisons: dict[str, Judged]) -> None:
    judged = comparisons["lr"]
    comparison = judged.comparison
    page = render_html(build_reports([judged]))
    assert page.count('<figure class="plot"') == 2  # loss curves and deviation vs band
    assert "band bound" in page
    if any(d.impact == "low" for d in comparison.env_differences):
        assert "<details><summary>and " in page


# -- several candidates ---------------------------------------------------------------------


def test_many_lists_each_candidate_and_the_worst_verdict(
    comparisons: dict[str, Judged],
) -> None:
    many = [comparisons["rerun"], comparisons["lr"]]
    terminal = ANSI.sub("", render_terminal(build_reports(many), color=True))
    assert all(len(line) <= 80 for line in terminal.splitlines())
    assert "2 runs compared with" in terminal and "1 DRIFT, 1 IDENTICAL" in terminal
    markdown = render_markdown(build_reports(many))
    assert markdown.count("\n### Verdict\n") == 2
    page = render_html(build_reports(many))
    assert re.search(r'<div id="verdict"[^>]*>DRIFT</div>', page)
    assert 'id="verdict-1"' in page and 'id="verdict-2"' in page
    with pytest.raises(ValueError, match="at least one"):
        render_terminal(build_reports([]))


# -- in the browser -------------------------------------------------------------------------

# Appended to the page under test only: writes each plot's laid-out size into the DOM,
# which --dump-dom then prints.
_MEASURE = """<script>
document.body.setAttribute("data-measured", JSON.stringify(
  Array.from(document.querySelectorAll("figure.plot")).map(function (f) {
    var svg = f.querySelector("svg"), box = svg.getBoundingClientRect();
    var style = getComputedStyle(f);
    return {width: box.width, height: box.height, shapes: svg.querySelectorAll("path").length,
            visible: style.display !== "none" && style.visibility !== "hidden"};
  })));
</script>"""


def _browser() -> str | None:
    configured = os.environ.get("REPRO_CHROMIUM")
    if configured:
        found = shutil.which(configured)
        if found is None:
            pytest.fail(f"REPRO_CHROMIUM={configured} is not an executable; fix or unset it")
        return found
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def test_html_renders_in_a_browser(comparisons: dict[str, Judged], tmp_path: Path) -> None:
    browser = _browser()
    if browser is None:
        reason = "no headless browser: install chromium or set REPRO_CHROMIUM"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (required in CI)")
        pytest.skip(reason)
    judged = comparisons["lr"]
    comparison = judged.comparison
    page = tmp_path / "report.html"
    page.write_text(
        render_html(build_reports([judged])).replace("</body>", _MEASURE + "</body>"),
        encoding="utf-8",
    )
    argv = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2000",
        "--dump-dom",
        page.as_uri(),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    dom = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(rf'id="verdict"[^>]*>{comparison.verdict}<', dom), dom[:2000]
    measured = re.search(r'data-measured="([^"]*)"', dom)
    assert measured, "the measuring script did not run"
    plots = json.loads(html.unescape(measured.group(1)))
    assert len(plots) == 2
    for plot in plots:
        assert plot["visible"]
        assert plot["width"] > 400 and plot["height"] > 150, plot  # laid out at page width
        assert plot["shapes"] > 10, plot  # axes, ticks and curves were drawn


# -- pieces ---------------------------------------------------------------------------------


def test_code_spans_keep_an_unpaired_backtick_as_text() -> None:
    assert code_spans("run `repro run` now") == [
        ("run ", False),
        ("repro run", True),
        (" now", False),
    ]
    assert code_spans("a `b") == [("a `b", False)]


def test_terminal_report_imports_neither_matplotlib_nor_torch() -> None:
    code = (
        "import sys, repro.report.terminal, repro.report.markdown, repro.report.html; "
        "print(sorted(m for m in ('matplotlib', 'torch') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
