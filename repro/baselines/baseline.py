"""Baselines: record, load, and select by profile + workload hash + environment key.

A baseline is a folder ``<baseline-dir>/<name>/``::

    baseline.yaml   what it is valid for: profile, workload hash, environment key, band parameters
    manifest.yaml   the primary run's environment
    config.yaml     the primary run's resolved config
    record.json     the primary run's exact record (primary seed, unperturbed)
    band.json       numerics-band members' curves and final metrics; the seed band's finals
    README.md       how and when it was made

``baseline.yaml`` also holds what the baseline was recorded with (``numerics_members``,
``seeds``) and a sha256 digest of each file it judges by (``sha256``): a member deleted
or duplicated, a value edited or a file cut short is refused before it judges a run.
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

from repro.baselines.band_sizes import DEFAULT_ALPHA, DEFAULT_WINDOWS
from repro.baselines.integrity import check_band, check_digests, check_finite, check_parameters
from repro.documents import load_document
from repro.errors import UserError
from repro.judge.bands import Bands
from repro.judge.tails import describe
from repro.manifest.keys import environment_key, judged_against, key_info
from repro.manifest.schema import load_manifest
from repro.profile import differing_fields, load_profile, parse_overrides
from repro.runs.runview import RunView, series
from repro.runs.store import CONFIG_SCHEMA_VERSION, RECORD_SCHEMA_VERSION
from repro.runs.workload import workload_hash

BAND_SCHEMA_VERSION = 1
BASELINE_SCHEMA_VERSION = 2  # 2: field classes, the numerics-only workload hash, new seed streams
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Baseline:
    path: Path
    meta: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    def primary(self) -> RunView:
        """The primary run, loaded and checked once (the bands measure every deviation from it)."""
        return self._checked[0]

    def bands(self) -> Bands:
        """The bands, checked: enough members, sane parameters, intact files (see ``_checked``)."""
        primary, data = self._checked
        return Bands(
            name=self.name,
            alpha=float(self.meta.get("alpha", DEFAULT_ALPHA)),
            windows=int(self.meta.get("windows", DEFAULT_WINDOWS)),
            primary_seed=int(self.meta["primary_seed"]),
            primary=series(primary.steps),
            workload_hash=str(self.meta["workload_hash"]),
            members=list(data["members"]),
            seeds=list(data["seeds"]),
            resolution=dict(data.get("resolution", {})),
        )

    def check(self) -> None:
        """Raise ``UserError`` if the baseline is damaged (what ``baseline list`` reports)."""
        self._checked  # noqa: B018 -- the cached property raises on damage

    @cached_property
    def _checked(self) -> tuple[RunView, dict[str, Any]]:
        """The primary run and the band document, after every check of the baseline's files:
        a baseline never judges a run with one of its files edited, cut short or non-finite."""
        check_parameters(self.path / "baseline.yaml", self.meta, self._rerecord)
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
        primary = series(view.steps)
        check_finite(
            self.path / "record.json", [("the primary run", primary, view.final)], self._rerecord
        )
        data = load_document(
            self.path / "band.json",
            kind="baseline band",
            schema_version=BAND_SCHEMA_VERSION,
            required=("members", "seeds"),
        )
        check_band(self.path / "band.json", self.meta, data, len(view.steps), self._rerecord)
        check_digests(self.path, self.meta, self._rerecord)
        return view, data

    @property
    def _rerecord(self) -> str:
        command = rerecord_command(
            self.path, str(self.meta["profile"]), self.name, self.meta.get("sets", ())
        )
        return f"re-record it with `{command}`."


# -- where baselines live -------------------------------------------------------------------


def shipped_dir() -> Path:
    """The committed baselines: package data in a wheel, ``manifests/`` in a source checkout."""
    try:
        return Path(str(resources.files("repro._manifests").joinpath("baselines")))
    except ModuleNotFoundError:  # running from a checkout (editable install or PYTHONPATH)
        return Path(__file__).resolve().parents[2] / "manifests" / "baselines"


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


def rerecord_command(path: Path, profile: str, name: str | None, sets: Sequence[str] = ()) -> str:
    """The command that records the baseline at ``path`` anew, in the folder it lives in."""
    folder, default = path.parent, write_dir(None)
    elsewhere = not default.is_dir() or folder.resolve() != default.resolve()
    return record_command(
        profile, name, force=True, sets=sets, baseline_dir=str(folder) if elsewhere else None
    )


def load_baseline(path: Path) -> Baseline:
    def rerecord_old(data: dict[str, Any]) -> str:
        """Made under other rules (field classes, hash, seeds): record it anew."""
        command = rerecord_command(path, str(data.get("profile", "quick")), data.get("name"))
        return f"it was recorded under older rules; re-record it with `{command}`"

    meta = load_document(
        path / "baseline.yaml",
        kind="baseline",
        schema_version=BASELINE_SCHEMA_VERSION,
        required=("name", "profile", "workload_hash", "primary_seed", "environment_key"),
        recreate=rerecord_old,
    )
    return Baseline(path, meta)


def list_baselines(dirs: list[Path]) -> list[Baseline]:
    found = []
    for d in dirs:
        for child in sorted(d.iterdir()):
            if child.is_dir() and (child / "baseline.yaml").is_file():
                found.append(load_baseline(child))
    return found


@dataclass(frozen=True)
class Listed:
    """A baseline folder as ``repro baseline list`` shows it."""

    name: str
    profile: str
    workload_hash: str
    state: str  # "current", "stale (re-record)" or "damaged"
    path: Path
    problem: str = ""  # why it is damaged: the sentence judging with it would end in
    tails: str = ""  # the band's tail diagnostics in one line (``repro.judge.tails.describe``)


def survey_baselines(dirs: list[Path]) -> list[Listed]:
    """Every baseline folder and whether it can judge: current, stale, or damaged."""
    found = []
    for d in dirs:
        for child in sorted(d.iterdir()):
            if not (child.is_dir() and (child / "baseline.yaml").is_file()):
                continue
            meta: dict[str, Any] = {}
            try:
                baseline = load_baseline(child)
                meta = baseline.meta
                baseline.check()
            except UserError as damage:
                found.append(
                    Listed(
                        str(meta.get("name", child.name)),
                        str(meta.get("profile", "?")),
                        str(meta.get("workload_hash", "?")),
                        "damaged",
                        child,
                        str(damage),
                    )
                )
                continue
            try:
                settings = load_profile(meta["profile"], parse_overrides(meta.get("sets")))
                current = workload_hash(settings.to_dict()) == meta["workload_hash"]
            except UserError:
                current = False
            state = "current" if current else "stale (re-record)"

            found.append(
                Listed(
                    baseline.name,
                    str(meta["profile"]),
                    str(meta["workload_hash"]),
                    state,
                    child,
                    tails=describe(meta.get("tails")),
                )
            )
    return found


def find_baseline(name: str, dirs: list[Path]) -> Baseline:
    for d in dirs:
        if (d / name / "baseline.yaml").is_file():
            return load_baseline(d / name)
    where = ", ".join(str(d) for d in dirs) or "no baseline folder"
    raise UserError(f"no baseline named {name!r} in {where}; list them with `repro baseline list`.")


def record_command(
    profile: str,
    name: str | None = None,
    *,
    force: bool = False,
    sets: Sequence[str] = (),
    baseline_dir: str | None = None,
) -> str:
    """The command that records a baseline, paste-able (values shell-quoted); with
    ``baseline_dir`` it writes where the user's own ``--baseline-dir`` looks."""
    words = ["repro", "baseline", "record", "--profile", profile]
    for pair in sets:
        words += ["--set", pair]
    if name:
        words += ["--name", name]
    if force:
        words.append("--force")
    if baseline_dir:
        words += ["--baseline-dir", baseline_dir]
    return shlex.join(words)


@dataclass(frozen=True)
class Selection:
    baseline: Baseline | None
    differing_keys: list[str]
    message: str
    record: str | None = None  # when none applies: the command that records one


def _mismatch_score(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, list[str]]:
    weights = {"high": 100.0, "medium": 10.0, "low": 1.0}
    # ``b`` is the baseline's key: one recorded before a key was added lacks it, and is not
    # judged on it (a CPU run reads "absent" there; a GPU run its device).
    keys = {k for k in set(a) | set(b) if judged_against(k, b)}
    differing = sorted(k for k in keys if a.get(k) != b.get(k))
    return sum(weights[key_info(k).impact] for k in differing), differing


def _another_training(
    profile: str, workload: str, sets: Sequence[str], baseline_dir: str | None
) -> Selection | None:
    """No baseline fits because the user's own overrides define another training; else None."""
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
    command = record_command(profile, sets=sets, baseline_dir=baseline_dir)
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
    baseline_dir: str | None = None,
) -> Selection:
    """The matching baseline with the closest environment key (weighted by impact).

    ``workload`` is the run's own hash (after its ``--set`` overrides): a baseline of
    another training or another precision never matches it. ``baseline_dir`` is the
    user's ``--baseline-dir``: the command a NO_BASELINE suggests records into it.
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
            override = _another_training(profile, workload, sets, baseline_dir)
            if override is not None:
                return override
            raise UserError(
                f"baseline {name!r} was recorded for workload {chosen.meta['workload_hash']} but the reference "
                f"workload is now {workload}; re-record it with "
                f"`{record_command(profile, name, force=True, baseline_dir=baseline_dir)}`."
            )
        _, differing = _mismatch_score(env, chosen.meta["environment_key"])
        return Selection(chosen, differing, f"baseline {name} (chosen with --baseline)")
    same_profile = [b for b in list_baselines(dirs) if b.meta["profile"] == profile]
    current = [b for b in same_profile if b.meta["workload_hash"] == workload]
    if not current:
        override = _another_training(profile, workload, sets, baseline_dir)
        if override is not None:
            return override
        if same_profile:
            stale = ", ".join(b.name for b in same_profile)
            command = record_command(
                profile, same_profile[0].name, force=True, baseline_dir=baseline_dir
            )
            return Selection(
                None,
                [],
                f"the {profile} baseline(s) {stale} were recorded for another reference workload "
                f"(now {workload}) and no longer apply; re-record with `{command}`.",
                command,
            )
        command = record_command(profile, baseline_dir=baseline_dir)
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
