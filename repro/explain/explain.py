"""Run the experiment: rerun the reference here with the other run's knobs, and report the
smallest set that makes this machine's record bit-identical to the other run's."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from repro.baselines.baseline import search_dirs
from repro.baselines.resolve import resolve
from repro.errors import UserError
from repro.explain.knobs import CAPABILITY, Knob, other_machine_command, read_differences
from repro.explain.search import SearchResult, smallest_cause
from repro.profile import flatten_settings
from repro.runs.prepare import prepare_run
from repro.runs.runner import launch
from repro.runs.runview import RunView, first_list_difference, records_identical
from repro.runs.tensorboard import is_event_dir
from repro.runs.tracked import is_tracked

DEFAULT_MAX_RUNS = 8


@dataclass
class Explanation:
    other: str
    here: str
    conclusion: str
    causes: list[str] = field(default_factory=list)  # named without a rerun
    knobs: list[Knob] = field(default_factory=list)  # every knob found
    untried: list[Knob] = field(default_factory=list)  # this machine cannot take them
    other_machine: str | None = None  # the command to run there instead
    beyond: list[str] = field(default_factory=list)  # libraries and hardware, no knob
    search: SearchResult | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)  # run folder, seconds, knobs

    @property
    def interrupted(self) -> bool:
        return self.search is not None and self.search.outcome == "interrupted"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["knobs"] = [{**asdict(k), "change": k.change} for k in self.knobs]
        return data


def _overrides(view: RunView) -> list[str]:
    """The other run's ``--set`` pairs, harness ones included (a band member stays one)."""
    pairs = {**view.config.get("overrides", {}), **view.config.get("internal", {})}
    return [f"{k}={_text(v)}" for k, v in sorted(pairs.items())]


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _took_effect(knob: Knob, view: RunView) -> bool:
    if knob.kind == "setting":
        return bool(flatten_settings(view.settings).get(knob.name) == knob.other)
    if knob.name == CAPABILITY:
        used = view.manifest.get("hardware", {}).get("cpu", {}).get("torch_capability")
        return str(used).lower() == str(knob.other).lower()
    return str(view.manifest.get("env", {}).get(knob.name)) == str(knob.other)


class _Rerun:
    """Reruns of the other run's profile on this machine, one knob set at a time."""

    def __init__(
        self, other: RunView, knobs: dict[str, Knob], runs_dir: Path, argv: list[str]
    ) -> None:
        self.other, self.knobs, self.runs_dir, self.argv = other, knobs, runs_dir, argv
        self.runs: list[dict[str, Any]] = []

    def run(
        self,
        names: tuple[str, ...],
        sets: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> RunView:
        profile = str(self.other.config.get("profile"))
        start = time.monotonic()
        entry = prepare_run(
            profile, sets or [], runs_dir=self.runs_dir, argv=self.argv, quiet=True, env=env
        )
        (outcome,) = launch([entry], env=env)
        self.runs.append(
            {
                "run": str(outcome.run_dir),
                "knobs": list(names),
                "seconds": round(time.monotonic() - start, 1),
            }
        )
        return RunView.from_run_dir(outcome.run_dir)

    def __call__(self, names: tuple[str, ...]) -> tuple[bool, str]:
        """This machine's run with the named knobs at the other run's values and every other
        knob at this run's: the other run's overrides, then each setting knob's value."""
        chosen = [self.knobs[n] for n in names]
        settings = [
            f"{k.name}={_text(k.other if k.name in names else k.here)}"
            for k in self.knobs.values()
            if k.kind == "setting"
        ]
        sets = _overrides(self.other) + settings
        env = {k.name: _text(k.other) for k in chosen if k.kind == "env"}
        view = self.run(names, sets, env)
        missed = [k.name for k in chosen if not _took_effect(k, view)]
        if missed:
            return False, f"{', '.join(missed)} did not take effect in {view.name}"
        if records_identical(view.record, self.other.record):
            return True, f"{view.name} is bit-identical"
        step = first_list_difference(view.steps, self.other.steps)
        return (
            False,
            f"{view.name} parts at step {step}"
            if step is not None
            else f"{view.name} differs at the end",
        )


def load(argument: str) -> RunView:
    path = Path(argument)
    if is_tracked(path) or is_event_dir(path):
        what = "a TensorBoard log" if is_event_dir(path) else "a tracked run (repro.track)"
        raise UserError(
            f"{argument} is {what}: explain reruns the reference training knob by knob, and "
            "repro cannot rerun the training of your own script; pass reference run folders "
            "(`repro run`), or compare tracked runs with `repro compare`."
        )
    try:
        dirs = search_dirs(None)
    except UserError:  # no baseline folder here: OTHER must then be a path
        dirs = []
    view, _ = resolve(argument, dirs)
    if not view.record:
        raise UserError(
            f"{argument} has no record (the run did not complete); pass a complete run."
        )
    return view


def explain(
    other_arg: str, here_arg: str | None, *, runs_dir: Path, max_runs: int = DEFAULT_MAX_RUNS
) -> Explanation:
    if max_runs < 1:
        raise UserError(f"--max-runs {max_runs} must be at least 1.")
    other = load(other_arg)
    argv = ["repro", "explain", other_arg, *(["--here", here_arg] if here_arg else [])]
    knobs_by_name: dict[str, Knob] = {}
    rerun = _Rerun(other, knobs_by_name, runs_dir, argv)
    here = load(here_arg) if here_arg else rerun.run((), _overrides(other))
    result = Explanation(other.name, here.name, "", runs=rerun.runs)
    if records_identical(here.record, other.record):
        result.conclusion = (
            f"nothing to explain: {here.name} is already bit-identical to {other.name}"
        )
        return result
    found = read_differences(other, here)
    result.causes, result.knobs, result.beyond = (
        list(found.causes),
        list(found.knobs),
        list(found.beyond),
    )
    if found.causes:  # no knob reproduces another learning rate
        result.conclusion = "the runs differ by design: " + "; ".join(found.causes)
        return result
    tried = [k for k in found.knobs if not k.cannot]
    result.untried = [k for k in found.knobs if k.cannot]
    if result.untried:
        result.other_machine = other_machine_command(
            str(other.config.get("profile")), list(found.knobs)
        )
    knobs_by_name.update({k.name: k for k in tried})
    if not tried:
        result.conclusion = _nothing_here(result)
        return result
    result.search = smallest_cause([k.name for k in tried], rerun, max_runs)
    result.conclusion = _conclusion(result)
    return result


def _nothing_here(result: Explanation) -> str:
    if result.untried:
        return (
            "no knob can be tried on this machine ("
            + "; ".join(f"{k.name}: {k.cannot}" for k in result.untried)
            + "); run the command below on the other machine, then `repro explain` there"
        )
    remaining = ", ".join(result.beyond) or "nothing repro records"
    return f"not explained by anything repro can change here; what remains differs in libraries or hardware: {remaining}"


def _conclusion(result: Explanation) -> str:
    search = result.search
    assert search is not None
    runs = len(search.trials)
    if search.outcome == "confirmed":
        changes = ", ".join(k.change for k in result.knobs if k.name in search.knobs)
        return f"confirmed in {runs} reruns: with {changes} this machine reproduces {result.other} bit for bit, and no smaller set does"
    if search.outcome == "not explained":
        return _nothing_here(
            Explanation(result.other, result.here, "", untried=result.untried, beyond=result.beyond)
        )
    if search.outcome == "not reproducible":
        return f"the set {', '.join(search.knobs)} matched once and not on the confirming rerun: this machine is not deterministic"
    return f"{search.outcome} after {runs} reruns; the smallest set found so far, unconfirmed: {', '.join(search.knobs) or 'none'}"
