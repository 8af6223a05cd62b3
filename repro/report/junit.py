"""JUnit XML for CI systems: one testcase per check of a verdict."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from repro import atomic
from repro.judge import Comparison


def _checks(c: Comparison) -> list[tuple[str, str | None, str | None]]:
    """(name, failure message or None, skip reason or None) for each check."""
    bitwise = (
        None
        if c.identical
        else (
            f"first differs at step {c.first_difference.step}: {c.first_difference.detail}"
            if c.first_difference
            else "not bit-identical"
        )
    )
    checks: list[tuple[str, str | None, str | None]] = []
    if c.reference:
        checks.append(("bitwise", bitwise, None))
    else:
        checks.append(("bitwise", None, "no baseline to compare against"))
    if c.numerics.applied:
        failed = (
            None
            if c.numerics.ok
            else f"outside the numerics band from step {c.numerics.first_step_outside}"
        )
        checks.append(("numerics band", failed, None))
    else:
        checks.append(("numerics band", None, c.numerics.reason))
    if c.seed.applied:
        bad = [
            f"{m.metric} {m.value:.6g} outside [{m.low:.6g}, {m.high:.6g}]"
            for m in c.seed.metrics
            if not m.ok
        ]
        checks.append(("seed interval", "; ".join(bad) or None, None))
    else:
        checks.append(("seed interval", None, c.seed.reason))
    consistency = c.failure["message"] if c.failure else None
    if c.nondeterminism:
        consistency = c.summary
    checks.append(("consistency", consistency, None))
    return checks


def write_junit(path: Path, comparison: Comparison, *, name: str = "repro verify") -> None:
    checks = _checks(comparison)
    suite = ET.Element(
        "testsuite",
        {
            "name": name,
            "tests": str(len(checks)),
            "failures": str(sum(1 for _, f, _ in checks if f)),
            "skipped": str(sum(1 for _, _, s in checks if s)),
        },
    )
    for check, failure, skipped in checks:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"repro.{comparison.candidate.get('profile')}", "name": check},
        )
        if failure:
            ET.SubElement(case, "failure", {"message": failure}).text = comparison.summary
        elif skipped:
            ET.SubElement(case, "skipped", {"message": skipped})
    ET.SubElement(
        suite, "system-out"
    ).text = f"verdict: {comparison.verdict}\n{comparison.summary}\n"
    atomic.write_bytes(Path(path), ET.tostring(suite, encoding="utf-8", xml_declaration=True))
