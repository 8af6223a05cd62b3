"""repro: verify that a machine reproduces a reference PyTorch training run.

Capture the environment (``repro manifest``), run a deterministic reference
DDP + AMP Transformer training (``repro run``), and judge it against a stored
baseline (``repro verify``) or another run (``repro compare``).
"""

__version__ = "0.1.0"

from typing import Any


def __getattr__(name: str) -> Any:
    # ``repro.track`` without importing the tracker (and torch) whenever repro is imported.
    if name == "track":
        from repro.tracking import track

        return track
    raise AttributeError(f"module 'repro' has no attribute {name!r}")
