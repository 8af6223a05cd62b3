"""How repro's launcher starts a rank: ``repro.reference.train`` with no garbage collection
while torch and the training code import.

Importing torch leaves about a million long-lived objects, and every collection during the
imports walks them all again; ``repro.reference.train.main`` then freezes what is alive
(left out of every later collection, the one at exit included) and collects as usual from
its first run on. Nothing here touches the numbers: collection order frees memory, it
computes nothing. A direct ``torchrun -m repro.reference.train`` runs the same training
and only pays for the collections.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable


def training_entry() -> Callable[[list[str] | None], int]:
    """Import what a rank runs and return its entry point, ``repro.reference.train.main``:
    here in a spawned rank, in the launcher before it forks its ranks (``local_launch``)."""
    # The determinism setting (torch.use_deterministic_algorithms, at build) imports
    # torch._inductor.config and with it torch._dynamo, about as much again as torch: here
    # it imports with the rest, uncollected, and is frozen with it.
    import torch._inductor.config  # noqa: F401

    # Imported here, where the caller has stopped collection: the training code's imports
    # run uncollected too.
    from repro.reference.train import main as train_main

    return train_main


def main() -> int:
    gc.disable()  # re-enabled by train.main once the start-up is done
    return training_entry()(None)


if __name__ == "__main__":
    sys.exit(main())
