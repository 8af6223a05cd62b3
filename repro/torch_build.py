"""What the installed torch was built for, read without importing it (a second and a half).

Pure file reading: no torch, no CUDA.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def torch_gpu_build() -> bool:
    """Whether the installed torch may be built for CUDA or ROCm, from ``torch/version.py``
    read as text: its ``cuda`` and ``hip`` are None in a CPU build. False without torch;
    True when the file says nothing clear (then torch itself is asked)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return False
    try:
        tree = ast.parse(Path(spec.origin).with_name("version.py").read_text())
    except (OSError, SyntaxError):
        return True
    values: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            values |= {t.id: node.value for t in targets if isinstance(t, ast.Name)}

    def unset(name: str) -> bool:
        value = values.get(name)
        return isinstance(value, ast.Constant) and value.value is None

    return not (unset("cuda") and unset("hip"))
