"""repro: verify that a machine reproduces a reference PyTorch training run.

Capture the environment (``repro manifest``), run a deterministic reference
DDP + AMP Transformer training (``repro run``), and judge it against a stored
baseline (``repro verify``) or another run (``repro compare``).
"""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    if name == "track":
        # Imported on first use: importing repro (as every hashed module does) runs no
        # import, so no code outside the workload hash can move the numbers.
        from repro.tracking import track

        return track
    if name == "probe":
        # The package is repro.probing, not repro.probe: importing a subpackage binds its
        # name on repro, which would replace this function with the package.
        from repro.probing.probe import probe

        return probe
    raise AttributeError(f"module 'repro' has no attribute {name!r}")
