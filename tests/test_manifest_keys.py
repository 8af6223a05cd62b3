"""The keys table: lookups, env-key membership, the run/config rows, and flattening."""

from __future__ import annotations

import pytest

from repro.manifest import capture_manifest
from repro.manifest.keys import KeyInfo, _parse_row, environment_key, flatten, key_info, table


@pytest.mark.parametrize(
    ("key", "env_key", "impact"),
    [
        ("hardware.cpu.torch_capability", True, "high"),
        ("hardware.cpu.isa_flags", True, "medium"),
        ("hardware.gpus.0.name", True, "high"),
        ("hardware.gpus.3.compute_capability", True, "high"),
        ("hardware.gpus.0.clocks_mhz.sm", False, "low"),
        ("hardware.gpus.0.power_limit_w", False, "low"),
        ("hardware.gpus.1.uuid_sha256", False, "low"),
        ("libraries.torch.version", True, "high"),
        ("libraries.torch.git_version", True, "high"),
        ("libraries.cuda.build", True, "high"),
        ("libraries.cudnn.runtime_version", True, "high"),
        ("libraries.cudnn", True, "high"),
        ("libraries.cublas", True, "high"),
        ("libraries.nccl", True, "high"),
        ("numerics.matmul.allow_tf32", True, "high"),
        ("numerics.matmul.float32_matmul_precision", True, "high"),
        ("numerics.cudnn.conv_fp32_precision", True, "high"),
        ("numerics.sdpa.flash", True, "high"),
        ("numerics.threads.intra_op", True, "high"),
        ("numerics.deterministic.algorithms", True, "high"),
        ("env.ATEN_CPU_CAPABILITY", False, "high"),
        ("env.DNNL_VERBOSE", False, "high"),
        ("env.ONEDNN_MAX_CPU_ISA", True, "high"),
        ("env.NCCL_ALGO", False, "medium"),
        ("env.CUBLAS_WORKSPACE_CONFIG", True, "high"),
        ("env.OMP_NUM_THREADS", False, "high"),
        ("env.MKL_NUM_THREADS", False, "high"),
        ("env.TORCH_HOME", False, "low"),
        ("code.git.sha", False, "medium"),
        ("code.git.dirty", False, "medium"),
        ("packages.sha256", False, "medium"),
        ("packages.distributions", False, "low"),
        ("invocation.hostname", False, "low"),
        ("invocation.time_utc", False, "low"),
        ("run.device", True, "high"),
        ("run.world_size", True, "high"),
        ("run.threads_per_rank", True, "high"),
        ("run.amp_dtype", True, "high"),
        ("run.sdpa_backend", True, "high"),
        ("run.optimizer_impl", True, "medium"),
        ("run.seeds.data", False, "low"),
        ("run.deterministic.algorithms", True, "high"),
        ("config.seed", False, "high"),
        ("config.world_size", True, "high"),
        ("config.threads_per_rank", True, "high"),
        ("config.amp_dtype", True, "high"),
        ("config.tf32", True, "high"),
        ("config.sdpa_backend", True, "high"),
        ("config.fault.kind", False, "high"),
        ("config.band_member", False, "low"),
        ("config.learning_rate", False, "high"),
    ],
)
def test_key_info(key: str, env_key: bool, impact: str) -> None:
    info = key_info(key)

    assert (info.env_key, info.impact) == (env_key, impact)
    assert info.section == key.split(".")[0]
    assert info.impact != "high" or info.hint, f"{key} is high impact but says nothing to try"


def test_hints_say_what_to_try() -> None:
    assert "ATEN_CPU_CAPABILITY=avx2" in key_info("hardware.cpu.torch_capability").hint
    assert "seed band" in key_info("config.seed").hint
    assert "--set" in key_info("config.learning_rate").hint
    assert "on purpose" in key_info("config.fault.step").hint


@pytest.mark.parametrize(
    "key",
    [
        "hardware.gpus.0.clocks_mhz.sm",
        "hardware.gpus.7.clocks_mhz.memory",
        "hardware.gpus.0.pcie.generation",
        "hardware.gpus.0.pcie.width",
        # The elastic launcher names every launch anew: two launches of one command differ.
        "env.TORCHELASTIC_RUN_ID",
        "env.TORCHELASTIC_ERROR_FILE",
    ],
)
def test_per_run_readings_are_volatile(key: str) -> None:
    info = key_info(key)

    assert info.volatile and not info.env_key


@pytest.mark.parametrize(
    "key",
    [
        "hardware.gpus.0.name",
        "hardware.gpus.0.compute_capability",
        "hardware.gpus.0.sm_count",
        "hardware.gpus.0.clocks_mhz.sm_max",  # the card's maximum, not a current reading
        "hardware.gpus.0.clocks_mhz.memory_max",
        "hardware.cpu.model_name",
        "invocation.time_utc",
    ],
)
def test_properties_are_not_volatile(key: str) -> None:
    assert not key_info(key).volatile


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"volatile": "yes"}, "bad volatile"),
        ({"volatile": True, "env_key": True}, "volatile and env_key"),
        ({"colour": "red"}, "may have volatile"),
    ],
)
def test_a_bad_volatile_row_fails_loudly(extra: dict[str, object], message: str) -> None:
    row = {"pattern": "x.*", "env_key": False, "impact": "low", "hint": "", **extra}

    with pytest.raises(ValueError, match=message):
        _parse_row(1, row)


def test_unknown_key_is_low_and_outside_the_environment_key() -> None:
    assert key_info("telemetry.fan_speed") == KeyInfo(
        pattern="*", section="telemetry", env_key=False, impact="low", hint=""
    )


def _example_key(pattern: str) -> str:
    return pattern.replace("*", "x") if pattern != "*" else "x"


def test_every_row_is_reachable() -> None:
    # A row shadowed by an earlier, broader row would be dead data.
    for row in table():
        assert key_info(_example_key(row.pattern)).pattern == row.pattern, row.pattern


def test_every_captured_key_has_a_row() -> None:
    unmatched = [key for key in flatten(capture_manifest()) if key_info(key).pattern == "*"]

    assert unmatched == ["schema_version"]


def test_flatten() -> None:
    manifest = {
        "hardware": {
            "cpu": {"isa_flags": ["avx2", "avx512f"], "model_name": "Xeon"},
            "gpus": [{"name": "H100", "clocks_mhz": {"sm": 1980}}],
            "nvml": {"unavailable": "no driver"},
        },
        "env": {},
        "packages": {"distributions": []},
    }

    assert flatten(manifest) == {
        "hardware.cpu.isa_flags": ["avx2", "avx512f"],
        "hardware.cpu.model_name": "Xeon",
        "hardware.gpus.0.name": "H100",
        "hardware.gpus.0.clocks_mhz.sm": 1980,
        "hardware.nvml": {"unavailable": "no driver"},
        "packages.distributions": [],
    }


def test_environment_key_of_this_machine() -> None:
    key = environment_key(capture_manifest())

    for expected in (
        "hardware.cpu.torch_capability",
        "libraries.torch.version",
        "libraries.cuda.build",
        "numerics.threads.intra_op",
        "numerics.matmul.float32_matmul_precision",
    ):
        assert expected in key
    assert not any(k.startswith(("invocation.", "packages.", "code.")) for k in key)
