"""The repro_regression fixture, run by pytest's own pytester in a fresh test tree."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# A test of the kind a user writes: a small regression trained for 60 steps in float32.
USER_TEST = textwrap.dedent(
    """
    import torch

    LR = {lr}

    def run(perturb):
        torch.manual_seed(perturb.seed)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        perturb(model)
        x = torch.randn(256, 16)
        y = x[:, :1] * 2 - x[:, 1:2]
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        for _ in range(60):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return {{"loss": loss.item(), "weight_norm": model[0].weight.norm().item()}}

    def test_training(repro_regression):
        repro_regression.check(run)
    """
)


def _write(pytester: pytest.Pytester, lr: float) -> None:
    pytester.makepyfile(test_user=USER_TEST.format(lr=lr))


def _pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # A fresh process each time: torch registers its operator libraries once per process,
    # and an in-process run's module cleanup would make it register them again.
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=300)


def test_records_then_passes_equivalent_passes_and_a_real_change_fails_with_the_report(
    pytester: pytest.Pytester,
) -> None:
    _write(pytester, 0.05)
    first = _pytest(pytester)
    first.assert_outcomes(passed=1)
    band_file = pytester.path / "repro_bands" / "test_user" / "test_training.json"
    first.stdout.fnmatch_lines(["*repro_regression*", f"recorded {band_file}"])
    band = json.loads(band_file.read_text())
    assert len(band["members"]) >= 8 and len(band["seeds"]) >= 8
    assert len({m["loss"] for m in band["members"]}) > 1  # the perturbations moved the loss

    again = _pytest(pytester)
    again.assert_outcomes(passed=1)
    assert "recorded" not in again.stdout.str()

    # As if recorded where member 1's arithmetic ran: not bit-equal, inside the band.
    band_file.write_text(json.dumps({**band, "reference": band["members"][0]}))
    _pytest(pytester).assert_outcomes(passed=1)
    band_file.write_text(json.dumps(band))

    _write(pytester, 0.0505)  # learning rate x1.01
    changed = _pytest(pytester)
    changed.assert_outcomes(failed=1)
    changed.stdout.fnmatch_lines(["*DRIFT: *outside the band*", "*loss: *OUTSIDE*"])
    assert json.loads(band_file.read_text()) == band  # never re-recorded silently

    regen = _pytest(pytester, "--repro-regen")
    regen.assert_outcomes(passed=1)
    regen.stdout.fnmatch_lines([f"re-recorded {band_file}"])
    assert json.loads(band_file.read_text())["reference"] != band["reference"]


def test_a_pytest_session_loads_the_plugin_without_torch(tmp_path: Path) -> None:
    (tmp_path / "test_plain.py").write_text("def test_nothing():\n    assert True\n")
    script = (
        "import sys, pytest\n"
        "code = pytest.main(['-q', '-p', 'no:cacheprovider', 'test_plain.py'])\n"
        "print('plugin', 'repro.pytest_plugin' in sys.modules)\n"
        "print('torch', 'torch' in sys.modules)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plugin True" in done.stdout  # the pytest11 entry point loaded it
    assert "torch False" in done.stdout
