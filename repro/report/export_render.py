"""``repro export-check``'s report as blocks (terminal, Markdown, HTML) and as JUnit XML.

Rendering only: every number and word comes from the ``ExportCheck``.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

from repro import atomic
from repro.export.check import ExportCheck, FormatCheck, OutputCheck
from repro.report.blocks import VERDICT_TONES, Block, Item, Items, Table, Text, Tone, fmt_small
from repro.verdict import Verdict

NAMES = {"export": "torch.export", "onnx": "ONNX Runtime", "torchscript": "TorchScript"}


def headline(result: ExportCheck) -> str:
    return f"{result.verdict}: {result.summary}"


def tone(result: ExportCheck) -> Tone:
    return VERDICT_TONES[result.verdict]


def _yes(flag: bool | None) -> str:
    return "n/a" if flag is None else ("pass" if flag else "FAIL")


def _row(fmt: FormatCheck, o: OutputCheck) -> tuple[str, ...]:
    d = o.distance
    where = (fmt.format, f"{o.input_set}/{o.output}", str(o.verdict))
    if d is None:
        return (*where, o.reason, "", "", fmt_small(o.bound), "")
    ulp = "" if d.max_ulp is None else str(d.max_ulp)
    return (*where, fmt_small(d.max_abs), fmt_small(d.max_rel), ulp, fmt_small(o.bound), _yes(d.assert_close))  # fmt: skip


def _table(result: ExportCheck) -> Table:
    rows = [(f, o) for f, o in _outputs(result)]
    return Table(
        ("format", "set/out", "verdict", "max abs", "max rel", "ulp", "bound", "assert_close"),
        tuple(_row(f, o) for f, o in rows),
        tuple(VERDICT_TONES[o.verdict] for _, o in rows),
        (False, False, False, True, True, True, True, False),
    )


def _outputs(result: ExportCheck) -> list[tuple[FormatCheck, OutputCheck]]:
    return [(f, o) for f in result.formats for o in f.outputs]


def _optimum(result: ExportCheck) -> str:
    failing = [f"{f.format} {o.input_set}/{o.output}" for f, o in _outputs(result) if o.distance and not o.distance.optimum]  # fmt: skip
    return f"fails for {', '.join(failing)}" if failing else "passes for every output"


def _facts(fmt: FormatCheck) -> tuple[str, ...]:
    keep = ("onnxruntime", "providers", "graph_optimization_level", "opset", "NVIDIA_TF32_OVERRIDE", "torch", "dynamic_shapes")  # fmt: skip
    facts = [f"{k}: {fmt.facts[k]}" for k in keep if k in fmt.facts]
    times = f"export {fmt.export_seconds:.2f} s, runs {fmt.run_seconds:.2f} s"
    lines = [", ".join(facts), times] if facts else [times]
    if fmt.first_diverging:
        fd = fmt.first_diverging
        if "error" in fd:
            lines.append(f"first diverging value: not found ({fd['error']})")
        else:
            lines.append(
                f"first diverging value: {fd['value']} from node {fd['node']} ({fd['op_type']}), "
                f"{fd['max_abs']:.3g} off the ExportedProgram (value {fd['position']} of {fd['compared']} in graph order)"
            )
    lines += [f"probable cause: {c}" for c in fmt.causes]
    if fmt.deprecated:
        lines.append(f"deprecated: {fmt.deprecated}")
    # TorchScript's own deprecation warnings are the label above, not news.
    news = [w for w in fmt.warnings if not (fmt.deprecated and "deprecated" in w)]
    lines += [f"warning: {w}" for w in news[:4]]
    return tuple(lines)


def _format_item(fmt: FormatCheck) -> Item:
    verdict = fmt.verdict
    tag = str(verdict) if verdict else "unavailable"
    label = NAMES[fmt.format] + (" (deprecated)" if fmt.deprecated else "")
    return Item(f"{label}: {fmt.summary}", tag=tag, tone=VERDICT_TONES[verdict] if verdict else "muted", details=_facts(fmt))  # fmt: skip


def export_blocks(result: ExportCheck) -> list[Block]:
    cal = result.calibration
    out: list[Block] = [
        Text(f"{result.verdict}: {result.verdict.meaning}", strong=True),
        Items(tuple(_format_item(f) for f in result.formats), title="Formats"),
        _table(result),
        Text(
            f"Tolerance: {cal.members} eager runs with every weight nudged one ulp at random; "
            f"a format is EQUIVALENT below the one-sided log-normal prediction bound of their "
            f"max abs deviations at a {cal.alpha:g} false-alarm rate per format "
            f"({cal.level:.2g} per output); IDENTICAL only when bit-equal. assert_close: "
            "torch.testing's dtype defaults; Optimum's numpy.allclose(atol=1e-5) "
            f"{_optimum(result)}.",
            tone="muted",
        ),
        Text(
            f"{result.origin}: {result.parameters:,} parameters, input sets "
            f"{'; '.join(str(s) for s in result.input_shapes)}, weights {result.weights_identity[:12]}"
            + (f" = {result.checkpoint}" if result.checkpoint else "")
            + f"; {result.seconds:.1f} s in all.",
            tone="muted",
        ),
    ]
    return out


def write_export_junit(path: Path, result: ExportCheck) -> None:
    """One testcase per format (skipped when unavailable) and a closing ``verdict`` case."""
    suite = ET.Element("testsuite", {"name": "repro export-check"})
    cases = 0
    failures = skipped = 0
    for fmt in result.formats:
        case = ET.SubElement(suite, "testcase", {"classname": "repro.export", "name": fmt.format})
        cases += 1
        if fmt.verdict is None:
            ET.SubElement(case, "skipped", {"message": fmt.summary})
            skipped += 1
        elif not fmt.verdict.passed:
            ET.SubElement(case, "failure", {"message": f"{fmt.verdict}: {fmt.summary}"})
            failures += 1
    verdict = ET.SubElement(suite, "testcase", {"classname": "repro.export", "name": "verdict"})
    cases += 1
    if not result.verdict.passed:
        ET.SubElement(verdict, "failure", {"message": headline(result)})
        failures += 1
    suite.attrib.update(tests=str(cases), failures=str(failures), skipped=str(skipped))
    ET.SubElement(suite, "system-out").text = headline(result) + "\n"
    atomic.write_bytes(path, ET.tostring(suite, encoding="utf-8", xml_declaration=True))


def exit_code(result: ExportCheck) -> int:
    return Verdict(result.verdict).exit_code
