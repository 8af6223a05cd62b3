"""Parent side of a run: prepare run directories, launch the ranks, collect the outcome.

Data flows one way: resolve the profile -> create ``runs/<id>/`` (config,
status RUNNING) -> launch torch's elastic launcher with the children's
environment set (threads, cuBLAS workspace) -> rank 0 writes the record and
COMPLETE as its last act -> this module reads the statuses back. It never
imports torch, so it never initialises CUDA.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repro import atomic
from repro.errors import RunInterrupted, UserError
from repro.manifest.cpu import current_usable_cpus as usable_cpus
from repro.profile import Profile, load_profile, parse_overrides
from repro.store import CONFIG_SCHEMA_VERSION, Run, create_unique_run_dir, write_status
from repro.workload import workload_hash

# Variables a user sets to steer kernels or communication; they pass through
# untouched, and the reproduce command repeats them.
STEERING_ENV_PREFIXES = (
    "ATEN_",
    "DNNL_",
    "ONEDNN_",
    "NCCL_",
    "TORCH_",
    "CUBLAS_",
    "CUDA_VISIBLE_DEVICES",
)
INTERNAL_KEYS = ("band_member",)


@dataclass(frozen=True)
class Outcome:
    run_dir: Path
    status: str
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "COMPLETE"


def steering_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    environ = dict(os.environ if environ is None else environ)
    return {k: v for k, v in sorted(environ.items()) if k.startswith(STEERING_ENV_PREFIXES)}


def reproduce_command(profile: str, set_pairs: list[str], env: dict[str, str]) -> str:
    words = [f"{k}={shlex.quote(v)}" for k, v in env.items()]
    words += ["repro", "run", "--profile", profile]
    for pair in set_pairs:
        words += ["--set", shlex.quote(pair)]
    return " ".join(words)


def prepare_run(
    profile_name: str,
    set_pairs: list[str] | None,
    *,
    runs_dir: Path,
    repo: str | None = None,
    argv: list[str] | None = None,
    quiet: bool = False,
    git_sha: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Create and describe one run directory; returns its launch-plan entry."""
    set_pairs = list(set_pairs or [])
    overrides = parse_overrides(set_pairs)
    base_profile = load_profile(profile_name)
    profile = load_profile(profile_name, overrides)
    internal = {k: overrides[k] for k in INTERNAL_KEYS if k in overrides}
    user_overrides = {k: v for k, v in overrides.items() if k not in INTERNAL_KEYS}
    if git_sha is None:
        from repro.manifest.git_info import head_sha

        git_sha = head_sha(repo)
    run_dir = create_unique_run_dir(runs_dir, git_sha)
    config = {
        "schema_version": CONFIG_SCHEMA_VERSION,
        "run_id": run_dir.name,
        "profile": profile.name,
        "settings": profile.to_dict(),
        "overrides": user_overrides,
        "internal": internal,
        "faults": profile.fault.active(),
        # Only an untouched profile run may ever become (the primary of) a baseline.
        "reference": not overrides,
        "workload_hash": workload_hash(base_profile.to_dict()),
        "argv": list(argv if argv is not None else sys.argv),
        "command": reproduce_command(
            profile_name, set_pairs, steering_env({**os.environ, **(env or {})})
        ),
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic.write_yaml(run_dir / "config.yaml", config)
    write_status(run_dir, "RUNNING")
    return {
        "run_dir": str(run_dir),
        "settings": profile.to_dict(),
        "quiet": quiet,
        "repo": repo,
        "argv": config["argv"],
    }


def _child_env(profile: Profile, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    # Thread counts come from the profile, never from the machine.
    env["OMP_NUM_THREADS"] = str(profile.threads_per_rank)
    env["MKL_NUM_THREADS"] = str(profile.threads_per_rank)
    # Deterministic cuBLAS needs a fixed workspace; a user's own setting wins.
    env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    env["REPRO_DEVICE"] = profile.device
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def _launch_timeout(profiles: list[Profile]) -> float:
    """A last-resort deadline: collective timeouts end hangs long before it in practice."""
    return sum(60.0 + 2.0 * p.steps for p in profiles) + 3 * profiles[0].collective_timeout_s


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (Linux /proc): the ranks run in sessions of their own."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name may hold spaces; the parent pid follows its closing ')'.
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Ask the launcher to stop its ranks (SIGTERM), then kill whatever is left of the tree."""
    tree = _descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for pid in [proc.pid, *tree, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def launch(
    entries: list[dict[str, Any]],
    *,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
) -> list[Outcome]:
    """Run prepared entries one after another in a single launch of torch's elastic launcher."""
    from repro.profile import build_profile

    profiles = [build_profile(e["settings"], e["run_dir"]) for e in entries]
    first = profiles[0]
    for p in profiles[1:]:
        shared = (p.world_size, p.threads_per_rank, p.device, p.collective_timeout_s)
        if shared != (
            first.world_size,
            first.threads_per_rank,
            first.device,
            first.collective_timeout_s,
        ):
            raise ValueError(
                "runs in one launch must share world size, threads, device and timeout"
            )
    needed = first.world_size * first.threads_per_rank
    usable = usable_cpus()
    if first.device == "cpu" and usable < needed:
        print(
            f"repro: warning: {usable} usable CPUs for {first.world_size} ranks x "
            f"{first.threads_per_rank} threads; the run will be slow (the numbers are unaffected).",
            file=sys.stderr,
        )
    fd, plan_path = tempfile.mkstemp(prefix="repro-plan-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(entries, f)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(first.world_size),
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.2",
        "-m",
        "repro.reference.train",
        "--plan",
        plan_path,
        "--timeout",
        str(first.collective_timeout_s),
    ]
    deadline = timeout if timeout is not None else _launch_timeout(profiles)
    # A session of its own, so a timeout or Ctrl-C can end every rank and data worker at once.
    proc = subprocess.Popen(command, env=_child_env(first, env), start_new_session=True)
    try:
        returncode: int | None = proc.wait(timeout=deadline)
    except subprocess.TimeoutExpired:
        _stop(proc)
        returncode = None
    except KeyboardInterrupt:
        _stop(proc, grace=5.0)
        for entry in entries:
            if _status(Path(entry["run_dir"])) == "RUNNING":
                write_status(
                    Path(entry["run_dir"]), "INTERRUPTED", reason="interrupted by the user (Ctrl-C)"
                )
        raise RunInterrupted() from None
    finally:
        Path(plan_path).unlink(missing_ok=True)
    return [_settle(Path(e["run_dir"]), returncode, deadline) for e in entries]


def _status(run_dir: Path) -> str:
    try:
        return str(Run(run_dir).status["status"])
    except UserError:
        return "RUNNING"


def _rank_errors(run_dir: Path) -> list[str]:
    errors = []
    for path in sorted(run_dir.glob("error-rank*.json")):
        try:
            data = json.loads(path.read_text())
            errors.append(f"rank {data['rank']} raised {data['error']}")
        except (OSError, ValueError, KeyError):
            errors.append(f"{path.name} is unreadable")
    return errors


def _settle(run_dir: Path, returncode: int | None, deadline: float) -> Outcome:
    """Read back a run's final status, turning a run that never finished into FAILED."""
    status = _status(run_dir)
    if status != "RUNNING":
        reason = Run(run_dir).status.get("reason")
        return Outcome(run_dir, status, reason)
    errors = _rank_errors(run_dir)
    if errors:
        reason = "; ".join(errors)
        kind = "crash"
    elif returncode is None:
        reason, kind = f"the launch did not finish within {deadline:.0f} s and was stopped", "hang"
    elif returncode != 0:
        reason, kind = (
            f"the launcher exited with code {returncode} before this run completed",
            "crash",
        )
    else:
        reason, kind = "not run: an earlier run in the same launch failed", "crash"
    write_status(run_dir, "FAILED", reason=reason, kind=kind)
    return Outcome(run_dir, "FAILED", reason)


def run_many(
    profile_name: str,
    set_lists: list[list[str]],
    *,
    runs_dir: Path,
    repo: str | None = None,
    quiet: bool = True,
    env: dict[str, str] | None = None,
    argv: list[str] | None = None,
) -> list[Outcome]:
    """Prepare one run per ``--set`` list and execute them all in one launch."""
    entries = [
        prepare_run(
            profile_name, sets, runs_dir=runs_dir, repo=repo, quiet=quiet, argv=argv, env=env
        )
        for sets in set_lists
    ]
    return launch(entries, env=env)
