"""The one rule every probe follows: return a value, or say why it could not, never raise."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

UNAVAILABLE = "unavailable"
_MAX_REASON = 200  # characters; a reason is a hint for a person, not a traceback


def unavailable(reason: str) -> dict[str, str]:
    """The value recorded in place of a reading that could not be made."""
    return {UNAVAILABLE: reason}


def is_unavailable(value: Any) -> bool:
    return isinstance(value, Mapping) and len(value) == 1 and UNAVAILABLE in value


def reason_for(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {message[0]}" if message else type(exc).__name__
    return text[:_MAX_REASON]


def guarded(read: Callable[[], T]) -> T | dict[str, str]:
    """Run one probe; any exception becomes ``{"unavailable": reason}``."""
    try:
        # Some getters emit deprecation warnings, and the test suite turns warnings into
        # errors: silencing them keeps a reading the same under test and in production.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read()
    except Exception as exc:
        return unavailable(reason_for(exc))


def read_each(reads: Mapping[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run each probe on its own, so one failing reading never hides the others."""
    return {name: guarded(read) for name, read in reads.items()}


def cuda_version(encoded: int) -> str:
    """CUDA's integer version (the runtime's and NVML's driver version alike): 12040 -> "12.4"."""
    return f"{encoded // 1000}.{encoded % 1000 // 10}"
