"""What ``repro fleet matrix`` costs over 1,000 node files: terminal, HTML and JUnit.

    python benchmarks/bench_fleet.py [--nodes 1000] [--repeat 5] [--smoke]

The node files are generated from one real node file (``repro fleet node --check
manifest``, written first) with varied facts: three CPU kernel levels, two drivers, four
torch builds (so 24 environment classes), record digests that agree within a class but
for one outlier in 50, and one expected node in 100 silent (NO_RESULT). "repro fleet
matrix" is the whole command as a process (``python -m repro fleet matrix DIR --html F
--junit F``, terminal output discarded). The named alternative, run interleaved, is a
hand-written script that loads every file and groups the nodes by environment key (the
least any matrix must do), without rendering. The claim is <= 2 s.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from results import add_json_option, print_rows, ratio_text, sample_row, write_rows
from runner import add_smoke_option, interleave, time_command

BENCH = "fleet"
TARGET_S = 2.0
HAND_WRITTEN = """
import json, pathlib, sys
classes = {}
for path in pathlib.Path(sys.argv[1]).glob("*.json"):
    node = json.loads(path.read_text())
    key = json.dumps(node["env_key"], sort_keys=True)
    classes.setdefault(key, []).append((node["node"], node["record_digest"]))
print(len(classes))
"""


def generate(real: dict, folder: Path, nodes: int) -> list[str]:
    """``nodes`` node files with varied facts; returns the expected node names."""
    rng = random.Random(0)
    names = [f"n{i:04d}" for i in range(nodes)]
    for i, name in enumerate(names):
        if i % 100 == 99:
            continue  # expected, silent: NO_RESULT
        level, driver, torch = i % 3, (i // 3) % 2, (i // 6) % 4
        data = copy.deepcopy(real)
        data["node"] = name
        data["env_key"]["hardware.cpu.torch_capability"] = ("AVX512", "AVX2", "DEFAULT")[level]
        data["env_key"]["hardware.nvml.driver_version"] = ("550.54.15", "535.161.08")[driver]
        data["env_key"]["libraries.torch.version"] = f"2.{10 + torch}.0"
        data["facts"] = {**data["facts"], "driver": ("550.54.15", "535.161.08")[driver]}
        data.update(check="verify", verdict="EQUIVALENT", exit_code=0, workload="quick:w")
        outlier = i % 50 == 7
        data["record_digest"] = f"{level}{driver}{torch}{'x' if outlier else ''}"
        data["step_digests"] = [f"{rng.getrandbits(48):012x}"] * 3 if outlier else ["0" * 12] * 3
        (folder / f"{name}.json").write_text(json.dumps(data))
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args()
    nodes, repeat = (30, 1) if args.smoke else (args.nodes, args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seed = work / "seed"
        seed.mkdir()
        subprocess.run([sys.executable, "-m", "repro", "fleet", "node", "--check", "manifest",
                        "--profile", "smoke", "--node", "seed", "--out", str(seed)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
        real = json.loads((seed / "seed.json").read_text())
        fleet = work / "fleet"
        fleet.mkdir()
        expected = work / "expected.txt"
        expected.write_text("\n".join(generate(real, fleet, nodes)) + "\n")
        script = work / "group.py"
        script.write_text(HAND_WRITTEN)
        matrix = [sys.executable, "-m", "repro", "fleet", "matrix", str(fleet),
                  "--expect", f"@{expected}", "--html", str(work / "m.html"),
                  "--junit", str(work / "m.xml")]  # fmt: skip
        # The matrix exits with the worst verdict (NO_RESULT: 4): time it, accept that code.
        timings = interleave(
            {
                "repro fleet matrix": lambda: _timed(matrix),
                "hand-written grouping": lambda: time_command([sys.executable, str(script), str(fleet)]),
            },
            repeat=repeat,
        )  # fmt: skip
    ours, hand = timings
    rows = [
        sample_row(
            BENCH,
            f"repro fleet matrix, {nodes} nodes",
            ours.seconds,
            "s",
            ratio=ratio_text(ours.seconds, hand.seconds, "hand-written grouping"),
            at_most=None if args.smoke else TARGET_S,
        ),
        sample_row(BENCH, f"hand-written grouping, {nodes} nodes", hand.seconds, "s"),
    ]
    print_rows(f"repro fleet matrix over {nodes} node files (terminal + HTML + JUnit)", rows)
    write_rows(args.json, rows)
    return 0 if args.smoke or all(r.met is not False for r in rows) else 1


def _timed(argv: list[str]) -> float:
    import time

    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode not in (0, 1, 3, 4):
        raise RuntimeError(done.stderr)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
