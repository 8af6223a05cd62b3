"""Kubernetes: an Indexed Job per fleet, results through termination messages.

No client library: ``render_job`` prints a manifest the user applies with ``kubectl
apply``; ``collect`` reads what ``kubectl get pods -o json`` wrote. A pod's termination
message holds at most 4 KiB (4096 bytes), so ``repro fleet node`` writes a summary there:
the node file without its per-step digests (the matrix then says that a peer's record
differs, not at which step), compressed, with a marker line ``collect`` recognises.
"""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace

from repro import strict_json
from repro.errors import UserError
from repro.fleet.node import NodeResult, from_dict

MARKER = "repro-fleet-node/1 "
MESSAGE_LIMIT = 4096  # bytes: the kubelet truncates a longer termination message
TAINT_KEY = "repro.dev/verdict"


def summary_message(result: NodeResult) -> str:
    """One line under 4 KiB that ``collect`` turns back into the node file, less its step
    digests; past the limit the preflight findings' reasons are dropped, then the findings."""
    trimmed = replace(result, step_digests=[])
    for attempt in (
        trimmed,
        replace(trimmed, preflight=[{**f, "reason": ""} for f in trimmed.preflight]),
        replace(trimmed, preflight=[]),
    ):
        packed = zlib.compress(strict_json.dumps(attempt.to_dict(), sort_keys=True).encode(), 9)
        message = MARKER + base64.b64encode(packed).decode("ascii")
        if len(message.encode()) <= MESSAGE_LIMIT:
            return message
    raise ValueError(f"the node summary of {result.node} does not fit in {MESSAGE_LIMIT} bytes")


def read_message(message: str, where: str) -> NodeResult | None:
    """The node result a termination message holds; None when it holds none (a log tail)."""
    message = message.strip()
    if not message.startswith(MARKER):
        return None
    try:
        data = json.loads(zlib.decompress(base64.b64decode(message[len(MARKER) :])))
    except (ValueError, zlib.error) as exc:
        raise UserError(
            f"{where}: the repro summary is damaged ({exc}); rerun that node."
        ) from None
    return from_dict(data, where)
