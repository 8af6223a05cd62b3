"""How many runs a baseline's bands hold: the defaults and the floor (imported by the CLI
at start-up, so it stays free of the judge's imports)."""

from __future__ import annotations

# Fewer make a prediction bound so wide that it passes anything (t(0.999, 2) is 22).
MIN_MEMBERS = 8
# With no floor on the spread, the numerics band is only as good as its estimate of it:
# 24 members (about 3 minutes on the quick profile) estimate each window's spread to a
# relative standard error near 15 %, 8 members to about 27 %.
DEFAULT_NUMERICS = 24
DEFAULT_SEEDS = 8
