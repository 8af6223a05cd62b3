"""What a baseline must hold before it judges anything: sane band parameters, the member
and seed counts it was recorded with, finite values, members that differ, and files that
match the sha256 recorded with them. Each check raises ``UserError`` naming the file."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS, MIN_MEMBERS
from repro.errors import UserError
from repro.judge.bands import BAND_SCALARS, window_edges
from repro.runs.runview import FINAL_METRICS, SCALARS

# Sane ranges of a baseline's band parameters: outside them a band judges nothing.
BAND_PARAMETER_RANGES = {
    "alpha": (1e-6, 0.1),
    "windows": (1, 100),
}
# The files a baseline judges by; baseline.yaml keeps a sha256 of each (it cannot hold its own).
DIGESTED_FILES = ("record.json", "band.json", "config.yaml", "manifest.yaml")


def file_digests(folder: Path) -> dict[str, str]:
    """The sha256 of each file a baseline judges by, as ``baseline.yaml`` stores them."""
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in DIGESTED_FILES
    }


def check_parameters(meta_file: Path, meta: dict[str, Any], rerecord: str) -> None:
    """The band parameters are numbers in their sane ranges."""
    params = {
        "alpha": meta.get("alpha", DEFAULT_ALPHA),
        "windows": meta.get("windows", DEFAULT_WINDOWS),
    }
    for key, value in params.items():
        low, high = BAND_PARAMETER_RANGES[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{meta_file}: {key} is {value!r}, not a number; {rerecord}")
        if not low <= value <= high:
            raise UserError(
                f"{meta_file}: {key} {value!r} is outside the sane range [{low}, {high}]; "
                f"fix it or {rerecord}"
            )


def check_band(
    band_file: Path, meta: dict[str, Any], data: dict[str, Any], steps: int, rerecord: str
) -> None:
    """What the band was recorded with, its shape, its values, and members that differ."""
    damaged = f"restore the folder or {rerecord}"
    members, seeds = data["members"], data["seeds"]
    for what, entries in (("numerics members", members), ("seeds", seeds)):
        if not isinstance(entries, list) or len(entries) < MIN_MEMBERS:
            count = len(entries) if isinstance(entries, list) else 0
            raise UserError(
                f"{band_file} holds {count} {what}, fewer than the {MIN_MEMBERS} a band needs; "
                f"{rerecord}"
            )
    # baseline.yaml records the counts (older baselines may lack them: nothing to match).
    recorded = meta.get("numerics_members")
    if isinstance(recorded, int) and recorded != len(members):
        raise UserError(
            f"{band_file} holds {len(members)} numerics members but baseline.yaml records "
            f"{recorded}: a member was deleted or duplicated; {damaged}"
        )
    if not all(isinstance(m, dict) and isinstance(m.get("series"), dict) for m in members):
        raise UserError(f"{band_file} holds a numerics member without series; {damaged}")
    if not all(isinstance(s, dict) for s in seeds):
        raise UserError(f"{band_file} holds a seed entry that is not a mapping; {damaged}")
    seed_numbers = [s.get("seed") for s in seeds]
    recorded_seeds = meta.get("seeds")
    if isinstance(recorded_seeds, list) and sorted(map(str, seed_numbers)) != sorted(
        map(str, recorded_seeds)
    ):
        raise UserError(
            f"{band_file} holds seeds {seed_numbers} but baseline.yaml records "
            f"{recorded_seeds}: a seed was deleted or duplicated; {damaged}"
        )
    for i, member in enumerate(members):
        lengths = {len(v) if isinstance(v, list) else -1 for v in member["series"].values()}
        if lengths != {steps}:
            raise UserError(
                f"{band_file}: numerics member {i} has series of {sorted(lengths)} steps but "
                f"the primary run has {steps}; {rerecord}"
            )
    check_finite(
        band_file,
        [(f"numerics member {i}", m["series"], m.get("final")) for i, m in enumerate(members)]
        + [(f"the seed {s.get('seed')} run", {}, s) for s in seeds],
        rerecord,
    )
    check_members_differ(band_file, meta, members, steps, damaged)


def check_members_differ(
    band_file: Path, meta: dict[str, Any], members: list[dict[str, Any]], steps: int, damaged: str
) -> None:
    """Rounding perturbations make every member's curves differ from the first step on:
    a curve two members share was copied. (Their final accuracy may well be equal.)"""
    runs: dict[Any, int] = {}
    for i, member in enumerate(members):
        run = member.get("run")
        if run is not None and run in runs:
            raise UserError(
                f"{band_file}: numerics members {runs[run]} and {i} are the same run {run}: a "
                f"member was duplicated; {damaged}"
            )
        runs[run] = i
    for scalar in BAND_SCALARS:
        curves: dict[tuple[Any, ...], int] = {}
        for i, member in enumerate(members):
            curve = tuple(member["series"].get(scalar, ()))
            if curve in curves:
                raise UserError(
                    f"{band_file}: numerics members {curves[curve]} and {i} hold the same "
                    f"{scalar} series: a member was duplicated; {damaged}"
                )
            curves[curve] = i
        for start, end in window_edges(steps, int(meta.get("windows", DEFAULT_WINDOWS))):
            first = members[0]["series"].get(scalar, [])[start:end]
            if all(v is None for v in first):
                continue  # steps every member's GradScaler skipped have no norm to share
            if all(m["series"].get(scalar, [])[start:end] == first for m in members[1:]):
                raise UserError(
                    f"{band_file}: every numerics member holds the same {scalar} series in "
                    f"steps {start}-{end - 1}, which rounding perturbations never give; {damaged}"
                )


def check_finite(
    where: Path, runs: list[tuple[str, dict[str, Any], dict[str, Any] | None]], rerecord: str
) -> None:
    """Every recorded value is a finite number (a skipped step's gradient norm is None):
    a NaN or inf would make a band judge every run, or none, at an arbitrary step."""
    for who, curves, final in runs:
        for scalar in SCALARS:
            for step, value in enumerate(curves.get(scalar, ())):
                if value is None and scalar == "grad_norm":
                    continue
                if not _finite(value):
                    raise UserError(
                        f"{where}: {who}'s {scalar} is {value!r} at step {step}, not a finite "
                        f"number; restore the folder or {rerecord}"
                    )
        for metric in FINAL_METRICS:
            value = (final or {}).get(metric)
            if not _finite(value):
                raise UserError(
                    f"{where}: {who}'s final {metric} is {value!r}, not a finite number; "
                    f"restore the folder or {rerecord}"
                )


def check_digests(path: Path, meta: dict[str, Any], rerecord: str) -> None:
    """Each file matches the digest recorded with it (older baselines have none)."""
    recorded = meta.get("sha256")
    if not isinstance(recorded, dict):
        return
    actual = file_digests(path)
    for name in DIGESTED_FILES:
        if recorded.get(name) != actual[name]:
            raise UserError(
                f"{path / name} does not match the sha256 that baseline.yaml records "
                f"for it: the file changed after recording; restore the folder or "
                f"{rerecord}"
            )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
