"""The ``repro_regression`` fixture: a training's final metrics judged against a band
measured by rounding-level perturbations, instead of a guessed ``atol``/``rtol``.

    def test_training(repro_regression):
        repro_regression.check(run)     # run(perturb) -> {"loss": ..., ...}

The first run records the band (the reference, 8 perturbed members, 8 seeds: 17 calls of
``run``) in ``repro_bands/<test file>/<test>.json`` beside the test file, and the session
summary names every band it recorded; commit the file. Later runs call ``run`` once and
fail on DRIFT with the report as the message. ``--repro-regen`` re-records (and says so).
See ``repro.judge.regression`` for the statistics.

Registered as a ``pytest11`` entry point, this module loads in every pytest session where
repro is installed: it imports pytest and the standard library only, never torch.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

_RECORDED = pytest.StashKey[list[str]]()
BANDS_DIR = "repro_bands"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("repro").addoption(
        "--repro-regen",
        action="store_true",
        help="re-record every repro_regression band the selected tests use",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_RECORDED] = []


class ReproRegression:
    """What a test gets: ``check(run)``, and ``path``, where its band lives."""

    def __init__(self, path: Path, regen: bool, recorded: list[str]) -> None:
        self.path, self._regen, self._recorded = path, regen, recorded

    def check(self, run: Callable[[Any], dict[str, Any]]) -> None:
        from repro.errors import UserError
        from repro.judge import regression

        try:
            if self._regen or not self.path.is_file():
                verb = "re-recorded" if self.path.is_file() else "recorded"
                regression.record(run, self.path)
                self._recorded.append(f"{verb} {self.path}")
                return
            outcome = regression.check(run, regression.load(self.path))
        except UserError as exc:
            pytest.fail(str(exc), pytrace=False)
        if not outcome.passed:
            raise AssertionError(f"{outcome.report}\nband: {self.path}")


@pytest.fixture
def repro_regression(request: pytest.FixtureRequest) -> ReproRegression:
    """Judge a training's final metrics against its recorded band (see the module)."""
    test_file = Path(str(request.node.path))
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    path = test_file.parent / BANDS_DIR / test_file.stem / f"{name}.json"
    regen = bool(request.config.getoption("--repro-regen"))
    return ReproRegression(path, regen, request.config.stash[_RECORDED])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    recorded = config.stash.get(_RECORDED, [])
    if recorded:
        terminalreporter.section("repro_regression")
        for line in recorded:
            terminalreporter.write_line(line)
