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

import math
import os
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from repro import atomic
from repro.band_sizes import MIN_MEMBERS
from repro.documents import load_document
from repro.errors import RunFailed, UserError
from repro.judge import Bands, RunView, numerics_check, series
from repro.manifest.keys import environment_key, key_info

BASELINE_SCHEMA_VERSION = 2  # 2: field classes, the numerics-only workload hash, new seed streams
BAND_SCHEMA_VERSION = 1
DEFAULT_ALPHA = 0.01
DEFAULT_WINDOWS = 5
# Sane ranges of a baseline's band parameters: outside them a band judges nothing.
BAND_PARAMETER_RANGES = {
    "alpha": (1e-6, 0.1),
    "windows": (1, 100),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BandRejected(RunFailed):
    """The recorded band fails its own leave-one-out check."""


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


def _final(view: RunView) -> dict[str, Any]:
    final = view.final or {}
    return {"eval_loss": final["eval_loss"], "eval_accuracy": final["eval_accuracy"]}


def _exceedance(check: Any) -> float:
    """How far a member lies beyond its band, in log units (positive: outside)."""

    def log(x: float) -> float:
        return math.log(max(x, 1e-300))

    scores = [log(w.value) - log(w.threshold) for w in check.windows]
    scores += [log(abs(f.value - f.reference)) - log(f.high - f.reference) for f in check.finals]
    return max(scores, default=-math.inf)


def leave_one_out(
    primary: RunView,
    members: list[RunView],
    *,
    alpha: float,
    windows: int,
    resolution: dict[str, float],
) -> tuple[list[int], int, list[str]]:
    """Judge each member against the others; returns (flagged member indices, allowed, messages).

    Outliers mask each other in a plain leave-one-out pass (two broken members
    widen each other's band), so it proceeds like Rosner's generalised ESD test:
    repeatedly set aside the member that lies furthest outside the band of the
    remaining others; the flagged ones are the first r set aside, for the largest
    r whose r-th one failed its check.
    """
    from scipy import stats

    data = [{"series": series(m.steps), "final": _final(m)} for m in members]
    reference = series(primary.steps)
    allowed = int(stats.binom.ppf(0.99, len(members), alpha))
    remaining = list(range(len(members)))
    verdicts: list[tuple[int, bool, Any]] = []
    # Whether the failures exceed `allowed` is all that matters beyond them: set aside at most allowed + 1.
    while len(remaining) > 3 and len(verdicts) <= allowed:
        checks = {}
        for i in remaining:
            others = [data[j] for j in remaining if j != i]
            checks[i] = numerics_check(
                data[i]["series"],
                members[i].final,
                reference,
                others,
                alpha=alpha,
                windows=windows,
                resolution=resolution,
            )
        worst = max(remaining, key=lambda i: _exceedance(checks[i]))
        verdicts.append((worst, not checks[worst].ok, checks[worst]))
        remaining.remove(worst)
    failing = max((r + 1 for r, (_, failed, _) in enumerate(verdicts) if failed), default=0)
    messages = [
        f"member {i} ({members[i].name}) leaves the band of the others from step {check.first_step_outside}"
        for i, _, check in verdicts[:failing]
    ]
    return [i for i, _, _ in verdicts[:failing]], allowed, messages


# Rounds of replacing flagged members before a recording is refused: a replacement
# that is flagged again means the machine itself is not behaving.
REPLACEMENT_ROUNDS = 2
Replacer = Callable[[list[int]], list[RunView]]


def checked_members(
    primary: RunView,
    members: list[RunView],
    *,
    first_spare: int,
    replace: Replacer | None,
    resolution: dict[str, float],
) -> tuple[list[RunView], dict[str, Any]]:
    """Leave every flagged member out and record a replacement, or refuse the band.

    A flagged member is never kept: one broken member widens the loss and
    gradient-norm bounds by orders of magnitude. The allowed count (the 99th
    percentile of Binomial(K, alpha)) decides only whether the recording as a
    whole is refused: more flagged members than chance explains.
    """
    replaced: list[str] = []
    spare = first_spare
    for round_ in range(REPLACEMENT_ROUNDS + 1):
        flagged, allowed, messages = leave_one_out(
            primary, members, alpha=DEFAULT_ALPHA, windows=DEFAULT_WINDOWS, resolution=resolution
        )
        if not flagged:
            return members, {"replaced": replaced, "allowed": allowed}
        if len(flagged) > allowed or round_ == REPLACEMENT_ROUNDS or replace is None:
            why = (
                f"{len(flagged)} of {len(members)} members fail the leave-one-out check but at most "
                f"{allowed} may at alpha {DEFAULT_ALPHA}"
                if len(flagged) > allowed
                else f"{len(flagged)} member(s) still fail the leave-one-out check after "
                f"{round_} round(s) of replacement"
                if replace is not None
                else f"{len(flagged)} member(s) fail the leave-one-out check and none can be replaced"
            )
            raise BandRejected(
                f"the numerics band is refused: {why} ({'; '.join(messages[:3])}); nothing was written"
            )
        indices = list(range(spare, spare + len(flagged)))
        spare += len(flagged)
        fresh = replace(indices)
        bad = [v for v in fresh if v.status.get("status") != "COMPLETE"]
        if bad:
            raise RunFailed(
                f"a replacement band member failed: {bad[0].name}: {bad[0].status.get('reason')}"
            )
        replaced += [members[i].name for i in flagged]
        members = [m for i, m in enumerate(members) if i not in flagged] + fresh
    raise AssertionError("unreachable")  # the loop returns or raises


def final_resolution(primary: RunView) -> dict[str, float]:
    """The smallest meaningful step of each final metric: one token of accuracy.
    Prediction intervals never get narrower than this."""
    settings = primary.config["settings"]
    tokens = settings["data"]["eval_samples"] * settings["model"]["seq_len"]
    return {"eval_accuracy": 1.0 / tokens, "eval_loss": 0.0}


def build_band(primary: RunView, members: list[RunView], seeds: list[RunView]) -> dict[str, Any]:
    return {
        "schema_version": BAND_SCHEMA_VERSION,
        "members": [
            {"run": m.name, "series": series(m.steps), "final": _final(m)} for m in members
        ],
        "seeds": [{"seed": s.seed, **_final(s)} for s in seeds],
        "resolution": final_resolution(primary),
    }


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
) -> Path:
    """Write the baseline folder atomically: build it beside the target, then rename into place."""
    if not _NAME.match(name):
        raise UserError(
            f"baseline name {name!r} is not valid; use letters, digits, '.', '_' and '-'."
        )
    root.mkdir(parents=True, exist_ok=True)
    target = root / name
    if target.exists() and not force:
        raise UserError(f"baseline {target} already exists; pass --force to replace it.")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
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
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root))
    try:
        os.chmod(staging, 0o777 & ~atomic.umask())
        atomic.write_yaml(staging / "baseline.yaml", meta)
        shutil.copyfile(Path(primary.path) / "manifest.yaml", staging / "manifest.yaml")
        shutil.copyfile(Path(primary.path) / "config.yaml", staging / "config.yaml")
        atomic.write_json(staging / "record.json", primary.record)
        atomic.write_json(staging / "band.json", band, indent=None)
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


def baseline_plan(
    profile: str, numerics: int, seeds: int, sets: Sequence[str] = ()
) -> tuple[list[list[str]], list[int]]:
    """The ``--set`` lists of a baseline's runs: primary, band members, other seeds.

    ``sets`` record a baseline for another training or precision than the profile's
    own; harness settings (faults, band perturbations) never make a baseline.
    """
    from repro.profile import field_classes, load_profile, parse_overrides

    if numerics < MIN_MEMBERS or seeds < MIN_MEMBERS:
        raise UserError(
            f"--numerics {numerics} and --seeds {seeds} must both be at least {MIN_MEMBERS}: "
            "fewer make a band wide enough to pass anything."
        )
    overrides = parse_overrides(list(sets))
    classes = field_classes()
    for key in overrides:
        if classes.get(key) == "harness" or key.startswith("fault."):
            raise UserError(
                f"--set {key} is a harness setting (faults, band perturbations, tracing); "
                "a baseline is recorded without it."
            )
    primary_seed = load_profile(profile, overrides).seed
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
    band = build_band(primary, members, seeds)
    chosen = name or hardware_name(primary.config["profile"], primary.manifest)
    path = write_baseline(
        root, chosen, primary, band, numerics=numerics, seeds=seed_list, force=force, sets=sets
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
    from repro.runner import launch, prepare_run

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
    from repro.runner import launch, prepare_run

    plan, seed_list = baseline_plan(profile, numerics, seeds, sets)
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
