"""Training overhead of the harness against a plain DDP + AMP loop of the same model.

    python benchmarks/bench_overhead.py [--pairs 5] [--profile quick] [--smoke]

The plain loop runs the harness's own training step (``repro.reference.step``: the same
Transformer, data pipeline, DDP over gloo with 2 ranks x 1 thread under the same launcher,
bf16 autocast, AdamW, schedule and clipping) for the same steps, with no hooks: no
fingerprints, tracing, cross-rank gathers or record. Its final weights are checked to be
bit-identical to the harness's, so both loops do the same work.

Measured per round, interleaved (the order rotates each round):

    plain loop
    plain + comm hook        DDP's averaging all-reduce as a Python comm hook, as the
                             harness registers it (for its tracer)
    plain + hook + gather    also fingerprints every parameter and all-gathers a row per
                             rank every step, as the harness does
    repro run
    repro run, trace_steps=0 no traced steps: the cost of tracing drops out

Compared: the training-loop seconds each loop measures in-process (the harness's
``timings.json`` ``train_seconds``) and their ratio to the plain loop per round, and median
step times over the same step indices. Also timed in this process: fingerprinting every
parameter tensor once. The claim is <= 5 % (ratio <= 1.05). ``--smoke`` runs the smoke
profile once per case, without the two cases whose code the others run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results import (
    Row,
    add_json_option,
    load_average,
    print_rows,
    ratio_text,
    sample_row,
    write_rows,
)
from runner import Timing, add_smoke_option, print_table, time_callable

BENCH = "overhead"
TARGET = 1.05
PLAIN = "plain loop"


def plain_rank(profile_name: str, extras: set[str], out: Path) -> None:
    """One rank of the plain loop (started by torch's elastic launcher): the harness's own
    build, batches and ``train_step``, with no hooks and nothing recorded. Extra ``finish``:
    rank 0 also evaluates and saves a checkpoint, as a training script ends
    (``bench_verify.py``); each phase's end goes to ``REPRO_PHASE_LOG`` when it is set."""
    from repro.clock import process_started_at, stamp_phase

    rank = int(os.environ["RANK"])
    if rank == 0:
        stamp_phase("rank 0: started", at=process_started_at())
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from repro.profile import load_profile
    from repro.reference.fingerprint import Fingerprinter, state_dict_identity
    from repro.reference.step import batches, build, sdpa_context, train_step

    world = int(os.environ["WORLD_SIZE"])
    stamp_phase(f"rank {rank}: imported")
    dist.init_process_group("gloo")
    stamp_phase(f"rank {rank}: process group")
    p = load_profile(profile_name)
    trainer = build(p, rank, world, torch.device("cpu"))  # same seeds, kernels, data
    stamp_phase(f"rank {rank}: built")
    if "hook" in extras:
        trainer.ddp.register_comm_hook(None, allreduce_hook)
    fingerprint = Fingerprinter(torch.device("cpu"))
    step_seconds = []
    start = last = time.perf_counter()
    with sdpa_context(p):
        # A step's time runs from the end of the previous one, as the harness times it:
        # fetching the batch is part of it.
        for step, batch in batches(trainer):
            train_step(trainer, step, batch)
            if "gather" in extras:
                fps = torch.stack([fingerprint(q) for q in trainer.params])
                local = torch.cat([fps.sum().view(1), batch["occurrence"].to(torch.int64)])
                gathered = [torch.empty_like(local) for _ in range(world)]
                dist.all_gather(gathered, local)
                [g.tolist() for g in gathered]
            now = time.perf_counter()
            step_seconds.append(now - last)
            last = now
    train_seconds = time.perf_counter() - start
    if rank == 0:
        stamp_phase("rank 0: steps done")
        state = {k: v.detach() for k, v in trainer.model.state_dict().items()}
        if "finish" in extras:
            finish(trainer, state, out.with_suffix(".pt"))
        result = {"train_seconds": train_seconds, "step_seconds": step_seconds}
        out.write_text(json.dumps({**result, "identity": state_dict_identity(state)}))
    dist.destroy_process_group()


def finish(trainer: Any, state: dict[str, Any], checkpoint: Path) -> None:
    """Evaluate (the harness's own evaluation, run on the plain loop's model) and save."""
    import torch

    from repro.clock import stamp_phase
    from repro.reference.loop import Training

    Training.evaluate(trainer)  # a Trainer has what evaluate reads: profile, model, device
    stamp_phase("rank 0: evaluated")
    torch.save(state, checkpoint)
    stamp_phase("rank 0: checkpoint written")


def run_plain(
    profile_name: str, extras: str, folder: Path, env: dict[str, str] | None = None
) -> tuple[dict, float]:
    """The plain loop under the launcher ``repro run`` uses; (its timings, wall seconds)."""
    from repro.profile import load_profile

    p = load_profile(profile_name)
    out = folder / f"plain-{time.monotonic_ns()}.json"
    threads = str(p.threads_per_rank)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1"]
    command += ["--nproc-per-node", str(p.world_size), "--max-restarts", "0"]
    command += ["--monitor-interval", "0.2", str(Path(__file__).resolve())]
    command += ["--plain-rank", str(out), "--extras", extras, "--profile", profile_name]
    env = {**os.environ, **(env or {}), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    return json.loads(out.read_text()), wall


def run_harness(
    profile_name: str, sets: list[str], folder: Path, failures: list[str]
) -> tuple[dict, float]:
    """One ``repro run`` (in-process launch); (its timings.json plus identity, wall seconds).

    A run that fails is noted in ``failures`` and launched once more.
    """
    from repro.runs.runner import run_many

    for _ in range(2):
        start = time.perf_counter()
        (outcome,) = run_many(profile_name, [sets], runs_dir=folder)
        wall = time.perf_counter() - start
        if outcome.ok:
            timings = json.loads((outcome.run_dir / "timings.json").read_text())
            record = json.loads((outcome.run_dir / "record.json").read_text())
            timings["identity"] = record["final"]["checkpoint_identity"]
            return timings, wall
        failures.append(f"{outcome.status} after {wall:.0f} s: {outcome.reason}")
        print(f"warning: a harness run failed ({failures[-1]}); running it again", flush=True)
    raise RuntimeError(f"the harness run failed twice: {failures[-1]}")


def fingerprint_cost(profile_name: str, repeat: int) -> Row:
    """In this process, 1 thread: fingerprinting every parameter, as the harness does per step."""
    import torch

    from repro.profile import load_profile
    from repro.reference.fingerprint import Fingerprinter
    from repro.reference.model import Transformer

    torch.set_num_threads(1)
    params = list(Transformer(load_profile(profile_name).model).parameters())
    fingerprint = Fingerprinter(torch.device("cpu"))
    timing = time_callable(
        lambda: torch.stack([fingerprint(q) for q in params]), repeat=repeat, warmup=10
    )
    case = f"in-process ms: fingerprint all {len(params)} parameter tensors"
    return sample_row(BENCH, case, timing.seconds, "ms", scale=1e3)


def step_rows(profile_name: str, results: dict[str, list[tuple[dict, float]]]) -> list[Row]:
    """Where the time goes: median step time over the same step indices in every loop."""
    from repro.profile import load_profile

    p = load_profile(profile_name)
    epoch_starts = range(0, p.steps, p.steps_per_epoch)  # each forks a new loader worker
    traced = [s for s in range(p.trace_steps) if s not in epoch_starts]
    later = [s for s in range(p.trace_steps, p.steps) if s not in epoch_starts]

    def medians(name: str, steps: list[int] | range) -> list[float]:
        return [statistics.median(t["step_seconds"][i] for i in steps) for t, _ in results[name]]

    rows = []
    for label, steps in ((f"steps 1-{p.trace_steps - 1}", traced), ("later steps", later)):
        if not steps:
            continue
        plain = medians(PLAIN, steps)
        # Traced steps only differ in the harness; every loop shows the later steps.
        shown = [n for n in results if n.startswith("repro") or label == "later steps"]
        for name in shown:
            values = medians(name, steps)
            ratio = "" if name == PLAIN else ratio_text(values, plain, PLAIN)
            case = f"step ms, {label}: {name}"
            rows.append(sample_row(BENCH, case, values, "ms", scale=1e3, ratio=ratio))
    values = medians(PLAIN, epoch_starts)
    ratio = ratio_text(values, medians(PLAIN, later or traced), "other steps")
    case = f"step ms, epoch starts: {PLAIN}"
    rows.append(sample_row(BENCH, case, values, "ms", scale=1e3, ratio=ratio))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--plain-rank", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--extras", default="", help=argparse.SUPPRESS)
    add_json_option(parser)
    add_smoke_option(parser)
    args = parser.parse_args(argv)
    if args.smoke:
        args.pairs, args.profile = 1, "smoke"
    if args.plain_rank:
        plain_rank(args.profile, set(args.extras.split(",")), args.plain_rank)
        return []

    failures: list[str] = []
    cases = {
        PLAIN: lambda folder: run_plain(args.profile, "", folder),
        "plain + comm hook": lambda folder: run_plain(args.profile, "hook", folder),
        "plain + hook + gather": lambda folder: run_plain(args.profile, "hook,gather", folder),
        "repro run": lambda folder: run_harness(args.profile, [], folder, failures),
        "repro run, trace_steps=0": lambda folder: run_harness(
            args.profile, ["trace_steps=0"], folder, failures
        ),
    }
    if args.smoke:  # what the dropped cases run, these run too (comm hook, gather, harness)
        for name in ("plain + comm hook", "repro run, trace_steps=0"):
            del cases[name]
    results: dict[str, list[tuple[dict, float]]] = {name: [] for name in cases}
    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        names = list(cases)
        for round_ in range(args.pairs):
            # Rotate the order each round, so no case always follows the same one.
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                results[name].append(cases[name](Path(tmp)))
    print(f"load average after: {load_average()}")

    train = {name: [t["train_seconds"] for t, _ in runs] for name, runs in results.items()}
    walls = {name: [w for _, w in runs] for name, runs in results.items()}
    identities = {t["identity"] for runs in results.values() for t, _ in runs}
    for title, samples in (("training-loop seconds, in-process", train), ("wall seconds", walls)):
        print_table(
            f"{title}, {args.pairs} interleaved rounds",
            [Timing(name, tuple(s)) for name, s in samples.items()],
            baseline=PLAIN,
            unit="s",
        )

    rows = [sample_row(BENCH, f"train s: {PLAIN}", train[PLAIN], "s")]
    for name in names[1:]:
        per_round = [h / q for h, q in zip(train[name], train[PLAIN], strict=True)]
        case = f"train s ratio per round: {name} / plain"
        rows.append(sample_row(BENCH, case, per_round, "x", at_most=TARGET))
    rows += step_rows(args.profile, results)
    rows.append(fingerprint_cost(args.profile, repeat=5 if args.smoke else 200))
    print_rows(f"{args.pairs} interleaved rounds: ratios per round and per-step medians", rows)
    same = "yes" if len(identities) == 1 else f"NO ({len(identities)} distinct)"
    print(f"\nfinal weights bit-identical across all loops and rounds: {same}")
    print(f"harness runs that failed and were run again: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    write_rows(args.json, rows)
    return rows


if __name__ == "__main__":
    main()
