"""``repro manifest``: capture this machine's manifest, or diff two manifests.

repro manifest                      # YAML on stdout
repro manifest --out manifest.json  # written atomically, JSON by suffix
repro manifest --diff runs/a runs/b # run directories or manifest files
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import yaml

from repro import strict_json
from repro.errors import EXIT_OK, UserError
from repro.gc_freeze import frozen_imports
from repro.manifest.diff import diff_manifests, format_differences
from repro.manifest.schema import load_manifest, manifest_path, write_manifest


def add_manifest(sub: Any, command: Any) -> None:
    parser: argparse.ArgumentParser = command(
        sub, "manifest", "capture this machine's environment manifest, or diff two manifests"
    )
    parser.description = (
        "Record everything on this machine that can move a training run's numbers "
        "(hardware, library versions, math-mode flags, environment, git state), or "
        "compare two such records."
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="write the manifest to FILE (JSON if it ends in .json, else YAML) instead of stdout",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    parser.add_argument(
        "--repo",
        type=Path,
        metavar="PATH",
        help="git repository of the code being verified (default: the working directory)",
    )
    parser.add_argument(
        "--diff",
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="compare two manifests (files, or run directories holding manifest.yaml)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.diff is not None:
        if args.out is not None or args.repo is not None:
            raise UserError("--diff compares two existing manifests; drop --out and --repo.")
        return diff_command(*args.diff, as_json=args.json)
    return capture_command(out=args.out, as_json=args.json, repo=args.repo)


def render_differences_report(path_a: Path, path_b: Path, *, as_json: bool = False) -> str:
    """The text ``repro manifest --diff A B`` prints (JSON: a list of differences)."""
    differences = diff_manifests(load_manifest(path_a), load_manifest(path_b))
    if as_json:
        data = [dataclasses.asdict(difference) for difference in differences]
        return strict_json.dumps(data, indent=1) + "\n"
    header = f"A: {manifest_path(path_a)}\nB: {manifest_path(path_b)}\n"
    return header + format_differences(differences)


def diff_command(path_a: Path, path_b: Path, *, as_json: bool = False) -> int:
    sys.stdout.write(render_differences_report(path_a, path_b, as_json=as_json))
    return EXIT_OK


def _check_out(out: Path, as_json: bool) -> None:
    if as_json and out.suffix != ".json":
        raise UserError(
            f"--json writes JSON but {out} does not end in .json; rename it or drop --json."
        )
    if not out.parent.is_dir():
        raise UserError(f"{out.parent} does not exist; create it or choose another --out.")


def capture_command(*, out: Path | None, as_json: bool, repo: Path | None) -> int:
    if out is not None:
        _check_out(out, as_json)
    if repo is not None and not repo.exists():
        raise UserError(
            f"--repo {repo} does not exist; pass the folder of the code being verified."
        )
    # No collection during torch's import and the probes after it (GitPython, PyYAML,
    # pynvml): about half a second of a 2.5 s command on a 2-core machine.
    with frozen_imports():
        # Imported here: --diff and --help must not pay for importing torch.
        from repro.manifest import capture_manifest

        manifest = capture_manifest(repo=repo)
    if out is not None:
        print(f"wrote {write_manifest(out, manifest)}")
    elif as_json:
        sys.stdout.write(strict_json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False))
    return EXIT_OK
