"""``repro verify``: capture -> run the reference -> compare with a baseline -> verdict.

The exit code is the verdict's (``repro.verdict.Verdict``); bad input is 2.
A ``--set`` override of a semantic or precision field defines another training:
its workload hash matches no baseline of the unmodified profile, so the verdict
is NO_BASELINE with the command that records a baseline for that training.
``--resume-at K`` also stops a run of the same training after step K (in the same launch)
and resumes it with its full state: one exact row, the resumed run bit-equal to the
candidate, and a failed row is DRIFT.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from repro import atomic
from repro.baselines.band_sizes import DEFAULT_NUMERICS, DEFAULT_SEEDS
from repro.baselines.baseline import (
    Selection,
    find_baseline,
    list_baselines,
    search_dirs,
    select_baseline,
    write_dir,
)
from repro.baselines.recording import check_recordable, record_baseline
from repro.commands import options
from repro.errors import Unfit, UserError
from repro.judge.comparison import Comparison, compare
from repro.judge.curves import Judged, judged
from repro.judge.exact import ExactCheck
from repro.judge.resumes import resume_check, resume_check_name
from repro.judge.seed_runs import SeedRuns, judge_seed_runs
from repro.manifest.nvml import cuda_device_uuids
from repro.manifest.schema import MANIFEST_FILE, load_manifest, write_manifest
from repro.preflight.check import Preflight
from repro.profile import Profile, load_profile, parse_overrides
from repro.runs.prepare import PlanEntry, prepare_run
from repro.runs.resumes import PIECES, prepare_resume, prepare_stop, stopped_run
from repro.runs.runner import Outcome, launch
from repro.runs.runview import RunView
from repro.runs.seed_runs import (
    SeedRunResult,
    prepare_seed_runs,
    seed_run_count,
    seed_run_results,
    seed_run_seeds,
)
from repro.runs.workload import workload_hash

RESUME_DIR = "resume"  # --resume-at's stopped and resumed runs, inside the candidate's folder


@dataclass
class VerifyResult:
    judged: Judged  # the comparison and the loss curves its report draws
    run_dir: Path
    recorded: Path | None = None  # the baseline ``--record-missing`` recorded after judging

    @property
    def comparison(self) -> Comparison:
        return self.judged.comparison

    @property
    def exit_code(self) -> int:
        return self.comparison.verdict.exit_code


@dataclass(frozen=True)
class VerifyOptions:
    """What one ``repro verify`` was asked, built once from the command line and passed
    through unchanged; ``--per-device`` derives each device's copy with ``replace``."""

    profile: str
    sets: tuple[str, ...] = ()  # --set KEY=VALUE overrides, in the order given
    runs_dir: Path = Path("runs")
    baseline_name: str | None = None  # --baseline; None: the best match
    baseline_dir: str | None = None
    repeat: int = 1
    repo: str | None = None  # whose git state is recorded; None: the current folder
    quiet: bool = False
    verbose: bool = False
    record_missing: bool = False
    preflight: bool = True
    strict: bool = False  # a preflight warning is unfit too
    expect_gpus: int | None = None
    resume_at: int | None = None
    seed_runs: int = 0  # --seed-runs N: N more runs with new seeds; 0: none
    env: dict[str, str] | None = None  # set in the ranks' environment (one device's run)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> VerifyOptions:
        # --per-device tests GPUs, so its default profile is the GPU one; only the default
        # profile of a plain verify is announced.
        profile = (args.profile or "full") if args.per_device else options.profile_name(args)
        return cls(
            profile=profile,
            sets=tuple(args.set),
            runs_dir=options.runs_dir(args),
            baseline_name=args.baseline,
            baseline_dir=args.baseline_dir,
            repeat=args.repeat,
            repo=args.repo,
            quiet=args.quiet,
            verbose=args.verbose,
            record_missing=args.record_missing,
            preflight=not args.no_preflight,
            strict=args.strict,
            expect_gpus=args.expect_gpus,
            resume_at=args.resume_at,
            seed_runs=seed_run_count(args.seed_runs) if args.seed_runs is not None else 0,
        )


def verify(opts: VerifyOptions) -> VerifyResult:
    """Plan -> launch, the preflight beside the launcher's start -> load -> select a baseline
    -> judge -> keep the verdict; then, only when asked and none matched, record a baseline
    for the next run (the verdict stands). A failed preflight check raises ``Unfit`` before
    any rank starts, and the planned runs' folders are removed."""
    if opts.repeat < 1:
        raise UserError(f"--repeat {opts.repeat} must be at least 1.")
    if opts.seed_runs:  # one rule for the count, whoever built the options
        seed_run_count(str(opts.seed_runs))
    sets = list(opts.sets)
    profile = load_profile(opts.profile, parse_overrides(sets))
    workload = workload_hash(profile.to_dict())
    dirs = search_dirs(opts.baseline_dir)
    _check_inputs(profile, workload, dirs, opts)
    entries = [
        prepare_run(
            opts.profile,
            sets,
            runs_dir=opts.runs_dir,
            repo=opts.repo,
            quiet=opts.quiet or i > 0,
            env=opts.env,
        )
        for i in range(opts.repeat)
    ]
    if opts.resume_at is not None:
        entries.append(_stop_entry(opts, opts.resume_at, entries[0]))
    seeds = seed_run_seeds(profile.seed, opts.seed_runs)  # last: a failed one stops no other
    entries += prepare_seed_runs(
        opts.profile, sets, seeds, runs_dir=opts.runs_dir, repo=opts.repo, env=opts.env
    )
    launched, health = _launch_checked(entries, profile, opts)
    split = len(launched) - len(seeds)
    outcomes, seed_outcomes = launched[:split], launched[split:]
    checks: tuple[list[ExactCheck], list[str]] = ([], [])
    if opts.resume_at is not None:
        stopped, outcomes = outcomes[-1], outcomes[:-1]
        checks = _resume_row(stopped, opts.resume_at, outcomes[0], opts)
    if health is not None:
        _attach_preflight(outcomes[0].run_dir, health)
    views = [RunView.from_run_dir(o.run_dir) for o in outcomes]
    candidate, repeats = views[0], views[1:]
    selection = select_baseline(
        profile.name,
        workload,
        candidate.manifest,
        dirs,
        opts.baseline_name,
        sets=sets,
        baseline_dir=opts.baseline_dir,
    )
    seed_section = _seed_runs(seed_run_results(seed_outcomes, seeds), selection) if seeds else None
    judgement = _judge(candidate, repeats, selection, checks, seed_section)
    result = VerifyResult(judgement, Path(candidate.path))
    _keep_verdict(result.run_dir, result.comparison)
    if (
        selection.baseline is None
        and opts.record_missing
        and candidate.status.get("status") == "COMPLETE"
    ):
        result.recorded, _ = record_baseline(
            opts.profile,
            name=None,
            numerics=DEFAULT_NUMERICS,
            seeds=DEFAULT_SEEDS,
            root=write_dir(opts.baseline_dir),
            runs_dir=opts.runs_dir,
            force=False,
            repo=opts.repo,
            env=opts.env,
            sets=sets,
        )
    return result


def _launch_checked(
    entries: list[PlanEntry], profile: Profile, opts: VerifyOptions
) -> tuple[list[Outcome], Preflight | None]:
    """The launch, with the preflight run while the launcher starts: no rank starts before
    it passed, and an unfit host leaves no run behind."""
    fit: list[Preflight] = []

    def before_ranks() -> None:
        if opts.preflight:
            fit.append(_check_fit(profile, opts.strict, opts.expect_gpus))
        # The launcher is still importing torch and the training code on the other core:
        # judging's one slow import (SciPy's special functions, a third of a second) is free.
        import scipy.special  # noqa: F401

    launched = launch(entries, env=opts.env, verbose=opts.verbose, before_ranks=before_ranks)
    return launched, (fit[0] if fit else None)


def _check_fit(profile: Profile, strict: bool, expect_gpus: int | None) -> Preflight:
    from repro.preflight.run import run_preflight

    # The devices checked are the ones this job's CUDA_VISIBLE_DEVICES lets it use: with
    # --per-device, every GPU the runs will take in turn.
    health = run_preflight(
        ranks=profile.world_size,
        threads=profile.threads_per_rank,
        device=profile.device,
        expect_gpus=expect_gpus,
    )
    if health.unfit(strict):
        raise Unfit(health, strict)
    return health


def _attach_preflight(run_dir: Path, health: Preflight) -> None:
    """The run's manifest gets a ``preflight`` section (volatile: recorded, never compared)."""
    path = Path(run_dir) / MANIFEST_FILE
    if path.is_file():
        manifest = load_manifest(path)
        write_manifest(path, {**manifest, "preflight": health.to_dict()})


def _check_inputs(profile: Profile, workload: str, dirs: list[Path], opts: VerifyOptions) -> None:
    """Bad input fails before any training: an unknown or damaged baseline (any one that
    could judge this run), a ``--resume-at`` step the run never reaches, or a ``--set``
    that ``--record-missing`` could not record a baseline with."""
    resume_at = opts.resume_at
    if resume_at is not None and not 0 <= resume_at < profile.steps - 1:
        raise UserError(
            f"--resume-at {resume_at} must be a step before the last: 0 to "
            f"{profile.steps - 2} for this profile's {profile.steps} steps."
        )
    if opts.baseline_name is not None:
        find_baseline(opts.baseline_name, dirs).check()
    else:
        for stored in list_baselines(dirs):
            if (stored.meta["profile"], stored.meta["workload_hash"]) == (profile.name, workload):
                stored.check()
    if opts.record_missing:
        check_recordable(opts.sets)


def _stop_entry(opts: VerifyOptions, step: int, candidate: PlanEntry) -> PlanEntry:
    """The run to stop after ``step``, kept inside the candidate's folder (its evidence)."""
    runs_dir = Path(candidate.run_dir) / RESUME_DIR
    return prepare_stop(
        opts.profile,
        list(opts.sets),
        step,
        runs_dir=runs_dir,
        repo=opts.repo,
        quiet=True,
        env=opts.env,
    )


def _resume_row(
    stopped: Outcome, step: int, candidate: Outcome, opts: VerifyOptions
) -> tuple[list[ExactCheck], list[str]]:
    """Resume the stopped run with every piece and hold it to the candidate: one exact row
    (its failure names the step where they part), and a note saying where it resumed."""
    name = resume_check_name(step)
    if stopped.status != "STOPPED":
        why = f"the run to stop after step {step} ended {stopped.status}: {stopped.reason}"
        return [ExactCheck(name, False, None, why)], []
    entry = prepare_resume(
        stopped_run(stopped.run_dir),
        PIECES,
        runs_dir=Path(stopped.run_dir).parent,
        repo=opts.repo,
        quiet=True,
        env=opts.env,
    )
    (outcome,) = launch([entry], env=opts.env, verbose=opts.verbose)
    if not outcome.ok:
        why = f"the run resumed at step {step} ended {outcome.status}: {outcome.reason}"
        return [ExactCheck(name, False, None, why)], []
    return resume_check(
        RunView.from_run_dir(outcome.run_dir), RunView.from_run_dir(candidate.run_dir)
    )


def _judge(
    candidate: RunView,
    repeats: list[RunView],
    selection: Selection,
    resume: tuple[list[ExactCheck], list[str]] = ([], []),
    seed_runs: SeedRuns | None = None,
) -> Judged:
    """The candidate against the selected baseline, how it was chosen as the first note;
    ``resume``: the resume row and its note (``--resume-at``); ``seed_runs``: the seed
    runs' section (``--seed-runs``), which the judge folds into the verdict."""
    message = selection.message
    base = selection.baseline
    checks, resume_notes = resume
    if base is None:
        comparison = compare(
            candidate,
            None,
            repeats=repeats,
            notes=[message, *resume_notes],
            next_command=selection.record,
            checks=checks,
            seed_runs=seed_runs,
        )
        return judged(comparison, candidate, None)
    if selection.differing_keys:
        shown = ", ".join(selection.differing_keys[:6])
        more = len(selection.differing_keys) - 6
        message += f": {shown}" + (f" and {more} more" if more > 0 else "")
    reference, bands = base.primary(), base.bands()
    comparison = compare(
        candidate,
        reference,
        bands=bands,
        repeats=repeats,
        notes=[message, *resume_notes],
        checks=checks,
        seed_runs=seed_runs,
    )
    return judged(comparison, candidate, reference, bands)


def _seed_runs(runs: list[SeedRunResult], selection: Selection) -> SeedRuns:
    """The seed runs against the baseline's stored seeds (not applied without a baseline)."""
    if selection.baseline is None:
        why = "no baseline matched, so there are no stored seeds to compare with"
        return SeedRuns(None, False, why, 0.0, [r.seed for r in runs], [], [], [])
    bands = selection.baseline.bands()
    return judge_seed_runs(runs, bands.seeds, alpha=bands.alpha, resolution=bands.resolution)


def _keep_verdict(run_dir: Path, comparison: Comparison) -> None:
    atomic.write_json(run_dir / "verdict.json", comparison.to_dict())


def gpu_count(nvml: Any = None) -> int:
    """GPUs NVML sees; 0 without a driver. Never initialises CUDA in this process.

    ``nvml`` is the pynvml module by default; tests pass a fake with the same functions.
    """
    try:
        if nvml is None:
            import pynvml

            nvml = pynvml
        nvml.nvmlInit()
        try:
            return int(nvml.nvmlDeviceGetCount())
        finally:
            nvml.nvmlShutdown()
    except Exception:
        return 0


def _is_device_entry(entry: str) -> bool:
    return entry.isdigit() or entry.startswith(("GPU-", "MIG-"))


def devices_to_test(visible: str | None, nvml_uuids: list[str]) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each per-device run, in order.

    ``visible`` is the job's own ``CUDA_VISIBLE_DEVICES`` (None when unset): a scheduler
    (Slurm, Kubernetes) sets it to the GPUs the job may touch, so each entry, as written
    (index, ``GPU-`` or ``MIG-`` UUID), is one run and means the same GPU alone as it meant
    in the list. Unset, the runs go by NVML's UUIDs (``nvml_uuids``), which name a GPU or MIG
    instance whatever order CUDA counts in (fastest first by default; NVML counts in PCI bus
    order, so an NVML index would be the wrong GPU).
    """
    if visible is None:
        return list(nvml_uuids)
    devices = []
    for entry in (part.strip() for part in visible.split(",")):
        if not _is_device_entry(entry):
            break  # CUDA ignores an invalid entry and every one after it (`-1` hides them all)
        devices.append(entry)
    return devices


def verify_per_device(opts: VerifyOptions, *, nvml: Any = None) -> list[VerifyResult]:
    """Run the profile once on each GPU this job may use: the cheapest way to find a faulty card.

    ``nvml``: the pynvml module by default; tests pass a fake.
    """
    count = gpu_count(nvml)
    if count < 1:
        raise UserError("--per-device needs NVIDIA GPUs, and NVML sees none on this machine.")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    targets = devices_to_test(visible, cuda_device_uuids(nvml) if visible is None else [])
    if not targets and visible is not None:
        raise UserError(
            f"CUDA_VISIBLE_DEVICES={visible!r} lets this job use no GPU; unset it or list "
            "the GPUs to test."
        )
    if not targets:
        raise UserError(
            f"NVML sees {count} GPU(s) but CUDA can use none: MIG mode is on without MIG "
            "instances; create instances or turn MIG mode off."
        )
    results = []
    for number, target in enumerate(targets, start=1):
        print(
            f"repro: device {number} of {len(targets)} (CUDA_VISIBLE_DEVICES={target})",
            file=sys.stderr,
        )
        # The node's health is checked once, before the first device.
        device_opts = replace(
            opts, env={"CUDA_VISIBLE_DEVICES": target}, preflight=opts.preflight and number == 1
        )
        results.append(verify(device_opts))
    return results
