"""``repro checkpoint inspect`` on each layout made for real, and ``repro.checkpoint.save`` /
``load`` resuming a training bit for bit (one process, CPU, a few milliseconds of training).
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import repro.checkpoint
from repro.cli import main
from repro.errors import UserError


def _training(seed: int = 0) -> tuple[torch.nn.Module, Any, Any]:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.2), torch.nn.Linear(8, 1))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    return model, optimizer, schedule


def _step(model: torch.nn.Module, optimizer: Any, schedule: Any) -> None:
    x = torch.randn(16, 4)  # drawn from the global generator, as dropout is
    loss = (model(x) + float(np.random.rand()) * random.random()).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    schedule.step()


def test_save_and_load_resume_a_training_bit_for_bit(tmp_path: Path) -> None:
    model, optimizer, schedule = _training()
    for _ in range(3):
        _step(model, optimizer, schedule)
    repro.checkpoint.save(
        tmp_path / "ckpt.pt", model=model, optimizer=optimizer, scheduler=schedule, step=2
    )
    for _ in range(3):
        _step(model, optimizer, schedule)
    uninterrupted = [p.detach().clone() for p in model.parameters()]

    # Another process's state: other weights, other RNG positions, a fresh optimizer.
    model, optimizer, schedule = _training(seed=99)
    random.seed(5), np.random.seed(5)
    extra = repro.checkpoint.load(
        tmp_path / "ckpt.pt", model=model, optimizer=optimizer, scheduler=schedule
    )
    assert extra == {"step": 2}
    for _ in range(3):
        _step(model, optimizer, schedule)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), uninterrupted))
    torch.load(tmp_path / "ckpt.pt", weights_only=True)  # never needs weights_only=False


def test_load_refuses_another_layout_in_one_sentence(tmp_path: Path) -> None:
    model, _, _ = _training()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(UserError, match=r"not written by repro\.checkpoint\.save; inspect it"):
        repro.checkpoint.load(tmp_path / "weights.pt", model=model)


def _inspect(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["checkpoint", "inspect", str(path), "--json"]) == 0
    found: dict[str, Any] = json.loads(capsys.readouterr().out)
    return found


def test_a_bare_state_dict_restores_nothing_but_the_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, _, _ = _training()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    found = _inspect(tmp_path / "model.pt", capsys)
    assert found["layout"] == "bare state_dict (weights only)"
    assert found["holds"] == {"model": "4 tensors, 49 values"}
    assert list(found["missing"]) == ["optimizer", "scaler", "scheduler", "rng", "sampler"]
    assert main(["checkpoint", "inspect", str(tmp_path / "model.pt")]) == 0
    text = capsys.readouterr().out
    assert "cannot restore" in text and '"optimizer": optimizer.state_dict()' in text


def test_a_dict_of_pieces_names_the_optimizer_and_its_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, optimizer, schedule = _training()
    _step(model, optimizer, schedule)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}
    torch.save(state, tmp_path / "ckpt.pt")
    found = _inspect(tmp_path / "ckpt.pt", capsys)
    assert found["layout"] == "dict of pieces"
    assert found["holds"]["optimizer"] == "AdamW, 4 parameters' state, step 1"
    assert found["other"] == ["epoch"]
    assert list(found["missing"]) == ["scaler", "scheduler", "rng", "sampler"]


def test_a_repro_checkpoint_lacks_only_what_it_was_not_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, optimizer, schedule = _training()
    dataset = torch.utils.data.TensorDataset(torch.arange(8))
    sampler: Any = torch.utils.data.DistributedSampler(dataset, num_replicas=1, rank=0)
    scaler = torch.amp.GradScaler("cpu")
    repro.checkpoint.save(
        tmp_path / "full.pt",
        model=model,
        optimizer=optimizer,
        scaler=scaler,
        scheduler=schedule,
        sampler=sampler,
        step=0,
    )
    found = _inspect(tmp_path / "full.pt", capsys)
    assert found["layout"] == "repro.checkpoint/1 file"
    assert found["missing"] == {}
    assert found["holds"]["rng"].startswith("1 ranks: numpy, python, torch_cpu")


def _safetensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """The safetensors format by hand: a little-endian u64 header length, the JSON header,
    then the raw bytes."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset, blobs = 0, []
    for name, t in tensors.items():
        blob = t.contiguous().numpy().tobytes()
        header[name] = {
            "dtype": "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))


def test_a_hugging_face_folder_with_the_trainers_contents(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, optimizer, schedule = _training()
    _step(model, optimizer, schedule)
    folder = tmp_path / "checkpoint-1"
    folder.mkdir()
    _safetensors(folder / "model.safetensors", model.state_dict())
    torch.save(optimizer.state_dict(), folder / "optimizer.pt")
    torch.save(schedule.state_dict(), folder / "scheduler.pt")
    # What Trainer._save_rng_state writes: numpy's state as pickled by numpy itself.
    rng = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.get_rng_state(),
    }
    torch.save(rng, folder / "rng_state.pth")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 1, "epoch": 0.25}))
    found = _inspect(folder, capsys)
    assert found["layout"] == "Hugging Face checkpoint folder"
    assert found["holds"]["model"] == "4 tensors, 49 values (model.safetensors)"
    assert found["holds"]["rng"] == "1 file(s) (rng_state.pth: cpu, numpy, python)"
    assert found["holds"]["sampler"].startswith("epoch 0.25, global step 1")
    assert list(found["missing"]) == ["scaler"]


# Lightning 2.6 still builds torch's LeafSpec, which torch 2.13 deprecates.
@pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\)` is deprecated")
def test_a_lightning_checkpoint_written_by_lightning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lightning = pytest.importorskip("lightning")

    class Module(lightning.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, _: int) -> torch.Tensor:
            loss: torch.Tensor = self.net(batch[0]).pow(2).mean()
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(8, 4)), batch_size=4
    )
    trainer = lightning.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Module(), data)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    found = _inspect(tmp_path / "last.ckpt", capsys)
    assert found["layout"] == f"Lightning checkpoint (Lightning {lightning.__version__})"
    assert found["holds"]["optimizer"] == "SGD with momentum, 2 parameters' state"
    assert found["holds"]["sampler"] == "epoch 1, global step 2"
    assert list(found["missing"]) == ["scaler", "scheduler", "rng"]


def test_a_text_file_and_a_truncated_file_are_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.pt").write_text("not a checkpoint\n")
    model, _, _ = _training()
    torch.save(model.state_dict(), tmp_path / "whole.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:300])
    for name in ("notes.pt", "cut.pt"):
        assert main(["checkpoint", "inspect", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"{name} is not a readable checkpoint" in err
