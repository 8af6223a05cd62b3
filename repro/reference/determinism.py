"""Every knob that decides bitwise reproducibility, set in one place and reported.

``configure_determinism`` runs first thing in each rank, before any model or
data exists, and returns what it set; the run's manifest records it.
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from repro.profile import Profile

# Stream ids for derived seeds; each (master, rank, worker, stream) tuple is distinct.
_PROCESS, _WORKER, _LOADER = 0, 1, 2


def derive_seed(master: int, *path: int) -> int:
    """A 63-bit seed from a tuple; never ``master + rank``, which collides across runs."""
    state = np.random.SeedSequence([master, *path]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # all devices


def configure_determinism(profile: Profile, rank: int) -> dict[str, Any]:
    """Seed python/numpy/torch for this rank and set every math-mode flag; return what was set."""
    process_seed = derive_seed(profile.seed, rank, _PROCESS)
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


def worker_seed(master: int, rank: int, worker: int) -> int:
    return derive_seed(master, rank, _WORKER, worker)


def loader_seed(master: int, rank: int) -> int:
    return derive_seed(master, rank, _LOADER)


class WorkerInit:
    """``worker_init_fn`` seeding python, numpy and torch in each data-loader worker.

    A class rather than a closure so it pickles under any multiprocessing start method.
    """

    def __init__(self, master: int, rank: int) -> None:
        self.master = master
        self.rank = rank

    def __call__(self, worker: int) -> None:
        seed_everything(worker_seed(self.master, self.rank, worker))
        torch.set_num_threads(1)
