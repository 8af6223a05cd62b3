"""The workload hash: which training a run or baseline is, by the code and settings that decide its numbers.

It covers exactly two things:

- the source of ``HASHED_MODULES``, with comments, docstrings and formatting
  stripped (editing prose does not invalidate baselines): the model, the data,
  the training step, determinism, fingerprints and tracing, everything that
  changes record.json's bytes. The set is closed under imports (its modules
  import only each other, the standard library, torch and numpy; a test checks
  it). The rank's entry point and I/O (``repro.reference.train``) is left out,
  so a reworded progress line keeps every baseline valid;
- the resolved profile fields of class semantic and precision
  (``repro.profile.field_classes``). Seeds, execution settings (threads, world
  size, device...) and harness settings (tracing, timeouts, faults, band
  members) vary within one workload and are judged by other means.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from collections.abc import Mapping
from typing import Any

from repro.profile import field_classes, flatten_settings

HASHED_MODULES = (
    "repro.reference.model",
    "repro.reference.data",
    "repro.reference.determinism",
    "repro.reference.band",
    "repro.reference.step",
    "repro.reference.loop",
    "repro.reference.fingerprint",
    "repro.reference.tracing",
)
HASHED_CLASSES = frozenset({"semantic", "precision"})


@functools.lru_cache(maxsize=len(HASHED_MODULES))
def normalised_source(text: str) -> str:
    """Source with comments, docstrings and formatting removed (parsed once per process per
    text: a command hashes the workload more than once, at 40 ms a time)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def module_source(name: str) -> str:
    """The source text of an importable module, read from its file without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"no source for module {name}")
    with open(spec.origin, encoding="utf-8") as f:
        return f.read()


def hashed_sources() -> dict[str, str]:
    return {name: module_source(name) for name in HASHED_MODULES}


def workload_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The dotted settings the hash covers. A name no field declares is kept: an unexplained
    setting is treated as part of the training, never silently dropped."""
    classes = field_classes()
    return {
        name: value
        for name, value in flatten_settings(settings).items()
        if classes.get(name, "semantic") in HASHED_CLASSES
    }


def hash_workload(settings: dict[str, Any], sources: Mapping[str, str]) -> str:
    """The hash of resolved ``settings`` (``Profile.to_dict()`` form) with the hashed modules'
    ``sources`` (module name -> text; other modules in the mapping are ignored)."""
    h = hashlib.sha256()
    for name in HASHED_MODULES:
        h.update(f"{name}\0{normalised_source(sources[name])}\0".encode())
    h.update(json.dumps(workload_settings(settings), sort_keys=True).encode())
    return h.hexdigest()[:16]


def workload_hash(settings: dict[str, Any]) -> str:
    """The workload hash of resolved ``settings`` with the installed reference code."""
    return hash_workload(settings, hashed_sources())
