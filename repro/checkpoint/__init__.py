"""Training-state checkpoints that restore a run exactly and load with ``weights_only=True``.

``save`` and ``load`` (``full``): a user's model, optimizer, scaler, scheduler, sampler and
every RNG per rank, in one file written atomically. ``state`` holds the pieces: the RNG
states as plain tensors and lists, the atomic save and the safe load. ``layouts`` says what
any checkpoint holds and what a resume from it cannot restore (``repro checkpoint inspect``).
"""

from repro.checkpoint.full import load, save

__all__ = ["load", "save"]
