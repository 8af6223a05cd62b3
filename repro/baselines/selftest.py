"""``repro selftest``: prove the verdicts on this machine.

Runs the reference under controlled perturbations (``selftest.yaml``), judges
each against a baseline recorded in the same session, and checks the verdict
and the top-ranked cause of every row. Two rows sit at the decision itself: the
update-scale fault at a third of and at three times the profile's measured
detection threshold. Negative control, at no extra launch: each row names a
control row whose run, judged against this row's expectation, must fail it --
a run of another verdict (the margin rows for most), never just an unperturbed
record that fails because it is bit-identical.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from repro.baselines.band_sizes import DEFAULT_NUMERICS, DEFAULT_SEEDS
from repro.baselines.baseline import Baseline, load_baseline
from repro.baselines.recording import assemble_baseline, baseline_plan, spare_members
from repro.judge.comparison import Comparison, compare
from repro.judge.resumes import resume_check_name
from repro.runs.prepare import PlanEntry, prepare_run
from repro.runs.resumes import PIECES, prepare_resume, prepare_stop, stopped_run
from repro.runs.runner import launch
from repro.runs.runview import RunView
from repro.runs.store import Run

# One level below each CPU capability torch dispatches to (x86); absent: nothing lower.
LOWER_CAPABILITY = {"AVX512": "avx2", "AVX2": "default"}


@dataclass(frozen=True)
class Case:
    name: str
    perturbation: str
    expected: str
    cause: str | None
    sets: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    launch: str = "shared"
    repeat: int = 1
    where: str | None = None
    step: int | None = None
    gpu: bool = False
    control: str | None = None  # the row whose run must fail this row's expectation
    against: str | None = None  # judged against that row's run instead of the baseline
    resume_at: int | None = None  # the run stops after this step; the row's run resumes it


def load_cases(profile: str = "smoke") -> list[Case]:
    """The rows, with the margin rows' effect sizes filled in for ``profile``."""
    data = yaml.safe_load(
        resources.files("repro.baselines").joinpath("selftest.yaml").read_text(encoding="utf-8")
    )
    threshold = float(data["update_scale_threshold"].get(profile, 0.0))
    sizes = {"third": repr(threshold / 3), "triple": repr(threshold * 3)}
    cases = []
    for row in data["cases"]:
        cause = row.get("cause")
        cases.append(
            Case(
                name=row["name"],
                perturbation=row["perturbation"],
                expected=row["expected"],
                cause=None if cause in (None, "none") else str(cause),
                sets=tuple(str(v).format(**sizes) for v in row.get("sets", [])),
                env=tuple(sorted((row.get("env") or {}).items())),
                launch=row.get("launch", "shared"),
                repeat=int(row.get("repeat", 1)),
                where=row.get("where"),
                step=row.get("step"),
                gpu=bool(row.get("gpu")),
                control=row.get("control"),
                against=row.get("against"),
                resume_at=row.get("resume_at"),
            )
        )
    return cases


@dataclass
class Session:
    """Every run of a self-test session, and the baseline recorded from the shared launch."""

    profile: str
    baseline: Baseline
    runs: dict[str, list[Path]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    baseline_runs: list[Path] = field(default_factory=list)


def lower_capability() -> str | None:
    import torch

    return LOWER_CAPABILITY.get(str(torch.backends.cpu.get_cpu_capability()))


def _skip_reason(case: Case, cuda: bool, lower: str | None) -> str | None:
    if case.gpu and not cuda:
        return "needs a CUDA GPU"
    if any("{lower_capability}" in v for _, v in case.env) and lower is None:
        return "this CPU has no lower capability level to dispatch to"
    return None


def run_session(
    profile: str,
    cases: list[Case],
    *,
    workdir: Path,
    numerics: int = DEFAULT_NUMERICS,
    seeds: int = DEFAULT_SEEDS,
    cuda: bool = False,
    baseline: Path | None = None,
) -> Session:
    """Launch the baseline and every case: one shared launch, plus one per launch-level change.

    ``baseline``: judge against this recorded baseline instead of recording one (the GPU
    check shares one baseline between its stages).
    """
    runs_dir = workdir / "runs"
    lower = lower_capability()
    plan, seed_list = baseline_plan(profile, numerics, seeds) if baseline is None else ([], [])
    skipped = {c.name: r for c in cases if (r := _skip_reason(c, cuda, lower))}
    active = [c for c in cases if c.name not in skipped]
    shared = [c for c in active if c.launch == "shared"]
    entries = [prepare_run(profile, sets, runs_dir=runs_dir, quiet=True) for sets in plan]
    owners: list[str] = []
    for case in shared:
        for _ in range(case.repeat):
            entries.append(_entry(profile, case, runs_dir))
            owners.append(case.name)
    outcomes = launch(entries) if entries else []
    baseline_runs = [o.run_dir for o in outcomes[: len(plan)]]
    runs: dict[str, list[Path]] = {}
    for name, outcome in zip(owners, outcomes[len(plan) :]):
        runs.setdefault(name, []).append(outcome.run_dir)
    _resume_stopped(runs, [c for c in shared if c.resume_at is not None], runs_dir)
    for case in active:
        if case.launch == "shared":
            continue
        env = {k: v.replace("{lower_capability}", lower or "") for k, v in case.env}
        own = [
            prepare_run(profile, list(case.sets), runs_dir=runs_dir, quiet=True, env=env)
            for _ in range(case.repeat)
        ]
        runs[case.name] = [o.run_dir for o in launch(own, env=env)]

    if baseline is not None:
        return Session(profile, load_baseline(baseline), runs, skipped, baseline_runs)
    views = [RunView.from_run_dir(p) for p in baseline_runs]
    path, _ = assemble_baseline(
        views,
        numerics=numerics,
        seed_list=seed_list,
        root=workdir / "baselines",
        name=f"selftest-{profile}",
        force=True,
        replace=spare_members(profile, runs_dir=runs_dir),
    )
    return Session(profile, load_baseline(path), runs, skipped, baseline_runs)


def _entry(profile: str, case: Case, runs_dir: Path) -> PlanEntry:
    if case.resume_at is None:
        return prepare_run(profile, list(case.sets), runs_dir=runs_dir, quiet=True)
    return prepare_stop(profile, list(case.sets), case.resume_at, runs_dir=runs_dir, quiet=True)


def _resume_stopped(runs: dict[str, list[Path]], cases: list[Case], runs_dir: Path) -> None:
    """A resume row's run is the full-state resume of the run the shared launch stopped,
    all of them in one more launch; a run that failed to stop stays the row's run (FAILED)."""
    stopped = [(c.name, i) for c in cases for i, p in enumerate(runs[c.name]) if _is_stopped(p)]
    entries = [
        prepare_resume(stopped_run(runs[name][i]), PIECES, runs_dir=runs_dir, quiet=True)
        for name, i in stopped
    ]
    for (name, i), outcome in zip(stopped, launch(entries) if entries else []):
        runs[name][i] = outcome.run_dir


def _is_stopped(run_dir: Path) -> bool:
    return bool(Run(run_dir).status.get("status") == "STOPPED")


@dataclass
class CaseResult:
    case: Case
    comparison: Comparison | None
    passed: bool
    problems: list[str]
    control_failed_row: bool | None = None  # negative control: True means the control was caught

    @property
    def observed(self) -> str:
        return self.comparison.verdict if self.comparison else "SKIPPED"

    @property
    def top_cause(self) -> str | None:
        if self.comparison and self.comparison.causes:
            return self.comparison.causes[0].cause
        return None


def judge_case(case: Case, session: Session) -> Comparison:
    """The row's run against the session's baseline, or against another row's run when the
    row needs a reference of other settings than the baseline's (one setting apart)."""
    views = [RunView.from_run_dir(p) for p in session.runs[case.name]]
    if case.against is not None:
        reference = RunView.from_run_dir(session.runs[case.against][0])
        return compare(views[0], reference, bands=None, repeats=views[1:])
    return compare(
        views[0], session.baseline.primary(), bands=session.baseline.bands(), repeats=views[1:]
    )


def check(case: Case, comparison: Comparison) -> list[str]:
    """What the comparison gets wrong about the row; empty when the row passes."""
    problems = []
    if comparison.verdict != case.expected:
        problems.append(f"verdict {comparison.verdict}, expected {case.expected}")
    top = comparison.causes[0].cause if comparison.causes else None
    if case.cause is not None and top != case.cause:
        problems.append(f"top cause {top!r}, expected {case.cause!r}")
    fd = comparison.first_difference
    if case.where is not None and (fd is None or fd.where != case.where):
        problems.append(f"first difference {fd.where if fd else None!r}, expected {case.where!r}")
    if case.resume_at is not None:
        row = [e for e in comparison.exact if e.name == resume_check_name(case.resume_at)]
        if not (row and row[0].ok):
            problems.append(f"no passing exact row 'resume at step {case.resume_at}'")
    if case.step is not None:
        step = comparison.failure.step if comparison.failure else None
        if step != case.step:
            problems.append(f"failed at step {step}, expected step {case.step}")
    return problems


def run_cases(session: Session, cases: list[Case]) -> list[CaseResult]:
    judged = {
        c.name: judge_case(c, session)
        for c in cases
        if c.name in session.runs and (c.against is None or c.against in session.runs)
    }
    results = []
    for case in cases:
        if case.name in session.skipped:
            results.append(CaseResult(case, None, True, [f"skipped: {session.skipped[case.name]}"]))
            continue
        comparison = judged[case.name]
        problems = check(case, comparison)
        # The control row's run must fail this row: the row's checks can tell them apart.
        caught: bool | None = None
        if case.control is not None and case.control in judged:
            caught = bool(check(case, judged[case.control]))
        if caught is False:
            problems.append(f"negative control: the {case.control} row's run also passes this row")
        results.append(CaseResult(case, comparison, not problems, problems, caught))
    return results


def render_table(results: list[CaseResult]) -> str:
    header = f"{'case':10} {'expected':16} {'observed':16} {'first difference':34} {'top cause':28} result"
    lines = [header, "-" * len(header)]
    for r in results:
        fd = r.comparison.first_difference if r.comparison else None
        where = f"step {fd.step}: {fd.module or fd.where}" if fd else "-"
        if r.comparison and r.comparison.failure:
            where = f"step {r.comparison.failure.step}: {r.comparison.failure.kind}"
        result = "skip" if r.comparison is None else ("PASS" if r.passed else "FAIL")
        lines.append(
            f"{r.case.name:10} {r.case.expected:16} {r.observed:16} {where[:34]:34} {(r.top_cause or '-')[:28]:28} {result}"
        )
        lines.extend(f"{'':10} ! {p}" for p in r.problems if result == "FAIL")
    return "\n".join(lines)


def to_dict(results: list[CaseResult]) -> list[dict[str, Any]]:
    out = []
    for r in results:
        fd = r.comparison.first_difference if r.comparison else None
        out.append(
            {
                "case": r.case.name,
                "perturbation": r.case.perturbation,
                "expected": r.case.expected,
                "observed": r.observed,
                "expected_cause": r.case.cause,
                "top_cause": r.top_cause,
                "first_difference": {"step": fd.step, "where": fd.where, "module": fd.module}
                if fd
                else None,
                "passed": r.passed,
                "problems": r.problems,
                "negative_control_caught": r.control_failed_row,
            }
        )
    return out


def selftest(*, quick: bool, workdir: Path | None = None) -> list[CaseResult]:
    """CPU rows on the smoke (``quick``) or quick profile; GPU rows on the full profile where CUDA exists."""
    import torch

    cuda = torch.cuda.is_available()
    profile = "smoke" if quick else "quick"
    cases = load_cases(profile)
    cpu_cases = [c for c in cases if not c.gpu]
    gpu_cases = [c for c in cases if c.gpu]
    with tempfile.TemporaryDirectory(prefix="repro-selftest-") as tmp:
        root = Path(workdir or tmp)
        session = run_session(profile, cpu_cases, workdir=root / "cpu")
        results = run_cases(session, cpu_cases)
        if cuda:
            gpu_session = run_session("full", gpu_cases, workdir=root / "gpu", cuda=True)
            results += run_cases(gpu_session, gpu_cases)
        else:
            results += [CaseResult(c, None, True, ["skipped: needs a CUDA GPU"]) for c in gpu_cases]
        return results
