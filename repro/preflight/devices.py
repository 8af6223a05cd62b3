"""The GPUs this job will use, as CUDA counts them: the devices preflight checks.

CUDA decides which devices a process sees (``CUDA_VISIBLE_DEVICES`` by index or UUID, a MIG
instance, CUDA's own fastest-first order), so the answer comes from torch itself, in a child
process: this one never creates a CUDA context (its collective ranks could not fork, and
NVML would count it as a process on the GPU).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping

_CHILD = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(json.dumps([str(torch.cuda.get_device_properties(i).uuid) for i in range(n)]))\n"
)


def job_device_uuids(env: Mapping[str, str] | None = None, timeout: float = 120.0) -> list[str]:
    """The UUIDs (torch's bare form) of the CUDA devices a process started with ``env`` (this
    process's environment by default) can use, in CUDA's order; empty where CUDA is unusable.

    Raises RuntimeError when the child cannot answer.
    """
    done = subprocess.run(
        [sys.executable, "-c", _CHILD],
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(
            f"torch could not list the CUDA devices (exit {done.returncode}: {last})"
        )
    return [str(uuid) for uuid in json.loads(done.stdout.strip().splitlines()[-1])]
