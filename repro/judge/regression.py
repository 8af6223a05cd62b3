"""A numerical regression test whose tolerance is measured, not guessed: the engine behind
the ``repro_regression`` pytest fixture (``repro.pytest_plugin``).

    def test_training(repro_regression):
        def run(perturb):
            torch.manual_seed(perturb.seed)
            model = make_model()
            perturb(model)                   # the test's code applies it, after initialising
            return {"loss": train(model)}    # final metrics: numbers
        repro_regression.check(run)

Recording calls ``run`` once unperturbed (the reference), then with ``MEMBERS`` rounding-
level perturbations of the initial parameters (every floating element moved one ulp up
or down at random: "another machine's arithmetic") and with ``SEEDS`` other seeds. A
later check calls it once unperturbed: IDENTICAL when every metric is bit-equal to the
reference, EQUIVALENT when each lies inside the two-sided prediction interval of the
numerics ensemble (reference and members) at family-wise false-alarm rate ``ALPHA``
(split evenly over the metrics; normal members assumed), DRIFT outside. The seed spread
is reported beside it: it says whether a change is also larger than seed noise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import atomic
from repro.errors import UserError
from repro.judge.bands import prediction_interval

MEMBERS, SEEDS, ALPHA = 8, 8, 0.01
SCHEMA_VERSION = 1
# A floor under the ensemble's spread where every member agreed bit for bit: 2^-20 of the
# value (about eight float32 ulps), so a training that absorbed the perturbations does not
# fail on the last bit of another library's arithmetic.
RELATIVE_FLOOR = 2.0**-20


@dataclass(frozen=True)
class Perturbation:
    """Handed to the test's ``run``: the seed to train with, and a call that perturbs the
    model's initial parameters (member 0 leaves them as they are)."""

    seed: int
    member: int = 0

    def __call__(self, model: Any) -> None:
        if self.member == 0:
            return
        import torch

        generator = torch.Generator().manual_seed(self.member)
        with torch.no_grad():
            for parameter in model.parameters():
                if not parameter.is_floating_point():
                    continue
                up = torch.randint(0, 2, parameter.shape, generator=generator).bool()
                inf = torch.tensor(math.inf, dtype=parameter.dtype)
                towards = torch.where(up, inf, -inf).to(parameter.device)
                parameter.copy_(torch.nextafter(parameter, towards))


@dataclass(frozen=True)
class Outcome:
    verdict: str  # IDENTICAL, EQUIVALENT, DRIFT
    report: str

    @property
    def passed(self) -> bool:
        return self.verdict != "DRIFT"


RunFn = Callable[[Perturbation], dict[str, Any]]


def _metrics(run: RunFn, perturbation: Perturbation) -> dict[str, float]:
    values = run(perturbation)
    if not isinstance(values, dict) or not values:
        raise UserError(
            "repro_regression.check's function must return a dict of final metrics "
            f"(numbers), not {type(values).__name__}."
        )
    out = {}
    for name, value in values.items():
        number = float(value.item() if hasattr(value, "item") else value)
        if not math.isfinite(number):
            raise UserError(f"the metric {name} is {number}; a band needs finite metrics.")
        out[str(name)] = number
    return out


def record(run: RunFn, path: Path, *, seed: int = 0) -> dict[str, Any]:
    """Reference, members and seeds, written to ``path`` (atomically)."""
    reference = _metrics(run, Perturbation(seed))
    members = [_metrics(run, Perturbation(seed, member)) for member in range(1, MEMBERS + 1)]
    seeds = [_metrics(run, Perturbation(seed + s)) for s in range(1, SEEDS + 1)]
    for values in [*members, *seeds]:
        if set(values) != set(reference):
            raise UserError(
                f"the function returned metrics {sorted(values)} once and {sorted(reference)} "
                "another time; return the same names every call."
            )
    band = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "alpha": ALPHA,
        "reference": reference,
        "members": members,
        "seeds": seeds,
        "environment": _environment(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(path, band)  # floats by repr: they read back bit for bit
    return band


def load(path: Path) -> dict[str, Any]:
    try:
        band: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(
            f"{path} is not a readable repro_regression band ({exc}); re-record it with "
            "--repro-regen."
        ) from None
    if band.get("schema_version") != SCHEMA_VERSION:
        raise UserError(
            f"{path} has band schema {band.get('schema_version')!r}, this repro reads "
            f"{SCHEMA_VERSION}; re-record it with --repro-regen."
        )
    return band


def check(run: RunFn, band: dict[str, Any]) -> Outcome:
    got = _metrics(run, Perturbation(int(band["seed"])))
    reference: dict[str, float] = band["reference"]
    if set(got) != set(reference):
        return Outcome(
            "DRIFT",
            f"DRIFT: the metrics are {sorted(got)}, the band was recorded for "
            f"{sorted(reference)}; re-record with --repro-regen if that is intended",
        )
    if got == reference:
        return Outcome("IDENTICAL", "IDENTICAL: every metric bit-equal to the recorded reference")
    alpha = float(band["alpha"]) / len(reference)
    lines, outside = [], []
    for name in sorted(reference):
        ensemble = [reference[name], *(m[name] for m in band["members"])]
        floor = abs(reference[name]) * RELATIVE_FLOOR
        _, low, high = prediction_interval(ensemble, alpha, floor)
        _, seed_low, seed_high = prediction_interval([s[name] for s in band["seeds"]], alpha)
        inside = low <= got[name] <= high
        if not inside:
            outside.append(name)
        seed_note = "inside" if seed_low <= got[name] <= seed_high else "outside"
        lines.append(
            f"  {name}: {got[name]!r} vs reference {reference[name]!r}; numerics band "
            f"[{low!r}, {high!r}] ({'inside' if inside else 'OUTSIDE'}); seed interval "
            f"[{seed_low!r}, {seed_high!r}] ({seed_note})"
        )
    verdict = "DRIFT" if outside else "EQUIVALENT"
    head = (
        f"DRIFT: {', '.join(outside)} outside the band rounding-level perturbations span "
        f"(false-alarm rate {band['alpha']:g} over {len(reference)} metrics)"
        if outside
        else "EQUIVALENT: not bit-equal, inside the band rounding-level perturbations span"
    )
    changed = _changed_environment(band.get("environment") or {})
    tail = [f"  recorded with {changed}"] if changed else []
    return Outcome(verdict, "\n".join([head, *lines, *tail]))


def _environment() -> dict[str, Any]:
    import platform

    import torch

    return {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }


def _changed_environment(recorded: dict[str, Any]) -> str:
    """What differs from the recording's environment, among the facts it kept."""
    now = _environment()
    return ", ".join(
        f"{k} {recorded[k]!r} (now {now[k]!r})"
        for k in now
        if k in recorded and recorded[k] != now[k]
    )
