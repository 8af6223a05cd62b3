"""Training overhead of the harness against a plain DDP + AMP loop of the same model.

    python benchmarks/bench_overhead.py [--pairs 5] [--profile quick]

The plain loop trains the same Transformer on the same data pipeline (same sampler, loader
worker and seeds), DDP over gloo with 2 ranks x 1 thread under the same launcher, bf16
autocast, AdamW with the same schedule and clipping, for the same steps, but with no
fingerprints, tracing, cross-rank gathers or record. Its final weights are checked to be
bit-identical to the harness's, so both loops do the same work.

Measured per round, interleaved: the plain loop, ``repro run``, and ``repro run`` with
``trace_steps=0`` (separates the cost of tracing from the per-step fingerprints and
gather). Compared: the training-loop seconds each loop measures in-process (the harness's
``timings.json`` ``train_seconds``) and their ratio per round. The claim is <= 5 %.
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

from results import (
    Row,
    add_json_option,
    load_average,
    print_rows,
    ratio_text,
    sample_row,
    write_rows,
)
from runner import Timing, print_table

BENCH = "overhead"
TARGET = 1.05


def plain_rank(profile_name: str, out: Path) -> None:
    """One rank of the plain loop (started by torch's elastic launcher)."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader

    from repro.profile import load_profile
    from repro.reference import train
    from repro.reference.data import EpochSampler, TrainSet
    from repro.reference.determinism import (
        WorkerInit,
        configure_determinism,
        derive_seed,
        loader_seed,
    )
    from repro.reference.fingerprint import state_dict_identity
    from repro.reference.model import Transformer

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    dist.init_process_group("gloo")
    p = load_profile(profile_name)
    configure_determinism(p, rank)  # same seeds and kernels as the harness
    model = Transformer(p.model)
    ddp = DDP(model)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=p.lr, betas=p.betas, weight_decay=p.weight_decay, foreach=False
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, train._lr_lambda(p))
    dataset = TrainSet(p)
    sampler = EpochSampler(
        dataset,
        num_replicas=world,
        rank=rank,
        shuffle=True,
        seed=derive_seed(p.seed, train._SAMPLER) % 2**31,
        drop_last=True,
    )
    loader = DataLoader(
        dataset,
        batch_size=p.local_batch,
        sampler=sampler,
        num_workers=p.num_workers,
        worker_init_fn=WorkerInit(p.seed, rank),
        generator=torch.Generator().manual_seed(loader_seed(p.seed, rank)),
        drop_last=True,
    )
    step_seconds = []
    start = time.perf_counter()
    for step in range(p.steps):
        t0 = time.perf_counter()
        epoch, position = divmod(step, p.steps_per_epoch)
        if position == 0:
            sampler.set_epoch(epoch)
            batches = iter(loader)
        batch = next(batches)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = ddp(batch["tokens"], batch["dropout_seed"])  # (B, T, vocab)
        loss = F.cross_entropy(logits.float().view(-1, p.model.vocab), batch["targets"].view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p.grad_clip)
        optimizer.step()
        schedule.step()
        step_seconds.append(time.perf_counter() - t0)
    train_seconds = time.perf_counter() - start
    if rank == 0:
        state = {k: v.detach() for k, v in model.state_dict().items()}
        out.write_text(
            json.dumps(
                {
                    "train_seconds": train_seconds,
                    "step_seconds": step_seconds,
                    "identity": state_dict_identity(state),
                }
            )
        )
    dist.destroy_process_group()


def run_plain(profile_name: str, folder: Path) -> tuple[dict, float]:
    """The plain loop under the launcher ``repro run`` uses; (its timings, wall seconds)."""
    from repro.profile import load_profile

    p = load_profile(profile_name)
    out = folder / f"plain-{time.monotonic_ns()}.json"
    threads = str(p.threads_per_rank)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(p.world_size),
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.2",
        str(Path(__file__).resolve()),
        "--plain-rank",
        str(out),
        "--profile",
        profile_name,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
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
    from repro.runner import run_many

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


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds (>= 5)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--plain-rank", type=Path, help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.plain_rank:
        plain_rank(args.profile, args.plain_rank)
        return []

    failures: list[str] = []
    cases = {
        "plain loop": lambda folder: run_plain(args.profile, folder),
        "repro run": lambda folder: run_harness(args.profile, [], folder, failures),
        "repro run, trace_steps=0": lambda folder: run_harness(
            args.profile, ["trace_steps=0"], folder, failures
        ),
    }
    results: dict[str, list[tuple[dict, float]]] = {name: [] for name in cases}
    print(f"load average before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        names = list(cases)
        for round_ in range(args.pairs):
            # Rotate the order each round, so no case always follows the same one.
            for name in names[round_ % 3 :] + names[: round_ % 3]:
                results[name].append(cases[name](Path(tmp)))
    print(f"load average after: {load_average()}")

    train = {name: [t["train_seconds"] for t, _ in runs] for name, runs in results.items()}
    walls = {name: [w for _, w in runs] for name, runs in results.items()}
    identities = {t["identity"] for runs in results.values() for t, _ in runs}
    plain = train["plain loop"]
    print_table(
        f"(a) training-loop seconds measured in-process, {args.pairs} interleaved rounds",
        [Timing(name, tuple(s)) for name, s in train.items()],
        baseline="plain loop",
        unit="s",
    )
    print_table(
        "whole-process wall seconds (launcher start to exit), same rounds",
        [Timing(name, tuple(s)) for name, s in walls.items()],
        baseline="plain loop",
        unit="s",
    )

    rows = []
    for name, seconds in train.items():
        ratio = "" if name == "plain loop" else ratio_text(seconds, plain, "plain loop")
        rows.append(sample_row(BENCH, f"train s: {name}", seconds, "s", ratio=ratio))
        ratio = (
            "" if name == "plain loop" else ratio_text(walls[name], walls["plain loop"], "plain")
        )
        rows.append(sample_row(BENCH, f"wall s: {name}", walls[name], "s", ratio=ratio))
    for name in list(cases)[1:]:
        per_round = [h / q for h, q in zip(train[name], plain, strict=True)]
        rows.append(
            sample_row(BENCH, f"ratio per round: {name} / plain", per_round, "x", at_most=TARGET)
        )
    rows += _per_step_rows(args.profile, results)
    print_rows(f"(b) {args.pairs} interleaved plain/harness pairs; per-step medians", rows)
    same = "yes" if len(identities) == 1 else f"NO ({len(identities)} distinct)"
    print(f"\nfinal weights bit-identical across all loops and rounds: {same}")
    print(f"harness runs that failed and were run again: {len(failures)}")
    for failure in failures:
        print(f"  {failure}")
    write_rows(args.json, rows)
    return rows


def _per_step_rows(profile_name: str, results: dict[str, list[tuple[dict, float]]]) -> list[Row]:
    """Where the time goes: median step time over the same step indices in every loop."""
    from repro.profile import load_profile

    p = load_profile(profile_name)
    epoch_starts = [s for s in range(p.steps) if s % p.steps_per_epoch == 0]
    groups = {
        f"steps < {p.trace_steps}": range(p.trace_steps),
        "later steps": range(p.trace_steps, p.steps),
    }
    groups = {
        g: [i for i in steps if i not in epoch_starts] for g, steps in groups.items() if steps
    }
    groups["epoch-start steps"] = epoch_starts
    rows = []
    for group, chosen in groups.items():
        medians = {
            name: [statistics.median(t["step_seconds"][i] for i in chosen) for t, _ in runs]
            for name, runs in results.items()
        }
        for name, values in medians.items():
            ratio = (
                ""
                if name == "plain loop"
                else ratio_text(values, medians["plain loop"], "plain loop")
            )
            rows.append(
                sample_row(BENCH, f"step ms, {group}: {name}", values, "ms", scale=1e3, ratio=ratio)
            )
    return rows


if __name__ == "__main__":
    main()
