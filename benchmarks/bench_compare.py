"""How long ``repro compare`` takes on two quick-profile runs, in-process and as a process.

    python benchmarks/bench_compare.py [--runs RUN_A RUN_B] [--repeat 20] [--processes 5] [--smoke]

Without ``--runs``, two quick-profile runs with different seeds are made first in a
temporary folder (about 35 s on 2 cores), so both plots are drawn. Baselines are looked up
in ``--baseline-dir`` (default: an empty folder). Claims, on a 2-core CPU, start-up
included:

* ``repro compare A B`` (terminal summary) takes at most 2 s;
* ``repro compare A B --html FILE`` takes at most 5 s.

(a) In-process: loading and judging the two runs, then each renderer; ``render_html`` is
    timed warm (matplotlib already imported) and its first call in a process separately.
(b) Whole processes, interleaved: ``python -c pass`` (interpreter start-up), the terminal
    command and the HTML command.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from repro.verdict import Verdict
from runner import Timing, add_smoke_option, interleave, print_table, time_callable

REPO_ROOT = Path(__file__).resolve().parent.parent
TERMINAL_CLAIM_S, HTML_CLAIM_S = 2.0, 5.0
# compare exits with a verdict's code; 2 is bad input, anything else a crash.
VERDICT_EXIT_CODES = tuple(sorted({v.exit_code for v in Verdict}))


def make_runs(folder: Path, profile: str) -> tuple[Path, Path]:
    from repro.runs.runner import run_many

    print(f"making two {profile}-profile runs ...", file=sys.stderr)
    outcomes = run_many(profile, [[], ["seed=1"]], runs_dir=folder)
    bad = [o for o in outcomes if not o.ok]
    if bad:
        raise SystemExit(f"a {profile} run failed: {bad[0].run_dir}: {bad[0].reason}")
    return outcomes[0].run_dir, outcomes[1].run_dir


def time_process(argv: list[str]) -> float:
    """Seconds from start to exit of ``argv``, whatever verdict it exits with."""
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode not in VERDICT_EXIT_CODES:
        tail = done.stderr.decode(errors="replace")[-500:]
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {tail}")
    return seconds


def in_process(a: Path, b: Path, baselines: Path, repeat: int) -> None:
    from repro.commands.compare import compare_runs

    def judge() -> object:
        return compare_runs([str(a), str(b)], baseline_dir=str(baselines))

    (judged,) = compare_runs([str(a), str(b)], baseline_dir=str(baselines))
    start = time.perf_counter()
    from repro.report.html import render as render_html
    from repro.report.render import build_reports

    # Pays the matplotlib import, as an `--html` process does once.
    render_html(build_reports([judged]))
    first_html = time.perf_counter() - start

    from repro.report.markdown import render as render_markdown
    from repro.report.terminal import render as render_terminal

    # Each renderer's row builds the report and renders it, as a command asking for one does.
    cases: dict[str, Callable[[], object]] = {
        "load + judge (compare_runs)": judge,
        "render_terminal": lambda: render_terminal(build_reports([judged]), color=True),
        "render_markdown": lambda: render_markdown(build_reports([judged])),
        "render_html (warm)": lambda: render_html(build_reports([judged])),
    }
    timings = [Timing(n, time_callable(fn, repeat=repeat).seconds) for n, fn in cases.items()]
    timings.append(Timing("render_html, first call in a process", (first_html,)))
    print_table(f"(a) in-process, {judged.comparison.verdict}, {repeat} calls each", timings)


def whole_process(a: Path, b: Path, baselines: Path, repeat: int) -> None:
    command = [sys.executable, "-m", "repro", "compare", str(a), str(b)]
    command += ["--baseline-dir", str(baselines)]
    with tempfile.TemporaryDirectory() as tmp:
        html = str(Path(tmp) / "report.html")
        cases = {
            "python -c pass": lambda: time_process([sys.executable, "-c", "pass"]),
            "repro compare A B": lambda: time_process(command),
            "repro compare A B --html": lambda: time_process([*command, "--html", html]),
        }
        timings = interleave(cases, repeat=repeat)
    print_table(f"(b) whole processes, interleaved, {repeat} rounds", timings, unit="s")
    medians = {t.name: t.median for t in timings}
    claims = (("repro compare A B", TERMINAL_CLAIM_S), ("repro compare A B --html", HTML_CLAIM_S))
    for name, claim in claims:
        verdict = "ok" if medians[name] <= claim else "OVER"
        print(f"{name}: median {medians[name]:.2f} s, claim <= {claim:.0f} s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", nargs=2, type=Path, metavar=("RUN_A", "RUN_B"))
    parser.add_argument("--baseline-dir", type=Path, help="where compare looks for baselines")
    parser.add_argument("--repeat", type=int, default=20, help="in-process calls per case")
    parser.add_argument("--processes", type=int, default=5, help="rounds of whole processes")
    add_smoke_option(parser)
    args = parser.parse_args()
    profile = "smoke" if args.smoke else "quick"
    if args.smoke:
        args.repeat, args.processes = 1, 1
    with tempfile.TemporaryDirectory() as tmp:
        a, b = args.runs if args.runs else make_runs(Path(tmp) / "runs", profile)
        baselines = args.baseline_dir or Path(tmp) / "baselines"
        baselines.mkdir(parents=True, exist_ok=True)
        in_process(a, b, baselines, args.repeat)
        whole_process(a, b, baselines, args.processes)


if __name__ == "__main__":
    main()
