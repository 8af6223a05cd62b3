"""The batch script that runs ``repro fleet node`` once on each of N Slurm nodes.

>>> expand_hostlist("n[1-3],gpu07,g[08-09]")
['n1', 'n2', 'n3', 'gpu07', 'g08', 'g09']
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from repro import atomic
from repro.errors import UserError
from repro.fleet.matrix import EXPECTED_FILE

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top(text: str) -> list[str]:
    """Split at commas outside brackets: ``n[1,3],m2`` is two parts."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def expand_hostlist(text: str) -> list[str]:
    """Slurm's hostlist syntax (``n[1-3,7]``) as node names; zero padding is kept.

    The expected list must hold names as nodes report them, or the matrix would count an
    unexpanded ``n[1-3]`` as a node that wrote nothing."""
    names: list[str] = []
    for part in filter(None, (p.strip() for p in _split_top(text))):
        m = re.fullmatch(r"([^\[\]]*)\[([^\[\]]+)\]([^\[\]]*)", part)
        if m is None:
            if "[" in part or "]" in part:
                raise UserError(f"-w {text!r}: cannot read {part!r} as a Slurm host list.")
            names.append(part)
            continue
        prefix, ranges, suffix = m.groups()
        for item in ranges.split(","):
            r = _RANGE.match(item.strip())
            if r is None or (r.group(2) and int(r.group(2)) < int(r.group(1))):
                raise UserError(f"-w {text!r}: {item!r} is not a range like 1-8 or 03-05.")
            low, high = r.group(1), r.group(2) or r.group(1)
            width = len(low) if low.startswith("0") else 0
            names += [f"{prefix}{n:0{width}d}{suffix}" for n in range(int(low), int(high) + 1)]
    return names


def render_slurm(nodes: int, out: Path, names: list[str] | None, node_options: list[str]) -> str:
    """The sbatch script: one task per node, the nodes to themselves, every task to the end
    (one node's bad verdict must not stop the others from reporting)."""
    if nodes < 1:
        raise UserError(f"--nodes {nodes}: a fleet has at least one node.")
    if names is not None and len(names) != nodes:
        raise UserError(f"--nodes {nodes} but -w names {len(names)} node(s); make them agree.")
    folder = shlex.quote(str(out))
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=repro-fleet",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
    ]
    if names is not None:
        lines.append(f"#SBATCH --nodelist={','.join(names)}")
    lines += [
        f"#SBATCH --output={folder}/slurm-%j.out",
        "# Each node writes <node>.json into the folder (shared storage) and exits with its",
        "# verdict's code; then: repro fleet matrix " + folder,
        f"mkdir -p {folder}",
        "srun --kill-on-bad-exit=0 --ntasks-per-node=1 "
        + shlex.join(["repro", "fleet", "node", "--out", str(out), *node_options]),
        "",
    ]
    return "\n".join(lines)


def write_expected(out: Path, names: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / EXPECTED_FILE
    atomic.write_text(path, "\n".join(names) + "\n")
    return path
