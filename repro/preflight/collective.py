"""An all-reduce sweep across the node's ranks: bus bandwidth as nccl-tests defines it,
and a bitwise check of every result.

Each rank fills its buffer with small integers times (rank + 1): every partial sum is an
integer below 2**24, exact in float32 whatever the reduction order, so the right answer
is known bit for bit and a collective that returns wrong bytes is caught whatever its
speed. Ranks are spawned here (gloo on CPU ranks, NCCL on one GPU each).

Bandwidths: algbw = bytes / time; busbw = algbw x 2 (n - 1) / n for all-reduce (what each
link carries, comparable across rank counts); unavailable at n = 1.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from repro.gc_freeze import frozen_imports

SIZES = (8, 1024, 64 * 1024, 1024**2, 16 * 1024**2)  # bytes
ITERATIONS = 5  # timed, after one warm-up
_PATTERN = 1021  # values cycle below this: sums of up to 8000 ranks stay exact in float32


def bus_bandwidth(algbw: float, ranks: int) -> float | None:
    return algbw * 2 * (ranks - 1) / ranks if ranks > 1 else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rank(
    rank: int, world: int, port: int, backend: str, sizes: tuple[int, ...], corrupt: bool, out: Any
) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group(backend, rank=rank, world_size=world)
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    results = []
    try:
        for size in sizes:
            n = max(1, size // 4)
            pattern = (torch.arange(n, device=device) % _PATTERN).float()
            expected = pattern * (world * (world + 1) // 2)
            wrong = 0
            times = []
            for i in range(ITERATIONS + 1):
                buffer = pattern * (rank + 1)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                dist.all_reduce(buffer)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                elapsed = time.perf_counter() - start
                if corrupt and rank == world - 1:  # the fault setting: one wrong element
                    buffer[n // 2] += 1
                wrong += int((buffer != expected).sum())
                if i > 0:
                    times.append(elapsed)
            results.append(
                {"bytes": n * 4, "seconds": sorted(times)[len(times) // 2], "wrong": wrong}
            )
        out.put((rank, results))
    finally:
        dist.destroy_process_group()


def allreduce_sweep(
    world: int,
    backend: str = "gloo",
    sizes: tuple[int, ...] = SIZES,
    corrupt: bool = False,
    timeout: float = 120.0,
) -> list[dict[str, Any]]:
    """Per size: bytes, median seconds, algbw and busbw (GB/s), and the wrong elements summed
    over every rank and iteration. Raises RuntimeError when a rank fails or hangs."""
    with frozen_imports():  # this process keeps torch; its forked ranks share what is frozen
        import torch.multiprocessing as mp

    # gloo ranks fork where they can: they start in milliseconds with torch imported (as
    # DataLoader workers do). NCCL ranks spawn: CUDA cannot be used in a forked child of a
    # process that has initialised it.
    fork = backend == "gloo" and "fork" in mp.get_all_start_methods()
    context: Any = mp.get_context("fork" if fork else "spawn")
    out = context.SimpleQueue()
    port = _free_port()
    processes = [
        context.Process(
            target=_rank, args=(r, world, port, backend, sizes, corrupt, out), daemon=True
        )
        for r in range(world)
    ]
    for p in processes:
        p.start()
    deadline = time.monotonic() + timeout
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
    if any(p.is_alive() or p.exitcode != 0 for p in processes):
        for p in processes:
            if p.is_alive():
                p.kill()
        codes = [p.exitcode for p in processes]
        raise RuntimeError(f"the all-reduce ranks did not finish (exit codes {codes})")
    per_rank = dict(out.get() for _ in range(world))
    sweep = []
    for i, row in enumerate(per_rank[0]):
        seconds = max(per_rank[r][i]["seconds"] for r in range(world))  # the slowest rank
        algbw = row["bytes"] / seconds / 1e9 if seconds > 0 else float("inf")
        sweep.append(
            {
                "bytes": row["bytes"],
                "seconds": seconds,
                "algbw_gbps": algbw,
                "busbw_gbps": bus_bandwidth(algbw, world),
                "wrong": sum(per_rank[r][i]["wrong"] for r in range(world)),
            }
        )
    return sweep
