"""Torch and library probes: cuDNN version decoding, loaded libraries, and agreement with
``torch.utils.collect_env`` on the fields both record."""

from __future__ import annotations

import platform

import pytest
import torch
from torch.utils import collect_env

from repro.manifest import capture_manifest
from repro.manifest.loaded_libs import loaded_libraries, parse_maps
from repro.manifest.torch_probes import (
    cpu_math_libraries,
    decode_cudnn_version,
    encode_cudnn_version,
)


@pytest.mark.parametrize(
    ("version", "text"),
    [(8902, "8.9.2"), (90100, "9.1.0"), (7605, "7.6.5"), (91000, "9.10.0"), (90501, "9.5.1")],
)
def test_decode_cudnn_version(version: int, text: str) -> None:
    assert decode_cudnn_version(version) == text
    assert encode_cudnn_version(*map(int, text.split("."))) == version


MAPS = """\
7f00-7f01 r-xp 00000000 fe:00 1 /usr/lib/x86_64-linux-gnu/libc.so.6
7f02-7f03 r-xp 00000000 fe:00 2 /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15
7f04-7f05 r--p 00000000 fe:00 3 /venv/nvidia/cudnn/lib/libcudnn.so.9
7f05-7f06 r-xp 00001000 fe:00 3 /venv/nvidia/cudnn/lib/libcudnn.so.9
7f06-7f07 r-xp 00000000 fe:00 4 /venv/nvidia/cudnn/lib/libcudnn_ops.so.9
7f08-7f09 r-xp 00000000 fe:00 5 /venv/torch/lib/libcudart-9335f6a2.so.12
7f0a-7f0b r-xp 00000000 fe:00 6 /venv/nvidia/cublas/lib/libcublasLt.so.12
7f0c-7f0d r-xp 00000000 fe:00 7 /venv/nvidia/nccl/lib/libnccl.so.2
7f0e-7f0f rw-p 00000000 00:00 0 [heap]
"""


def test_parse_maps_finds_the_cuda_stack_once_each() -> None:
    loaded = parse_maps(MAPS)

    assert loaded == {
        "libcuda": {
            "path": "/usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15",
            "version": "550.54.15",
        },
        "libcudnn": {"path": "/venv/nvidia/cudnn/lib/libcudnn.so.9", "version": "9"},
        "libcudnn_ops": {"path": "/venv/nvidia/cudnn/lib/libcudnn_ops.so.9", "version": "9"},
        "libcudart": {"path": "/venv/torch/lib/libcudart-9335f6a2.so.12", "version": "12"},
        "libcublasLt": {"path": "/venv/nvidia/cublas/lib/libcublasLt.so.12", "version": "12"},
        "libnccl": {"path": "/venv/nvidia/nccl/lib/libnccl.so.2", "version": "2"},
    }


def test_loaded_libraries_of_this_process() -> None:
    loaded = loaded_libraries()

    if torch.version.cuda is None:
        assert not any(stem.startswith(("libcudart", "libcudnn", "libnccl")) for stem in loaded)
    for library in loaded.values():
        assert library["path"].startswith("/")


def test_cpu_math_libraries_follow_torch_config() -> None:
    libraries = cpu_math_libraries()
    config = torch.__config__.show()

    assert libraries["onednn"]["available"] == torch.backends.mkldnn.is_available()
    if torch.backends.mkldnn.is_available():
        assert f"v{libraries['onednn']['version']}" in config
    assert libraries["openmp"]["available"] == torch.backends.openmp.is_available()
    assert libraries["mkl"]["available"] == torch.backends.mkl.is_available()


def test_fields_shared_with_collect_env_agree() -> None:
    info = collect_env.get_env_info()  # shells out to pip and lscpu: fine in a test
    libraries = capture_manifest()["libraries"]
    hardware = capture_manifest()["hardware"]

    assert libraries["torch"]["version"] == info.torch_version
    assert str(libraries["torch"]["debug"]) == info.is_debug_build
    assert libraries["cuda"]["build"] == info.cuda_compiled_version
    assert info.python_version.startswith(f"{libraries['python']['version']} ")
    assert info.os.startswith(libraries["os"]["name"])
    assert info.libc_version == libraries["libc"].replace(" ", "-")
    lscpu = dict(
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in (info.cpu_info or "").splitlines())
    )
    if "Model name" in lscpu and platform.machine() == "x86_64":
        assert lscpu["Model name"] == hardware["cpu"]["model_name"]
