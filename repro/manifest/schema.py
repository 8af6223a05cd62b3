"""The manifest file: its schema version, required sections, reading and writing.

No torch here: reading and diffing manifests must work on a laptop without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repro import atomic
from repro.documents import Migration, load_document
from repro.errors import UserError
from repro.manifest import dispatch

MANIFEST_SCHEMA_VERSION = 1
# In the order a person reads them; diffs are grouped in this order too.
SECTIONS = (
    "hardware",
    "libraries",
    "numerics",
    "env",
    "code",
    "packages",
    "container",
    "invocation",
)
MANIFEST_FILE = "manifest.yaml"
# MIGRATIONS[v] turns a version-v manifest into version v + 1; none yet.
MIGRATIONS: dict[int, Migration] = {}


def manifest_path(path: str | Path) -> Path:
    """A manifest file, or a run directory holding ``manifest.yaml``."""
    path = Path(path)
    return path / MANIFEST_FILE if path.is_dir() else path


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a manifest (YAML, or JSON by suffix); bad input raises ``UserError``."""
    path = manifest_path(path)
    manifest = load_document(
        path,
        kind="manifest",
        schema_version=MANIFEST_SCHEMA_VERSION,
        required=SECTIONS,
        migrations=MIGRATIONS,
    )
    not_mappings = [name for name in SECTIONS if not isinstance(manifest[name], dict)]
    if not_mappings:
        raise UserError(
            f"{path} has section(s) {', '.join(not_mappings)} that are not mappings; "
            "re-create it with `repro manifest`."
        )
    # Older manifests lack what the CPU libraries dispatched to: derived from their own
    # recorded flags on reading, so no stored file (nor a baseline's seal) changes.
    dispatch.derive_missing(manifest)
    return manifest


def write_manifest(path: str | Path, manifest: dict[str, Any]) -> Path:
    """Write atomically: JSON for a ``.json`` name, YAML otherwise; a folder gets manifest.yaml."""
    path = manifest_path(path)
    if path.suffix == ".json":
        atomic.write_json(path, manifest)
    else:
        atomic.write_yaml(path, manifest)
    return path
