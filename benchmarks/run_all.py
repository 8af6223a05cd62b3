"""Run every benchmark in sequence and print one combined table.

    python benchmarks/run_all.py [--only bench_run bench_verify] [--record] [--markdown FILE] [--smoke]

(``nox -s bench`` runs it.) Each ``bench_*.py`` runs as its own process, never two at
once, with its output shown as it goes. Scripts built on ``results.py`` hand their rows
over as JSON (``--json``); for the others, the tables they print with ``runner.py`` are
read back. The combined table ends with the machine it was measured on and the command.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import Row, format_rows, load_average, read_rows
from runner import add_smoke_option

HERE = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_manifest",
    "bench_overhead",
    "bench_run",
    "bench_verify",
    "bench_compare",
    "bench_scaling",
    "bench_tracking",
    "bench_groups",
    "bench_preflight",
    "bench_explain",
    "bench_export",
    "bench_regression",
)


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "CPU": cpu,
        "usable cores": str(len(os.sched_getaffinity(0))),
        "memory": f"{memory_kib / 2**20:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "torch": importlib.metadata.version("torch"),
        "repro commit": commit(),
    }


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    )
    return done.stdout.strip() or "unknown (not a git checkout)"


def parse_runner_tables(bench: str, text: str) -> list[Row]:
    """Rows of the tables ``runner.print_table`` printed (case, n, median, IQR, min-max, ratio)."""
    rows, lines = [], text.splitlines()
    for i, line in enumerate(lines[:-1]):
        if not (line.startswith("case  ") and set(lines[i + 1]) == {"-"}):
            continue
        header = re.split(r"\s{2,}", line.strip())
        unit = header[2].split()[-1]  # "median ms"
        peer = header[5][2:] if len(header) > 5 else ""  # "x NAME"
        for body in lines[i + 2 :]:
            cells = re.split(r"\s{2,}", body.strip())
            if len(cells) < 5 or not cells[1].isdigit():  # the table ended
                break
            ratio = f"{cells[5]} x {peer}" if len(cells) > 5 and cells[5] != "1.00" else ""
            rows.append(
                Row(
                    bench,
                    cells[0],
                    int(cells[1]),
                    float(cells[2]),
                    unit,
                    f"IQR {cells[3]}, range {cells[4]}",
                    ratio,
                )
            )
    return rows


def run_script(name: str, extra: list[str]) -> tuple[list[Row], int]:
    """Run one benchmark, echoing its output; its rows and exit code."""
    path = HERE / f"{name}.py"
    with tempfile.TemporaryDirectory(prefix="bench-rows-") as tmp:
        rows_file = Path(tmp) / "rows.json"
        gives_json = "add_json_option" in path.read_text()
        command = [sys.executable, str(path), *extra]
        if gives_json:
            command += ["--json", str(rows_file)]
        print(f"\n=== {' '.join(['python', f'benchmarks/{name}.py', *extra])}", flush=True)
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=HERE.parent)
        assert proc.stdout is not None
        output = []
        for line in proc.stdout:
            print(line, end="", flush=True)
            output.append(line)
        code = proc.wait()
        if code != 0:
            return [], code
        bench = name.removeprefix("bench_")
        if gives_json:
            return read_rows(rows_file), code
        return parse_runner_tables(bench, "".join(output)), code


def format_markdown(rows: list[Row]) -> str:
    lines = [
        "| benchmark | case | n | median | unit | spread | ratio | target | met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        value = f"{r.value:.4g}"
        cells = (r.bench, r.case, str(r.n), value, r.unit, r.spread, r.ratio, r.target, met)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=SCRIPTS, metavar="NAME", help="a subset")
    parser.add_argument("--record", action="store_true", help="bench_verify also times a record")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write Markdown")
    add_smoke_option(parser)
    args = parser.parse_args()

    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = load_average()
    all_rows: list[Row] = []
    failures = []
    for name in args.only or SCRIPTS:
        if not (HERE / f"{name}.py").exists():
            continue
        extra = ["--record"] if name == "bench_verify" and args.record else []
        extra += ["--smoke"] if args.smoke else []
        rows, code = run_script(name, extra)
        all_rows += rows
        if code != 0:
            failures.append(f"{name} exited {code}")

    command = " ".join(["python", "benchmarks/run_all.py", *sys.argv[1:]])
    about = {
        **machine(),
        "started": started,
        "load average (1/5/15 min) before, after": f"{load_before}; {load_average()}",
        "command": command,
    }
    print("\n\nall benchmarks\n")
    print(format_rows(all_rows, with_bench=True))
    print()
    for key, value in about.items():
        print(f"{key}: {value}")
    for failure in failures:
        print(f"FAILED: {failure}")
    if args.markdown:
        notes = "\n".join(f"- {key}: {value}" for key, value in about.items())
        args.markdown.write_text(f"{format_markdown(all_rows)}\n\n{notes}\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
