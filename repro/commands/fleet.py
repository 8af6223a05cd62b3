"""``repro fleet``: node, render (slurm, k8s), matrix, exclude, collect. The logic lives in
``repro.fleet``; this module parses, calls and maps results to exit codes."""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from repro import atomic, strict_json
from repro.errors import EXIT_OK, Unfit, UserError
from repro.verdict import Verdict

TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath


def add_fleet(sub: Any, command: Any) -> None:
    p = command(sub, "fleet", "verify every node of a cluster; see which disagree")
    fsub = p.add_subparsers(dest="fleet_command", required=True, metavar="ACTION")
    _add_node(command(fsub, "node", "one node's unit of work: verify it, write DIR/<node>.json"))
    r = command(fsub, "render", "print the job that runs `fleet node` on every node")
    rsub = r.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    s = command(rsub, "slurm", "an sbatch script, one task per node")
    s.add_argument("--nodes", "-N", type=int, required=True, help="how many nodes")
    s.add_argument("-w", "--nodelist", help="which nodes (Slurm host list); written as expected")
    s.add_argument(
        "--out",
        dest="out_dir",
        required=True,
        metavar="DIR",
        help="the results folder, on storage every node shares",
    )
    s.add_argument("node_options", nargs=argparse.REMAINDER, help="after --: `fleet node` options")
    s.set_defaults(handler=cmd_render_slurm)
    _add_render_k8s(rsub, command)
    m = command(fsub, "matrix", "one row per node: verdict, facts that differ, peer agreement")
    m.add_argument("folder", metavar="DIR", help="the folder the nodes wrote to")
    m.add_argument("--expect", help="the nodes that should have reported: a,b,c or @FILE")
    m.add_argument("--json", action="store_true", help="print the matrix as JSON")
    m.add_argument("--md", metavar="FILE", help="also write it as Markdown")
    m.add_argument("--html", metavar="FILE", help="also write it as a self-contained HTML page")
    m.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per node)")
    m.add_argument("--prom", metavar="FILE", help="write the node exporter's textfile format")
    m.set_defaults(handler=cmd_matrix)
    e = command(fsub, "exclude", "drain (Slurm) or taint (Kubernetes) the nodes that failed")
    e.add_argument("folder", metavar="DIR")
    e.add_argument("--expect", help="the nodes that should have reported: a,b,c or @FILE")
    e.add_argument("--engine", choices=("slurm", "k8s"), default="slurm")
    e.add_argument("--apply", action="store_true", help="run the commands (default: print them)")
    e.set_defaults(handler=cmd_exclude)
    c = command(fsub, "collect", "node files from the pods of a Kubernetes fleet Job")
    c.add_argument("--pods", required=True, metavar="FILE",
                   help="`kubectl get pods -l job-name=NAME -o json` written to a file")  # fmt: skip
    c.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                   help="write DIR/<node>.json here (the folder `fleet matrix` reads)")  # fmt: skip
    c.set_defaults(handler=cmd_collect)


def _add_render_k8s(rsub: Any, command: Any) -> None:
    k = command(rsub, "k8s", "an Indexed Job, one pod per node (YAML for kubectl apply)")
    k.add_argument(
        "--nodes", required=True, help="the nodes, as `kubectl get nodes` names them: a,b,c"
    )
    k.add_argument("--image", required=True, help="the container image with repro installed")
    k.add_argument("--out", dest="out_dir", required=True, metavar="DIR",
                   help="the folder `fleet collect` will fill; the expected node list goes there")  # fmt: skip
    k.add_argument("--name", default="repro-fleet", help="the Job's name (default: repro-fleet)")
    k.add_argument("--namespace", help="the Job's namespace")
    k.add_argument("--queue", help="a Kueue LocalQueue to submit through")
    k.add_argument("--gpus-per-node", type=int, default=0, metavar="N",
                   help="nvidia.com/gpu per pod (default 0: the pods see no GPU, verify the CPU)")  # fmt: skip
    k.add_argument("--deadline", type=int, default=3600, metavar="S",
                   help="seconds before the Job ends; a pod not done by then is NO_RESULT")  # fmt: skip
    k.add_argument("node_options", nargs=argparse.REMAINDER, help="after --: `fleet node` options")
    k.set_defaults(handler=cmd_render_k8s)


def _add_node(p: argparse.ArgumentParser) -> None:
    from repro.commands.preflight import health_options

    # dest: `--out` elsewhere names a report file, checked as one before any command runs.
    p.add_argument(
        "--out", dest="out_dir", required=True, metavar="DIR", help="write DIR/<node>.json here"
    )
    p.add_argument("--check", choices=("verify", "manifest"), default="verify",
                   help="verify (default): `repro verify`; manifest: preflight + manifest, seconds")  # fmt: skip
    p.add_argument("--node", help="the node's name (default: $NODE_NAME, $SLURMD_NODENAME, host)")
    p.add_argument("--profile", help="smoke, quick (CPU default), full (GPU default) or a .yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--baseline", help="baseline name (default: the best match)")
    p.add_argument("--baseline-dir", help="baselines on shared storage (or shipped in the image)")
    p.add_argument("--record", action="store_true",
                   help="record a baseline into --baseline-dir when none matches (run on one node)")  # fmt: skip
    p.add_argument("--runs-dir", help="where run folders go (default: $REPRO_HOME/runs or ./runs)")
    p.add_argument("--termination-log", default=TERMINATION_LOG, help=argparse.SUPPRESS)
    health_options(p)
    p.set_defaults(handler=cmd_node)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _findings(preflight: Any) -> list[dict[str, Any]]:
    return [
        {"name": c.name, "status": c.status, "reason": c.reason}
        for c in preflight.checks
        if c.status in ("fail", "warn")
    ]


def _profile_name(args: argparse.Namespace) -> str:
    if args.profile:
        return str(args.profile)
    from repro.profile import default_profile_name

    return default_profile_name()


def _manifest_check(args: argparse.Namespace, node: str, started: str) -> Any:
    from repro.fleet.node import FIT, describe
    from repro.manifest import capture_manifest
    from repro.preflight.run import run_preflight
    from repro.profile import load_profile, parse_overrides

    profile = load_profile(_profile_name(args), parse_overrides(args.set))
    health = run_preflight(
        ranks=profile.world_size,
        threads=profile.threads_per_rank,
        device=profile.device,
        expect_gpus=args.expect_gpus,
    )
    verdict = Verdict.UNFIT.value if health.unfit(args.strict) else FIT
    return describe(node, "manifest", verdict, health.summary(args.strict), capture_manifest(),
                    preflight=_findings(health), started=started, finished=_now())  # fmt: skip


def _verify_check(args: argparse.Namespace, node: str, started: str) -> Any:
    from repro.commands.verify import VerifyOptions, verify
    from repro.fleet.node import describe, record_digests
    from repro.runs.runview import RunView
    from repro.runs.store import default_runs_dir

    runs_dir = Path(args.runs_dir) if args.runs_dir else default_runs_dir()
    try:
        result = verify(VerifyOptions(_profile_name(args), tuple(args.set), runs_dir=runs_dir,
                                      quiet=True, baseline_name=args.baseline,
                                      baseline_dir=args.baseline_dir, record_missing=args.record,
                                      strict=args.strict, expect_gpus=args.expect_gpus))  # fmt: skip
    except Unfit as unfit:  # nothing trained: the facts come from this process's manifest
        from repro.manifest import capture_manifest

        return describe(node, "verify", Verdict.UNFIT.value, unfit.preflight.summary(args.strict),
                        capture_manifest(), preflight=_findings(unfit.preflight),
                        started=started, finished=_now())  # fmt: skip
    view = RunView.from_run_dir(result.run_dir)
    c = result.comparison
    digest, steps = record_digests(view.record)
    checks = (view.manifest.get("preflight") or {}).get("checks", [])
    cause = c.causes[0].cause if c.causes else (c.failure.message if c.failure else None)
    return describe(
        node, "verify", c.verdict.value, c.summary, view.manifest,
        workload=f"{view.config.get('profile')}:{view.config.get('workload_hash')}",
        record_digest=digest, step_digests=steps,
        worst_ratio=(c.numerics.largest or {}).get("ratio"), first_cause=cause,
        preflight=[{"name": k["name"], "status": k["status"], "reason": k.get("reason", "")}
                   for k in checks if k.get("status") in ("fail", "warn")],
        started=started, finished=_now(),
    )  # fmt: skip


def cmd_node(args: argparse.Namespace) -> int:
    from repro.fleet.node import node_name, write_node_file

    out = Path(args.out_dir)
    if not out.is_dir():
        raise UserError(f"--out {out} is not a folder; create it on storage every node shares.")
    node = node_name(args.node)
    started, clock = _now(), time.monotonic()
    check = _manifest_check if args.check == "manifest" else _verify_check
    result = check(args, node, started)
    path = write_node_file(out, result)
    _write_termination_message(Path(args.termination_log), result)
    print(f"{node}  {result.verdict}  {result.summary}  ({time.monotonic() - clock:.1f} s, {path})")
    return int(result.exit_code)


def _write_termination_message(path: Path, result: Any) -> None:
    """Under Kubernetes the pod's termination message carries the result (4 KiB at most)."""
    if not path.exists():
        return
    from repro.fleet.k8s import summary_message

    try:
        path.write_text(summary_message(result), encoding="utf-8")
    except OSError as exc:  # the node file is written; the message is a second copy
        print(f"repro: could not write the termination message {path}: {exc}", file=sys.stderr)


def cmd_render_slurm(args: argparse.Namespace) -> int:
    from repro.fleet.slurm import expand_hostlist, render_slurm, write_expected

    options = [o for o in args.node_options if o != "--"]
    names = expand_hostlist(args.nodelist) if args.nodelist else None
    script = render_slurm(args.nodes, Path(args.out_dir), names, options)
    if names is not None:
        path = write_expected(Path(args.out_dir), names)
        print(f"repro: expected nodes in {path}", file=sys.stderr)
    sys.stdout.write(script)
    return EXIT_OK


def cmd_render_k8s(args: argparse.Namespace) -> int:
    from repro.fleet.k8s import JobSpec, render_job
    from repro.fleet.slurm import write_expected

    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()]
    spec = JobSpec(nodes, args.image, args.name, args.namespace, args.queue, args.gpus_per_node,
                   args.deadline, tuple(o for o in args.node_options if o != "--"))  # fmt: skip
    text = render_job(spec, args.out_dir)
    path = write_expected(Path(args.out_dir), nodes)
    print(f"repro: expected nodes in {path}", file=sys.stderr)
    if not spec.gpus_per_node:
        print(
            "repro: no --gpus-per-node: the pods request no GPU and verify the CPU", file=sys.stderr
        )
    sys.stdout.write(text)
    return EXIT_OK


def cmd_collect(args: argparse.Namespace) -> int:
    import json

    from repro.fleet.k8s import collect
    from repro.fleet.node import write_node_file

    pods, out = Path(args.pods), Path(args.out_dir)
    if not out.is_dir():
        raise UserError(f"--out {out} is not a folder; create it (render k8s --out does).")
    try:
        data = json.loads(pods.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"--pods {pods} cannot be read as JSON ({exc}); write it with "
                        "`kubectl get pods -l job-name=NAME -o json`.") from None  # fmt: skip
    found = collect(data, str(pods))  # every pod read before any file is written
    for note in found.notes:
        print(f"repro: {note}", file=sys.stderr)
    for result in found.results:
        print(f"{result.node}  {result.verdict}  {write_node_file(out, result)}")
    stray = sorted({p.stem for p in out.glob("*.json")} - {r.node for r in found.results})
    if stray:
        print(f"repro: {out} also holds {', '.join(stray)}.json, not from these pods; "
              "the matrix reads them too", file=sys.stderr)  # fmt: skip
    return EXIT_OK


def cmd_matrix(args: argparse.Namespace) -> int:
    from repro.fleet import render
    from repro.fleet.matrix import matrix_of_folder

    if args.prom and not Path(args.prom).parent.is_dir():
        raise UserError(f"--prom {args.prom}: its folder does not exist; create it first.")
    matrix = matrix_of_folder(Path(args.folder), args.expect)
    if args.json:
        print(strict_json.dumps(render.to_dict(matrix), indent=1))
    else:
        sys.stdout.write(render.render_terminal(matrix))
    for option, draw in (("md", render.render_markdown), ("html", render.render_html),
                         ("junit", render.render_junit), ("prom", render.render_prom)):  # fmt: skip
        if getattr(args, option):
            atomic.write_text(Path(getattr(args, option)), draw(matrix))
    return matrix.exit_code


def cmd_exclude(args: argparse.Namespace) -> int:
    from repro.fleet import exclude
    from repro.fleet.matrix import matrix_of_folder

    matrix = matrix_of_folder(Path(args.folder), args.expect)
    actions, left = exclude.plan(matrix, args.engine)
    for line in left:
        print(f"# {line}")
    for action in actions:
        for argv in action.commands:
            print(shlex.join(argv))
    if not actions:
        print("# no node to exclude", file=sys.stderr)
    if not args.apply:
        return EXIT_OK
    failures = exclude.apply(actions)
    for failure in failures:
        print(f"repro: FAILED: {failure}", file=sys.stderr)
    return Verdict.FAILED.exit_code if failures else EXIT_OK
