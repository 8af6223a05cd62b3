"""JUnit XML for CI systems: one testcase per check of a verdict."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from repro import atomic
from repro.judge.comparison import Comparison
from repro.judge.resumes import is_resume_check


def _checks(c: Comparison) -> list[tuple[str, str | None, str | None]]:
    """(name, failure message or None, skip reason or None) for each check.

    A consumer sees a failure exactly when the verdict's exit code is non-zero:
    each check fails only when it moved the verdict, and the closing ``verdict``
    case fails with the verdict's summary whenever the exit code is non-zero.
    """
    checks: list[tuple[str, str | None, str | None]] = []
    if not c.reference:
        checks.append(("bitwise", None, "no baseline to compare against"))
    elif c.identical:
        checks.append(("bitwise", None, None))
    elif c.bitwise_expected:
        where = c.first_difference
        detail = (
            f"first differs at step {where.step}: {where.detail}" if where else "records differ"
        )
        checks.append(("bitwise", f"bit-identity is expected here, yet {detail}", None))
    else:
        checks.append(("bitwise", None, "bit-identity is not expected: " + _why_not_bitwise(c)))
    sequences = [e for e in c.exact if not is_resume_check(e)]
    exact = [e.detail for e in sequences if not e.ok]
    if sequences or c.identical:
        checks.append(("exact sequences", "; ".join(exact) or None, None))
    else:
        checks.append(("exact sequences", None, "not applied: the runs are not one training"))
    # A resume (``verify --resume-at``, or a resumed run compared) is a check of its own.
    checks += [(e.name, None if e.ok else e.detail, None) for e in c.exact if is_resume_check(e)]
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
    runs = c.seed_runs  # verify --seed-runs: a check of its own, only where asked for
    if runs is not None:
        failed = None if runs.verdict is None or runs.verdict.passed else runs.reason
        checks.append(("seed runs", failed, None if runs.applied else runs.reason))
    consistency = c.failure.message if c.failure else None
    if c.nondeterminism:
        consistency = c.summary
    checks.append(("consistency", consistency, None))
    verdict = None if c.verdict.passed else f"{c.verdict} (exit {c.verdict.exit_code}): {c.summary}"
    checks.append(("verdict", verdict, None))
    return checks


def _why_not_bitwise(c: Comparison) -> str:
    if not c.env_key_match:
        keys = [d.key for d in c.env_differences if d.env_key]
        return f"the environment keys differ ({', '.join(keys[:4]) or 'see the report'})"
    differing = [n for names in c.setting_differences.values() for n in names]
    if differing:
        return f"the settings differ ({', '.join(differing[:4])})"
    return "one of the runs is perturbed on purpose (a fault or a band member)"


def _suite(comparison: Comparison, name: str) -> ET.Element:
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
            {"classname": f"repro.{comparison.candidate.profile}", "name": check},
        )
        if failure:
            ET.SubElement(case, "failure", {"message": failure}).text = comparison.summary
        elif skipped:
            ET.SubElement(case, "skipped", {"message": skipped})
    ET.SubElement(
        suite, "system-out"
    ).text = f"verdict: {comparison.verdict}\n{comparison.summary}\n"
    return suite


def write_junit(
    path: Path, comparisons: Comparison | list[Comparison], *, name: str = "repro verify"
) -> None:
    """One test suite per comparison (``verify --per-device``: one per device), each named
    after its run when there are several."""
    many = comparisons if isinstance(comparisons, list) else [comparisons]
    if len(many) == 1:
        root = _suite(many[0], name)
    else:
        root = ET.Element("testsuites", {"name": name})
        for c in many:
            root.append(_suite(c, f"{name}: {c.candidate.name}"))
    atomic.write_bytes(Path(path), ET.tostring(root, encoding="utf-8", xml_declaration=True))
