"""``repro explain OTHER``: prove the cause of a difference by experiment.

Rerun the reference here with the other machine's settings applied (``knobs.py``: what
can be changed, and what this machine can take) and report the smallest set of them
that makes this machine's record bit-identical to the other one (``search.py``: all at
once first, then leave-one-out, then a confirming rerun; ``explain.py`` runs it).
Importing this package imports nothing.
"""
