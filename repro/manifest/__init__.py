"""Environment manifests: everything on a machine that can move a run's numbers.

``capture_manifest()`` reads hardware, library versions, math-mode flags, allowlisted
environment variables, git state, packages and container hints into a plain dict;
``repro.manifest.diff`` compares two of them. Only capturing imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro.manifest.schema import MANIFEST_SCHEMA_VERSION, load_manifest, write_manifest

__all__ = ["MANIFEST_SCHEMA_VERSION", "capture_manifest", "load_manifest", "write_manifest"]


def capture_manifest(
    repo: str | Path | None = None, argv: list[str] | None = None
) -> dict[str, Any]:
    """Capture this process's environment manifest (imports torch; see ``capture``)."""
    # Imported here so that loading and diffing manifests never pays for `import torch`.
    from repro.manifest.capture import capture_manifest as capture

    return capture(repo, argv)
