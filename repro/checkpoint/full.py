"""``repro.checkpoint.save`` and ``load``: a user's training state, whole, loadable with
``weights_only=True``.

    repro.checkpoint.save("ckpt.pt", model=model, optimizer=opt, scheduler=sched, step=step)
    extra = repro.checkpoint.load("ckpt.pt", model=model, optimizer=opt, scheduler=sched)
    start = extra["step"] + 1

Every RNG each rank draws from is saved (under DDP, gathered from every rank; rank 0
writes) and each rank gets its own back. The file is written atomically: an interruption
leaves the previous one whole. ``load`` inside a ``repro.track`` run records the resume.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.distributed as dist

from repro.checkpoint.state import load_state, restore_rng_states, rng_states, save_atomic
from repro.errors import UserError

FORMAT = "repro.checkpoint/1"
PIECES = ("model", "optimizer", "scaler", "scheduler", "sampler")
# Called after a load with (step, path, the pieces the file held, the pieces restored): a
# tracked run's record of its resume (repro.tracking registers one while a run is open;
# this floor cannot import it).
RESUME_HOOKS: list[Any] = []


def _rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _unwrapped(model: Any) -> Any:
    # A DDP (or compiled) module's own state_dict prefixes every key; save the inner one.
    return getattr(model, "module", model)


def _sampler_state(sampler: Any) -> dict[str, Any]:
    if hasattr(sampler, "state_dict"):
        return {"state_dict": sampler.state_dict()}
    return {"epoch": int(getattr(sampler, "epoch", 0))}


def save(
    path: Path | str,
    *,
    model: Any = None,
    optimizer: Any = None,
    scaler: Any = None,
    scheduler: Any = None,
    sampler: Any = None,
    **extra: Any,
) -> int:
    """Write the full state to ``path`` (every rank must call it under DDP: it gathers the
    RNG states). Returns the bytes written (0 on ranks other than 0). ``extra`` values are
    kept as given: tensors, numbers, strings and containers of them."""
    rank, world = _rank_world()
    mine = rng_states()
    every: list[Any] = [mine]
    if world > 1:
        every = [None] * world
        dist.all_gather_object(every, mine)
    size = 0
    if rank == 0:
        state: dict[str, Any] = {"format": FORMAT, "world_size": world, "rng": every}
        pieces = {"model": model, "optimizer": optimizer, "scaler": scaler, "scheduler": scheduler}
        for name, obj in pieces.items():
            if obj is not None:
                state[name] = (_unwrapped(obj) if name == "model" else obj).state_dict()
        if sampler is not None:
            state["sampler"] = _sampler_state(sampler)
        state["extra"] = extra
        size = save_atomic(state, Path(path))
    if world > 1:
        dist.barrier()  # no rank reads the file before it is whole
    return size


def load(
    path: Path | str,
    *,
    model: Any = None,
    optimizer: Any = None,
    scaler: Any = None,
    scheduler: Any = None,
    sampler: Any = None,
) -> dict[str, Any]:
    """Restore what ``save`` wrote into the objects given, this rank's RNGs last (loading
    draws nothing, but the caller's next draw must be the saved run's). Returns ``extra``."""
    path = Path(path)
    state = load_state(path)
    if state.get("format") != FORMAT:
        raise UserError(
            f"{path} was not written by repro.checkpoint.save; inspect it with `repro checkpoint inspect {path}`."
        )
    rank, world = _rank_world()
    if world != state["world_size"]:
        raise UserError(
            f"{path} was saved by {state['world_size']} ranks and this run has {world}; "
            "resume with the same number of ranks."
        )
    given = dict(zip(PIECES, (model, optimizer, scaler, scheduler, sampler)))
    for name in ("model", "optimizer", "scaler", "scheduler"):
        obj = given[name]
        if obj is not None:
            (_unwrapped(obj) if name == "model" else obj).load_state_dict(_piece(state, name, path))
    if sampler is not None:
        saved = _piece(state, "sampler", path)
        if "state_dict" in saved:
            sampler.load_state_dict(saved["state_dict"])
        else:
            sampler.set_epoch(saved["epoch"])
    restore_rng_states(state["rng"][rank])
    extra: dict[str, Any] = dict(state.get("extra") or {})
    held = [name for name in PIECES if name in state] + ["rng"]
    restored = [name for name in PIECES if given[name] is not None] + ["rng"]
    for hook in RESUME_HOOKS:
        hook(extra.get("step"), path, held, restored)
    return extra


def _piece(state: dict[str, Any], name: str, path: Path) -> Any:
    if name not in state:
        raise UserError(
            f"{path} holds no {name} state; save it with repro.checkpoint.save({name}=...)."
        )
    return state[name]
