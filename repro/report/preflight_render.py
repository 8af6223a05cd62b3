"""How a preflight is shown: one table row per check, worst first, in the terminal, and one
JUnit testcase per check. The compare report lists a run's preflight findings beside its
environment differences (``render.py``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from repro import atomic, strict_json
from repro.judge.parts import RunDescription
from repro.preflight.check import STATUSES, Check, Preflight
from repro.report.blocks import Block, Item, Items, Text, Tone

STATUS_TONES: dict[str, Tone] = {
    "fail": "bad",
    "warn": "warn",
    "unavailable": "muted",
    "ok": "good",
}


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict) and "busbw_gbps" in value:
        return f"{value['busbw_gbps']:.3g} GB/s at {value['bytes']} B"
    text = value if isinstance(value, str) else strict_json.dumps(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _line(check: Check) -> str:
    text = f"{check.name}: {_value(check.value)}"
    if check.status != "ok":
        text += f" (expected {check.expected})"
    return text + (f": {check.reason}" if check.reason else "")


def preflight_blocks(preflight: Preflight, strict: bool = False) -> tuple[str, Tone, list[Block]]:
    """The headline, its tone and one item per check, worst first."""
    unfit = preflight.unfit(strict)
    headline = f"{'UNFIT' if unfit else 'FIT'}  repro preflight: {preflight.summary(strict)}"
    order = sorted(preflight.checks, key=lambda c: STATUSES.index(c.status))
    items = Items(
        tuple(
            Item(
                _line(c),
                tag=c.status,
                tone=STATUS_TONES[c.status],
                details=(f"source: {c.source}",),
            )
            for c in order
        )
    )
    blocks: list[Block] = [items]
    if unfit:
        blocks.append(Text("Fix the failed checks (each says how), then run again.", "bad"))
    return headline, ("bad" if unfit else "good"), blocks


def preflight_findings(*runs: RunDescription | None) -> tuple[Block, ...]:
    """The compare report's list of each run's preflight warnings and failures: the
    machine's health when the run began, never an environment difference."""
    items = [
        Item(
            f"{run.name}: {_line(check)}",
            tag=f"preflight {check.status}",
            tone=STATUS_TONES[check.status],
        )
        for run in runs
        if run
        for check in map(Check.from_dict, run.preflight)
    ]
    return (Items(tuple(items), title="Preflight findings"),) if items else ()


def write_preflight_junit(path: Path, preflight: Preflight, strict: bool = False) -> None:
    """One testcase per check: a fail (a warning with ``strict``) fails it; unavailable skips it."""
    failing = {id(c) for c in preflight.unfit(strict)}
    suite = ET.Element(
        "testsuite",
        {
            "name": "repro preflight",
            "tests": str(len(preflight.checks)),
            "failures": str(len(failing)),
            "skipped": str(sum(c.status == "unavailable" for c in preflight.checks)),
        },
    )
    for check in preflight.checks:
        case = ET.SubElement(
            suite, "testcase", {"classname": "repro.preflight", "name": check.name}
        )
        message = f"{check.status}: {check.reason} (value {_value(check.value)}, expected {check.expected}; {check.source})"
        if id(check) in failing:
            ET.SubElement(case, "failure", {"message": message})
        elif check.status == "unavailable":
            ET.SubElement(case, "skipped", {"message": check.reason})
        else:
            ET.SubElement(case, "system-out").text = message
    atomic.write_bytes(Path(path), ET.tostring(suite, encoding="utf-8", xml_declaration=True))
