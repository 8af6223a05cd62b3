"""Baselines: record, load, and select by profile + workload hash + environment key.

A baseline is a folder ``<baseline-dir>/<name>/``::

    baseline.yaml   what it is valid for: profile, workload hash, environment key, band parameters
    manifest.yaml   the primary run's environment
    config.yaml     the primary run's resolved config
    record.json     the primary run's exact record (primary seed, unperturbed)
    band.json       numerics-band members' curves and final metrics; the seed band's finals
    README.md       how and when it was made
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from repro.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS, MIN_MEMBERS
from repro.bands import Bands
from repro.documents import load_document
from repro.errors import UserError
from repro.manifest.keys import environment_key, key_info
from repro.runview import RunView, series

BAND_SCHEMA_VERSION = 1
BASELINE_SCHEMA_VERSION = 2  # 2: field classes, the numerics-only workload hash, new seed streams
# Sane ranges of a baseline's band parameters: outside them a band judges nothing.
BAND_PARAMETER_RANGES = {
    "alpha": (1e-6, 0.1),
    "windows": (1, 100),
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Baseline:
    path: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    def primary(self) -> RunView:
        """The primary run, loaded once (the bands measure every deviation from it too)."""
        return self._primary

    @cached_property
    def _primary(self) -> RunView:
        from repro.manifest.schema import load_manifest
        from repro.store import CONFIG_SCHEMA_VERSION, RECORD_SCHEMA_VERSION

        record = load_document(
            self.path / "record.json",
            kind="baseline record",
            schema_version=RECORD_SCHEMA_VERSION,
            required=("steps", "final"),
        )
        config = load_document(
            self.path / "config.yaml",
            kind="baseline config",
            schema_version=CONFIG_SCHEMA_VERSION,
            required=("settings",),
        )
        view = RunView(
            name=f"baseline {self.name}",
            path=str(self.path),
            status={"status": "COMPLETE"},
            config=config,
            manifest=load_manifest(self.path / "manifest.yaml"),
            record=record,
        )
        view.check_complete(self.path / "record.json")
        return view

    def bands(self) -> Bands:
        """The bands, checked: enough members, sane parameters, every series as long as the primary's."""
        data = load_document(
            self.path / "band.json",
            kind="baseline band",
            schema_version=BAND_SCHEMA_VERSION,
            required=("members", "seeds"),
        )
        meta_file = self.path / "baseline.yaml"
        params = {
            "alpha": self.meta.get("alpha", DEFAULT_ALPHA),
            "windows": self.meta.get("windows", DEFAULT_WINDOWS),
        }
        for key, value in params.items():
            low, high = BAND_PARAMETER_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{meta_file}: {key} is {value!r}, not a number; {self._rerecord}")
            if not low <= value <= high:
                raise UserError(
                    f"{meta_file}: {key} {value!r} is outside the sane range [{low}, {high}]; "
                    f"fix it or {self._rerecord}"
                )
        primary = self.primary()
        steps = len(primary.steps)
        band_file = self.path / "band.json"
        for what, entries in (("numerics members", data["members"]), ("seeds", data["seeds"])):
            if not isinstance(entries, list) or len(entries) < MIN_MEMBERS:
                count = len(entries) if isinstance(entries, list) else 0
                raise UserError(
                    f"{band_file} holds {count} {what}, fewer than the {MIN_MEMBERS} a band needs; "
                    f"{self._rerecord}"
                )
        for i, member in enumerate(data["members"]):
            lengths = {len(v) for v in member.get("series", {}).values()}
            if lengths != {steps}:
                raise UserError(
                    f"{band_file}: numerics member {i} has series of {sorted(lengths)} steps but the "
                    f"primary run has {steps}; {self._rerecord}"
                )
        return Bands(
            name=self.name,
            alpha=float(params["alpha"]),
            windows=int(params["windows"]),
            primary_seed=int(self.meta["primary_seed"]),
            primary=series(primary.steps),
            workload_hash=str(self.meta["workload_hash"]),
            members=list(data["members"]),
            seeds=list(data["seeds"]),
            resolution=dict(data.get("resolution", {})),
        )

    @property
    def _rerecord(self) -> str:
        command = record_command(
            str(self.meta["profile"]), self.name, force=True, sets=self.meta.get("sets", ())
        )
        return f"re-record it with `{command}`."


# -- where baselines live -------------------------------------------------------------------


def shipped_dir() -> Path:
    """The committed baselines: package data in a wheel, ``manifests/`` in a source checkout."""
    try:
        return Path(str(resources.files("repro._manifests").joinpath("baselines")))
    except ModuleNotFoundError:  # running from a checkout (editable install or PYTHONPATH)
        return Path(__file__).resolve().parent.parent / "manifests" / "baselines"


def write_dir(option: str | None) -> Path:
    """Where ``repro baseline record`` writes."""
    if option:
        return Path(option)
    home = os.environ.get("REPRO_HOME")
    return Path(home) / "baselines" if home else Path("manifests") / "baselines"


def search_dirs(option: str | None) -> list[Path]:
    """Where baselines are looked up: the configured folder, then the shipped ones."""
    if option:
        path = Path(option)
        if not path.is_dir():
            raise UserError(
                f"baseline folder {path} does not exist; create it or fix --baseline-dir."
            )
        return [path]
    dirs = [write_dir(None), shipped_dir()]
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and all(d.resolve() != s.resolve() for s in seen):
            seen.append(d)
    return seen


def _rerecord_old(data: dict[str, Any]) -> str:
    """An old baseline was made under other rules (field classes, hash, seeds): record it anew."""
    command = record_command(str(data.get("profile", "quick")), data.get("name"), force=True)
    return f"it was recorded under older rules; re-record it with `{command}`"


def load_baseline(path: Path) -> Baseline:
    meta = load_document(
        path / "baseline.yaml",
        kind="baseline",
        schema_version=BASELINE_SCHEMA_VERSION,
        required=("name", "profile", "workload_hash", "primary_seed", "environment_key"),
        recreate=_rerecord_old,
    )
    return Baseline(path, meta)


def list_baselines(dirs: list[Path]) -> list[Baseline]:
    found = []
    for d in dirs:
        for child in sorted(d.iterdir()):
            if child.is_dir() and (child / "baseline.yaml").is_file():
                found.append(load_baseline(child))
    return found


def find_baseline(name: str, dirs: list[Path]) -> Baseline:
    for d in dirs:
        if (d / name / "baseline.yaml").is_file():
            return load_baseline(d / name)
    where = ", ".join(str(d) for d in dirs) or "no baseline folder"
    raise UserError(f"no baseline named {name!r} in {where}; list them with `repro baseline list`.")


def record_command(
    profile: str, name: str | None = None, *, force: bool = False, sets: Sequence[str] = ()
) -> str:
    """The command that records a baseline, paste-able (values shell-quoted)."""
    words = ["repro", "baseline", "record", "--profile", profile]
    for pair in sets:
        words += ["--set", pair]
    if name:
        words += ["--name", name]
    if force:
        words.append("--force")
    return shlex.join(words)


@dataclass(frozen=True)
class Selection:
    baseline: Baseline | None
    differing_keys: list[str]
    message: str
    record: str | None = None  # when none applies: the command that records one


def _mismatch_score(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, list[str]]:
    weights = {"high": 100.0, "medium": 10.0, "low": 1.0}
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return sum(weights[key_info(k).impact] for k in differing), differing


def _another_training(profile: str, workload: str, sets: Sequence[str]) -> Selection | None:
    """No baseline fits because the user's own overrides define another training; else None."""
    from repro.profile import differing_fields, load_profile, parse_overrides
    from repro.workload import workload_hash

    base = load_profile(profile)
    if not sets or workload_hash(base.to_dict()) == workload:
        return None
    resolved = load_profile(profile, parse_overrides(list(sets)))
    classes = differing_fields(resolved.to_dict(), base.to_dict())
    fields = classes.get("semantic", []) + classes.get("precision", [])
    what = (
        "another training"
        if classes.get("semantic")
        else "another precision (a band calibrates rounding noise for its own precision only)"
    )
    command = record_command(profile, sets=sets)
    return Selection(
        None,
        [],
        f"the overrides {', '.join(fields) or ', '.join(sets)} define {what}, and no baseline "
        f"is recorded for it; record one with `{command}`.",
        command,
    )


def select_baseline(
    profile: str,
    workload: str,
    manifest: dict[str, Any],
    dirs: list[Path],
    name: str | None = None,
    *,
    sets: Sequence[str] = (),
) -> Selection:
    """The matching baseline with the closest environment key (weighted by impact).

    ``workload`` is the run's own hash (after its ``--set`` overrides): a baseline of
    another training or another precision never matches it.
    """
    env = environment_key(manifest)
    if name is not None:
        chosen = find_baseline(name, dirs)
        if chosen.meta["profile"] != profile:
            raise UserError(
                f"baseline {name!r} was recorded for profile {chosen.meta['profile']!r}, not {profile!r}; "
                f"pass --profile {chosen.meta['profile']} or pick another baseline."
            )
        if chosen.meta["workload_hash"] != workload:
            override = _another_training(profile, workload, sets)
            if override is not None:
                return override
            raise UserError(
                f"baseline {name!r} was recorded for workload {chosen.meta['workload_hash']} but the reference "
                f"workload is now {workload}; re-record it with `{record_command(profile, name, force=True)}`."
            )
        _, differing = _mismatch_score(env, chosen.meta["environment_key"])
        return Selection(chosen, differing, f"baseline {name} (chosen with --baseline)")
    same_profile = [b for b in list_baselines(dirs) if b.meta["profile"] == profile]
    current = [b for b in same_profile if b.meta["workload_hash"] == workload]
    if not current:
        override = _another_training(profile, workload, sets)
        if override is not None:
            return override
        if same_profile:
            stale = ", ".join(b.name for b in same_profile)
            command = record_command(profile, same_profile[0].name, force=True)
            return Selection(
                None,
                [],
                f"the {profile} baseline(s) {stale} were recorded for another reference workload "
                f"(now {workload}) and no longer apply; re-record with `{command}`.",
                command,
            )
        command = record_command(profile)
        return Selection(
            None, [], f"no {profile} baseline exists; record one with `{command}`.", command
        )
    scored = sorted(
        ((_mismatch_score(env, b.meta["environment_key"]), b.name, b) for b in current),
        key=lambda t: (t[0][0], t[1]),
    )
    (_score, differing), _, best = scored[0]
    how = (
        "an exact environment-key match"
        if not differing
        else f"closest environment key; {len(differing)} key(s) differ"
    )
    return Selection(best, differing, f"baseline {best.name} ({how})")


# -- recording ------------------------------------------------------------------------------


def hardware_name(profile: str, manifest: dict[str, Any]) -> str:
    """A baseline name from the hardware key, e.g. ``quick-cpu-x86_64-avx512-bf16``."""
    run = manifest.get("run", {})
    if run.get("device") == "cuda":
        gpus = manifest.get("hardware", {}).get("gpus")
        first = gpus[0] if isinstance(gpus, list) and gpus and isinstance(gpus[0], dict) else {}
        gpu = re.sub(r"[^a-z0-9]+", "-", str(first.get("name", "gpu")).lower()).strip("-")
        cc = str(first.get("compute_capability", "")).replace(".", "")
        return f"{profile}-cuda-{gpu}" + (f"-sm{cc}" if cc else "")
    cpu = manifest.get("hardware", {}).get("cpu", {})
    arch = str(
        manifest.get("libraries", {}).get("platform", {}).get("machine", "")
        or cpu.get("arch", "")
        or "cpu"
    )
    capability = str(cpu.get("torch_capability", "unknown")).lower()
    flags = cpu.get("isa_flags", []) or []
    extra = "-bf16" if "avx512_bf16" in flags or "amx_bf16" in flags else ""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{profile}-cpu-{arch}-{capability}{extra}")
