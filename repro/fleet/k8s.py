"""Kubernetes: an Indexed Job per fleet, results through termination messages.

No client library: ``render_job`` prints a manifest the user applies with ``kubectl
apply``; ``collect`` reads what ``kubectl get pods -o json`` wrote. A pod's termination
message holds at most 4 KiB (4096 bytes), so ``repro fleet node`` writes a summary there:
the node file, compressed, behind a marker line ``collect`` recognises. Where it does not
fit, the per-step digests go first (the matrix then says that a peer's record differs, not
at which step: 600 steps of the full profile do not fit), then the preflight findings'
reasons, then the findings.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import zlib
from dataclasses import dataclass, replace
from typing import Any

import yaml

from repro import strict_json
from repro.errors import UserError
from repro.fleet.node import _NODE_NAME, NodeResult, from_dict

MARKER = "repro-fleet-node/1 "
MESSAGE_LIMIT = 4096  # bytes: the kubelet truncates a longer termination message
TAINT_KEY = "repro.dev/verdict"


def summary_message(result: NodeResult) -> str:
    """One line under 4 KiB that ``collect`` turns back into the node file; past the limit
    the step digests are dropped, then the preflight findings' reasons, then the findings."""
    trimmed = replace(result, step_digests=[])
    for attempt in (
        result,
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


JOB_LABEL = "repro.dev/fleet"  # on every pod of one fleet Job: what the anti-affinity counts
CONTAINER = "repro"
RESULTS = "/var/run/repro-fleet"  # the pod's own copy of the node file (an emptyDir)
TERMINATION_LOG = "/dev/termination-log"  # Kubernetes' default terminationMessagePath
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class JobSpec:
    nodes: list[str]
    image: str
    name: str = "repro-fleet"
    namespace: str | None = None
    queue: str | None = None  # a Kueue LocalQueue: the Job waits, suspended, to be admitted
    gpus_per_node: int = 0  # 0: the pods request no GPU and verify the CPU
    deadline_s: int = 3600
    node_options: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.nodes:
            raise UserError("--nodes names no node; list them as `kubectl get nodes` does (a,b,c).")
        bad = next((n for n in self.nodes if not _NODE_NAME.match(n)), None)
        twice = next((n for n in self.nodes if self.nodes.count(n) > 1), None)
        if bad or twice:
            what = f"{bad!r} is no node name" if bad else f"names {twice} twice"
            raise UserError(f"--nodes: {what}; list each node once, as `kubectl get nodes` does.")
        if not _DNS_LABEL.match(self.name) or len(self.name) > 52:
            raise UserError(
                f"--name {self.name!r}: a Job name here is at most 52 lower-case letters, "
                "digits and '-' (Kubernetes adds the pod suffix)."
            )
        if self.gpus_per_node < 0 or self.deadline_s < 1:
            raise UserError(
                f"--gpus-per-node {self.gpus_per_node} and --deadline {self.deadline_s}: "
                "GPUs are 0 or more, the deadline at least 1 second."
            )


def _container(spec: JobSpec) -> dict[str, Any]:
    command = ["repro", "fleet", "node", "--out", RESULTS, *spec.node_options]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "command": command,
        # The node name is the one the matrix, the expected list and `exclude` use.
        "env": [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}],
        "terminationMessagePath": TERMINATION_LOG,
        # A pod that dies before repro writes its summary still says why (its log's tail).
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "dshm", "mountPath": "/dev/shm"},
            {"name": "results", "mountPath": RESULTS},
        ],
    }
    if spec.gpus_per_node:
        # Extended resources are set as limits (the request follows); without them the
        # device plugin mounts no GPU and the node would verify its CPU.
        container["resources"] = {"limits": {"nvidia.com/gpu": spec.gpus_per_node}}
    return container


def _pod_spec(spec: JobSpec) -> dict[str, Any]:
    return {
        "restartPolicy": "Never",
        "affinity": {
            # Only the named nodes (by name, as NODE_NAME reports it) ...
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": spec.nodes}
                            ]
                        }
                    ]
                }
            },
            # ... and never two pods of this fleet on one node: one pod per node.
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {JOB_LABEL: spec.name}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            },
        },
        # A node `fleet exclude` tainted can still be verified again.
        "tolerations": [{"key": TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [_container(spec)],
        "volumes": [
            # NCCL's shared-memory transport fails on the container runtime's 64 MiB /dev/shm.
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
            {"name": "results", "emptyDir": {}},
        ],
    }


def job_manifest(spec: JobSpec) -> dict[str, Any]:
    """The Indexed Job: one pod per node, every index run once and to its end."""
    n = len(spec.nodes)
    metadata: dict[str, Any] = {"name": spec.name, "labels": {JOB_LABEL: spec.name}}
    if spec.namespace:
        metadata["namespace"] = spec.namespace
    if spec.queue:
        metadata["labels"][QUEUE_LABEL] = spec.queue
    job: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": n,
        "parallelism": n,
        # No retry (a retried index could land on another node) and no early stop: every
        # node reports, whatever its neighbours found.
        "backoffLimitPerIndex": 0,
        "maxFailedIndexes": n,
        # A pod Pending on a cordoned node ends here; its node is then NO_RESULT.
        "activeDeadlineSeconds": spec.deadline_s,
        "template": {
            "metadata": {"labels": {JOB_LABEL: spec.name}},
            "spec": _pod_spec(spec),
        },
    }
    if spec.queue:
        job["suspend"] = True  # Kueue starts the Job when its queue admits it
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job}


def render_job(spec: JobSpec, out: str) -> str:
    """The Job as YAML, headed by the commands that run it and collect its results."""
    ns = f" -n {shlex.quote(spec.namespace)}" if spec.namespace else ""
    head = [
        f"# repro fleet: one `repro fleet node` pod on each of {len(spec.nodes)} node(s).",
        f"#   kubectl apply{ns} -f THIS_FILE",
        # One `kubectl wait --for` takes one condition; the Job ends Complete, or Failed
        # as soon as one node's verdict is not 0 (its index failed) and all have finished.
        f"#   kubectl get{ns} job/{spec.name} -w    (until Complete or Failed; "
        f"at most {spec.deadline_s} s)",
        f"#   kubectl get pods{ns} -l job-name={spec.name} -o json > pods.json",
        f"#   repro fleet collect --pods pods.json --out {shlex.quote(out)}",
        f"#   repro fleet matrix {shlex.quote(out)}",
    ]
    body = yaml.safe_dump(job_manifest(spec), sort_keys=False, default_flow_style=False)
    return "\n".join(head) + "\n" + body


@dataclass(frozen=True)
class Collected:
    results: list[NodeResult]
    notes: list[str]  # one line per pod that gave no result, and why


def _pods(data: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(data, dict) and data.get("kind") == "Pod":
        return [data]
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(p, dict) for p in items):
        raise UserError(
            f"{where} is not a pod list; write it with "
            "`kubectl get pods -l job-name=NAME -o json > pods.json`."
        )
    return [p for p in items if p.get("kind", "Pod") == "Pod"]


def _status(pod: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the repro container's status, its terminated state or {})."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    mine = next(
        (s for s in statuses if s.get("name") == CONTAINER), statuses[0] if statuses else {}
    )
    state = mine.get("state") or {}
    return mine, state.get("terminated") or (mine.get("lastState") or {}).get("terminated") or {}


def _no_result(pod: dict[str, Any], name: str, terminated: dict[str, Any]) -> str:
    status = pod.get("status") or {}
    phase = status.get("phase", "Unknown")
    node = (pod.get("spec") or {}).get("nodeName") or "no node yet"
    if terminated:
        tail = (terminated.get("message") or "").strip().splitlines()
        said = f": {tail[-1][:200]}" if tail else ""
        why = (
            f"ended {phase} (exit {terminated.get('exitCode')}, "
            f"{terminated.get('reason', 'no reason')}) without a repro summary{said}"
        )
    else:
        unscheduled = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"
             and c.get("status") == "False"),
            None,
        )  # fmt: skip
        why = f"is still {phase}"
        if unscheduled:
            why += f" ({unscheduled.get('reason')}: {unscheduled.get('message', '')})"
    return f"pod {name} on {node} {why}; its node is NO_RESULT"


def collect(data: Any, where: str) -> Collected:
    """Node results from ``kubectl get pods -o json``: one per pod whose termination message
    holds a repro summary, with the image digest the kubelet reports. A node with two
    results (pods of two runs) is bad input: nothing says which run the matrix should show."""
    results: dict[str, tuple[str, NodeResult]] = {}
    notes = []
    for pod in _pods(data, where):
        name = (pod.get("metadata") or {}).get("name", "?")
        container, terminated = _status(pod)
        found = read_message(terminated.get("message") or "", f"{where}: pod {name}")
        if found is None:
            notes.append(_no_result(pod, name, terminated))
            continue
        if not _NODE_NAME.match(found.node):
            raise UserError(f"{where}: pod {name} names node {found.node!r}, no node name.")
        if found.node in results:
            raise UserError(
                f"{where} holds two results for node {found.node} (pods {results[found.node][0]} "
                f"and {name}); get the pods of one Job run only (-l job-name=NAME)."
            )
        image = container.get("imageID") or None
        results[found.node] = (name, replace(found, engine="k8s", image=image))
    return Collected([r for _, r in sorted(results.values(), key=lambda x: x[1].node)], notes)
