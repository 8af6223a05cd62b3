"""Load a user's factory: ``path/to/file.py:function`` (or ``package.module:function``),
a function of no arguments that builds what a command needs from the user's own code.

    def make():                       # in train_probe.py
        model = MyModel()
        x, y = next(iter(loader))
        return model, x, lambda out: F.cross_entropy(out, y), torch.optim.AdamW(model.parameters())

The function returns ``(model, batch)``, ``(model, batch, loss_fn)`` or ``(model, batch,
loss_fn, optimizer)`` (``loss_fn`` may be ``None``), or a mapping with those keys.
``repro probe`` uses ``build``; a command that needs another shape calls ``call`` and
checks the return value itself. The
file is imported as a module of its own (not ``__main__``, so a script's
``if __name__ == "__main__":`` block does not run), with its folder first on
``sys.path`` while it imports so that it can import its neighbours.
Every way the spec, the import, the call or its result can be wrong is a ``UserError``:
one sentence, exit 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro.errors import UserError

_KEYS = ("model", "batch", "loss_fn", "optimizer")


@dataclass(frozen=True)
class Factory:
    """What a factory built: ``model`` is an ``nn.Module``, the rest is the user's."""

    spec: str
    model: Any
    batch: Any
    loss_fn: Callable[[Any], Any] | None = None
    optimizer: Any = None


def load_function(spec: str) -> Callable[[], Any]:
    """The function a spec names, imported but not called."""
    where, sep, name = spec.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise UserError(
            f"{spec!r} is not FILE.py:FUNCTION (or module:function); name the function that "
            "returns the model and a batch, e.g. train.py:make_probe."
        )
    module = _import(where, spec)
    function = getattr(module, name, None)
    if not callable(function):
        raise UserError(f"{where} has no function {name!r}; check the name after the colon.")
    return function  # type: ignore[no-any-return]


def _import(where: str, spec: str) -> Any:
    path = Path(where)
    try:
        if where.endswith(".py") or path.exists():
            if not path.is_file():
                raise UserError(f"{where}: no such file; give the path to your .py file.")
            folder = str(path.resolve().parent)
            name = f"repro_factory_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            if module_spec is None or module_spec.loader is None:
                raise UserError(f"{where} cannot be imported as Python; name a .py file.")
            module = importlib.util.module_from_spec(module_spec)
            sys.path.insert(0, folder)
            try:
                sys.modules[name] = module  # dataclasses and pickling look the module up
                module_spec.loader.exec_module(module)
            finally:
                sys.path.remove(folder)
            return module
        return importlib.import_module(where)
    except UserError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name == where:
            raise UserError(f"{where}: no such file or module; check {spec!r}.") from exc
        raise UserError(f"importing {where} failed: {_said(exc)}; fix it and retry.") from exc
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"importing {where} failed: {_said(exc)}; fix it and retry.") from exc


def _said(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def call(spec: str) -> Any:
    """Import the factory and call it: its return value, unchecked (each command checks
    the shape it needs)."""
    function = load_function(spec)
    try:
        return function()
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        raise UserError(f"{spec} raised {_said(exc)}; fix the factory and retry.") from exc


def build(spec: str) -> Factory:
    """Import and call the factory; check that it returned a model and a batch."""
    import torch

    made = call(spec)
    if isinstance(made, Mapping):
        unknown = sorted(set(made) - set(_KEYS))
        if unknown or "model" not in made or "batch" not in made:
            raise UserError(
                f"{spec} returned a mapping with keys {sorted(made)}; it needs 'model' and "
                "'batch', and may have 'loss_fn' and 'optimizer'."
            )
        parts = [made.get(k) for k in _KEYS]
    elif isinstance(made, (tuple, list)) and 2 <= len(made) <= 4:
        parts = [*made, None, None][:4]
    else:
        raise UserError(
            f"{spec} returned {type(made).__name__}; return (model, batch[, loss_fn[, optimizer]])."
        )
    model, batch, loss_fn, optimizer = parts
    if not isinstance(model, torch.nn.Module):
        raise UserError(
            f"{spec} returned {type(model).__name__} as the model; return an nn.Module."
        )
    if loss_fn is not None and not callable(loss_fn):
        raise UserError(
            f"{spec} returned a loss_fn that is not callable; return a function or None."
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
        raise UserError(
            f"{spec} returned {type(optimizer).__name__} as the optimizer; return a "
            "torch.optim.Optimizer or None."
        )
    return Factory(spec, model, batch, loss_fn, optimizer)
