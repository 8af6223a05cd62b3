"""The GPU and multi-node path, checked without a GPU.

Direct torchrun takes everything from the profile (threads, cuBLAS workspace, backend,
timeout); per-device verify picks the GPUs a job may use (with FakeNVML); `nox -s gpu`
runs in the runner's own environment and never replaces its torch or numpy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from fake_nvml import A100_MIG, H100, RTX_4090, FakeNVML, FakeNVMLErrorGpuIsLost
from repro.commands.verify import VerifyOptions, devices_to_test, verify_per_device
from repro.errors import UserError
from repro.manifest.nvml import cuda_device_uuids
from repro.profile import load_profile
from repro.runs.prepare import CUBLAS_WORKSPACE_CONFIG, prepare_run, rank_env
from repro.runs.runner import _child_env, launch
from repro.runs.store import Run

NOXFILE = Path(__file__).resolve().parents[1] / "noxfile.py"


# -- the rank's environment, shared by `repro run` and direct torchrun --------------------------


def test_rank_env_takes_threads_from_the_profile_and_keeps_a_users_cublas_setting():
    profile = load_profile("smoke", {"threads_per_rank": 3})
    assert rank_env(profile, {}) == {
        "OMP_NUM_THREADS": "3",
        "MKL_NUM_THREADS": "3",
        "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    }
    mine = rank_env(profile, {"CUBLAS_WORKSPACE_CONFIG": ":16:8", "OMP_NUM_THREADS": "8"})
    assert mine["CUBLAS_WORKSPACE_CONFIG"] == ":16:8" and mine["OMP_NUM_THREADS"] == "3"


def test_a_cuda_rank_keeps_nccls_watchdog_and_excludes_nvls_before_the_group_exists():
    cuda = load_profile("full")
    # Blocking wait would remove the watchdog: a collective DDP awaits through a CUDA future
    # would then never time out.
    assert "TORCH_NCCL_BLOCKING_WAIT" not in rank_env(cuda, {})
    assert rank_env(cuda, {})["NCCL_ALGO"] == "^NVLS"  # what torch sets in deterministic mode
    assert rank_env(cuda, {"NCCL_ALGO": "Ring"})["NCCL_ALGO"] == "Ring"  # the user's wins
    assert "NCCL_ALGO" not in rank_env(load_profile("smoke"), {})


def test_repro_run_gives_its_ranks_the_same_environment(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    profile = load_profile("smoke")
    env = _child_env(profile, None)
    assert rank_env(profile, {}).items() <= env.items()
    assert env["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG


# -- direct torchrun ----------------------------------------------------------------------------


def _torchrun(*launcher_args: str, train_args: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *launcher_args,
        "--max-restarts",
        "0",
        "-m",
        "repro.reference.train",
        *train_args,
    ]


def _clean_env() -> dict[str, str]:
    """This process's environment without what the rank must set for itself."""
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    return {**env, "PYTHONUNBUFFERED": "1"}


def test_direct_torchrun_takes_cublas_threads_backend_and_timeout_from_the_profile(tmp_path):
    env = _clean_env()
    command = _torchrun(
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "2",
        train_args=[
            "--profile",
            "smoke",
            "--set",
            "collective_timeout_s=45",  # not the 60 s every profile has by default
            "--runs-dir",
            str(tmp_path),
            "--quiet",
        ],
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (run_dir,) = tmp_path.iterdir()
    run = Run(run_dir)
    assert run.status["status"] == "COMPLETE"
    manifest = run.manifest
    assert manifest["env"]["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE_CONFIG
    assert manifest["env"]["OMP_NUM_THREADS"] == "1"  # the profile's threads_per_rank
    assert manifest["run"]["deterministic"]["cublas_workspace_config"] == CUBLAS_WORKSPACE_CONFIG
    assert manifest["run"]["collective_timeout_s"] == 45.0
    assert manifest["run"]["backend"] == "gloo"
    assert manifest["run"]["device"] == "cpu" and "cuda_visible_device" not in manifest["run"]


def test_direct_torchrun_with_the_wrong_world_size_says_which_set_it_needs(tmp_path):
    env = _clean_env()
    command = _torchrun(
        "--standalone",
        "--nnodes",
        "1",
        "--nproc-per-node",
        "1",
        train_args=["--profile", "smoke", "--runs-dir", str(tmp_path)],
    )
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "needs world_size=2 but the launcher started 1 ranks" in done.stderr
    assert "--set world_size=1" in done.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was written


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_of_two_ranks_match_one_node_of_four_bit_for_bit(tmp_path):
    """The README's direct-torchrun path (c10d rendezvous) against `repro run`, 4 ranks each."""
    sets = ["world_size=4"]
    (single,) = launch([prepare_run("smoke", sets, runs_dir=tmp_path / "one", quiet=True)])
    assert single.ok, single.reason

    env, port = _clean_env(), _free_port()
    command = _torchrun(
        "--nnodes",
        "2",
        "--nproc-per-node",
        "2",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        f"127.0.0.1:{port}",
        "--rdzv-id",
        "repro-2x2",
        train_args=[
            *("--profile", "smoke", *(word for pair in sets for word in ("--set", pair))),
            *("--runs-dir", str(tmp_path / "two")),
        ],
    )
    nodes = [
        subprocess.Popen(
            [*command, "--quiet"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    (run_dir,) = (tmp_path / "two").iterdir()
    assert Run(run_dir).status["status"] == "COMPLETE"
    assert (run_dir / "record.json").read_bytes() == (single.run_dir / "record.json").read_bytes()


# -- per-device verify: which GPUs ----------------------------------------------------------------


NVML_UUIDS = ["GPU-aaaa", "MIG-bbbb", "GPU-cccc"]


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (None, NVML_UUIDS),  # unset: NVML's UUIDs, never NVML's (PCI bus order) indices
        ("2,3", ["2", "3"]),  # a scheduler's own list bounds the job
        (" GPU-1234 , MIG-5678 ", ["GPU-1234", "MIG-5678"]),
        ("1,-1,0", ["1"]),  # CUDA stops at the first invalid entry
        ("", []),
        ("-1", []),
    ],
)
def test_devices_to_test_respects_the_jobs_visible_devices(visible, expected):
    assert devices_to_test(visible, NVML_UUIDS) == expected


def test_nvml_names_gpus_by_uuid_and_mig_instances_by_their_own_uuid():
    no_mig_support = {**RTX_4090, "mig": FakeNVMLErrorGpuIsLost()}  # any refusal: not MIG
    fake = FakeNVML([H100, A100_MIG, no_mig_support])
    assert cuda_device_uuids(fake) == [
        H100["uuid"],
        A100_MIG["mig_devices"][0]["uuid"],
        A100_MIG["mig_devices"][2]["uuid"],
        RTX_4090["uuid"],
    ]
    assert fake.shut_down


def test_a_gpu_nvml_cannot_read_is_named_not_skipped():
    with pytest.raises(UserError, match=r"NVML cannot read GPU 1 \(.*GPU is lost\)"):
        cuda_device_uuids(FakeNVML([H100, FakeNVMLErrorGpuIsLost()]))


class _RecordingVerify:
    """Stands in for `repro.verify.verify`, which would train: records each call's env."""

    def __init__(self) -> None:
        self.envs: list[dict[str, str]] = []
        self.preflights: list[bool] = []

    def __call__(self, options: VerifyOptions) -> str:
        assert options.env is not None
        self.envs.append(options.env)
        self.preflights.append(options.preflight)
        return options.profile


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> _RecordingVerify:
    recorder = _RecordingVerify()
    monkeypatch.setattr("repro.commands.verify.verify", recorder)
    return recorder


def test_per_device_runs_each_nvml_device_by_uuid(monkeypatch, recorded):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    verify_per_device(VerifyOptions("full"), nvml=FakeNVML([H100, A100_MIG]))
    assert [env["CUDA_VISIBLE_DEVICES"] for env in recorded.envs] == [
        H100["uuid"],
        A100_MIG["mig_devices"][0]["uuid"],
        A100_MIG["mig_devices"][2]["uuid"],
    ]


def test_per_device_keeps_to_a_schedulers_visible_devices(monkeypatch, recorded):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    verify_per_device(VerifyOptions("full"), nvml=FakeNVML([H100, RTX_4090, H100, RTX_4090]))
    assert [env["CUDA_VISIBLE_DEVICES"] for env in recorded.envs] == ["3", "1"]


@pytest.mark.parametrize(("asked", "checked"), [(True, [True, False]), (False, [False, False])])
def test_per_device_checks_the_nodes_health_once(monkeypatch, recorded, asked, checked):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    verify_per_device(VerifyOptions("full", preflight=asked), nvml=FakeNVML([H100, H100]))
    assert recorded.preflights == checked


@pytest.mark.parametrize(
    ("visible", "gpus", "message"),
    [
        ("", [H100], r"CUDA_VISIBLE_DEVICES='' lets this job use no GPU"),
        (None, [{**A100_MIG, "mig_devices": []}], r"MIG mode is on without MIG instances"),
        (None, [], r"--per-device needs NVIDIA GPUs"),
    ],
)
def test_per_device_with_nothing_to_test_says_why(monkeypatch, recorded, visible, gpus, message):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    with pytest.raises(UserError, match=message):
        verify_per_device(VerifyOptions("full"), nvml=FakeNVML(gpus))
    assert recorded.envs == []


# -- `nox -s gpu` -----------------------------------------------------------------------------------


class _FakeNox:
    """Stands in for the `nox` module (not installed in the test environment) to load noxfile.py."""

    Session = object

    def __init__(self) -> None:
        self.options = SimpleNamespace()
        self.project = SimpleNamespace(load_toml=self._load_toml)
        self.session_options: dict[str, dict[str, Any]] = {}

    @staticmethod
    def _load_toml(path: str) -> dict[str, Any]:
        tomllib = pytest.importorskip("tomllib")  # Python 3.11+
        with open(NOXFILE.parent / path, "rb") as f:
            return dict(tomllib.load(f))

    def session(self, func: Any = None, **options: Any) -> Any:
        def register(f: Any) -> Any:
            self.session_options[f.__name__] = options
            return f

        return register(func) if func is not None else register


class SessionAborted(Exception):
    pass


class _FakeSession:
    """Records what the gpu session runs; answers its preflight with the given facts."""

    def __init__(self, facts: dict[str, Any]) -> None:
        self.posargs: list[str] = []
        self.facts = facts
        self.commands: list[tuple[str, ...]] = []
        self.constraints: str | None = None

    def run(self, *args: str, **_: Any) -> str | None:
        self.commands.append(args)
        if "--constraint" in args:  # the file lives only as long as the pip command
            self.constraints = Path(args[args.index("--constraint") + 1]).read_text()
        return "a warning torch printed\n" + json.dumps(self.facts) if "-c" in args else None

    def log(self, message: str) -> None:
        pass

    def error(self, message: str) -> None:
        raise SessionAborted(message)


@pytest.fixture
def noxfile(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, _FakeNox]:
    fake = _FakeNox()
    monkeypatch.setitem(sys.modules, "nox", fake)
    spec = importlib.util.spec_from_file_location("repro_noxfile_under_test", NOXFILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, fake


CUDA_MACHINE: dict[str, Any] = {
    "python": sys.executable,
    "torch": "/opt/conda/lib/python3.11/site-packages/torch/__init__.py",
    "torch_version": "2.5.1+cu124",
    "cuda": "12.4",
    "cuda_available": True,
    "numpy_version": "1.26.4",
    "missing": ["scipy>=1.10", "pytest>=8"],
}


def test_nox_gpu_runs_in_the_runners_interpreter_and_keeps_its_torch_and_numpy(noxfile):
    module, fake = noxfile
    assert fake.session_options["gpu"]["venv_backend"] == "none"
    session = _FakeSession(CUDA_MACHINE)
    module.gpu(session)

    preflight, *rest = session.commands
    asked = preflight[3:]
    assert "numpy>=1.24" in asked and "setuptools>=68" in asked
    assert not any(word.startswith("torch") for word in asked)
    assert all(command[0] == sys.executable for command in session.commands)
    installs = [c for c in rest if c[1:4] == ("-m", "pip", "install")]
    assert installs == [
        (
            sys.executable,
            "-m",
            "pip",
            "install",
            "--constraint",
            installs[0][5],
            *CUDA_MACHINE["missing"],
        ),
        (sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "-e", "."),
    ]
    assert session.constraints == "torch==2.5.1+cu124\nnumpy==1.26.4\n"
    assert rest[-2][1:] == ("-m", "pytest", "-m", "gpu")
    assert rest[-1][1:] == ("-m", "repro", "verify", "--profile", "full", "--record-missing")


def test_nox_gpu_installs_nothing_when_nothing_is_missing(noxfile):
    module, _ = noxfile
    session = _FakeSession({**CUDA_MACHINE, "missing": []})
    module.gpu(session)
    assert not any("--constraint" in command for command in session.commands)


@pytest.mark.parametrize(
    ("facts", "sentence"),
    [
        ({**CUDA_MACHINE, "cuda_available": False, "cuda": None}, r"sees no CUDA GPU"),
        (
            {
                "python": "/usr/bin/python3",
                "torch": None,
                "torch_error": "ModuleNotFoundError: x",
                "numpy_version": None,
                "missing": [],
            },
            r"/usr/bin/python3 cannot import torch",
        ),
    ],
)
def test_nox_gpu_without_cuda_torch_stops_in_one_sentence_before_installing(
    noxfile, facts, sentence
):
    module, _ = noxfile
    session = _FakeSession(facts)
    with pytest.raises(SessionAborted, match=sentence):
        module.gpu(session)
    assert len(session.commands) == 1  # the preflight alone


def test_nox_gpu_preflight_reports_this_interpreters_torch_and_missing_requirements(noxfile):
    module, _ = noxfile
    wanted = ["pyyaml>=6", "scipy>=999", "surely-not-installed-xyz>=1", "pytest"]
    done = subprocess.run(
        [sys.executable, "-c", module.GPU_PREFLIGHT, *wanted],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["python"] == sys.executable
    assert facts["torch_version"] == torch.__version__
    assert Path(facts["torch"]).parent == Path(torch.__file__).parent
    assert facts["cuda_available"] is torch.cuda.is_available()
    assert facts["missing"] == ["scipy>=999", "surely-not-installed-xyz>=1"]


@pytest.mark.parametrize(("forced", "recorded"), [("math", "math"), ("flash", "flash")])
def test_the_recorded_attention_backend_is_the_forced_one(forced, recorded):
    """The probe runs inside the profile's backend context: a forced backend is what runs."""
    import torch

    from repro.profile import load_profile
    from repro.reference.train import selected_sdpa_backend

    profile = load_profile("smoke", {"sdpa_backend": forced})
    assert selected_sdpa_backend(profile, torch.device("cpu")) == recorded
