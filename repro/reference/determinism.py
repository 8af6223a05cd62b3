"""Every knob that decides bitwise reproducibility, set in one place and reported.

``configure_determinism`` runs first thing in each rank, before any model or
data exists, and returns what it set; the run's manifest records it.

Every random number in a run comes from a seed tuple
``(master, stream, *coordinates)`` built by ``seed_tuple``: one stream per use,
each with fixed coordinates padded with zeros to one fixed length. Two
different uses can therefore never share a tuple (their stream ids differ), and
within a stream the coordinates sit at fixed positions, so the map from
(stream, rank, worker, member, epoch, sample, step) to the tuple is injective.
"""

from __future__ import annotations

import os
import random
from enum import IntEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from repro.profile import Profile


class Stream(IntEnum):
    """What a derived seed is for. Ids start at 1: ``SeedSequence`` reads trailing zeros as
    absent, so a stream 0 with zero coordinates would seed exactly like the bare master seed."""

    PROCESS = 1
    LOADER = 2
    WORKER = 3
    SAMPLER = 4
    TRAIN_SAMPLE = 5
    EVAL_SAMPLE = 6
    DROPOUT = 7
    BAND_INITIAL = 8
    BAND_STEP = 9


# The coordinates of each stream, in tuple order.
COORDINATES: dict[Stream, tuple[str, ...]] = {
    Stream.PROCESS: ("rank",),
    Stream.LOADER: ("rank",),
    Stream.WORKER: ("rank", "worker"),
    Stream.SAMPLER: (),
    Stream.TRAIN_SAMPLE: ("sample",),
    Stream.EVAL_SAMPLE: ("sample",),
    Stream.DROPOUT: ("epoch", "sample"),
    Stream.BAND_INITIAL: ("member",),
    Stream.BAND_STEP: ("member", "step"),
}
# Every tuple has this length: SeedSequence would read (..., 5) and (..., 5, 0) alike.
TUPLE_LENGTH = 2 + max(len(names) for names in COORDINATES.values())
# SeedSequence splits a larger integer into several 32-bit words, which could
# spell out another tuple: (2**32, 5) and (0, 1, 5) seed the same state.
_WORD = 2**32


def seed_tuple(master: int, stream: Stream, **coordinates: int) -> tuple[int, ...]:
    """``(master, stream, *coordinates, 0...)``: the entropy every seed of a run derives from.

    ``coordinates`` must be exactly the stream's (``COORDINATES[stream]``), each in [0, 2**32).
    """
    names = COORDINATES[stream]
    if set(coordinates) != set(names):
        raise ValueError(
            f"stream {stream.name} takes coordinates {names}, got {tuple(coordinates)}"
        )
    values = (master, int(stream), *(coordinates[name] for name in names))
    for name, value in zip(("master", "stream", *names), values):
        if not 0 <= value < _WORD:
            raise ValueError(f"seed coordinate {name}={value} must be in [0, 2**32)")
    return values + (0,) * (TUPLE_LENGTH - len(values))


def seed_sequence(master: int, stream: Stream, **coordinates: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(list(seed_tuple(master, stream, **coordinates)))


def derive_seed(master: int, stream: Stream, **coordinates: int) -> int:
    """A 63-bit seed (for torch generators and python's ``random``) from a seed tuple."""
    state = seed_sequence(master, stream, **coordinates).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # all devices


def configure_determinism(profile: Profile, rank: int) -> dict[str, Any]:
    """Seed python/numpy/torch for this rank and set every math-mode flag; return what was set."""
    process_seed = derive_seed(profile.seed, Stream.PROCESS, rank=rank)
    seed_everything(process_seed)
    torch.set_num_threads(profile.threads_per_rank)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = profile.tf32
    torch.backends.cudnn.allow_tf32 = profile.tf32
    torch.set_float32_matmul_precision("high" if profile.tf32 else "highest")
    return {
        "master_seed": profile.seed,
        "process_seed": process_seed,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "tf32": profile.tf32,
        "intra_op_threads": torch.get_num_threads(),
        "inter_op_threads": torch.get_num_interop_threads(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


class WorkerInit:
    """``worker_init_fn`` seeding python, numpy and torch in each data-loader worker.

    A class rather than a closure so it pickles under any multiprocessing start method.
    """

    def __init__(self, master: int, rank: int) -> None:
        self.master = master
        self.rank = rank

    def __call__(self, worker: int) -> None:
        seed_everything(derive_seed(self.master, Stream.WORKER, rank=self.rank, worker=worker))
        torch.set_num_threads(1)
