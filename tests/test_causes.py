"""Ranking causes: ties broken by evidence, and GPU causes from what the card is, not how it runs.

Manifests are small dicts and GPUs come from FakeNVML; the differences are real
``diff_manifests`` output and nothing is launched.
"""

from __future__ import annotations

from typing import Any

from fake_nvml import H100, FakeNVML
from repro.judge.causes import Cause, rank_causes
from repro.judge.divergence import Divergence
from repro.manifest.diff import diff_manifests
from repro.manifest.nvml import gpu_probes
from repro.runs.runview import RunView

GPU_CAUSE = "GPU architecture (kernel choice)"


def _view(name: str, manifest: dict[str, Any]) -> RunView:
    config = {"profile": "quick", "settings": dict(manifest.get("config", {}))}
    return RunView(name, f"/runs/{name}", {"status": "COMPLETE"}, config, manifest, None)


def _causes(
    candidate: dict[str, Any], reference: dict[str, Any], divergence: Divergence | None
) -> list[Cause]:
    differences = diff_manifests(candidate, reference)
    return rank_causes(
        "DRIFT", divergence, differences, _view("here", candidate), _view("there", reference)
    )


def _top_two(causes: list[Cause]) -> list[tuple[str, float]]:
    return [(cause.cause, cause.score) for cause in causes[:2]]


# -- ties ----------------------------------------------------------------------------------


def test_a_rule_that_explains_where_the_runs_parted_wins_a_tie() -> None:
    # Thread count: two high differences (6), nothing at batch_split. World size: one high
    # difference (3) and the batch split (3). It comes later in the table but explains
    # where the runs parted.
    candidate = {"config": {"threads_per_rank": 2, "world_size": 1}, "numerics": {"threads": 2}}
    reference = {"config": {"threads_per_rank": 1, "world_size": 2}, "numerics": {"threads": 1}}
    parted = Divergence(2, "batch_split", "the batch is split across ranks differently")

    causes = _causes(candidate, reference, parted)

    assert _top_two(causes) == [
        ("world size (split, reduction)", 6.0),
        ("thread count", 6.0),
    ]


def test_more_high_impact_differences_win_a_tie() -> None:
    # AMP dtype and TF32 both explain a forward difference at step 0 and both reach the
    # impact cap; TF32 has three high-impact differences to AMP's two. The table lists AMP
    # first, which used to decide.
    candidate = {
        "config": {"amp_dtype": "float16", "tf32": True},
        "run": {"amp_dtype": "float16", "deterministic": {"tf32": True}},
        "numerics": {"matmul": {"fp32_precision": "tf32"}},
    }
    reference = {
        "config": {"amp_dtype": "bfloat16", "tf32": False},
        "run": {"amp_dtype": "bfloat16", "deterministic": {"tf32": False}},
        "numerics": {"matmul": {"fp32_precision": "ieee"}},
    }
    parted = Divergence(0, "forward", "blocks.0.attn, forward output differs first")

    causes = _causes(candidate, reference, parted)

    assert _top_two(causes) == [("TF32", 11.0), ("AMP dtype", 11.0)]
    assert any("run.deterministic.tf32" in line for line in causes[0].evidence)


def test_one_high_impact_difference_outweighs_weaker_ones_of_the_same_sum() -> None:
    # Libraries: Triton (medium) and Python (low), 3 in all. Config: the learning rate
    # (high), 3 as well; it comes later in the table. Both name the forward pass.
    candidate = {
        "config": {"lr": 0.003},
        "libraries": {"triton": "3.1.0", "python": {"version": "3.11.9"}},
    }
    reference = {
        "config": {"lr": 0.0045},
        "libraries": {"triton": "3.2.0", "python": {"version": "3.11.10"}},
    }
    parted = Divergence(3, "forward", "embedding, forward output differs first")

    causes = _causes(candidate, reference, parted)

    assert _top_two(causes) == [
        ("config", 6.0),
        ("library versions (torch, CUDA, cuDNN, cuBLAS, NCCL)", 6.0),
    ]


def test_differences_in_the_environment_key_win_a_tie() -> None:
    # One high difference each, both rules name the loss; only run.world_size is in the
    # environment key (OMP_NUM_THREADS is recorded through its effect, numerics.threads).
    candidate = {"run": {"world_size": 1}, "env": {"OMP_NUM_THREADS": "2"}}
    reference = {"run": {"world_size": 2}, "env": {"OMP_NUM_THREADS": "1"}}
    parted = Divergence(3, "loss", "loss 2.1 vs 2.2")

    causes = _causes(candidate, reference, parted)

    assert _top_two(causes) == [("world size (split, reduction)", 6.0), ("thread count", 6.0)]


def test_the_table_order_decides_only_an_even_tie() -> None:
    candidate = {"config": {"threads_per_rank": 2, "world_size": 1}}
    reference = {"config": {"threads_per_rank": 1, "world_size": 2}}
    parted = Divergence(3, "loss", "loss 2.1 vs 2.2")

    causes = _causes(candidate, reference, parted)

    assert _top_two(causes) == [("thread count", 6.0), ("world size (split, reduction)", 6.0)]


def test_score_still_comes_first() -> None:
    candidate = {"config": {"world_size": 1}, "run": {"world_size": 1}, "env": {"X": "1"}}
    reference = {"config": {"world_size": 2}, "run": {"world_size": 2}, "env": {"X": "2"}}

    causes = _causes(candidate, reference, Divergence(3, "loss", "loss 2.1 vs 2.2"))

    assert [cause.cause for cause in causes] == ["world size (split, reduction)"]
    assert causes[0].score == 9.0


# -- GPUs: what the card is, not how it runs now -------------------------------------------


def _gpu_manifest(card: dict[str, Any]) -> dict[str, Any]:
    bare_uuid = str(card["uuid"]).removeprefix("GPU-").lower()
    return {"hardware": gpu_probes(sm_counts={bare_uuid: 132}, nvml=FakeNVML([card]))}


PARTED_AT_STEP0 = Divergence(0, "forward", "blocks.0.attn, forward output differs first")


def test_clocks_and_pcie_link_are_no_cause() -> None:
    # A faulty card: clocks stuck low and its link trained down to gen 1 x4.
    faulty = {**H100, "clocks": {1: 345, 2: 405}, "pcie_generation": 1, "pcie_width": 4}
    healthy, suspect = _gpu_manifest(H100), _gpu_manifest(faulty)

    assert suspect["hardware"]["gpus"][0]["pcie"] == {"generation": 1, "width": 4}
    assert diff_manifests(suspect, healthy) == []
    assert _causes(suspect, healthy, PARTED_AT_STEP0) == []


def test_another_board_of_the_same_model_is_no_gpu_cause() -> None:
    other_board = {**H100, "uuid": "GPU-99999999-8888-7777-6666-555555555555"}

    differences = diff_manifests(_gpu_manifest(other_board), _gpu_manifest(H100))
    causes = _causes(_gpu_manifest(other_board), _gpu_manifest(H100), PARTED_AT_STEP0)

    assert [d.key for d in differences] == ["hardware.gpus.0.uuid_sha256"]
    assert GPU_CAUSE not in [cause.cause for cause in causes]


def test_another_gpu_model_is_the_gpu_cause() -> None:
    pcie_card = {**H100, "name": "NVIDIA H100 PCIe", "clocks": {1: 1755, 2: 1593}}

    causes = _causes(_gpu_manifest(pcie_card), _gpu_manifest(H100), PARTED_AT_STEP0)

    assert [cause.cause for cause in causes] == [GPU_CAUSE]
    assert causes[0].evidence[0] == (
        "hardware.gpus.0.name: NVIDIA H100 PCIe -> NVIDIA H100 80GB HBM3"
    )
