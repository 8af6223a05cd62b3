"""A baseline's band parameters: how many runs it holds, its level and its windows (imported
by the CLI at start-up, so it stays free of the judge's imports)."""

from __future__ import annotations

# Fewer make a prediction bound so wide that it passes anything (t(0.999, 2) is 22).
MIN_MEMBERS = 8
# With no floor on the spread, the numerics band is only as good as its estimate of it:
# 24 members (about 3 minutes on the quick profile) estimate each window's spread to a
# relative standard error near 15 %, 8 members to about 27 %.
DEFAULT_NUMERICS = 24
DEFAULT_SEEDS = 8
# The family-wise false-alarm rate of the whole verdict. 0.1 %, not 1 %: a gate that fails
# one healthy machine in a hundred is one people learn to rerun. The rate is measured on
# real environment changes by ``nox -s evidence`` (README, "The band").
DEFAULT_ALPHA = 0.001
# Step windows per band scalar: each is one test of the Bonferroni family.
DEFAULT_WINDOWS = 5
