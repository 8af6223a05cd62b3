"""One node's result as a file: what ``repro fleet node`` writes and ``fleet matrix`` reads.

A node file holds the verdict and its exit code, the environment key and the facts a
person compares (GPU, driver, CUDA, cuDNN, NCCL, torch), the digest of the run's exact
record (peers of one environment class must agree on it bit for bit), the worst band
ratio, the preflight's findings, the repro version and times. It is written atomically
as ``<node>.json`` so a matrix never reads half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from repro import __version__, atomic, strict_json
from repro.errors import UserError
from repro.manifest.keys import environment_key, flatten
from repro.manifest.probe import is_unavailable
from repro.verdict import Verdict

SCHEMA = "repro.fleet.node/1"
# A manifest-only sweep judges health and environment, not numbers: FIT is its pass.
FIT = "FIT"
FACTS = ("gpu", "driver", "cuda", "cudnn", "nccl", "torch")
_NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# Where the engine says which node a task runs on, most specific first.
_NAME_VARIABLES = ("NODE_NAME", "SLURMD_NODENAME")


@dataclass(frozen=True)
class NodeResult:
    node: str
    check: str  # "verify" or "manifest"
    verdict: str  # a Verdict's name, or FIT for a manifest check that passed
    exit_code: int
    summary: str
    env_key: dict[str, Any]
    facts: dict[str, str]
    workload: str | None = None  # profile and workload hash: records of one training only
    record_digest: str | None = None
    # Digest of the initial parameters, then of each step: where two peers part.
    step_digests: list[str] = field(default_factory=list)
    worst_ratio: float | None = None
    first_cause: str | None = None
    preflight: list[dict[str, Any]] = field(default_factory=list)
    repro_version: str = __version__
    started: str = ""
    finished: str = ""
    engine: str = "local"
    image: str | None = None  # the container image digest, where the engine reports it
    schema: str = SCHEMA

    @property
    def env_class(self) -> str:
        """Nodes whose records must be bit-identical: one training, one environment key."""
        data = strict_json.dumps({"w": self.workload, "k": self.env_key}, sort_keys=True)
        return hashlib.sha256(data.encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_name(explicit: str | None, environ: Mapping[str, str] | None = None) -> str:
    """``--node``, else ``NODE_NAME`` (Kubernetes' downward API), else ``SLURMD_NODENAME``,
    else the host name; a name that cannot be a file name is bad input."""
    environ = os.environ if environ is None else environ
    name = explicit or next((environ[v] for v in _NAME_VARIABLES if environ.get(v)), None)
    name = name or socket.gethostname()
    if not _NODE_NAME.match(name):
        raise UserError(
            f"node name {name!r} cannot name a file; pass --node with letters, digits, '.', '_' or '-'."
        )
    return name


def _shown(value: Any) -> str:
    if value is None or value == "absent" or is_unavailable(value):
        return "n/a"
    return str(value)


def manifest_facts(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The columns a person reads first, from a manifest; ``n/a`` where one does not apply."""
    flat = flatten(manifest)
    gpu = flat.get("hardware.cuda.used.name")
    if gpu in (None, "absent"):
        gpu = flat.get("hardware.gpus.0.name")
    driver = next((v for k, v in flat.items() if k.endswith("driver_version")), None)
    cuda = flat.get("libraries.cuda.runtime")
    if cuda is None or is_unavailable(cuda):
        cuda = flat.get("libraries.cuda.build")
    return {
        "gpu": _shown(gpu),
        "driver": _shown(driver),
        "cuda": _shown(cuda),
        "cudnn": _shown(flat.get("libraries.cudnn", flat.get("libraries.cudnn.version"))),
        "nccl": _shown(flat.get("libraries.nccl", flat.get("libraries.nccl.version"))),
        "torch": _shown(flat.get("libraries.torch.version")),
    }


def record_digests(record: Mapping[str, Any] | None) -> tuple[str | None, list[str]]:
    """(digest of the whole exact record, digests of the initial parameters and each step).

    Only what ``records_identical`` compares counts: two records with one digest are the
    same training to the bit."""
    if not record:
        return None, []

    def digest(value: Any) -> str:
        return hashlib.sha256(strict_json.dumps(value, sort_keys=True).encode()).hexdigest()

    exact = {k: record.get(k) for k in ("initial_params", "steps", "final")}
    steps = [digest(record.get("initial_params"))[:12]]
    steps += [digest(step)[:12] for step in record.get("steps") or []]
    return digest(exact)[:16], steps


def describe(
    node: str,
    check: str,
    verdict: str,
    summary: str,
    manifest: Mapping[str, Any],
    **extra: Any,
) -> NodeResult:
    """A node result from a verdict and the manifest it was reached on."""
    code = 0 if verdict == FIT else Verdict(verdict).exit_code
    return NodeResult(
        node=node,
        check=check,
        verdict=verdict,
        exit_code=code,
        summary=summary,
        env_key=environment_key(manifest),
        facts=manifest_facts(manifest),
        **extra,
    )


def write_node_file(out_dir: Path, result: NodeResult) -> Path:
    path = Path(out_dir) / f"{result.node}.json"
    atomic.write_json(path, result.to_dict())
    return path


_FIELDS = {f.name for f in fields(NodeResult)}
_REQUIRED = {"node", "check", "verdict", "exit_code", "summary", "env_key", "facts"}


def from_dict(data: Any, where: str) -> NodeResult:
    """A node result from its JSON; another schema, or a damaged file, is bad input."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise UserError(
            f"{where} is not a repro fleet node file (schema {found!r}, expected {SCHEMA!r}); "
            "remove it from the folder or rewrite it with `repro fleet node`."
        )
    missing = sorted(_REQUIRED - set(data))
    verdict = data.get("verdict")
    if missing or (verdict != FIT and verdict not in Verdict.__members__):
        what = f"lacks {', '.join(missing)}" if missing else f"has an unknown verdict {verdict!r}"
        raise UserError(f"{where} {what}; rewrite it with `repro fleet node`.")
    return NodeResult(**{k: v for k, v in data.items() if k in _FIELDS})


def load_node_file(path: Path) -> NodeResult:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc}); remove it or rewrite it with `repro fleet node`."
        ) from None
    return from_dict(data, str(path))
