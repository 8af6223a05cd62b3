"""``python -m repro`` is the same as the ``repro`` console script."""

from repro.cli import run

run()
