"""Loading YAML/JSON documents with schema checks that end in one clear sentence.

Every file repro reads back (manifests, run records, baselines) goes through
``load_document``: a malformed file, a missing required key or a schema
version newer than this repro knows raises ``UserError`` naming the file; an
older schema version is migrated on read.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from repro.errors import UserError

Migration = Callable[[dict[str, Any]], dict[str, Any]]


def read_data(path: Path) -> Any:
    """Parse a ``.json`` or YAML file; any parse problem becomes a ``UserError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path} does not exist; check the path.") from None
    except (IsADirectoryError, UnicodeDecodeError, OSError) as exc:
        raise UserError(
            f"{path} cannot be read ({exc.__class__.__name__}); check the path."
        ) from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return copy.deepcopy(_parsed_yaml(text))
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "lineno", None) or getattr(
            getattr(exc, "problem_mark", None), "line", None
        )
        at = f" near line {where}" if where else ""
        raise UserError(
            f"{path} is malformed or truncated{at}; restore it or re-create it."
        ) from None


@functools.lru_cache(maxsize=32)
def _parsed_yaml(text: str) -> Any:
    """A YAML document's data, parsed once per process for the same text: a verify reads the
    baseline's YAML when it checks its input and again when it judges (pure-Python YAML,
    15 ms a manifest; JSON parses in C). Keyed by the text itself, so a rewritten file is
    parsed anew; the caller gets a copy to change as it likes."""
    return yaml.safe_load(text)


def load_document(
    path: Path,
    *,
    kind: str,
    schema_version: int,
    required: Iterable[str] = (),
    migrations: Mapping[int, Migration] | None = None,
    recreate: Callable[[dict[str, Any]], str] | None = None,
) -> dict[str, Any]:
    """Read a schema-versioned mapping, migrating older versions forward.

    ``migrations[v]`` turns a version-``v`` document into version ``v + 1``;
    ``recreate(data)`` says how to make a new one when an old one cannot be migrated.
    """
    data = read_data(path)
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a {kind} (expected a mapping at the top); re-create it.")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise UserError(f"{path} has no integer schema_version; it is not a {kind} repro wrote.")
    if version > schema_version:
        raise UserError(
            f"{path} has schema_version {version}, newer than this repro understands "
            f"({schema_version}); upgrade repro."
        )
    migrations = migrations or {}
    while version < schema_version:
        if version not in migrations:
            how = recreate(data) if recreate else "re-create it"
            raise UserError(
                f"{path} has schema_version {version}, which this repro cannot migrate; {how}."
            )
        data = migrations[version](data)
        version += 1
        data["schema_version"] = version
    missing = [key for key in required if key not in data]
    if missing:
        raise UserError(f"{path} is missing required key(s) {', '.join(missing)}; re-create it.")
    return dict(data)
