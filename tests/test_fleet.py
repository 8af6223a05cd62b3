"""`repro fleet`: the node file, the matrix (classes, peers, NO_RESULT), exclusion, bad input.

One real node file is written by `repro fleet node --check manifest` (about 5 s); the other
nodes are copies with varied facts and with records taken from the shipped baseline (a
copy with one step changed by one ulp is a node whose arithmetic parted there).
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import torch

from repro.cli import main
from repro.errors import UserError
from repro.fleet.matrix import build_matrix
from repro.fleet.node import SCHEMA, NodeResult, from_dict, node_name, record_digests
from repro.fleet.slurm import expand_hostlist

REPO = Path(__file__).resolve().parent.parent
SHIPPED = next((REPO / "manifests" / "baselines").glob("*/record.json"))


@pytest.fixture(scope="module")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("node")
    code = main(["fleet", "node", "--check", "manifest", "--profile", "smoke", "--node", "n1",
                 "--out", str(out), "--termination-log", str(out / "absent")])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["n1.json"]
    return json.loads((out / "n1.json").read_text())


def _variant(real: dict, node: str, *, record: dict | None = None, **changes) -> dict:
    data = copy.deepcopy(real)
    data.update(node=node, **changes)
    if record is not None:
        digest, steps = record_digests(record)
        data.update(check="verify", workload="smoke:test", record_digest=digest, step_digests=steps)
    return data


def _write(folder: Path, *nodes: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for data in nodes:
        (folder / f"{data['node']}.json").write_text(json.dumps(data))
    return folder


@pytest.fixture(scope="module")
def records() -> tuple[dict, dict]:
    """The shipped record, and one whose step 5 loss is one ulp off."""
    record = json.loads(SHIPPED.read_text())
    parted = copy.deepcopy(record)
    step = parted["steps"][5]
    key = next(k for k, v in step.items() if isinstance(v, float))
    step[key] = math.nextafter(step[key], math.inf)
    return record, parted


def test_a_node_file_holds_what_the_matrix_needs(real_node):
    assert real_node["schema"] == SCHEMA
    assert (real_node["node"], real_node["verdict"], real_node["exit_code"]) == ("n1", "FIT", 0)
    assert real_node["facts"]["torch"] == torch.__version__
    assert real_node["env_key"]["libraries.torch.version"] == torch.__version__
    assert real_node["repro_version"] and real_node["started"] <= real_node["finished"]


def test_the_node_name_comes_from_the_engine():
    env = {"NODE_NAME": "k1", "SLURMD_NODENAME": "s1"}
    assert node_name("x1", env) == "x1"
    assert node_name(None, env) == "k1"
    assert node_name(None, {"SLURMD_NODENAME": "s1"}) == "s1"
    with pytest.raises(UserError, match="cannot name a file"):
        node_name("../etc", {})


def _fleet(tmp_path, real_node, records):
    """n1-n4 one class (n3 parted at step 5), n5 another CPU level, n6 expected but silent."""
    record, parted = records
    nodes = [_variant(real_node, f"n{i}", record=record, verdict="NO_BASELINE", exit_code=3)
             for i in (1, 2, 4)]  # fmt: skip
    nodes.append(_variant(real_node, "n3", record=parted, verdict="NO_BASELINE", exit_code=3))
    other = _variant(real_node, "n5", record=record, verdict="NO_BASELINE", exit_code=3)
    other["env_key"]["hardware.cpu.torch_capability"] = _another_level(real_node)
    return _write(tmp_path / "fleet", *nodes, other)


def _another_level(node):
    """A CPU kernel level the node did not use (its own depends on the host and on an
    exported ATEN_CPU_CAPABILITY): a node of another environment class."""
    used = node["env_key"]["hardware.cpu.torch_capability"]
    return "DEFAULT" if used == "AVX2" else "AVX2"


def test_the_matrix_names_the_peer_outlier_and_the_silent_node(
    tmp_path, real_node, records, capsys
):
    folder = _fleet(tmp_path, real_node, records)
    junit, prom, html = tmp_path / "j.xml", tmp_path / "m.prom", tmp_path / "m.html"
    code = main(["fleet", "matrix", str(folder), "--expect", "n1,n2,n3,n4,n5,n6", "--json",
                 "--junit", str(junit), "--prom", str(prom), "--html", str(html)])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == data["exit_code"] == 4  # NO_RESULT, the worst
    rows = {r["node"]: r for r in data["rows"]}
    assert [r["node"] for r in data["rows"]] == ["n1", "n2", "n3", "n4", "n5", "n6"]
    assert [(c["class"], c["nodes"]) for c in data["classes"]] == [("A", 4), ("B", 1)]
    assert rows["n3"]["verdict"] == "DRIFT" and rows["n3"]["outlier"]
    assert rows["n3"]["peer"] == "record differs from its 3 peers of class A at step 5"
    assert {rows[n]["verdict"] for n in ("n1", "n2", "n4", "n5")} == {"NO_BASELINE"}
    assert rows["n6"]["verdict"] == "NO_RESULT" and rows["n6"]["result"] is None
    assert data["differing"] == ["hardware.cpu.torch_capability"]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert len(cases) == 6
    assert {n for n, c in cases.items() if c.find("failure") is not None} == set(rows)  # all non-0
    assert 'repro_fleet_verdict{node="n3",verdict="DRIFT"} 1' in prom.read_text().splitlines()
    assert re.search(r'id="verdict"[^>]*>NO_RESULT<', html.read_text())


def test_a_node_identical_to_the_baseline_is_never_the_outlier(real_node, records):
    record, parted = records
    nodes = [
        from_dict(_variant(real_node, "a", record=record, verdict="IDENTICAL", exit_code=0), "a"),
        from_dict(_variant(real_node, "b", record=parted, verdict="DRIFT", exit_code=1), "b"),
        from_dict(_variant(real_node, "c", record=parted, verdict="DRIFT", exit_code=1), "c"),
    ]
    matrix = build_matrix(nodes)
    assert [(r.node, r.verdict, r.outlier) for r in matrix.rows] == [
        ("a", "IDENTICAL", False), ("b", "DRIFT", False), ("c", "DRIFT", False)
    ]  # fmt: skip


def test_exclude_drains_the_bad_nodes_only(tmp_path, real_node, records, capsys):
    folder = _fleet(tmp_path, real_node, records)
    fail = _variant(real_node, "n7", verdict="UNFIT", exit_code=5, summary="unfit: host.cpus")
    ok = _variant(real_node, "n8", record=records[0], verdict="EQUIVALENT", exit_code=0)
    ok["env_key"]["hardware.cpu.torch_capability"] = _another_level(real_node)
    _write(folder, fail, ok)
    assert main(["fleet", "exclude", str(folder)]) == 0
    out = capsys.readouterr().out
    commands = [line for line in out.splitlines() if not line.startswith("#")]
    assert commands == [
        "scontrol update nodename=n3 state=drain 'reason=repro: DRIFT record differs from its 3 peers of class A at step 5'",
        "scontrol update nodename=n7 state=drain 'reason=repro: UNFIT unfit: host.cpus'",
    ]
    assert "# n1 (NO_BASELINE): left alone, NO_BASELINE is never acted on" in out
    assert "n8" not in out  # EQUIVALENT passes: nothing to say


@pytest.mark.parametrize(
    "case, message",
    [
        ("schema", "is not a repro fleet node file"),
        ("twice", "both hold node n1"),
        ("unknown", "a node the expected list does not name"),
        ("badname", "which is no node name"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, real_node, case, message, capsys):
    folder = _write(tmp_path / "fleet", _variant(real_node, "n1"), _variant(real_node, "n2"))
    expect = "n1,n2"
    if case == "schema":
        (folder / "n3.json").write_text(json.dumps({"schema": "other/1", "node": "n3"}))
    elif case == "twice":
        (folder / "n1-old.json").write_text(json.dumps(_variant(real_node, "n1")))
    elif case == "unknown":
        expect = "n1"
    else:
        expect = "n1,n[2-3]"
    html = tmp_path / "m.html"
    assert main(["fleet", "matrix", str(folder), "--expect", expect, "--html", str(html)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not html.exists()


def test_render_slurm_writes_the_script_and_the_expected_nodes(tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["fleet", "render", "slurm", "-N", "3", "-w", "n[1-2],gpu07", "--out", str(out),
            "--", "--check", "manifest"]  # fmt: skip
    assert main(argv) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --nodes=3\n#SBATCH --ntasks-per-node=1\n#SBATCH --exclusive\n" in script
    assert "#SBATCH --nodelist=n1,n2,gpu07" in script
    assert (
        f"srun --kill-on-bad-exit=0 --ntasks-per-node=1 repro fleet node --out {out} --check manifest"
        in script
    )
    assert (out / "expected-nodes.txt").read_text() == "n1\nn2\ngpu07\n"
    assert expand_hostlist("g[08-10]") == ["g08", "g09", "g10"]
    assert main(["fleet", "render", "slurm", "-N", "2", "-w", "n1", "--out", str(out)]) == 2


def test_the_html_matrix_renders_in_a_browser(tmp_path, real_node, records):
    browser = next(
        (shutil.which(b) for b in ("chromium", "chromium-browser") if shutil.which(b)), None
    )
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no headless browser: install chromium (required in CI)")
        pytest.skip("no headless browser: install chromium")
    folder = _fleet(tmp_path, real_node, records)
    page = tmp_path / "m.html"
    # n3 is DRIFT, its peers NO_BASELINE: the fleet's verdict is the worst by the one
    # precedence (NO_BASELINE > DRIFT), exit 3.
    assert main(["fleet", "matrix", str(folder), "--html", str(page)]) == 3
    argv = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert re.search(r'id="verdict"[^>]*>NO_BASELINE<', done.stdout)
    assert re.search(r">n3<.*?>DRIFT<", done.stdout, re.S)  # the outlier's own row
    assert done.stdout.count("<tr") == 6  # the head and one row per node


def test_node_results_round_trip(real_node):
    result = from_dict(real_node, "n1.json")
    assert isinstance(result, NodeResult) and result.to_dict() == real_node
