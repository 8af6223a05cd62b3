"""What ``repro.track`` records of the values a training script hands it.

A config is recorded whatever it holds: a value YAML cannot hold (a ``Path``, a numpy
scalar, a ``torch.device``, an enum, a dataclass, an ``argparse.Namespace``) is written
in its readable form and its key named in ``config_converted``. A logged value or final
metric is checked at the call by its type, element count and dtype alone: reading a CUDA
tensor's value would make the loop wait for the device.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import numbers
import os
import re
import types
import warnings
from collections.abc import Mapping
from typing import Any

# Exactly these types are written to YAML as they are; a subclass (an IntEnum, numpy's
# float64) is converted: YAML's safe writer refuses it.
_YAML_SCALARS = (type(None), bool, int, float, str)
_MAX_DEPTH = 32  # deeper than any real config: the rest is written as text
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # differs run to run: not part of a value

LOG_ACCEPTS = "a number, a one-element numeric tensor, a string, a bool or None"
FINAL_ACCEPTS = "a number or a one-element numeric tensor"
_INTEGER_DTYPES: set[Any] = set()  # filled on first use: importing torch costs seconds


class TrackingWarning(UserWarning):
    """A value ``repro.track`` could not record; the training goes on without it."""


def plain_config(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The config as YAML holds it, and each converted value's dotted key with its type."""
    converted: dict[str, str] = {}
    plain = _plain(dict(config), "", converted, 0)
    return plain, converted


def _plain(value: Any, key: str, converted: dict[str, str], depth: int) -> Any:
    if type(value) in _YAML_SCALARS:
        return value
    try:
        readable = _readable(value, key, converted, depth)
    except Exception:  # a value whose own str() fails must not stop the training
        readable = f"<{_type_name(value)}>"
    # Containers YAML writes as they are (dict, list, tuple) are walked, not named.
    if not isinstance(value, (dict, list, tuple)) or depth >= _MAX_DEPTH:
        converted[key or "<config>"] = _type_name(value)
    return readable


def _readable(value: Any, key: str, converted: dict[str, str], depth: int) -> Any:
    def inner(item: Any, name: object) -> Any:
        return _plain(item, f"{key}.{name}" if key else str(name), converted, depth + 1)

    if depth >= _MAX_DEPTH:
        return _text(value)
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, Mapping):
        return {_key(k): inner(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [inner(v, i) for i, v in enumerate(value)]
    if isinstance(value, (set, frozenset)):
        return sorted((inner(v, i) for i, v in enumerate(value)), key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: inner(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
        return {k: inner(v, k) for k, v in vars(value).items()}
    if isinstance(value, os.PathLike):
        return os.fsdecode(value)
    if isinstance(value, (str, int, float)):  # subclasses of the YAML scalars (numpy.float64)
        return _base(value)(value)
    if getattr(value, "shape", None) == () and callable(getattr(value, "item", None)):
        return _plain(value.item(), key, {}, depth + 1)  # numpy scalars, 0-d arrays and tensors
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):  # an array: its description, not its data
        return f"{type(value).__name__}(shape={list(shape)}, dtype={value.dtype})"
    return _text(value)


def _base(value: str | int | float) -> type[str | int | float]:
    return str if isinstance(value, str) else int if isinstance(value, int) else float


def _key(key: Any) -> Any:
    return key if type(key) in _YAML_SCALARS else _text(key)


def _text(value: Any) -> str:
    return _ADDRESS.sub("", str(value))


def _type_name(value: Any) -> str:
    kind = type(value)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


# -- logged values and final metrics ------------------------------------------------------


def loggable(value: Any, *, notes: bool) -> tuple[Any, str | None]:
    """``(what to keep, None)`` for a value that can be recorded, ``(None, what it is)``
    otherwise. Checked by type, element count and dtype only, never by value. A tensor is
    detached and cloned (an in-place update after the call must not change what was
    logged) and stays on its device; a host number becomes a Python number now."""
    import torch

    if not _INTEGER_DTYPES:
        _INTEGER_DTYPES.update([torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64])
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None, f"a tensor of {value.numel()} elements"
        numeric = value.is_floating_point() or value.dtype in _INTEGER_DTYPES
        if not (numeric or (notes and value.dtype == torch.bool)):
            return None, f"a {value.dtype} tensor"
        return value.detach().clone(), None
    if notes and (value is None or isinstance(value, (str, bool))):
        return (str(value) if isinstance(value, str) else value), None
    if isinstance(value, bool):
        return None, "a bool"
    if isinstance(value, numbers.Integral):
        return int(value), None
    if isinstance(value, numbers.Real):
        return float(value), None
    size, kind = getattr(value, "size", None), getattr(getattr(value, "dtype", None), "kind", None)
    if size == 1 and kind in ("i", "u", "f") and callable(getattr(value, "item", None)):
        return value.item(), None  # a one-element numpy array (host memory: no wait)
    if notes and size == 1 and kind == "b" and callable(getattr(value, "item", None)):
        return bool(value.item()), None
    name = _type_name(value)
    return None, f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def warn_not_recorded(name: str, what: str, call: str, step: int | None) -> None:
    at = f" at step {step}" if step is not None else ""
    accepts = LOG_ACCEPTS if call == "log" else FINAL_ACCEPTS
    warnings.warn(
        f"repro.track: {name}{at} is {what} and is not recorded ({call}() takes {accepts}); "
        "the other values are.",
        TrackingWarning,
        stacklevel=4,  # the script's own log() or final() line
    )
