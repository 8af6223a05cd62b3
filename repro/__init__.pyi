# For type checkers: ``repro.track`` and ``repro.probe`` are imported on first use at run
# time (see __init__.py), so that importing repro runs no import; to a type checker each is
# the function itself.
from repro.probing.probe import probe as probe
from repro.tracking import track as track

__version__: str
