"""A Lightning training of the kind people write, recorded by repro's callback.

    python tests/lightning_script.py RUNS_DIR [--lr 3e-3] [--devices 2] [--crash-at 5]

A small Transformer learns to continue generated sequences; seeded and deterministic,
so only the thread count and kernels can move its numbers. Run in-process by the tests
(``fit``) and as a script for DDP, where Lightning relaunches this file once per rank.
"""

from __future__ import annotations

import argparse
import warnings

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from repro.integrations.lightning import ReproCallback

VOCAB, SEQ = 32, 16

# Lightning's advice for real datasets, about these tiny in-memory ones (no workers, few
# batches): named here so every other warning still fails the tests.
QUIET = (
    r".*does not have many workers.*",
    r".*number of training batches.*is smaller than the logging interval.*",
    # Lightning 2.6 still builds torch's LeafSpec, which torch 2.13 deprecates.
    r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",
)


def sequences(seed: int, count: int) -> torch.utils.data.TensorDataset:
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (count, 1), generator=g)
    stride = torch.randint(1, 5, (count, 1), generator=g)
    tokens = (start + stride * torch.arange(SEQ + 1)) % VOCAB
    return torch.utils.data.TensorDataset(tokens[:, :-1], tokens[:, 1:])


class Model(pl.LightningModule):
    def __init__(self, lr: float = 3e-3, width: int = 32, crash_at: int = -1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.lr, self.crash_at = lr, crash_at
        self.embed = nn.Embedding(VOCAB, width)
        layer = nn.TransformerEncoderLayer(width, 2, 2 * width, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(width, VOCAB)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.body(self.embed(x)))
        return logits

    def _loss(self, batch: list[torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1))

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if batch_idx == self.crash_at:
            raise RuntimeError("the user's training_step broke")
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def fit(
    runs_dir: str,
    *,
    lr: float = 3e-3,
    devices: int = 1,
    crash_at: int = -1,
    csv_dir: str | None = None,
) -> ReproCallback:
    """One training; with ``csv_dir``, also logged every step by Lightning's CSVLogger."""
    pl.seed_everything(0, verbose=False)
    callback = ReproCallback(runs_dir=runs_dir)
    logger = CSVLogger(csv_dir) if csv_dir is not None else False
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy="ddp" if devices > 1 else "auto",
        max_epochs=1,
        deterministic=True,
        callbacks=[callback],
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    loader = torch.utils.data.DataLoader(sequences(0, 192), batch_size=16)
    val = torch.utils.data.DataLoader(sequences(1, 32), batch_size=16)
    with warnings.catch_warnings():
        for message in QUIET:
            warnings.filterwarnings("ignore", message=message)
        trainer.fit(Model(lr=lr, crash_at=crash_at), loader, val)
    return callback


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_dir")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--crash-at", type=int, default=-1)
    args = parser.parse_args()
    fit(args.runs_dir, lr=args.lr, devices=args.devices, crash_at=args.crash_at)
