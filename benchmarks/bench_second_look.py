"""What the tail rule's second look does to a recorded baseline's bounds and power.

    python benchmarks/bench_second_look.py --baseline runs/evidence/baselines/quick-evidence-avx512 \
        --runs runs/evidence/work/runs.json [--smoke]

A baseline of K members past the first look (``repro.judge.tails``) is recorded with as
many members again. For one recorded with the old rule this script records band members
K to 2K - 1 of its profile and settings on this machine (run it on the host that recorded
the baseline: the members must come from one environment), takes the second look, and
prints each window's bound at K and at 2K members (their ratio), then judges every
held-out update-scale run in ``--runs`` (the run index ``benchmarks/evidence.py`` keeps)
against both bands: DRIFT counts and the range over runs of each run's largest ratio to
its bound, per level; and every unperturbed run in ``--runs`` (each real environment change,
run as is) against both, where DRIFT is a false alarm. ``--smoke`` adds 2 members and
judges no runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from repro.baselines.band_build import final_metrics
from repro.baselines.baseline import load_baseline
from repro.baselines.recording import spare_members
from repro.judge.bands import Bands, numerics_check, window_bounds
from repro.judge.tails import tail_diagnostics
from repro.runs.runview import RunView, series
from runner import add_smoke_option


def added_members(bands: Bands, count: int, profile: str, sets: list[str], work: Path) -> list[Any]:
    """Band members K .. K + count - 1, recorded here as ``baseline record`` would."""
    k = len(bands.members)
    views = spare_members(profile, runs_dir=work, sets=sets)(list(range(k, k + count)))
    failed = [v.name for v in views if v.status.get("status") != "COMPLETE"]
    if failed:
        raise SystemExit(f"added band members failed: {', '.join(failed)}")
    return [{"series": series(v.steps), "final": final_metrics(v)} for v in views]


def print_bounds(bands: Bands, larger: list[Any]) -> None:
    small, _ = window_bounds(bands.primary, bands.members, alpha=bands.alpha, windows=bands.windows)
    big, _ = window_bounds(bands.primary, larger, alpha=bands.alpha, windows=bands.windows)
    print(f"| window | bound at {len(bands.members)} | at {len(larger)} | ratio |")
    print("|---|---|---|---|")
    for a, b in zip(small, big, strict=True):
        print(
            f"| {a.scalar} {a.start}-{a.end - 1} | {a.threshold:.3e} | {b.threshold:.3e} | "
            f"{b.threshold / a.threshold:.2f} |"
        )


def worst_ratio(bands: Bands, members: list[Any], run: RunView) -> tuple[float, bool]:
    """The run's largest RMS deviation as a share of its window's bound, and DRIFT."""
    check = numerics_check(
        series(run.steps),
        run.final,
        bands.primary,
        members,
        alpha=bands.alpha,
        windows=bands.windows,
        resolution=bands.resolution,
    )
    return max(w.value / w.threshold for w in check.windows), not check.ok


def print_power(bands: Bands, larger: list[Any], index: Path) -> None:
    """Every update-scale run of the index, judged by the band at K and at 2K members."""
    levels: dict[str, list[RunView]] = {}
    for key, folder in json.loads(index.read_text()).items():
        sets = json.loads(key)[0]
        level = next((s.split("=")[1] for s in sets if s.startswith("fault.update_scale=")), None)
        if level is not None:
            levels.setdefault(level, []).append(RunView.from_run_dir(Path(folder)))
    print(
        "| update scale e | runs | DRIFT at K | at 2K | largest ratio to the bound at K | at 2K |"
    )
    print("|---|---|---|---|---|---|")
    for level, runs in sorted(levels.items(), key=lambda item: float(item[0])):
        judged = [[worst_ratio(bands, m, r) for r in runs] for m in (bands.members, larger)]
        drift = [sum(d for _, d in j) for j in judged]
        spans = [f"{min(r for r, _ in j):.2f}-{max(r for r, _ in j):.2f}" for j in judged]
        print(
            f"| {float(level):.2%} | {len(runs)} | {drift[0]} | {drift[1]} | {spans[0]} | {spans[1]} |"
        )


def print_environments(bands: Bands, larger: list[Any], index: Path) -> None:
    """Every unperturbed run of the index (a real environment change, run as is), judged by
    the band at K and at 2K members: a tighter bound must not turn one into a false alarm."""
    print("| environment change | verdict at K | at 2K | largest ratio to the bound at K | at 2K |")
    print("|---|---|---|---|---|")
    for key, folder in sorted(json.loads(index.read_text()).items()):
        sets, env = json.loads(key)
        if any(s.startswith("fault.") for s in sets):
            continue
        run = RunView.from_run_dir(Path(folder))
        judged = [worst_ratio(bands, m, run) for m in (bands.members, larger)]
        change = " ".join([*sets, *(f"{k}={v}" for k, v in env.items())]) or "none (this host)"
        cells = [("DRIFT" if drift else "inside") for _, drift in judged]
        print(f"| {change} | {cells[0]} | {cells[1]} | {judged[0][0]:.2f} | {judged[1][0]:.2f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="the baseline folder")
    parser.add_argument("--baseline-dir", type=Path, help="else the first baseline in this folder")
    parser.add_argument("--runs", type=Path, help="run index with held-out update-scale runs")
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    path = args.baseline or next(
        p.parent for p in sorted(args.baseline_dir.glob("*/baseline.yaml"))
    )
    baseline = load_baseline(path)
    bands = baseline.bands()
    count = 2 if args.smoke else len(bands.members)
    with tempfile.TemporaryDirectory(prefix="second-look-") as work:
        sets = list(baseline.meta.get("sets", []))
        larger = bands.members + added_members(
            bands, count, baseline.meta["profile"], sets, Path(work)
        )
    k = len(bands.members)
    for members, second in ((bands.members, False), (larger, True)):
        pooled = tail_diagnostics(
            bands.primary, members, alpha=bands.alpha, windows=bands.windows, second_look=second
        )["pooled"]
        print(
            f"{len(members)} members, {pooled['look']} look: skew {pooled['skew']:+.2f} "
            f"(limit {pooled['skew_limit']:.2f}), excess kurtosis {pooled['excess_kurtosis']:+.2f} "
            f"(limit {pooled['kurtosis_limit']:.2f}): {'past it' if pooled['heavy'] else 'within'}"
        )
    print(f"\nbounds, {k} members against {len(larger)}:")
    print_bounds(bands, larger)
    if args.runs and not args.smoke:
        print()
        print_power(bands, larger, args.runs)
        print()
        print_environments(bands, larger, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
