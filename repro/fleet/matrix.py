"""The fleet matrix: one row per node, grouped into environment classes, peers checked.

Nodes of one environment class (one training, one environment key) must produce
bit-identical records. Where a strict majority of a class agrees on one record digest,
a node with another digest is a peer outlier; where none does, the class disagrees. Either
is DRIFT ("not bit-identical where bit-identity is expected") for a node whose own verdict
says no more (NO_BASELINE, EQUIVALENT, FIT): the peers stand in for a missing baseline.
A node IDENTICAL to the baseline is never the outlier. An expected node that wrote
nothing is NO_RESULT.

    >>> [_label(i) for i in (0, 1, 25, 26)]
    ['A', 'B', 'Z', 'AA']
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from repro import strict_json
from repro.errors import UserError
from repro.fleet.node import _NODE_NAME, FIT, NodeResult, load_node_file
from repro.verdict import Verdict

EXPECTED_FILE = "expected-nodes.txt"
# A node's own verdict that the peers may overrule: it said nothing about bit-identity.
_PEERS_DECIDE = {Verdict.NO_BASELINE.value, Verdict.EQUIVALENT.value, FIT}


@dataclass(frozen=True)
class Row:
    node: str
    verdict: str  # the fleet's verdict for the node
    exit_code: int
    result: NodeResult | None  # None: an expected node that wrote nothing
    env_class: str = "-"  # "A" is the largest class
    peer: str | None = None  # what the peers found, when they disagree with this node
    outlier: bool = False  # a strict majority of its class disagrees with it


@dataclass(frozen=True)
class Matrix:
    rows: list[Row]  # by class (largest first), then node name
    classes: list[tuple[str, int]]  # (label, nodes)
    differing: list[str]  # environment-key facts that differ across the fleet
    verdict: str
    exit_code: int

    @property
    def headline(self) -> str:
        missing = sum(r.result is None for r in self.rows)
        outliers = sum(r.peer is not None for r in self.rows)
        return (
            f"{self.verdict}: {len(self.rows)} nodes in {len(self.classes)} environment "
            f"class(es), {outliers} disagreeing with their peers, {missing} without a result"
        )


def _label(index: int) -> str:
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(65 + rest) + label
    return label


def read_expected(text: str, where: str) -> list[str]:
    """Node names, one a line or comma-separated; a name no node can have is bad input."""
    names = [n.strip() for line in text.splitlines() for n in line.split(",") if n.strip()]
    bad = [n for n in names if not _NODE_NAME.match(n)]
    if bad or not names:
        what = f"names {bad[0]!r}, which is no node name" if bad else "names no node"
        raise UserError(
            f"the expected node list ({where}) {what}; list node names as the engine spells them (n1,n2,...)."
        )
    return sorted(set(names))


def load_folder(folder: Path) -> list[NodeResult]:
    """Every node file in ``folder``; two files for one node are bad input."""
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder; pass the --out folder the nodes wrote to.")
    results: dict[str, tuple[Path, NodeResult]] = {}
    for path in sorted(folder.glob("*.json")):
        result = load_node_file(path)
        if result.node in results:
            other = results[result.node][0]
            raise UserError(
                f"{other} and {path} both hold node {result.node}; keep the newer one and rerun."
            )
        results[result.node] = (path, result)
    return [result for _, result in results.values()]


def expected_nodes(folder: Path, expect: str | None) -> list[str] | None:
    """``--expect`` (names, or @FILE), else the list the renderer wrote, else None."""
    if expect is not None:
        if expect.startswith("@"):
            path = Path(expect[1:])
            if not path.is_file():
                raise UserError(f"--expect {expect}: {path} does not exist.")
            return read_expected(path.read_text(encoding="utf-8"), str(path))
        return read_expected(expect, "--expect")
    path = folder / EXPECTED_FILE
    if path.is_file():
        return read_expected(path.read_text(encoding="utf-8"), str(path))
    return None


def _check_known(results: list[NodeResult], expected: list[str], folder: Path) -> None:
    unknown = sorted({r.node for r in results} - set(expected))
    if unknown:
        raise UserError(
            f"{folder} holds a result from {unknown[0]}, a node the expected list does not "
            f"name ({', '.join(expected[:5])}{', ...' if len(expected) > 5 else ''}); "
            "remove the stray file or fix the list."
        )


def _peer_findings(members: list[NodeResult], label: str) -> dict[str, tuple[str, bool]]:
    """Per node whose record its peers do not share: (what they found, outlier?)."""
    judged = [m for m in members if m.record_digest is not None]
    counts = Counter(m.record_digest for m in judged)
    if len(counts) < 2:
        return {}
    digest, count = counts.most_common(1)[0]
    found: dict[str, tuple[str, bool]] = {}
    if count * 2 <= len(judged):
        for m in judged:
            if m.verdict != Verdict.IDENTICAL.value:
                found[m.node] = (
                    f"class {label} disagrees: {len(counts)} different records among "
                    f"{len(judged)} nodes, no majority",
                    False,
                )
        return found
    reference = next(m for m in judged if m.record_digest == digest)
    for m in judged:
        if m.record_digest == digest or m.verdict == Verdict.IDENTICAL.value:
            continue
        found[m.node] = (
            f"record differs from its {count} peers of class {label} {_where(m, reference)}",
            True,
        )
    return found


def _where(node: NodeResult, peer: NodeResult) -> str:
    a, b = node.step_digests, peer.step_digests
    if not a or not b:  # a Kubernetes summary too long for 4 KiB drops its step digests
        return "(where: not known, no step digests)"
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return "in the initial parameters" if index == 0 else f"at step {index - 1}"
    return "in the final metrics" if len(a) == len(b) else f"after step {min(len(a), len(b)) - 2}"


def _row_verdict(result: NodeResult, peer: tuple[str, bool] | None) -> tuple[str, int]:
    verdict = result.verdict
    if peer is not None and verdict in _PEERS_DECIDE:
        verdict = Verdict.DRIFT.value
    return verdict, 0 if verdict == FIT else Verdict(verdict).exit_code


def differing_facts(results: list[NodeResult]) -> list[str]:
    """Environment-key facts whose value is not the same on every node that reported."""
    seen: dict[str, set[str]] = {}
    for r in results:
        for key, value in r.env_key.items():
            seen.setdefault(key, set()).add(strict_json.dumps(value, sort_keys=True))
    return sorted(
        key
        for key, values in seen.items()
        if len(values) > 1 or any(key not in r.env_key for r in results)
    )


def build_matrix(results: list[NodeResult], expected: list[str] | None = None) -> Matrix:
    by_class: dict[str, list[NodeResult]] = {}
    for r in results:
        by_class.setdefault(r.env_class, []).append(r)
    ordered = sorted(by_class.values(), key=lambda ms: (-len(ms), min(m.node for m in ms)))
    rows: list[Row] = []
    classes: list[tuple[str, int]] = []
    for index, members in enumerate(ordered):
        label = _label(index)
        classes.append((label, len(members)))
        findings = _peer_findings(members, label)
        for m in sorted(members, key=lambda m: m.node):
            found = findings.get(m.node)
            verdict, code = _row_verdict(m, found)
            peer, outlier = found if found else (None, False)
            rows.append(Row(m.node, verdict, code, m, label, peer, outlier))
    reported = {r.node for r in results}
    for name in sorted(set(expected or []) - reported):
        rows.append(Row(name, Verdict.NO_RESULT.value, Verdict.NO_RESULT.exit_code, None))
    if not rows:
        raise UserError("no node files and no expected nodes: nothing to build a matrix of.")
    judged = [r.verdict for r in rows if r.verdict != FIT]
    worst = Verdict.worst(judged).value if judged else FIT
    code = 0 if worst == FIT else Verdict(worst).exit_code
    return Matrix(rows, classes, differing_facts(results), worst, code)


def matrix_of_folder(folder: Path, expect: str | None = None) -> Matrix:
    """The matrix of a folder of node files, against the expected nodes where known."""
    expected = expected_nodes(folder, expect)
    results = load_folder(folder)
    if expected is not None:
        _check_known(results, expected, folder)
    return build_matrix(results, expected)
