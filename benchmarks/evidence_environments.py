"""Unperturbed rows of ``evidence.py``: each real environment change run as is.

One environment change is one deterministic record, so here it is one run, with no
band-member perturbation on top (that perturbation, not the change, dominated the
perturbed rows: their no-change control sat where the changes did). Every run is judged
against each baseline given, recorded on other hosts and at other times, and the
evidence is counted in environments: a false alarm is an environment (not a draw)
judged anything but EQUIVALENT or IDENTICAL. A run bit-identical to a baseline's primary
(this host judged by a baseline recorded on it) tests no band and is left out of the
count. Each window's RMS deviation is reported over its bound and over the typical
member's deviation (their geometric mean), per scalar.

Power: the same environments with the update-scale fault (every parameter update times
1 + e, the logged learning rate unchanged: an effective learning rate the schedule does
not show). No run here chose any threshold (the bound's factor is calibrated by
simulation alone, ``repro/judge/band_factor.py``), so every power row is held out.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from pathlib import Path
from typing import Any

from evidence_runs import environments, rate, rate_line, run_cell, tolerance

from repro.baselines.baseline import Baseline
from repro.judge.comparison import compare
from repro.runs.runview import RunView
from repro.verdict import Verdict

PASSING = (str(Verdict.EQUIVALENT), str(Verdict.IDENTICAL))


def _judge(view: RunView, baseline: Baseline, typical: list[float]) -> dict[str, Any]:
    """One run against one baseline: its verdict and each window's two ratios."""
    comparison = compare(view, baseline.primary(), bands=baseline.bands())
    windows = [
        {
            "window": f"{w.scalar} {w.start}-{w.end - 1}",
            "bound": w.value / w.threshold if w.threshold > 0 else math.nan,
            "typical": w.value / t if t > 0 else math.nan,
        }
        for w, t in zip(comparison.numerics.windows, typical)
    ]
    return {"verdict": str(comparison.verdict), "windows": windows}


def _digest(view: RunView) -> str:
    """The run's exact record, as a digest: equal for runs that are bit-identical."""
    return hashlib.sha256(json.dumps(view.record, sort_keys=True).encode()).hexdigest()[:16]


def _worst(row: dict[str, Any], key: str = "bound", scalar: str = "") -> float:
    values = [w[key] for w in row["windows"] if w["window"].startswith(scalar)]
    return max(values, default=math.nan)


def measure(
    profile: str,
    capability: str,
    baselines: list[Baseline],
    runs: Path,
    *,
    levels: tuple[float, ...],
    kept: bool,
    smoke: bool,
) -> dict[str, Any]:
    """Every environment, as is and with each fault level, judged by every baseline."""
    typical = {b.name: [window[3] for window in tolerance(b.bands())] for b in baselines}
    rows = []
    # --smoke: this host and the first change; the others differ only in their environment.
    for cell in environments(capability)[: 2 if smoke else None]:
        plan = [(0.0, cell.sets)] + [(e, [*cell.sets, f"fault.update_scale={e}"]) for e in levels]
        run_cell(profile, [sets for _, sets in plan], cell.env, runs, only_kept=kept)
        for e, sets in plan:
            for view in run_cell(profile, [sets], cell.env, runs, only_kept=True):
                for b in baselines:
                    rows.append(
                        {"environment": cell.name, "baseline": b.name, "e": e}
                        | {"record": _digest(view)}
                        | _judge(view, b, typical[b.name])
                    )
        print(f"  {cell.name}: {len(plan)} runs judged", flush=True)
    results = {"rows": rows, "false_alarms": _false_alarms(rows), "power": _power(rows, levels)}
    _print(results, [b.name for b in baselines])
    return results


def _distinct(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per baseline and record: environments whose records are bit-identical are
    one trial, not several."""
    return list({(r["baseline"], r["record"]): r for r in rows}.values())


def _false_alarms(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per baseline and pooled: alarms among the environments a band judged."""
    changes = [r for r in rows if r["e"] == 0.0 and r["verdict"] != str(Verdict.IDENTICAL)]
    found = []
    for name in [*dict.fromkeys(r["baseline"] for r in changes), "pooled"]:
        mine = [r for r in changes if name in ("pooled", r["baseline"])]
        distinct = _distinct(mine)
        alarms = sum(r["verdict"] not in PASSING for r in distinct)
        found.append(
            {"baseline": name, "environments": len(mine)}
            | rate(alarms, [_worst(r) for r in distinct])
        )
    return found


def _power(rows: list[dict[str, Any]], levels: tuple[float, ...]) -> list[dict[str, Any]]:
    found = []
    for e in levels:
        mine = _distinct([r for r in rows if r["e"] == e])
        detected = sum(r["verdict"] == str(Verdict.DRIFT) for r in mine)
        if mine:
            found.append({"e": e, **rate(detected, [_worst(r) for r in mine])})
    return found


def _print(results: dict[str, Any], names: list[str]) -> None:
    rows = [r for r in results["rows"] if r["e"] == 0.0]
    print("\nunperturbed: each environment run as is (worst window RMS deviation / bound)")
    print(
        f"{'environment':54} {'baseline':26} {'verdict':11} {'worst':>6} {'loss':>6} {'gnorm':>6}"
    )
    for r in rows:
        print(
            f"{r['environment']:54} {r['baseline']:26} {r['verdict']:11} {_worst(r):6.2f} "
            f"{_worst(r, scalar='loss'):6.2f} {_worst(r, scalar='grad_norm'):6.2f}"
        )
    same: dict[str, list[str]] = {}
    for r in rows:
        alike = same.setdefault(r["record"], [])
        alike += [] if r["environment"] in alike else [r["environment"]]
    for alike in same.values():
        if len(alike) > 1:
            print(f"  bit-identical records, one trial: {' = '.join(alike)}")
    changes = [r for r in rows if r["verdict"] != str(Verdict.IDENTICAL)]
    print("\nper window over the environments judged: / bound median (max); x typical member")
    for name in names:
        mine = _distinct([r for r in changes if r["baseline"] == name])
        if not mine:
            continue
        print(f"  {name} ({len(mine)} distinct records)")
        for i, w in enumerate(mine[0]["windows"]):
            bound = sorted(r["windows"][i]["bound"] for r in mine)
            typical = sorted(r["windows"][i]["typical"] for r in mine)
            print(
                f"    {w['window']:18} {statistics.median(bound):5.2f} ({bound[-1]:.2f})"
                f"   x{statistics.median(typical):5.2f} (x{typical[-1]:.2f})"
            )
    print("\nfalse alarms, counted in distinct records of environments (exact 95 % interval)")
    for row in results["false_alarms"]:  # pooled: environment x baseline pairs, runs shared
        pooled = row["baseline"] == "pooled"
        line = rate_line(row["baseline"], row, "pairs" if pooled else "records")
        print(f"{line}  (of {row['environments']} {'pairs' if pooled else 'environments'})")
    print("\npower, held out: update scale (1 + e) in every environment, distinct records")
    for row in results["power"]:
        print(rate_line(f"e = {100 * row['e']:.2f} %", row, "DRIFT"))
