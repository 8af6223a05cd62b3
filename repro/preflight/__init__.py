"""``repro preflight``: is this machine fit to be judged? Also the first step of ``repro verify``.

``run.py`` runs every check: the host (``host.py``), GPUs through NVML (``gpu.py``) and an
all-reduce sweep with a bitwise check of every result (``collective.py``); each check is
ok / warn / fail / unavailable with its value, expectation and source (``check.py``).
A fail makes the machine UNFIT (exit 5); a warning only with ``--strict``. Importing this
package imports nothing: the command line starts fast.
"""
