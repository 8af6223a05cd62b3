"""`repro fleet` on a real Slurm: one slurmctld and three slurmd on 127.0.0.1.

Debian 12's slurm-wlm 22.05 packages are fetched with `apt-get download` (cached in
pytest's cache folder, so one CI run fetches them once) and unpacked with `dpkg -x`: no
system install. `AuthType=auth/none` needs no munge daemon. slurmd starts each step through
`/usr/sbin/slurmstepd`, a path compiled into it: the test links the unpacked one there
when none exists (root only) and removes the link after. The nodes run repro from its
wheel, installed non-editable into a fresh venv, as a container image would have it.
A TaskProlog gives node n3 another CPU kernel level (`ATEN_CPU_CAPABILITY`, one below the
level a node here uses, whatever this host and an exported variable make that).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from test_install import Install

pytestmark = pytest.mark.slow

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "slurm-wlm-basic-plugins", "libhwloc15",
            "liblua5.1-0", "libmunge2", "munge")  # fmt: skip
VERSION = "22.05."  # the Slurm the test was written for (Debian 12)
STEPD = Path("/usr/sbin/slurmstepd")


def _level_below_this_hosts() -> str:
    """One level below what torch uses here: the CPU's own, or an exported
    ATEN_CPU_CAPABILITY, which every node inherits."""
    import torch

    used = str(torch.backends.cpu.get_cpu_capability()).lower()
    return "avx2" if used == "avx512" else "default"


LOWER = _level_below_this_hosts()


def _debs(cache: Path) -> list[Path]:
    debs = sorted(cache.glob("*.deb"))
    if len(debs) < len(PACKAGES):
        if shutil.which("apt-get") is None:
            pytest.skip("no apt-get: cannot fetch Debian's slurm-wlm packages")
        download = ["apt-get", "download", *PACKAGES]
        done = subprocess.run(download, cwd=cache, capture_output=True, text=True, timeout=300)
        if done.returncode != 0 and os.geteuid() == 0:  # a fresh CI image has no package lists
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
            done = subprocess.run(download, cwd=cache, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            pytest.skip(f"apt-get download slurm-wlm failed: {done.stderr.strip()[-300:]}")
        debs = sorted(cache.glob("*.deb"))
    found = [d.name for d in debs if d.name.startswith("slurmctld_")]
    if not found or not found[0].split("_")[1].startswith(VERSION):
        pytest.skip(f"slurm {VERSION}x is pinned; apt fetched {found or 'no slurmctld'}")
    return debs


def _ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _conf(tmp: Path, root: Path) -> str:
    ctld, *nodes = _ports(4)
    lib = root / "usr/lib/x86_64-linux-gnu/slurm-wlm"
    lines = [
        "ClusterName=repro", "SlurmctldHost=localhost(127.0.0.1)", f"SlurmctldPort={ctld}",
        "AuthType=auth/none", "CredType=cred/none", "SlurmUser=root", "SlurmdUser=root",
        f"StateSaveLocation={tmp}/state", f"SlurmdSpoolDir={tmp}/spool/%n",
        f"SlurmctldPidFile={tmp}/ctld.pid", f"SlurmdPidFile={tmp}/slurmd-%n.pid",
        f"SlurmctldLogFile={tmp}/ctld.log", f"SlurmdLogFile={tmp}/slurmd-%n.log",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/linear",
        "SchedulerType=sched/builtin", "MpiDefault=none", "ReturnToService=2",
        "JobCompType=jobcomp/none", "AccountingStorageType=accounting_storage/none",
        f"PluginDir={lib}", f"TaskProlog={tmp}/taskprolog.sh",
    ]  # fmt: skip
    lines += [
        f"NodeName=n{i} NodeHostname=localhost NodeAddr=127.0.0.1 Port={port} CPUs=2 State=UNKNOWN"
        for i, port in enumerate(nodes, start=1)
    ]
    lines.append("PartitionName=debug Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    debs = _debs(request.config.cache.mkdir("slurm-debs"))
    tmp = tmp_path_factory.mktemp("slurm")
    root = tmp / "root"
    for deb in debs:
        subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, timeout=120)
    linked = False
    if not STEPD.exists():
        if os.geteuid() != 0:
            pytest.skip(f"slurmd needs {STEPD}; only root may link the unpacked one there")
        STEPD.symlink_to(root / "usr/sbin/slurmstepd-wlm")
        linked = True
    for folder in ("state", "spool"):
        (tmp / folder).mkdir()
    (tmp / "slurm.conf").write_text(_conf(tmp, root))
    prolog = tmp / "taskprolog.sh"
    prolog.write_text(
        f'#!/bin/sh\n[ "$SLURMD_NODENAME" = n3 ] && echo export ATEN_CPU_CAPABILITY={LOWER}\n'
        "exit 0\n"
    )
    prolog.chmod(0o755)
    lib = root / "usr/lib/x86_64-linux-gnu"
    env = {**os.environ, "SLURM_CONF": str(tmp / "slurm.conf"),
           "LD_LIBRARY_PATH": f"{lib}:{lib / 'slurm-wlm'}",
           "PATH": f"{root / 'usr/bin'}:{os.environ['PATH']}"}  # fmt: skip
    sbin = root / "usr/sbin"
    try:
        subprocess.run([str(sbin / "slurmctld-wlm"), "-i"], env=env, check=True, timeout=30)
        for node in ("n1", "n2", "n3"):
            subprocess.run([str(sbin / "slurmd-wlm"), "-N", node], env=env, check=True, timeout=30)
        deadline = time.monotonic() + 30
        while _states(env) != ["idle"] * 3:
            assert time.monotonic() < deadline, f"nodes not idle: {_states(env)}"
            time.sleep(0.25)
        yield env
    finally:
        if linked:
            STEPD.unlink()
        subprocess.run(["scontrol", "shutdown"], env=env, timeout=30, check=False)
        _stop(tmp)


def _states(env: dict[str, str]) -> list[str]:
    done = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30)  # fmt: skip
    return sorted(done.stdout.split())


def _stop(tmp: Path) -> None:
    """Every daemon this test started has exited (their pid files name them); one that
    outlives `scontrol shutdown` by 20 s is killed, and the test fails."""
    deadline, left = time.monotonic() + 20, []
    for pidfile in tmp.glob("*.pid"):
        pid = int(pidfile.read_text().strip() or 0)
        while pid and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            left.append(pid)
    assert not left, f"slurm daemons {left} outlived scontrol shutdown"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; its parent (this test) reaps nothing else


def test_a_fleet_on_slurm_end_to_end(cluster, tmp_path_factory):
    install = Install(tmp_path_factory.mktemp("wheel"))
    env = {**cluster, "PATH": f"{install.venv / 'bin'}:{cluster['PATH']}",
           "REPRO_HOME": str(install.home)}  # fmt: skip
    out = install.cwd / "fleet"

    def run(*argv: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, cwd=install.cwd, env=env, capture_output=True, text=True, timeout=timeout)  # fmt: skip

    script = run("repro", "fleet", "render", "slurm", "-N", "3", "-w", "n[1-3]", "--out", str(out),
                 "--", "--check", "manifest", "--profile", "smoke")  # fmt: skip
    assert script.returncode == 0, script.stderr
    (install.cwd / "fleet.sbatch").write_text(script.stdout)
    job = run("sbatch", "--wait", "fleet.sbatch")
    assert sorted(p.name for p in out.glob("*.json")) == ["n1.json", "n2.json", "n3.json"], job
    # n2 again, verifying the smoke training with a NaN injected at step 5: FAILED.
    failed = run("srun", "-N1", "-w", "n2", "repro", "fleet", "node", "--out", str(out),
                 "--profile", "smoke", "--set", "fault.nan_step=5")  # fmt: skip
    assert failed.returncode == 4, failed.stdout + failed.stderr
    junit, prom = install.cwd / "fleet.xml", install.cwd / "fleet.prom"
    matrix = run("repro", "fleet", "matrix", str(out), "--json", "--junit", str(junit), "--prom", str(prom))  # fmt: skip
    data = json.loads(matrix.stdout)
    assert matrix.returncode == data["exit_code"] == 4
    rows = {r["node"]: r for r in data["rows"]}
    assert {n: r["verdict"] for n, r in rows.items()} == {"n1": "FIT", "n2": "FAILED", "n3": "FIT"}
    assert len(data["classes"]) == 3  # the verify run is another check; n3 another CPU level
    assert rows["n3"]["result"]["env_key"]["hardware.cpu.torch_capability"] == LOWER.upper()
    assert "hardware.cpu.torch_capability" in data["differing"]
    assert not any(r["peer"] for r in rows.values())
    failures = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase") if c.find("failure") is not None]  # fmt: skip
    assert failures == ["n2"]
    assert 'repro_fleet_verdict{node="n2",verdict="FAILED"} 1' in prom.read_text()
    drained = run("repro", "fleet", "exclude", str(out), "--apply")
    assert drained.returncode == 0, drained.stderr
    reason = run("sinfo", "-h", "-R", "-o", "%N|%E").stdout.strip()
    assert reason.startswith("n2|repro: FAILED"), reason
    after = run("srun", "-N2", "sh", "-c", "echo $SLURMD_NODENAME", timeout=60)
    assert sorted(after.stdout.split()) == ["n1", "n3"], after.stderr
