"""Random-number-generator states as plain data, and checkpoint files written atomically.

``torch.load(..., weights_only=True)`` unpickles only tensors, containers and Python
scalars: numpy's ``get_state()`` tuple (an ndarray of uint32) is refused, so every RNG
state here is stored as tensors, ints, floats and strings, and read back into the
generator exactly.

    >>> import random
    >>> random.seed(1); states = rng_states()
    >>> first = random.random()
    >>> restore_rng_states(states); random.random() == first
    True
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repro import atomic
from repro.errors import UserError


def rng_states() -> dict[str, Any]:
    """Every global RNG of this process: torch's CPU (and CUDA) generators, numpy, Python."""
    algorithm, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    version, words, python_gauss = random.getstate()
    states: dict[str, Any] = {
        "torch_cpu": torch.get_rng_state(),
        # uint32 keys widened to int64: a tensor type weights_only accepts, exact both ways.
        "numpy": {
            "algorithm": str(algorithm),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(gauss),
        },
        "python": {"version": int(version), "words": list(words), "gauss": python_gauss},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        states["torch_cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put every generator back where ``rng_states`` found it."""
    torch.set_rng_state(states["torch_cpu"])
    if "torch_cuda" in states:
        torch.cuda.set_rng_state_all(states["torch_cuda"])
    n = states["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["algorithm"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["words"]), p["gauss"]))


def save_atomic(state: dict[str, Any], path: Path) -> int:
    """``torch.save`` to a temporary file beside ``path``, then rename: an interruption
    (Ctrl-C, a full disk, a kill) leaves the previous file whole. Returns the bytes written."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~atomic.umask())  # mkstemp's file is private; a plain open()'s is not
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        size = os.path.getsize(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return size


def load_state(path: Path) -> dict[str, Any]:
    """A checkpoint loaded with ``weights_only=True``; bad input is one sentence (``UserError``)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist; pass a run stopped with `repro run --stop-at K`.")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise UserError(f"{path} is not a readable checkpoint ({first}); write it again.") from None
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a checkpoint's dict.")
    return state
