"""Derived seeds never collide: one stream enumeration, one tuple builder, every use through it."""

from __future__ import annotations

import ast
import itertools
import math

import numpy as np
import pytest

from repro.reference.data import dropout_seed, make_sample
from repro.reference.determinism import (
    COORDINATES,
    TUPLE_LENGTH,
    Stream,
    derive_seed,
    seed_tuple,
)
from repro.runs.workload import HASHED_MODULES, hashed_sources

# Realistic ranges for every coordinate: 64 ranks (the union over world sizes 1..64: a
# rank's seeds do not depend on the world size), the full profile's 16384 samples, a
# few epochs, band members as the benchmarks number them, the full profile's 600 steps.
RANGES = {
    "rank": range(64),
    "worker": range(16),
    "sample": range(16384),
    "epoch": range(8),
    "member": range(128),
    "step": range(600),
}
MASTERS = (0, 2**32 - 1)


def _every_derivation(master: int):
    for stream in Stream:
        names = COORDINATES[stream]
        for values in itertools.product(*(RANGES[name] for name in names)):
            yield (stream, values), seed_tuple(master, stream, **dict(zip(names, values)))


def test_every_stream_has_coordinates_with_ranges():
    assert set(COORDINATES) == set(Stream)
    assert {name for names in COORDINATES.values() for name in names} == set(RANGES)


def test_seed_tuples_are_injective():
    """Distinct (master, stream, coordinates) never share a seed tuple.

    The tuples themselves, not the 63-bit seeds derived from them: those collide by the
    birthday bound, the tuples must not collide at all.
    """
    seen: dict[tuple[int, ...], tuple] = {}
    for master in MASTERS:
        for what, entropy in _every_derivation(master):
            assert len(entropy) == TUPLE_LENGTH
            assert all(0 <= word < 2**32 for word in entropy)
            clash = seen.setdefault(entropy, (master, *what))
            assert clash == (master, *what), f"{clash} and {(master, *what)} share {entropy}"
    per_master = sum(math.prod(len(RANGES[n]) for n in names) for names in COORDINATES.values())
    assert len(seen) == per_master * len(MASTERS) > 480_000


def test_the_old_collisions_are_gone():
    # Before: rank 0's process tuple was training sample 0's, rank 2's worker 1 an epoch's dropout.
    assert seed_tuple(0, Stream.PROCESS, rank=0) != seed_tuple(0, Stream.TRAIN_SAMPLE, sample=0)
    assert seed_tuple(0, Stream.WORKER, rank=2, worker=1) != seed_tuple(
        0, Stream.DROPOUT, epoch=1, sample=1
    )


@pytest.mark.parametrize(
    ("stream", "coordinates", "message"),
    [
        (Stream.WORKER, {"rank": 0}, "takes coordinates"),
        (Stream.SAMPLER, {"rank": 0}, "takes coordinates"),
        (Stream.DROPOUT, {"epoch": 0, "index": 3}, "takes coordinates"),
        (Stream.PROCESS, {"rank": -1}, r"rank=-1 must be in \[0, 2\*\*32\)"),
        (Stream.TRAIN_SAMPLE, {"sample": 2**32}, "sample=4294967296 must be in"),
    ],
)
def test_seed_tuple_rejects_what_could_alias(stream, coordinates, message):
    with pytest.raises(ValueError, match=message):
        seed_tuple(0, stream, **coordinates)


def test_seed_tuple_rejects_a_master_seed_beyond_one_word():
    # SeedSequence would split it into words: (2**32, ...) would read as (0, 1, ...).
    with pytest.raises(ValueError, match="master=4294967296"):
        seed_tuple(2**32, Stream.SAMPLER)


def test_the_data_draws_from_its_tuples():
    x, _ = make_sample(5, Stream.TRAIN_SAMPLE, 17, vocab=16, seq_len=8, noise=0.0)
    rng = np.random.default_rng(list(seed_tuple(5, Stream.TRAIN_SAMPLE, sample=17)))
    assert x.tolist() == rng.integers(0, 16, 8, dtype=np.int64).tolist()
    expected = np.random.SeedSequence(list(seed_tuple(5, Stream.DROPOUT, epoch=2, sample=17)))
    assert dropout_seed(5, 2, 17) == int(expected.generate_state(1)[0])
    state = np.random.SeedSequence(list(seed_tuple(5, Stream.SAMPLER))).generate_state(2)
    assert derive_seed(5, Stream.SAMPLER) == int(state[0]) << 31 ^ int(state[1])


SEEDING_CALLS = {"SeedSequence", "default_rng", "manual_seed", "seed", "Generator"}
DERIVERS = {"seed_sequence", "derive_seed"}
BUILDER = "repro.reference.determinism"  # the one place that turns tuples into RNG state


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def test_every_seeding_goes_through_the_tuple_builder():
    """Outside determinism.py every RNG is seeded from ``seed_sequence`` or ``derive_seed``."""
    sources = hashed_sources()
    strays = []
    for module in HASHED_MODULES:
        if module == BUILDER:
            continue
        for node in ast.walk(ast.parse(sources[module])):
            if isinstance(node, ast.Call) and _name(node.func) in SEEDING_CALLS:
                args = [*node.args, *(k.value for k in node.keywords if k.arg != "device")]
                if args and not all(
                    isinstance(a, ast.Call) and _name(a.func) in DERIVERS for a in args
                ):
                    strays.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert strays == [], "seed these through repro.reference.determinism: " + "; ".join(strays)
