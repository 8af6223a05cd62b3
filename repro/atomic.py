"""Writes that never leave a half-written file: temp file in the same folder, then rename."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from repro import strict_json


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (readers see the old file or the new one)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        exc.filename = str(path)  # the file the user named, not the temp file beside it
        raise
    try:
        # mkstemp makes the file private; give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            exc.filename = str(path)
        raise


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: Any, *, indent: int | None = 1) -> None:
    # sort_keys: identical records must be byte-identical whatever the dict order.
    write_text(path, strict_json.dumps(data, indent=indent, sort_keys=True) + "\n")


def write_json_lines(path: Path, data: Any, *, expand: int) -> None:
    """JSON a reviewer can diff: containers nested up to ``expand`` levels deep get a line
    per item, deeper ones one line each (a record's steps, a band member's series).
    ``json.loads`` reads it as any JSON; identical data gives identical bytes."""
    write_text(path, dumps_lines(data, expand) + "\n")


def dumps_lines(value: Any, expand: int, depth: int = 0) -> str:
    if depth >= expand or not isinstance(value, (dict, list)) or not value:
        return strict_json.dumps(value, sort_keys=True)
    pad, inner = " " * depth, " " * (depth + 1)
    if isinstance(value, dict):
        items = [
            f"{inner}{strict_json.dumps(key)}: {dumps_lines(value[key], expand, depth + 1)}"
            for key in sorted(value)
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    items = [f"{inner}{dumps_lines(item, expand, depth + 1)}" for item in value]
    return "[\n" + ",\n".join(items) + f"\n{pad}]"


def write_yaml(path: Path, data: Any) -> None:
    write_text(path, yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
