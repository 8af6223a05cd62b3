"""Recording a baseline: plan its runs, launch them, check the band, write the folder.

``record_baseline`` is ``repro baseline record``; ``assemble_baseline`` and
``write_baseline`` serve callers that launched the runs themselves (the self-test,
``repro verify --record-missing``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repro import atomic
from repro.baselines.band_build import (
    Replacer,
    build_band,
    checked_members,
    checked_tails,
    final_resolution,
)
from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS, MIN_MEMBERS
from repro.baselines.baseline import (
    BASELINE_SCHEMA_VERSION,
    NAME_PATTERN,
    Baseline,
    hardware_name,
    record_command,
)
from repro.baselines.integrity import file_digests
from repro.clock import utc_now
from repro.documents import read_data
from repro.errors import RunFailed, UserError
from repro.judge.tails import tail_diagnostics
from repro.manifest.keys import environment_key
from repro.outputs import probe_folder
from repro.profile import field_classes, load_profile, parse_overrides
from repro.runs.prepare import prepare_run
from repro.runs.runner import launch
from repro.runs.runview import RunView, series
from repro.runs.store import RECORD_LINES


def write_baseline(
    root: Path,
    name: str,
    primary: RunView,
    band: dict[str, Any],
    *,
    numerics: int,
    seeds: list[int],
    force: bool,
    alpha: float = DEFAULT_ALPHA,
    windows: int = DEFAULT_WINDOWS,
    sets: Sequence[str] = (),
    tails: dict[str, Any] | None = None,
) -> Path:
    """Write the baseline folder atomically: build it beside the target, then rename into place."""
    check_name(name)
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if target.exists() and not force:
        raise UserError(f"baseline {target} already exists; pass --force to replace it.")
    created = utc_now()
    profile = primary.config["profile"]
    meta = {
        "schema_version": BASELINE_SCHEMA_VERSION,
        "name": name,
        "profile": profile,
        "workload_hash": primary.config["workload_hash"],
        "primary_seed": primary.seed,
        "numerics_members": numerics,
        "seeds": seeds,
        "alpha": alpha,
        "windows": windows,
        "environment_key": environment_key(primary.manifest),
        "sets": list(sets),
        "created_utc": created,
        "command": record_command(profile, name, sets=sets),
        "repro_version": primary.manifest.get("code", {}).get("repro_version"),
    }
    if tails is not None:
        meta["tails"] = tails
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        os.chmod(staging, 0o777 & ~atomic.umask())
        shutil.copyfile(Path(primary.path) / "manifest.yaml", staging / "manifest.yaml")
        shutil.copyfile(Path(primary.path) / "config.yaml", staging / "config.yaml")
        # A line per step and per member series: a re-recorded baseline reads as a diff.
        atomic.write_json_lines(staging / "record.json", primary.record, expand=RECORD_LINES)
        atomic.write_json_lines(staging / "band.json", band, expand=4)
        # Last: the digests of the files just written.
        atomic.write_yaml(staging / "baseline.yaml", {**meta, "sha256": file_digests(staging)})
        atomic.write_text(
            staging / "README.md",
            (
                f"# Baseline `{name}`\n\nRecorded {created} with `{meta['command']}` "
                f"(profile {profile}, workload {meta['workload_hash']}, primary seed {primary.seed}, "
                f"{numerics} numerics-band members, {len(seeds)} seeds, alpha {alpha}).\n"
            ),
        )
        old = None
        if target.exists():
            old = root / f".{name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(staging, target)
        if old is not None:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def check_name(name: str) -> None:
    """A baseline name is one folder name: no path separators, no leading dot."""
    if not NAME_PATTERN.match(name):
        raise UserError(
            f"baseline name {name!r} is not valid; use letters, digits, '.', '_' and '-' "
            "(starting with a letter or digit)."
        )


def check_writable(folder: Path, option: str) -> None:
    """``folder`` is, or can be created as, a folder this user can write: checked before the
    first training so that a typo never costs a whole recording."""
    probe_folder(folder, option)


def seal_baseline(path: Path) -> dict[str, Any]:
    """Write what a baseline was recorded with into its ``baseline.yaml``, from its stored
    files (member and seed counts, the sha256 of each file it judges by), without retraining.

    For baselines recorded before ``baseline.yaml`` carried them. The files must pass every
    check but the digests first: sealing never blesses a damaged band. Returns the new meta.
    """
    meta = dict(read_data(path / "baseline.yaml"))
    band = read_data(path / "band.json")
    unsealed = {k: v for k, v in meta.items() if k != "sha256"}
    # Counts already recorded stay: the check below holds the band to them.
    unsealed.setdefault("numerics_members", len(band["members"]))
    unsealed.setdefault("seeds", [s["seed"] for s in band["seeds"]])
    if "tails" not in unsealed:
        unsealed["tails"] = {**stored_tails(path, unsealed, band), "replaced": None}
    Baseline(path, unsealed).check()
    sealed = {**unsealed, "sha256": file_digests(path)}
    atomic.write_yaml(path / "baseline.yaml", sealed)
    return sealed


def stored_tails(path: Path, meta: dict[str, Any], band: dict[str, Any]) -> dict[str, Any]:
    """The tail diagnostics of a baseline's stored members (``replaced`` is unknown: a
    recording before tail checks did not keep it)."""
    record = read_data(path / "record.json")
    return tail_diagnostics(
        series(record["steps"]),
        band["members"],
        alpha=float(meta.get("alpha", DEFAULT_ALPHA)),
        windows=int(meta.get("windows", DEFAULT_WINDOWS)),
    )


def check_recordable(sets: Sequence[str]) -> None:
    """A baseline is recorded for a training, never with a harness setting (faults, band
    perturbations, tracing): one named in ``sets`` is bad input."""
    classes = field_classes()
    for key in parse_overrides(list(sets)):
        if classes.get(key) == "harness" or key.startswith("fault."):
            raise UserError(
                f"--set {key} is a harness setting (faults, band perturbations, tracing); "
                "a baseline is recorded without it."
            )


def baseline_plan(
    profile: str, numerics: int, seeds: int, sets: Sequence[str] = ()
) -> tuple[list[list[str]], list[int]]:
    """The ``--set`` lists of a baseline's runs: primary, band members, other seeds.

    ``sets`` record a baseline for another training or precision than the profile's
    own; harness settings (faults, band perturbations) never make a baseline.
    """
    if numerics < MIN_MEMBERS or seeds < MIN_MEMBERS:
        raise UserError(
            f"--numerics {numerics} and --seeds {seeds} must both be at least {MIN_MEMBERS}: "
            "fewer make a band wide enough to pass anything."
        )
    check_recordable(sets)
    primary_seed = load_profile(profile, parse_overrides(list(sets))).seed
    seed_list = [primary_seed + i for i in range(seeds)]
    base = list(sets)
    plan: list[list[str]] = (
        [base]
        + [[*base, f"band_member={i}"] for i in range(numerics)]
        + [[*base, f"seed={s}"] for s in seed_list[1:]]
    )
    return plan, seed_list


def assemble_baseline(
    views: list[RunView],
    *,
    numerics: int,
    seed_list: list[int],
    root: Path,
    name: str | None,
    force: bool,
    replace: Replacer | None = None,
    sets: Sequence[str] = (),
) -> tuple[Path, dict[str, Any]]:
    """Check the band of finished baseline runs (in ``baseline_plan`` order) and write the baseline.

    ``replace(indices)`` runs band members with those ``band_member`` indices; flagged
    members are replaced through it (without it a flagged member refuses the band).
    """
    bad = [v for v in views if v.status.get("status") != "COMPLETE"]
    if bad:
        raise RunFailed(
            f"{len(bad)} of {len(views)} baseline runs failed; first: {bad[0].name}: "
            f"{bad[0].status.get('reason')}"
        )
    primary, members = views[0], views[1 : 1 + numerics]
    seeds = [views[0], *views[1 + numerics :]]
    members, summary = checked_members(
        primary,
        members,
        first_spare=numerics,
        replace=replace,
        resolution=final_resolution(primary),
    )
    members, tails = checked_tails(
        primary,
        members,
        first_spare=numerics + len(summary["replaced"]),
        replace=replace,
        replaced=summary["reasons"],
    )
    summary["added_for_tails"] = tails["added_for_tails"]
    band = build_band(primary, members, seeds)
    chosen = name or hardware_name(primary.config["profile"], primary.manifest)
    path = write_baseline(
        root,
        chosen,
        primary,
        band,
        numerics=len(members),
        seeds=seed_list,
        force=force,
        sets=sets,
        tails=tails,
    )
    return path, summary


def spare_members(
    profile: str,
    *,
    runs_dir: Path,
    repo: str | None = None,
    quiet: bool = True,
    env: dict[str, str] | None = None,
    sets: Sequence[str] = (),
) -> Replacer:
    """Runs band members with given indices in one launch: replacements for flagged members."""

    def run(indices: list[int]) -> list[RunView]:
        entries = [
            prepare_run(
                profile,
                [*sets, f"band_member={i}"],
                runs_dir=runs_dir,
                repo=repo,
                quiet=quiet,
                env=env,
            )
            for i in indices
        ]
        return [RunView.from_run_dir(o.run_dir) for o in launch(entries, env=env)]

    return run


def record_baseline(
    profile: str,
    *,
    name: str | None,
    numerics: int,
    seeds: int,
    root: Path,
    runs_dir: Path,
    force: bool,
    repo: str | None = None,
    quiet: bool = True,
    env: dict[str, str] | None = None,
    sets: Sequence[str] = (),
) -> tuple[Path, dict[str, Any]]:
    """Run primary, band members and seeds in one launch; check the band; write the baseline."""
    # Every input is checked before the first of the (by default 32) trainings.
    plan, seed_list = baseline_plan(profile, numerics, seeds, sets)
    if name is not None:
        check_name(name)
    check_writable(root, "--baseline-dir")
    check_writable(runs_dir, "--runs-dir")
    if name is not None and (root / name).exists() and not force:
        raise UserError(f"baseline {root / name} already exists; pass --force to replace it.")
    entries = [
        prepare_run(profile, sets, runs_dir=runs_dir, repo=repo, quiet=quiet, env=env)
        for sets in plan
    ]
    outcomes = launch(entries, env=env)
    views = [RunView.from_run_dir(o.run_dir) for o in outcomes]
    replace = spare_members(profile, runs_dir=runs_dir, repo=repo, quiet=quiet, env=env, sets=sets)
    return assemble_baseline(
        views,
        numerics=numerics,
        seed_list=seed_list,
        root=root,
        name=name,
        force=force,
        replace=replace,
        sets=sets,
    )
