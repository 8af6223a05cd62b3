"""A synthetic sequence task, generated from (seed, split, global sample index) alone.

Task: predict ``y_t = x_{t-1}`` (``y_0 = x_0``), the previous token, from the
causal prefix of uniformly random tokens (attention must learn to look one
position back); a fraction ``label_noise`` of targets, in
training and evaluation alike, is replaced by a random token. That noise is
irreducible, so evaluation accuracy tops out near ``1 - label_noise`` instead of
a saturated 100 % that could never show drift.

Nothing here depends on timing, worker count or world size: the sample at a
global index is the same bytes wherever and whenever it is made.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from repro.reference.determinism import Stream, WorkerInit, derive_seed, seed_sequence

if TYPE_CHECKING:
    from repro.profile import Profile


def make_sample(
    seed: int, split: Stream, index: int, vocab: int, seq_len: int, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and targets, both (seq_len,) int64, for one global sample index.

    ``split`` is ``Stream.TRAIN_SAMPLE`` or ``Stream.EVAL_SAMPLE``.
    """
    rng = np.random.default_rng(seed_sequence(seed, split, sample=index))
    x = rng.integers(0, vocab, seq_len, dtype=np.int64)
    y = x.copy()
    y[1:] = x[:-1]
    flip = rng.random(seq_len) < noise
    y[flip] = rng.integers(0, vocab, int(flip.sum()), dtype=np.int64)
    return x, y


def dropout_seed(seed: int, epoch: int, index: int) -> int:
    """The 32-bit seed of a sample's dropout masks in one epoch."""
    return int(seed_sequence(seed, Stream.DROPOUT, epoch=epoch, sample=index).generate_state(1)[0])


class TrainSet(Dataset[dict[str, Any]]):
    """Indexed by ``epoch * train_samples + index`` (see ``EpochSampler``), so each epoch gets fresh masks."""

    def __init__(self, profile: Profile, *, os_entropy_dropout: bool = False) -> None:
        self.seed = profile.seed
        self.n = profile.data.train_samples
        self.vocab = profile.model.vocab
        self.seq_len = profile.model.seq_len
        self.noise = profile.data.label_noise
        # The nondeterministic fault: masks seeded from the OS, as a buggy pipeline would.
        self.os_entropy_dropout = os_entropy_dropout

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, occurrence: int) -> dict[str, Any]:
        epoch, index = divmod(occurrence, self.n)
        x, y = make_sample(
            self.seed, Stream.TRAIN_SAMPLE, index, self.vocab, self.seq_len, self.noise
        )
        if self.os_entropy_dropout:
            mask_seed = int.from_bytes(os.urandom(4), "little")
        else:
            mask_seed = dropout_seed(self.seed, epoch, index)
        return {
            "tokens": torch.from_numpy(x),
            "targets": torch.from_numpy(y),
            "occurrence": occurrence,
            "dropout_seed": mask_seed,
        }


def eval_set(profile: Profile) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out set as two (eval_samples, seq_len) int64 tensors."""
    pairs = [
        make_sample(
            profile.seed,
            Stream.EVAL_SAMPLE,
            i,
            profile.model.vocab,
            profile.model.seq_len,
            profile.data.label_noise,
        )
        for i in range(profile.data.eval_samples)
    ]
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(
        np.stack([p[1] for p in pairs])
    )


class EpochSampler(DistributedSampler[int]):
    """``DistributedSampler`` that yields ``epoch * len(dataset) + index``.

    The shuffled permutation is split rank-strided, so with a per-rank batch b
    the ranks' step-s batches together are positions [s*b*W, (s+1)*b*W) of the
    permutation: the same global batch for any world size.
    """

    def __iter__(self) -> Iterator[int]:
        offset = self.epoch * len(self.dataset)  # type: ignore[arg-type]
        return (offset + i for i in super().__iter__())


def make_loader(
    profile: Profile, dataset: TrainSet, rank: int, world: int, *, pin_memory: bool = False
) -> tuple[DataLoader[dict[str, Any]], EpochSampler]:
    """The rank's DataLoader and its sampler (call ``sampler.set_epoch`` every epoch)."""
    sampler = EpochSampler(
        dataset,
        num_replicas=world,
        rank=rank,
        shuffle=True,
        # One shuffling seed for all ranks; the sampler fault shifts it on purpose.
        seed=derive_seed(profile.seed, Stream.SAMPLER) % 2**31 + profile.fault.sampler_seed_offset,
        drop_last=True,
    )
    loader = DataLoader(
        dataset,
        batch_size=profile.global_batch // world,
        sampler=sampler,
        num_workers=profile.num_workers,
        worker_init_fn=WorkerInit(profile.seed, rank),
        generator=torch.Generator().manual_seed(
            derive_seed(profile.seed, Stream.LOADER, rank=rank)
        ),
        pin_memory=pin_memory,
        drop_last=True,
        # Workers are forked once per run, not at every epoch boundary: a fork racing a
        # gloo thread's Python callback can deadlock the child (CPython gh-112275).
        # The sampler runs here and yields epoch-qualified indices, so workers hold no state.
        persistent_workers=True,
    )
    return loader, sampler
