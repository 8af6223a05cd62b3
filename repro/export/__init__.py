"""Export parity: does an exported model (``torch.export``, ONNX through ONNX Runtime, a
TorchScript trace) compute what the eager model computes, within a tolerance measured
from the model's own rounding noise? ``repro export-check`` and ``repro.export_check``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from repro.export.check import ExportCheck

__all__ = ["export_check"]


def export_check(
    model: Any, inputs: Any, more_inputs: list[Any] | None = None, **options: Any
) -> ExportCheck:
    """See ``repro.export.check.export_check``; imported here on first use (it imports torch)."""
    # Imported on first use: `import repro.export` stays free of torch.
    from repro.export.check import export_check as run

    return run(model, inputs, more_inputs, **options)
