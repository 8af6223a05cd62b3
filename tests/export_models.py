"""Factories for tests/test_export_check.py (``repro export-check export_models.py:NAME``)."""

from __future__ import annotations

import torch
from torch import nn


class TinyTransformer(nn.Module):
    """Token ids (B, T) -> logits (B, T, vocab): embedding, 2 encoder layers, a head."""

    def __init__(self, vocab: int = 50, width: int = 32) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(tokens)))


class BranchesOnLength(nn.Module):
    """A Python branch on the sequence length: a trace keeps only the branch it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)
        if x.shape[1] > 4:  # long sequences are averaged, short ones kept per position
            return y.mean(dim=1, keepdim=True).expand_as(y)
        return y


def _tokens(*shape: int) -> torch.Tensor:
    return torch.randint(0, 50, shape, generator=torch.Generator().manual_seed(sum(shape)))


def transformer():
    torch.manual_seed(0)
    return TinyTransformer().eval(), (_tokens(2, 8),)


def transformer_in_train_mode():
    torch.manual_seed(0)
    return TinyTransformer().train(), (_tokens(2, 8),)


def branches():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    return (
        BranchesOnLength().eval(),
        torch.randn(2, 6, 8, generator=g),
        [torch.randn(2, 3, 8, generator=g)],
    )


def mlp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.GELU(), nn.Linear(32, 4)).eval()
    return model, (torch.randn(5, 16, generator=torch.Generator().manual_seed(2)),)
