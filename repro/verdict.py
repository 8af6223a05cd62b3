"""The verdict: one type that carries each outcome's exit code, precedence and meaning.

The judge (or, for groups of runs, ``repro.judge.groups``) decides a verdict, every renderer shows it, JUnit and the CLI turn it
into a test result and an exit code, and the README's table is checked against
it (tests/test_verdict.py). Nothing else spells out an exit code or an order.
"""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """Members are declared worst first: that order is the precedence.

    When several apply to one comparison, or a report holds several comparisons,
    the first in this order wins. A ``str`` mixin, so a verdict reads and
    serialises as its name ("DRIFT") in JSON, YAML and f-strings.
    """

    UNFIT = "UNFIT"
    FAILED = "FAILED"
    NO_RESULT = "NO_RESULT"
    NONDETERMINISTIC = "NONDETERMINISTIC"
    NO_BASELINE = "NO_BASELINE"
    DRIFT = "DRIFT"
    DIFFERENT = "DIFFERENT"
    UNRESOLVED = "UNRESOLVED"
    EQUIVALENT = "EQUIVALENT"
    SAME = "SAME"
    IDENTICAL = "IDENTICAL"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def exit_code(self) -> int:
        return _EXIT_CODES[self]

    @property
    def meaning(self) -> str:
        """One line for people: the README's table and every report's headline."""
        return _MEANINGS[self]

    @property
    def passed(self) -> bool:
        """Whether a CI job should pass: exactly the verdicts that exit 0."""
        return self.exit_code == 0

    @property
    def precedence(self) -> int:
        """0 for the worst verdict; lower wins when several apply."""
        return list(Verdict).index(self)

    @classmethod
    def worst(cls, verdicts: list[Verdict] | list[str]) -> Verdict:
        """The verdict that wins among several (a multi-run report's headline, its exit code)."""
        if not verdicts:
            raise ValueError("no verdicts to choose from")
        return min((cls(v) for v in verdicts), key=lambda v: v.precedence)


_EXIT_CODES = {
    Verdict.UNFIT: 5,
    Verdict.FAILED: 4,
    Verdict.NO_RESULT: 4,
    Verdict.NONDETERMINISTIC: 4,
    Verdict.NO_BASELINE: 3,
    Verdict.DRIFT: 1,
    Verdict.DIFFERENT: 1,
    Verdict.UNRESOLVED: 3,
    Verdict.EQUIVALENT: 0,
    Verdict.SAME: 0,
    Verdict.IDENTICAL: 0,
}
_MEANINGS = {
    Verdict.UNFIT: (
        "a preflight health check failed (the report names it); `repro verify` trained nothing"
    ),
    Verdict.FAILED: "crash, hang, NaN/Inf, ranks desynchronised, or not converged",
    Verdict.NO_RESULT: (
        "`fleet matrix`: a node that was expected to report wrote no result (it never ran, "
        "or died before writing)"
    ),
    Verdict.NONDETERMINISTIC: "`--repeat N` runs on this machine differ from each other",
    Verdict.NO_BASELINE: (
        "no baseline matches the profile, workload and precision; the report prints "
        "the command that records one"
    ),
    Verdict.DRIFT: (
        "another training (a semantic setting differs), outside a band (the report names the "
        "first step outside it), or not bit-identical where bit-identity is expected"
    ),
    Verdict.DIFFERENT: (
        "`compare --group`: a two-sample test says the groups' settings give different results"
    ),
    Verdict.UNRESOLVED: (
        "`compare --group`: neither different nor shown the same at these group sizes; the "
        "report says how many runs per side would resolve it"
    ),
    Verdict.EQUIVALENT: (
        "not bit-equal, but inside every band that applies (rounding noise, seed spread)"
    ),
    Verdict.SAME: (
        "`compare --group`: the difference is shown to lie inside the margin you gave "
        "(an equivalence test)"
    ),
    Verdict.IDENTICAL: (
        "every step's exact record and the checkpoint identity are bit-equal to the baseline"
    ),
}


def exit_codes_help(others: dict[int, str]) -> str:
    """The exit-code epilog of every command, worst verdict first; ``others``: the codes
    that are not verdicts (bad input, an interrupt)."""
    by_code: dict[int, list[str]] = {}
    for v in Verdict:
        by_code.setdefault(v.exit_code, []).append(v.value)
    for code, meaning in others.items():
        by_code[code] = [meaning]
    rows = [f"  {code:>3}  {' or '.join(names)}" for code, names in sorted(by_code.items())]
    order = " > ".join(v.value for v in Verdict)
    return "exit codes:\n" + "\n".join(rows) + f"\nwhen several apply: {order}"
