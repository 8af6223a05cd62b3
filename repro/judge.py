"""The one comparison core: two runs (and optionally a baseline's bands) -> a ``Comparison``.

``repro verify``, ``repro compare`` and ``repro selftest`` all call ``compare``;
every report renders the ``Comparison`` it returns. It reads data only and never
imports torch.

Statistics, with K band members and a family-wise false-alarm rate alpha:

* numerics band (same seed as the baseline's primary): for each recorded scalar
  and each of W step windows, the RMS deviation from the primary run is
  log-normal across members; the run's log-RMS must stay below a one-sided
  prediction bound ``mean + t(1 - a, K-1) * sd * sqrt(1 + 1/K)`` with ``a``
  Bonferroni-corrected over all windows and final metrics.
* seed band: the final evaluation loss and accuracy must fall inside the
  two-sided prediction interval of the K2 seeds (again corrected per metric).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from repro.causes import rank_causes
from repro.manifest.diff import diff_manifests
from repro.manifest.keys import environment_key
from repro.names import readable
from repro.profile import differing_fields
from repro.verdict import Verdict

SCALARS = ("loss", "grad_norm", "lr", "loss_scale")  # recorded every step
# Judged by the numerics band. The learning rate follows a schedule and the loss scale is
# 1 without a GradScaler: both are exact, so they get exact checks, not bands.
BAND_SCALARS = ("loss", "grad_norm")
FINAL_METRICS = ("eval_loss", "eval_accuracy")


# -- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunView:
    """What the judge needs of a run; built from a run directory or a baseline."""

    name: str
    path: str
    status: dict[str, Any]
    config: dict[str, Any]
    manifest: dict[str, Any]
    record: dict[str, Any] | None

    @classmethod
    def from_run_dir(cls, path: Any) -> RunView:
        """Load a run directory; a run that did not complete may lack its record."""
        from pathlib import Path

        from repro.store import open_run

        run = open_run(Path(path))
        complete = run.status["status"] == "COMPLETE"
        has_record = (run.path / "record.json").exists()
        record = run.record if complete or has_record else None
        # A launch that failed before rank 0 started has no manifest; it is still a FAILED run.
        manifest = run.manifest if complete or (run.path / "manifest.yaml").exists() else {}
        view = cls(run.run_id, str(run.path), run.status, run.config, manifest, record)
        if complete:
            view.check_complete(run.path / "record.json")
        return view

    def check_complete(self, where: Any) -> None:
        """A complete run's record holds every step its settings ask for, or it is bad input."""
        from repro.errors import UserError

        expected = int(self.config["settings"]["steps"])
        if len(self.steps) != expected or not self.final:
            raise UserError(
                f"{where} holds {len(self.steps)} steps{'' if self.final else ' and no final metrics'} "
                f"but its config asks for {expected}: the record is incomplete or edited; rerun it."
            )

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config.get("settings", {}))

    @property
    def seed(self) -> int:
        return int(self.config["settings"]["seed"])

    @property
    def steps(self) -> list[dict[str, Any]]:
        return list((self.record or {}).get("steps", []))

    @property
    def final(self) -> dict[str, Any] | None:
        return (self.record or {}).get("final")


@dataclass(frozen=True)
class Bands:
    """A baseline's numerics and seed bands; their parameters live in the baseline."""

    name: str
    alpha: float
    windows: int
    primary_seed: int
    primary: dict[str, list[float]]  # the primary run's series: every deviation is measured from it
    workload_hash: str
    members: list[dict[str, Any]]  # {"series": {scalar: [...]}, "final": {...}}
    seeds: list[dict[str, Any]]  # {"seed": s, "eval_loss": x, "eval_accuracy": y}
    resolution: dict[str, float]  # smallest meaningful step of a final metric


# -- outputs --------------------------------------------------------------------------------


@dataclass
class Divergence:
    step: int
    where: str  # global_batch | batch_split | initial | forward | loss | grad_local | grad_reduced | grad_norm | update | record
    detail: str
    module: str | None = None
    traced: bool = True
    also: list[str] = field(default_factory=list)


@dataclass
class WindowCheck:
    scalar: str
    start: int
    end: int  # exclusive
    value: float
    threshold: float
    ok: bool


@dataclass
class MetricCheck:
    metric: str
    value: float
    reference: float
    low: float
    high: float
    ok: bool


@dataclass
class BandCheck:
    applied: bool
    reason: str
    ok: bool = True
    alpha: float = 0.0
    windows: list[WindowCheck] = field(default_factory=list)
    finals: list[MetricCheck] = field(default_factory=list)
    first_step_outside: int | None = None
    largest: dict[str, Any] | None = None


@dataclass
class ExactCheck:
    """A recorded sequence that must be bit-equal between two runs of one training."""

    name: str
    ok: bool
    first_step: int | None = None
    detail: str = ""


@dataclass
class SeedCheck:
    applied: bool
    reason: str
    ok: bool = True
    alpha: float = 0.0
    metrics: list[MetricCheck] = field(default_factory=list)


@dataclass
class Cause:
    cause: str
    score: float
    evidence: list[str]
    try_next: str


@dataclass
class Comparison:
    verdict: Verdict
    summary: str
    candidate: dict[str, Any]
    reference: dict[str, Any]
    baseline: str | None
    identical: bool
    first_difference: Divergence | None
    numerics: BandCheck
    seed: SeedCheck
    failure: dict[str, Any] | None
    nondeterminism: dict[str, Any] | None
    env_differences: list[dict[str, Any]]
    env_key_match: bool
    causes: list[Cause]
    curves: dict[str, Any]
    mismatches: list[str]
    notes: list[str]
    # Setting names by field class where the two runs' settings differ (see repro.profile).
    setting_differences: dict[str, list[str]] = field(default_factory=dict)
    bitwise_expected: bool = False
    # When neither run is the baseline's primary, the reference is judged against it too.
    reference_verdict: Verdict | None = None
    exact: list[ExactCheck] = field(default_factory=list)
    next_command: str | None = None  # what to run next, e.g. the command that records a baseline

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- pieces ---------------------------------------------------------------------------------


def series(steps: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each scalar per step; a step the GradScaler skipped has no gradient norm (None)."""
    return {s: [_number(step[s]) for step in steps] for s in SCALARS}


def _number(value: Any) -> Any:
    return None if value is None else float(value)


def deviations(run: list[float], primary: list[float], start: int, end: int) -> list[float | None]:
    """|run - primary| per step; None where either has no value (a skipped step's norm):
    a skip is judged through the loss it changes, not through a norm it does not have."""
    return [
        None if run[i] is None or primary[i] is None else abs(run[i] - primary[i])
        for i in range(start, end)
    ]


def records_identical(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if not a or not b:
        return False
    return all(a.get(k) == b.get(k) for k in ("initial_params", "steps", "final"))


def _first_list_difference(a: list[Any], b: list[Any]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def _first_trace_difference(
    ta: list[dict[str, Any]], tb: list[dict[str, Any]], kind: str
) -> tuple[str, str] | None:
    """(readable module name, " on rank r") of the earliest differing entry over all ranks."""
    best: tuple[int, int, str] | None = None
    for rank, (ra, rb) in enumerate(zip(ta, tb)):
        i = _first_list_difference(ra[kind], rb[kind])
        if i is not None and (best is None or i < best[0]):
            entries = ra[kind] if i < len(ra[kind]) else rb[kind]
            name = readable(str(entries[i][0])) if i < len(entries) else "a module"
            best = (i, rank, name)
    if best is None:
        return None
    return best[2], f" on rank {best[1]}" if len(ta) > 1 else ""


def first_difference(a: RunView, b: RunView) -> Divergence | None:
    """The first step whose record differs, and what differed first within it.

    Order inside a step follows the computation: the global batch, its split
    across ranks, (at step 0) the initialisation, each module's forward output,
    the loss, local gradients, reduced gradients, the gradient norm, and finally
    the update (learning rate, loss scale, parameters).
    """
    ra, rb = a.record or {}, b.record or {}
    steps_a, steps_b = a.steps, b.steps
    initial_differs = ra.get("initial_params") != rb.get("initial_params")
    names = ra.get("param_names", [])
    for k, (sa, sb) in enumerate(zip(steps_a, steps_b)):
        found: list[tuple[str, str, str | None]] = []
        if sa.get("global_batch") != sb.get("global_batch"):
            found.append(
                ("global_batch", "the global batch's sample indices differ (data or sampler)", None)
            )
        if sa.get("rank_batches") != sb.get("rank_batches"):
            na, nb = len(sa.get("rank_batches", [])), len(sb.get("rank_batches", []))
            split = (
                f"({na} vs {nb} ranks)"
                if na != nb
                else f"(each of the {na} ranks got other samples)"
            )
            found.append(
                ("batch_split", f"the batch is split across ranks differently {split}", None)
            )
        if k == 0 and initial_differs:
            i = _first_list_difference(ra.get("initial_params", []), rb.get("initial_params", []))
            what = readable(names[i]) if i is not None and i < len(names) else "a parameter"
            found.append(("initial", f"the initial parameters differ (first: {what})", what))
        ta: list[dict[str, Any]] = sa.get("trace") or []
        tb: list[dict[str, Any]] = sb.get("trace") or []
        traced = bool(ta) and bool(tb)
        if traced:
            hit = _first_trace_difference(ta, tb, "forward")
            if hit is not None:
                found.append(("forward", f"{hit[0]}, forward output{hit[1]} differs first", hit[0]))
        if sa["loss"] != sb["loss"]:
            found.append(("loss", f"loss {sa['loss']!r} vs {sb['loss']!r}", None))
        if traced:
            for kind, label in (
                ("grad_local", "local gradient (before the all-reduce)"),
                ("grad_reduced", "gradient after the all-reduce"),
            ):
                hit = _first_trace_difference(ta, tb, kind)
                if hit is not None:
                    found.append((kind, f"{hit[0]}, {label}{hit[1]} differs first", hit[0]))
        if sa["grad_norm"] != sb["grad_norm"]:
            found.append(
                ("grad_norm", f"gradient norm {sa['grad_norm']!r} vs {sb['grad_norm']!r}", None)
            )
        if sa["lr"] != sb["lr"] or sa["loss_scale"] != sb["loss_scale"]:
            found.append(
                ("update", f"the update differs (learning rate {sa['lr']!r} vs {sb['lr']!r})", None)
            )
        if sa["params"] != sb["params"]:
            i = _first_list_difference(sa["params"], sb["params"])
            what = readable(names[i]) if i is not None and i < len(names) else "a parameter"
            found.append(("update", f"parameters after the update differ (first: {what})", what))
        if found:
            where, detail, module = found[0]
            # A difference seen only after the loss, with nothing traced, may have started earlier in the step.
            if not traced and where in ("loss", "grad_norm"):
                detail += " (step not traced: the forward and gradients were not fingerprinted)"
            return Divergence(k, where, detail, module, traced, [f[1] for f in found[1:]])
    if len(steps_a) != len(steps_b):
        k = min(len(steps_a), len(steps_b))
        return Divergence(
            k, "record", f"one run has {len(steps_a)} steps, the other {len(steps_b)}", None, False
        )
    if ra.get("final") != rb.get("final"):
        return Divergence(
            len(steps_a),
            "final",
            "the final evaluation or checkpoint identity differs",
            None,
            False,
        )
    return None


def _t(p: float, dof: int) -> float:
    """Student t quantile. scipy.special's inverse CDF gives the same bits as
    ``scipy.stats.t.ppf`` at a fraction of the import time (compare's start-up)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, p))


def _mean_sd(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    return mean, math.sqrt(var)


def _windows(n: int, count: int) -> list[tuple[int, int]]:
    count = max(1, min(count, n))
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(edges[i], edges[i + 1]) for i in range(count) if edges[i + 1] > edges[i]]


def _rms(values: list[float | None]) -> float:
    present = [v for v in values if v is not None]
    return math.sqrt(math.fsum(v * v for v in present) / len(present)) if present else 0.0


def prediction_interval(
    values: list[float], alpha: float, resolution: float = 0.0
) -> tuple[float, float, float]:
    """Two-sided (1 - alpha) prediction interval for one new draw: (mean, low, high)."""
    k = len(values)
    mean, sd = _mean_sd(values)
    sd = max(sd, resolution)
    half = _t(1 - alpha / 2, k - 1) * sd * math.sqrt(1 + 1 / k)
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class WindowBound:
    """The numerics band's bound on one scalar's RMS deviation over one step window."""

    scalar: str
    start: int
    end: int  # exclusive
    typical: float  # the members' geometric-mean RMS deviation
    threshold: float  # a run's RMS deviation above this is outside
    log_bound: float
    floor: float  # below this a deviation is float noise of the printout

    @property
    def tolerance(self) -> float:
        """How many times the typical member a run may deviate: the band's real width."""
        return self.threshold / self.typical if self.typical > 0 else math.inf


def window_bounds(
    primary: dict[str, list[float]], members: list[dict[str, Any]], *, alpha: float, windows: int
) -> tuple[list[WindowBound], float]:
    """Each window's one-sided log-normal prediction bound, and the per-test level ``a``.

    ``a`` is alpha Bonferroni-divided over every window of every band scalar and the
    final metrics, so the whole band is one test at level alpha.
    """
    k = len(members)
    n = min(len(primary["loss"]), *(len(m["series"]["loss"]) for m in members))
    spans = _windows(n, windows)
    a = alpha / (len(spans) * len(BAND_SCALARS) + len(FINAL_METRICS))
    t = _t(1 - a, k - 1) * math.sqrt(1 + 1 / k)
    bounds = []
    for scalar in BAND_SCALARS:
        p = primary[scalar]
        for start, end in spans:
            scale = math.fsum(abs(v) for v in p[start:end] if v is not None) / (end - start)
            floor = 1e-9 * scale + 1e-30
            logs = [
                math.log(_rms(deviations(m["series"][scalar], p, start, end)) + floor)
                for m in members
            ]
            mean, sd = _mean_sd(logs)
            bound = mean + t * sd
            # Clamped: with a tiny band t is huge and exp would overflow; never below 0.
            threshold = max(0.0, math.exp(min(bound, 700.0)) - floor)
            typical = max(0.0, math.exp(mean) - floor)
            bounds.append(WindowBound(scalar, start, end, typical, threshold, bound, floor))
    return bounds, a


def numerics_check(
    run: dict[str, list[float]],
    run_final: dict[str, Any] | None,
    primary: dict[str, list[float]],
    members: list[dict[str, Any]],
    *,
    alpha: float,
    windows: int,
    resolution: dict[str, float],
) -> BandCheck:
    k = len(members)
    if k < 2:
        return BandCheck(False, f"the numerics band has {k} members; at least 2 are needed")
    bounds, a = window_bounds(primary, members, alpha=alpha, windows=windows)
    n = bounds[-1].end
    check = BandCheck(
        True,
        f"same seed as the baseline's primary run; {k} rounding-perturbed members",
        alpha=alpha,
    )
    failing_steps: list[int] = []
    largest: dict[str, Any] | None = None
    for scalar in BAND_SCALARS:
        p = primary[scalar]
        dev_run = [d or 0.0 for d in deviations(run[scalar], p, 0, n)]
        for w in (b for b in bounds if b.scalar == scalar):
            value = _rms(deviations(run[scalar], p, w.start, w.end))
            ok = math.log(value + w.floor) <= w.log_bound
            check.windows.append(WindowCheck(scalar, w.start, w.end, value, w.threshold, ok))
            if not ok:
                outside = [i for i in range(w.start, w.end) if dev_run[i] > w.threshold]
                failing_steps.append((outside or [w.start])[0])
        dev_members = [
            [d or 0.0 for d in deviations(m["series"][scalar], p, 0, n)] for m in members
        ]
        for i in range(n):
            band_max = max(d[i] for d in dev_members)
            # A deviation where no member deviates at all outranks any finite ratio.
            rank = dev_run[i] / band_max if band_max > 0 else (1e300 if dev_run[i] > 0 else 0.0)
            if dev_run[i] > 0 and (largest is None or rank > largest["rank"]):
                largest = {
                    "scalar": scalar,
                    "step": i,
                    "deviation": dev_run[i],
                    "band_max": band_max,
                    "ratio": rank if band_max > 0 else None,
                    "rank": rank,
                }
    if run_final:
        for metric in FINAL_METRICS:
            values = [float(m["final"][metric]) for m in members]
            mean, low, high = prediction_interval(values, a, resolution.get(metric, 0.0))
            value = float(run_final[metric])
            check.finals.append(MetricCheck(metric, value, mean, low, high, low <= value <= high))
    check.ok = all(w.ok for w in check.windows) and all(f.ok for f in check.finals)
    check.first_step_outside = min(failing_steps) if failing_steps else None
    check.largest = largest
    return check


def seed_check(
    run_final: dict[str, Any] | None,
    seeds: list[dict[str, Any]],
    *,
    alpha: float,
    resolution: dict[str, float],
) -> SeedCheck:
    if len(seeds) < 2:
        return SeedCheck(False, f"the seed band has {len(seeds)} seeds; at least 2 are needed")
    if not run_final:
        return SeedCheck(False, "the run has no final evaluation")
    check = SeedCheck(True, f"final metrics of {len(seeds)} master seeds", alpha=alpha)
    a = alpha / len(FINAL_METRICS)
    for metric in FINAL_METRICS:
        mean, low, high = prediction_interval(
            [float(s[metric]) for s in seeds], a, resolution.get(metric, 0.0)
        )
        value = float(run_final[metric])
        check.metrics.append(MetricCheck(metric, value, mean, low, high, low <= value <= high))
    check.ok = all(m.ok for m in check.metrics)
    return check


def _describe(view: RunView) -> dict[str, Any]:
    return {
        "name": view.name,
        "path": view.path,
        "profile": view.config.get("profile"),
        "seed": view.config.get("settings", {}).get("seed"),
        "status": view.status.get("status"),
        "workload_hash": view.config.get("workload_hash"),
        "command": view.config.get("command"),
        "reference": view.config.get("reference"),
        "final": view.final,
    }


def _failure(view: RunView) -> dict[str, Any] | None:
    if view.status.get("status") == "COMPLETE":
        return None
    record_failure = (view.record or {}).get("failure") or {}
    return {
        "run": view.name,
        "status": view.status.get("status"),
        "kind": view.status.get("kind", record_failure.get("kind", "crash")),
        "step": view.status.get("step", record_failure.get("step")),
        "rank": view.status.get("rank", record_failure.get("rank")),
        "message": view.status.get("reason", "the run did not complete"),
    }


def _curves(
    candidate: RunView, reference: RunView, numerics: BandCheck, bands: Bands | None
) -> dict[str, Any]:
    a, b = series(candidate.steps)["loss"], series(reference.steps)["loss"]
    n = min(len(a), len(b))
    curves: dict[str, Any] = {
        "candidate_loss": a,
        "reference_loss": b,
        "deviation": [abs(a[i] - b[i]) for i in range(n)],
    }
    if numerics.applied and bands is not None:
        primary = bands.primary["loss"]
        curves["band_max"] = [
            max(abs(m["series"]["loss"][i] - primary[i]) for m in bands.members) for i in range(n)
        ]
        upper = [0.0] * n
        for w in numerics.windows:
            if w.scalar == "loss":
                for i in range(w.start, min(w.end, n)):
                    upper[i] = w.threshold
        curves["band_threshold"] = upper
    return curves


# Harness settings that may differ where bit-identity is still expected: they decide what
# is observed and when a run is stopped, never the arithmetic. Faults and band members
# (harness too) perturb the run on purpose.
_QUIET_HARNESS = frozenset(
    {
        "name",
        "description",
        "trace_steps",
        "check_every",
        "converged_accuracy",
        "collective_timeout_s",
    }
)


def _perturbed(view: RunView) -> bool:
    """A band member or a run with a fault: never expected to match another run bit for bit."""
    return view.settings.get("band_member") is not None or bool(view.config.get("faults"))


def _bitwise_expected(
    candidate: RunView, reference: RunView, classes: dict[str, list[str]], env_key_match: bool
) -> bool:
    """Same environment key, same settings (up to quiet harness fields), no perturbation."""
    if not env_key_match or _perturbed(candidate) or _perturbed(reference):
        return False
    loud = [n for cls, names in classes.items() for n in names if n not in _QUIET_HARNESS]
    return not loud


def _same_as_primary(view: RunView, bands: Bands) -> bool:
    return view.seed == bands.primary_seed and series(view.steps) == bands.primary


def _judge_by_bands(view: RunView, bands: Bands) -> tuple[BandCheck, SeedCheck]:
    """The numerics band (same master seed as the primary) or the seed interval (another seed).

    Never both: each run faces one test, so the verdict's false-alarm rate is the stated alpha.
    """
    if view.seed != bands.primary_seed:
        numerics = BandCheck(
            False,
            f"the run's master seed ({view.seed}) differs from the baseline's "
            f"primary seed ({bands.primary_seed}), so only the seed interval applies",
        )
        seeds = seed_check(view.final, bands.seeds, alpha=bands.alpha, resolution=bands.resolution)
    else:
        seeds = SeedCheck(
            False,
            "the run has the primary's seed, so the numerics band judges it "
            "(final metrics included); one test per run keeps one false-alarm rate",
        )
        numerics = numerics_check(
            series(view.steps),
            view.final,
            bands.primary,
            bands.members,
            alpha=bands.alpha,
            windows=bands.windows,
            resolution=bands.resolution,
        )
    return numerics, seeds


def _exact(name: str, a: list[float], b: list[float]) -> ExactCheck:
    step = _first_list_difference(a, b)
    if step is None:
        return ExactCheck(name, True)
    va = a[step] if step < len(a) else None
    vb = b[step] if step < len(b) else None
    return ExactCheck(name, False, step, f"{name} differs from step {step} ({va!r} vs {vb!r})")


def exact_checks(candidate: RunView, reference: RunView) -> tuple[list[ExactCheck], list[str]]:
    """Sequences that must match exactly between two runs of one training, and notes.

    The learning rate follows the schedule whatever the arithmetic does. Without a
    GradScaler the loss scale is 1 at every step; with one, a step skipped for
    overflowing gradients halves the scale for the rest of the run, so the scale is
    reported where it parts and judged by neither an exact check nor a band.
    """
    a, b = series(candidate.steps), series(reference.steps)
    checks = [_exact("learning-rate schedule", a["lr"], b["lr"])]
    notes = []
    if candidate.settings.get("amp_dtype") == "float16":
        step = _first_list_difference(a["loss_scale"], b["loss_scale"])
        if step is not None:
            notes.append(
                f"The GradScaler's loss scale parts at step {step} "
                f"({a['loss_scale'][step]!r} vs {b['loss_scale'][step]!r}): a skipped step there "
                "halves it for the rest of the run; it is reported, not judged."
            )
    else:
        checks.append(_exact("loss scale", a["loss_scale"], b["loss_scale"]))
    return checks, notes


def _not_applied(reason: str) -> tuple[BandCheck, SeedCheck]:
    return BandCheck(False, reason), SeedCheck(False, reason)


def _mismatches(candidate: RunView, reference: RunView, classes: dict[str, list[str]]) -> list[str]:
    """What makes the two runs different trainings or different workloads, in words."""
    out = []
    semantic = classes.get("semantic", [])
    if semantic:
        out.append(
            f"the training itself differs ({', '.join(semantic)}): another training is never "
            "equivalent, whatever the numbers do"
        )
    precision = classes.get("precision", [])
    if precision:
        out.append(
            f"the precision differs ({', '.join(precision)}): a run is judged only against a "
            "baseline recorded at its own precision"
        )
    va, vb = candidate.config.get("workload_hash"), reference.config.get("workload_hash")
    if va != vb and not semantic and not precision:
        out.append(
            f"the workload hash differs ({va} vs {vb}): the runs come from different reference "
            "code, so no band applies"
        )
    return out


def compare(
    candidate: RunView,
    reference: RunView | None,
    *,
    bands: Bands | None = None,
    repeats: list[RunView] | None = None,
    notes: list[str] | None = None,
    next_command: str | None = None,
) -> Comparison:
    """Judge ``candidate`` against ``reference`` (a run, or a baseline's primary run).

    ``notes`` come first in the report (how the baseline was chosen); ``next_command``
    is what to run next when no baseline applies (the command that records one).

    Deviations are always measured from the bands' own primary run. When the
    reference is not that run, it is judged against the bands as well and the
    pair takes the worse verdict. With no reference at all (no baseline exists)
    the verdict is at best NO_BASELINE.
    """
    notes = list(notes or [])
    if reference is None:
        return _without_reference(candidate, repeats or [], notes, next_command)
    classes = differing_fields(candidate.settings, reference.settings)
    mismatches = _mismatches(candidate, reference, classes)
    identical = records_identical(candidate.record, reference.record)
    divergence = None if identical else first_difference(candidate, reference)
    failure = _failure(candidate) or _failure(reference)
    nondeterminism = _nondeterminism(candidate, repeats or [])
    differences = diff_manifests(candidate.manifest, reference.manifest)
    env_key_match = environment_key(candidate.manifest) == environment_key(reference.manifest)
    bitwise_expected = _bitwise_expected(candidate, reference, classes, env_key_match)

    other_training = bool(classes.get("semantic"))
    exact: list[ExactCheck] = []
    if not (failure or other_training or identical) and candidate.steps and reference.steps:
        exact, scale_notes = exact_checks(candidate, reference)
        notes += scale_notes
    exact_ok = all(e.ok for e in exact)
    reference_verdict: Verdict | None = None
    if failure or not candidate.steps:
        numerics, seeds = _not_applied("the run did not complete")
    elif other_training:
        numerics, seeds = _not_applied("another training: bands judge only runs of one training")
    elif mismatches:
        numerics, seeds = _not_applied(mismatches[0])
    elif bands is None:
        numerics, seeds = _not_applied("no baseline bands are available")
    elif candidate.config.get("workload_hash") != bands.workload_hash:
        numerics, seeds = _not_applied(
            f"baseline {bands.name} was recorded for workload {bands.workload_hash}, the run "
            f"is workload {candidate.config.get('workload_hash')}: no band applies"
        )
    else:
        numerics, seeds = _judge_by_bands(candidate, bands)
        if not identical and not _same_as_primary(reference, bands):
            ref_numerics, ref_seeds = _judge_by_bands(reference, bands)
            reference_verdict = (
                Verdict.DRIFT if not (ref_numerics.ok and ref_seeds.ok) else Verdict.EQUIVALENT
            )

    if failure:
        verdict = Verdict.FAILED
    elif nondeterminism:
        verdict = Verdict.NONDETERMINISTIC
    elif identical:
        verdict = Verdict.IDENTICAL
    elif other_training or not exact_ok:
        verdict = Verdict.DRIFT
    elif not numerics.applied and not seeds.applied:
        verdict = Verdict.NO_BASELINE
    elif not (numerics.ok and seeds.ok) or bitwise_expected:
        verdict = Verdict.DRIFT
    else:
        verdict = Verdict.EQUIVALENT
    candidate_verdict = verdict
    if reference_verdict is not None and verdict in (Verdict.EQUIVALENT, Verdict.DRIFT):
        verdict = Verdict.worst([verdict, reference_verdict])
        notes.append(
            f"Neither run is the primary run of baseline {bands.name if bands else '?'}: each was "
            f"judged against its bands (candidate {candidate_verdict}, reference "
            f"{reference_verdict}) and the pair takes the worse, {verdict}."
        )

    if bitwise_expected and not identical and not failure and not nondeterminism:
        notes.append(_unexplained(differences))
    causes = rank_causes(verdict, divergence, differences, candidate, reference)
    if other_training:
        causes.insert(0, _training_cause(classes["semantic"], candidate, reference))
    failed_exact = [e.detail for e in exact if not e.ok]
    summary = _summary(
        verdict, divergence, numerics, seeds, failure, nondeterminism, mismatches + failed_exact
    )
    if bitwise_expected and verdict == Verdict.DRIFT and numerics.ok and seeds.ok:
        summary = f"not bit-identical where bit-identity is expected; {summary}"
    return Comparison(
        verdict=verdict,
        summary=summary,
        candidate=_describe(candidate),
        reference=_describe(reference),
        baseline=bands.name if bands else None,
        identical=identical,
        first_difference=divergence,
        numerics=numerics,
        seed=seeds,
        failure=failure,
        nondeterminism=nondeterminism,
        env_differences=[asdict(d) for d in differences],
        env_key_match=env_key_match,
        causes=causes,
        curves=_curves(candidate, reference, numerics, bands),
        mismatches=mismatches,
        notes=notes,
        setting_differences=classes,
        bitwise_expected=bitwise_expected,
        reference_verdict=reference_verdict,
        exact=exact,
    )


def _unexplained(differences: list[Any]) -> str:
    """Which recorded facts were checked and could not explain a difference."""
    outside = [d.key for d in differences if not d.env_key]
    recorded = (
        f"the recorded differences outside the key ({', '.join(outside[:5])}"
        f"{' and more' if len(outside) > 5 else ''}) are not expected to move the numbers"
        if outside
        else "no other recorded fact differs"
    )
    return (
        "The environment key and every setting match the reference, so bit-identity is "
        f"expected, yet the runs differ; {recorded}. On a deterministic setup that is itself "
        "a finding: a nondeterministic kernel, a setting repro does not record, or faulty hardware."
    )


def _training_cause(fields: list[str], candidate: RunView, reference: RunView) -> Cause:
    a, b = candidate.settings, reference.settings

    def value(settings: dict[str, Any], dotted: str) -> Any:
        node: Any = settings
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    evidence = [f"{f}: {value(a, f)!r} vs {value(b, f)!r}" for f in fields[:6]]
    return Cause(
        "training settings",
        float("inf"),
        evidence,
        "compare runs of the same training (drop the differing `--set` overrides), or record a "
        "baseline for this training and verify against it",
    )


def _without_reference(
    candidate: RunView, repeats: list[RunView], notes: list[str], next_command: str | None
) -> Comparison:
    failure = _failure(candidate)
    nondeterminism = _nondeterminism(candidate, repeats)
    verdict = (
        Verdict.FAILED
        if failure
        else Verdict.NONDETERMINISTIC
        if nondeterminism
        else Verdict.NO_BASELINE
    )
    numerics, seeds = _not_applied("no baseline exists for this profile and workload")
    summary = _summary(verdict, None, numerics, seeds, failure, nondeterminism, [])
    if verdict == Verdict.NO_BASELINE:
        summary = notes[0] if notes else "no baseline to compare against"
    return Comparison(
        verdict=verdict,
        summary=summary,
        candidate=_describe(candidate),
        reference={},
        baseline=None,
        identical=False,
        first_difference=None,
        numerics=numerics,
        seed=seeds,
        failure=failure,
        nondeterminism=nondeterminism,
        env_differences=[],
        env_key_match=False,
        causes=rank_causes(verdict, None, [], candidate, candidate),
        curves={
            "candidate_loss": series(candidate.steps)["loss"],
            "reference_loss": [],
            "deviation": [],
        },
        mismatches=[],
        notes=notes[1:] if verdict == Verdict.NO_BASELINE else notes,
        next_command=next_command,
    )


def _nondeterminism(candidate: RunView, repeats: list[RunView]) -> dict[str, Any] | None:
    for other in repeats:
        if not records_identical(candidate.record, other.record):
            where = first_difference(candidate, other)
            return {
                "repeats": len(repeats) + 1,
                "differing": other.name,
                "first_difference": asdict(where) if where else None,
            }
    return None


def _summary(
    verdict: Verdict,
    divergence: Divergence | None,
    numerics: BandCheck,
    seeds: SeedCheck,
    failure: dict[str, Any] | None,
    nondeterminism: dict[str, Any] | None,
    mismatches: list[str],
) -> str:
    if verdict == Verdict.FAILED and failure:
        return f"{failure['run']} {failure['status'].lower()}: {failure['message']}"
    if verdict == Verdict.NONDETERMINISTIC and nondeterminism:
        fd = nondeterminism.get("first_difference") or {}
        return f"repeated runs on this machine differ (first at step {fd.get('step')}: {fd.get('detail')})"
    if verdict == Verdict.IDENTICAL:
        return "bit-identical: every step's record and the checkpoint identity match"
    first = (
        f"first differs at step {divergence.step}: {divergence.detail}"
        if divergence
        else "records differ"
    )
    if mismatches and verdict in (Verdict.DRIFT, Verdict.NO_BASELINE):
        return f"{mismatches[0]}; {first}"
    if verdict == Verdict.NO_BASELINE:
        return f"no band to judge against; {first}"
    if verdict == Verdict.DRIFT:
        parts = []
        if numerics.applied and not numerics.ok:
            parts.append(f"outside the numerics band from step {numerics.first_step_outside}")
        for m in seeds.metrics:
            if not m.ok:
                parts.append(
                    f"{m.metric} {m.value:.4f} outside the seed interval [{m.low:.4f}, {m.high:.4f}]"
                )
        return "; ".join([*parts, first])
    applied = [n for n, c in (("numerics band", numerics), ("seed interval", seeds)) if c.applied]
    return f"not bit-identical but inside the {' and the '.join(applied)}; {first}"
