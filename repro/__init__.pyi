# For type checkers: ``repro.track`` is imported on first use at run time (see __init__.py),
# so that importing repro runs no import; to a type checker it is the function itself.
from repro.tracking import track as track

__version__: str
