"""What `repro compare` finds for real pairs of smoke runs: differences, where they parted, causes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from helpers import compare_runs
from repro.cli import main
from repro.manifest.diff import Difference


def _pair(smoke_runs: dict[str, Path], name: str, smoke_baseline: Path | None = None):
    if name not in smoke_runs:
        pytest.skip(f"no {name!r} run on this machine (no lower CPU capability to dispatch to)")
    return compare_runs(smoke_runs[name], smoke_runs["primary"], smoke_baseline)


def _differences(c, impact: str | None = None) -> dict[str, Difference]:
    return {d.key: d for d in c.env_differences if impact is None or d.impact == impact}


def test_identical_runs(smoke_runs):
    c = _pair(smoke_runs, "rerun")
    assert c.verdict == "IDENTICAL"
    assert c.first_difference is None
    # Only low-impact or bookkeeping keys (time, argv, git state of the checkout) may differ.
    assert not _differences(c, "high") and c.env_key_match
    assert c.causes == []


def test_thread_count(smoke_runs):
    c = _pair(smoke_runs, "threads")
    high = _differences(c, "high")
    assert "config.threads_per_rank" in high
    # Measured: with 2 threads the forward of step 0 is still bit-equal on this model and the
    # backward parts first, so the named module is found in the forward or the local gradients.
    assert c.first_difference is not None and c.first_difference.where in ("forward", "grad_local")
    assert c.first_difference.module  # e.g. "block 1 MLP down projection weight"
    assert c.causes[0].cause == "thread count"


def test_cpu_capability(smoke_runs):
    c = _pair(smoke_runs, "avx2")
    high = _differences(c, "high")
    assert any("capability" in key.lower() for key in high), sorted(high)
    # Where one level down parts depends on the machine: from AVX-512 to AVX2 in a rank's
    # forward or backward; from AVX2 to `default` already in the initial parameters
    # (another normal-distribution fill kernel). Every level names a module.
    assert c.first_difference.where in ("initial", "forward", "grad_local")
    assert c.first_difference.module
    assert c.causes[0].cause == "CPU kernel capability"
    assert "ATEN_CPU_CAPABILITY" in c.causes[0].try_next


def test_another_seed(smoke_runs):
    c = _pair(smoke_runs, "seed")
    assert c.first_difference.step == 0 and c.first_difference.where == "global_batch"
    assert c.causes[0].cause == "seed"


def test_learning_rate(smoke_runs):
    c = _pair(smoke_runs, "lr")
    assert "config.fault.lr_factor" in _differences(c)
    assert c.first_difference.step == 0 and c.first_difference.where == "update"
    assert c.causes[0].cause == "config"


def test_world_size(smoke_runs):
    c = _pair(smoke_runs, "world1")
    assert c.first_difference.where in ("batch_split", "grad_reduced")
    # Same global batch at every step: only the split across ranks differs.
    assert all("global batch" not in a for a in c.first_difference.also)
    assert c.causes[0].cause == "world size (split, reduction)"


def test_band_applies_between_runs(smoke_runs, smoke_baseline):
    c = _pair(smoke_runs, "threads", smoke_baseline)
    assert c.verdict == "EQUIVALENT" and c.numerics.applied


def test_cli_compare_exit_codes(smoke_runs, smoke_baseline, capsys):
    code = main(
        [
            "compare",
            str(smoke_runs["primary"]),
            str(smoke_runs["lr"]),
            "--baseline-dir",
            str(smoke_baseline.parent),
            "--json",
        ]
    )
    assert code == 1  # DRIFT
    assert '"verdict": "DRIFT"' in capsys.readouterr().out


def test_a_reader_that_stops_early_keeps_the_verdict_and_the_files(
    smoke_runs, smoke_baseline, tmp_path
):
    """`repro compare A B --md F | head -1`: no traceback, the file is written, and the
    exit code is still the verdict's."""
    md = tmp_path / "report.md"
    command = [sys.executable, "-m", "repro", "compare", str(smoke_runs["primary"])]
    command += [str(smoke_runs["lr"]), "--baseline-dir", str(smoke_baseline.parent)]
    proc = subprocess.Popen(
        [*command, "--md", str(md)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the report is printed
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 1, err  # DRIFT
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert md.read_text().startswith("# ")


@pytest.mark.parametrize("order", ["normal-first", "drifted-first"])
def test_a_real_change_is_drift_in_either_order(smoke_runs, smoke_baseline, order, capsys):
    """Deviations are measured from the baseline's primary run, never from the first argument."""
    normal, drifted = smoke_runs["threads"], smoke_runs["lr"]
    runs = [normal, drifted] if order == "normal-first" else [drifted, normal]
    code = main(["compare", *map(str, runs), "--baseline-dir", str(smoke_baseline.parent)])
    out = capsys.readouterr().out
    assert code == 1 and out.startswith("DRIFT"), out[:400]
    if order == "drifted-first":  # neither run is the primary: each was judged, the worse wins
        assert "Neither run is the primary run" in out


def test_another_training_is_drift_with_its_settings_first(smoke_runs):
    """Double weight decay stays inside the band; it is still another training."""
    c = _pair(smoke_runs, "weight_decay")
    assert c.verdict == "DRIFT"
    assert c.setting_differences.get("semantic") == ["weight_decay"]
    assert c.causes[0].cause == "training settings"
    assert "weight_decay" in c.causes[0].evidence[0]


def test_cli_compare_bad_inputs(tmp_path, smoke_runs, capsys):
    assert main(["compare", str(tmp_path), str(smoke_runs["primary"])]) == 2
    assert "not a run directory" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("status.yaml", "config.yaml", "manifest.yaml"):
        (broken / name).write_bytes((smoke_runs["primary"] / name).read_bytes())
    (broken / "record.json").write_text((smoke_runs["primary"] / "record.json").read_text()[:500])
    assert main(["compare", str(smoke_runs["primary"]), str(broken)]) == 2
    err = capsys.readouterr().err
    assert "record.json" in err and "malformed or truncated" in err
    assert (
        main(
            [
                "compare",
                str(smoke_runs["primary"]),
                "no-such-baseline",
                "--baseline-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert list(tmp_path.iterdir()) == [broken]  # nothing written


def test_compare_does_not_import_torch(smoke_runs):
    code = (
        "import sys; from repro.cli import main; "
        f"main(['compare', {str(smoke_runs['primary'])!r}, {str(smoke_runs['threads'])!r}, '--json']); "
        "assert 'torch' not in sys.modules, 'compare imported torch'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
