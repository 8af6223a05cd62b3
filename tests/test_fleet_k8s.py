"""`repro fleet` on Kubernetes, without a cluster: the rendered Indexed Job validated against
the published schemas (kubernetes-validate, offline, Kubernetes 1.33: the first release with
backoffLimitPerIndex and maxFailedIndexes generally available), `collect` on a pod list
shaped as `kubectl get pods -o json` writes it, and `exclude --apply` through a stub
`kubectl` that only records its argv.

One real node file, termination message included, is written by `repro fleet node --check
manifest` (about 6 s); the other nodes are copies with records from the shipped baseline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from repro.cli import main
from repro.fleet.k8s import MESSAGE_LIMIT, read_message, summary_message
from repro.fleet.matrix import build_matrix
from repro.fleet.node import from_dict, record_digests

REPO = Path(__file__).resolve().parent.parent
SHIPPED = next((REPO / "manifests" / "baselines").glob("*/record.json"))
SCHEMA_VERSION = "1.33.0"
IMAGE_ID = "registry.example/repro@sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str]:
    """A node file and the termination message the same `fleet node` run wrote."""
    out = tmp_path_factory.mktemp("node")
    log = out / "termination-log"
    log.write_text("")  # the kubelet creates the file; repro writes only where it exists
    code = main(["fleet", "node", "--check", "manifest", "--profile", "smoke", "--node", "n1",
                 "--out", str(out), "--termination-log", str(log)])  # fmt: skip
    assert code == 0
    return json.loads((out / "n1.json").read_text()), log.read_text()


def _node(real: dict, node: str, record: dict | None = None, **changes) -> dict:
    data = copy.deepcopy(real)
    data.update(node=node, **changes)
    if record is not None:
        digest, steps = record_digests(record)
        data.update(check="verify", workload="quick:test", record_digest=digest, step_digests=steps)
    return data


def _records() -> tuple[dict, dict]:
    """The shipped record (200 steps), and one whose step 5 is one ulp off."""
    record = json.loads(SHIPPED.read_text())
    parted = copy.deepcopy(record)
    step = parted["steps"][5]
    key = next(k for k, v in step.items() if isinstance(v, float))
    step[key] = math.nextafter(step[key], math.inf)
    return record, parted


def _pod(name: str, node: str | None, phase: str, *, message: str | None = None,
         exit_code: int | None = None, reason: str = "Completed") -> dict:  # fmt: skip
    """A pod as `kubectl get pods -o json` lists it (the fields collect reads, and company)."""
    status: dict = {"phase": phase, "qosClass": "BestEffort", "startTime": "2025-05-01T10:00:00Z"}
    pod: dict = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "ml",
            "labels": {
                "job-name": "repro-fleet",
                "batch.kubernetes.io/job-name": "repro-fleet",
                "repro.dev/fleet": "repro-fleet",
            },
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "repro-fleet"}],
        },
        "spec": {"containers": [{"name": "repro", "image": "registry.example/repro:1"}]},
        "status": status,
    }
    if node is not None:
        pod["spec"]["nodeName"] = node
    if exit_code is not None:
        terminated = {"exitCode": exit_code, "reason": reason, "containerID": "containerd://1",
                      "startedAt": "2025-05-01T10:00:01Z", "finishedAt": "2025-05-01T10:00:09Z"}  # fmt: skip
        if message is not None:
            terminated["message"] = message
        status["containerStatuses"] = [{
            "name": "repro", "image": "registry.example/repro:1", "imageID": IMAGE_ID,
            "ready": False, "restartCount": 0, "started": False,
            "state": {"terminated": terminated}, "lastState": {},
        }]  # fmt: skip
    else:
        status["conditions"] = [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/4 nodes are available: 1 node(s) were unschedulable.",
        }]  # fmt: skip
    return pod


def _pod_list(*pods: dict) -> dict:
    return {"apiVersion": "v1", "kind": "List", "items": list(pods), "metadata": {"resourceVersion": ""}}  # fmt: skip


def _message(data: dict) -> str:
    return summary_message(from_dict(data, data["node"]))


def _matrix(folder: Path, capsys) -> dict:
    main(["fleet", "matrix", str(folder), "--json"])
    return json.loads(capsys.readouterr().out)


def test_the_rendered_job_validates_and_runs_one_pod_per_node(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["fleet", "render", "k8s", "--nodes", "gpu-a,gpu-b,gpu-c", "--image", "reg/repro:1",
            "--namespace", "ml", "--queue", "team-a", "--gpus-per-node", "8", "--deadline", "1800",
            "--out", str(out), "--", "--check", "manifest"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    job = yaml.safe_load(text)
    validator = shutil.which("kubernetes-validate", path=str(Path(sys.executable).parent))
    if validator is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kubernetes-validate is missing: pip install -e '.[test]' (required in CI)")
        pytest.skip("kubernetes-validate is missing: pip install -e '.[test]'")
    (tmp_path / "job.yaml").write_text(text)
    done = subprocess.run([validator, "--strict", "-k", SCHEMA_VERSION, str(tmp_path / "job.yaml")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    spec, pod = job["spec"], job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (0, 3)
    assert spec["activeDeadlineSeconds"] == 1800 and pod["restartPolicy"] == "Never"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
    shm = next(m for m in container["volumeMounts"] if m["mountPath"] == "/dev/shm")
    assert {"name": shm["name"], "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    (anti,) = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()  # fmt: skip
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]  # fmt: skip
    assert term["matchFields"] == [{"key": "metadata.name", "operator": "In", "values": ["gpu-a", "gpu-b", "gpu-c"]}]  # fmt: skip
    # the taint `fleet exclude --engine k8s` sets does not keep the node from a re-check
    assert {"key": "repro.dev/verdict", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]  # fmt: skip
    assert container["env"] == [{"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]  # fmt: skip
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["command"][:5] == ["repro", "fleet", "node", "--out", "/var/run/repro-fleet"]
    assert container["command"][5:] == ["--check", "manifest"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a" and spec["suspend"]
    assert (out / "expected-nodes.txt").read_text() == "gpu-a\ngpu-b\ngpu-c\n"
    # The validator is strict: a field the schema lacks is refused.
    import kubernetes_validate

    container["gpus"] = 8
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(job, SCHEMA_VERSION, strict=True)


def test_render_k8s_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "results"
    assert (
        main(["fleet", "render", "k8s", "--nodes", "a,b,a", "--image", "i", "--out", str(out)]) == 2
    )
    captured = capsys.readouterr()
    assert "names a twice" in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == "" and not out.exists()


def test_fleet_node_writes_its_summary_to_the_termination_message(real_node):
    data, message = real_node
    assert 0 < len(message.encode()) <= MESSAGE_LIMIT
    back = read_message(message, "log")
    assert back is not None and back.to_dict() == data


def test_a_long_record_drops_its_step_digests_first(real_node):
    data = _node(real_node[0], "n1", workload="full:x", record_digest="f" * 16,
                 step_digests=[hashlib.sha256(bytes([i % 256, i // 256])).hexdigest()[:12] for i in range(601)])  # fmt: skip
    message = _message(data)
    assert len(message.encode()) <= MESSAGE_LIMIT
    back = read_message(message, "log")
    assert back is not None and back.step_digests == [] and back.record_digest == "f" * 16
    assert back.to_dict() == {**data, "step_digests": []}
    peers = [from_dict({**data, "node": n, "record_digest": "e" * 16}, n) for n in ("n2", "n3")]
    (row, *_) = build_matrix([back, *peers]).rows
    assert (
        row.peer == "record differs from its 2 peers of class A (where: not known, no step digests)"
    )


def test_collected_summaries_reproduce_the_rows_of_the_node_files(tmp_path, real_node, capsys):
    """Four peers, one parted at step 5: the matrix over the collected files has the same
    rows, the peer finding included, as the matrix over the files the nodes wrote."""
    record, parted = _records()
    nodes = [_node(real_node[0], f"n{i}", record, verdict="NO_BASELINE", exit_code=3)
             for i in (1, 2, 4)]  # fmt: skip
    nodes.append(_node(real_node[0], "n3", parted, verdict="NO_BASELINE", exit_code=3))
    direct = tmp_path / "direct"
    direct.mkdir()
    for data in nodes:
        (direct / f"{data['node']}.json").write_text(json.dumps(data))
    pods = _pod_list(*(_pod(f"repro-fleet-{i}-x", d["node"], "Failed", message=_message(d),
                            exit_code=3) for i, d in enumerate(nodes)))  # fmt: skip
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    collected = tmp_path / "collected"
    collected.mkdir()
    assert main(["fleet", "collect", "--pods", str(tmp_path / "pods.json"), "--out", str(collected)]) == 0  # fmt: skip
    capsys.readouterr()
    want, got = _matrix(direct, capsys), _matrix(collected, capsys)
    for row in got["rows"]:
        assert (row["result"].pop("engine"), row["result"].pop("image")) == ("k8s", IMAGE_ID)
    for row in want["rows"]:
        del row["result"]["engine"], row["result"]["image"]
    assert got == want
    assert want["rows"][2]["peer"] == "record differs from its 3 peers of class A at step 5"


def test_collect_reads_what_kubectl_wrote(tmp_path, real_node, capsys):
    """a passed, b failed with a verdict, c died before repro wrote (its log tail is the
    message), d never left Pending: c and d have no file and are NO_RESULT."""
    real = real_node[0]
    drift = _node(
        real, "b", verdict="DRIFT", exit_code=1, summary="DRIFT: loss", first_cause="TF32"
    )
    out = tmp_path / "fleet"
    assert main(["fleet", "render", "k8s", "--nodes", "a,b,c,d", "--image", "i", "--out", str(out)]) == 0  # fmt: skip
    pods = _pod_list(
        _pod("repro-fleet-0-aa", "a", "Succeeded", message=_message(_node(real, "a")), exit_code=0),
        _pod(
            "repro-fleet-1-bb", "b", "Failed", message=_message(drift), exit_code=1, reason="Error"
        ),
        _pod(
            "repro-fleet-2-cc",
            "c",
            "Failed",
            message="loading torch\nKilled\n",
            exit_code=137,
            reason="OOMKilled",
        ),
        _pod("repro-fleet-3-dd", None, "Pending"),
    )
    (tmp_path / "pods.json").write_text(json.dumps(pods))
    capsys.readouterr()
    assert main(["fleet", "collect", "--pods", str(tmp_path / "pods.json"), "--out", str(out)]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert sorted(p.name for p in out.glob("*.json")) == ["a.json", "b.json"]
    assert "pod repro-fleet-2-cc on c ended Failed (exit 137, OOMKilled) without a repro summary: Killed" in err  # fmt: skip
    assert "pod repro-fleet-3-dd on no node yet is still Pending (Unschedulable: 0/4 nodes" in err
    rows = {r["node"]: r for r in _matrix(out, capsys)["rows"]}
    assert {n: r["verdict"] for n, r in rows.items()} == {
        "a": "FIT", "b": "DRIFT", "c": "NO_RESULT", "d": "NO_RESULT"
    }  # fmt: skip
    assert rows["b"]["result"]["first_cause"] == "TF32"


@pytest.mark.parametrize(
    "case, message",
    [
        ("twice", "holds two results for node a (pods repro-fleet-0-aa and repro-fleet-9-zz)"),
        ("damaged", "pod repro-fleet-0-aa: the repro summary is damaged"),
        ("shape", "is not a pod list"),
    ],
)
def test_collect_bad_input_is_one_sentence_and_writes_nothing(tmp_path, real_node, case, message, capsys):  # fmt: skip
    good = _message(_node(real_node[0], "a"))
    pods = [_pod("repro-fleet-0-aa", "a", "Succeeded", message=good, exit_code=0),
            _pod("repro-fleet-1-bb", "b", "Succeeded", message=_message(_node(real_node[0], "b")), exit_code=0)]  # fmt: skip
    if case == "twice":  # a rerun of the Job while the old pods remain
        pods.append(_pod("repro-fleet-9-zz", "a", "Succeeded", message=good, exit_code=0))
    elif case == "damaged":
        pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = good[:-40]
    data: object = _pod_list(*pods) if case != "shape" else {"kind": "Table", "rows": []}
    (tmp_path / "pods.json").write_text(json.dumps(data))
    out = tmp_path / "fleet"
    out.mkdir()
    assert main(["fleet", "collect", "--pods", str(tmp_path / "pods.json"), "--out", str(out)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(out.iterdir()) == []


STUB_KUBECTL = """#!/bin/sh
# A stub kubectl: records its argv (one argument a line, then a blank line) and changes nothing.
printf '%s\\n' "$@" >> "$STUB_LOG"
echo >> "$STUB_LOG"
if [ -n "$STUB_FAIL" ] && [ "$1" = "$STUB_FAIL" ]; then echo "error: forbidden" >&2; exit 1; fi
"""


def test_exclude_k8s_labels_and_taints_through_kubectl(tmp_path, real_node, monkeypatch, capsys):
    record, parted = _records()
    folder = tmp_path / "fleet"
    folder.mkdir()
    for data in (_node(real_node[0], "a", record, verdict="NO_BASELINE", exit_code=3),
                 _node(real_node[0], "b", record, verdict="NO_BASELINE", exit_code=3),
                 _node(real_node[0], "c", parted, verdict="NO_BASELINE", exit_code=3),
                 _node(real_node[0], "d", verdict="UNFIT", exit_code=5, summary="unfit: gpu.count")):  # fmt: skip
        (folder / f"{data['node']}.json").write_text(json.dumps(data))
    assert main(["fleet", "exclude", str(folder), "--engine", "k8s"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    assert printed == [
        "kubectl label node c repro.dev/verdict=DRIFT --overwrite",
        "kubectl taint node c repro.dev/verdict=DRIFT:NoSchedule --overwrite",
        "kubectl label node d repro.dev/verdict=UNFIT --overwrite",
        "kubectl taint node d repro.dev/verdict=UNFIT:NoSchedule --overwrite",
    ]
    stub = tmp_path / "bin" / "kubectl"
    stub.parent.mkdir()
    stub.write_text(STUB_KUBECTL)
    stub.chmod(0o755)
    log = tmp_path / "kubectl.log"
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_LOG", str(log))
    assert main(["fleet", "exclude", str(folder), "--engine", "k8s", "--apply"]) == 0
    ran = [
        " ".join(["kubectl", *call.split("\n")]) for call in log.read_text().split("\n\n") if call
    ]
    assert ran == printed
    monkeypatch.setenv("STUB_FAIL", "taint")  # the cluster refuses taints: exit 4, each named
    assert main(["fleet", "exclude", str(folder), "--engine", "k8s", "--apply"]) == 4
    err = capsys.readouterr().err
    assert "kubectl taint node c repro.dev/verdict=DRIFT:NoSchedule --overwrite exited 1: error: forbidden" in err  # fmt: skip
