"""The workload hash: which reference code and profile a run or baseline is valid for.

It covers the reference model, data and training source with comments and
docstrings stripped (so editing prose does not invalidate baselines) and the
profile's numerics-relevant fields. Seeds, tracing depth, timeouts, faults and
band settings are left out: they vary within one workload.
"""

from __future__ import annotations

import ast
import hashlib
import json
from importlib import resources
from typing import Any

REFERENCE_MODULES = (
    "model.py",
    "data.py",
    "train.py",
    "tracing.py",
    "fingerprint.py",
    "determinism.py",
)
NOT_WORKLOAD = frozenset(
    {
        "name",
        "description",
        "seed",
        "trace_steps",
        "check_every",
        "collective_timeout_s",
        "band_member",
        "band_scale",
        "fault",
    }
)


def normalised_source(text: str) -> str:
    """Source with comments, docstrings and formatting removed."""
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


def workload_hash(settings: dict[str, Any]) -> str:
    h = hashlib.sha256()
    package = resources.files("repro.reference")
    for name in REFERENCE_MODULES:
        h.update(name.encode())
        h.update(normalised_source(package.joinpath(name).read_text(encoding="utf-8")).encode())
    workload = {k: v for k, v in settings.items() if k not in NOT_WORKLOAD}
    h.update(json.dumps(workload, sort_keys=True).encode())
    return h.hexdigest()[:16]
