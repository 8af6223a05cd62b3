"""How long capturing an environment manifest takes, in-process and as a whole command.

    python benchmarks/bench_manifest.py [--repeat 30] [--processes 5] [--smoke]

(a) ``capture_manifest()`` in-process, after ``import torch`` and ``import git`` (those
    imports are paid once by any run), with this environment's packages and with 100
    extra ``*.dist-info`` folders on sys.path; the claim is <= 150 ms. Also the packages
    probe alone, per package.
(b) ``python -m repro manifest`` against ``python -m torch.utils.collect_env`` and a bare
    ``python -c 'import torch'``, as whole processes, interleaved; the claim is that the
    manifest costs <= 150 ms past the bare import (the median of the paired differences).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from runner import Timing, add_smoke_option, interleave, print_table, time_callable, time_command

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTRA_PACKAGES = 100
PAST_TORCH_MS = 150  # the claim: repro manifest's cost beyond a bare import of torch


def _make_site(folder: Path, count: int) -> None:
    """``count`` installed-looking distributions (dist-info folders with METADATA)."""
    for index in range(count):
        dist_info = folder / f"bench_pkg_{index}-1.0.{index}.dist-info"
        dist_info.mkdir()
        (dist_info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: bench-pkg-{index}\nVersion: 1.0.{index}\n"
        )


def _named(name: str, timing: Timing) -> Timing:
    return Timing(name, timing.seconds)


def in_process(repeat: int) -> None:
    import git  # noqa: F401  (paid once per process, outside the claim)
    import torch  # noqa: F401

    from repro.manifest import capture_manifest
    from repro.manifest.git_info import repository_state
    from repro.manifest.packages import packages

    def timed(name: str, fn: Callable[[], object]) -> Timing:
        return _named(name, time_callable(fn, repeat=repeat))

    # The first call in a process is what a run pays: nothing of the probes is warm yet.
    first = _named(
        "first call in this process", time_callable(capture_manifest, repeat=1, warmup=0)
    )
    installed = packages()["count"]
    timings = [
        first,
        timed(f"capture_manifest ({installed} packages)", capture_manifest),
        timed("  of which git state (git status)", lambda: repository_state(REPO_ROOT)),
        timed(f"  of which packages probe ({installed})", packages),
    ]
    with tempfile.TemporaryDirectory() as extra:
        _make_site(Path(extra), EXTRA_PACKAGES)
        sys.path.insert(0, extra)
        try:
            total = packages()["count"]
            timings += [
                timed(f"capture_manifest ({total} packages)", capture_manifest),
                timed(f"  of which packages probe ({total})", packages),
            ]
        finally:
            sys.path.remove(extra)

    print_table(
        f"(a) in-process, {repeat} calls each after one warm-up; torch and git already imported",
        timings,
        baseline=timings[1].name,
    )
    per_package_ms = timings[-1].median / total * 1e3
    added_ms = (timings[-1].median - timings[3].median) / EXTRA_PACKAGES * 1e3
    print(
        f"\npackages probe: {per_package_ms:.3f} ms per package on average, "
        f"{added_ms:.3f} ms per added package"
    )


def whole_process(repeat: int) -> None:
    # As a user's install has it: repro's modules compiled once (pip does it at install;
    # an editable install on first import, unless PYTHONDONTWRITEBYTECODE forbids it).
    # Without this every run would compile repro from source, a cost no user pays twice.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO_ROOT / "repro")], check=True)
    commands = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "python -m repro manifest": [sys.executable, "-m", "repro", "manifest"],
        "python -m torch.utils.collect_env": [sys.executable, "-m", "torch.utils.collect_env"],
    }
    timings = interleave(
        {
            name: functools.partial(time_command, argv, cwd=REPO_ROOT)
            for name, argv in commands.items()
        },
        repeat=repeat,
    )
    print_table(
        f"(b) whole processes, {repeat} interleaved runs each",
        timings,
        baseline="python -m torch.utils.collect_env",
    )
    # Paired by round (the three ran back to back), so a slow moment of the machine
    # shows in both sides of a difference instead of in one.
    bare, manifest = timings[0].seconds, timings[1].seconds
    past = sorted(m - b for m, b in zip(manifest, bare))
    print(
        f"\nrepro manifest past a bare `import torch`: median {statistics.median(past) * 1e3:.0f} ms "
        f"(rounds {', '.join(f'{d * 1e3:.0f}' for d in past)} ms; claim <= {PAST_TORCH_MS} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="in-process calls per case")
    parser.add_argument("--processes", type=int, default=5, help="runs per command")
    add_smoke_option(parser)
    args = parser.parse_args()
    if args.smoke:
        args.repeat, args.processes = 2, 1
    in_process(args.repeat)
    whole_process(args.processes)


if __name__ == "__main__":
    main()
