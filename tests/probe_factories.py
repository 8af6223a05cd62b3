"""Small models for ``repro probe``: each factory returns (model, batch[, loss_fn[, optimizer]]).

The nondeterminism here is real, never simulated: a CPU kernel's thread race, a generator
the model holds, an op torch itself flags.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# The backward of w[idx] accumulates rows with atomic adds split over the threads; with
# 2 threads it needs enough indices that both threads run at once even on a loaded machine
# (measured: 32768 indices often gave identical repeats under load 7 on 2 cores, 262144
# differed in 19 of 19 pairs).
EMBEDDING_INDICES = 262144


class Lookup(nn.Module):
    """An embedding written as advanced indexing: its backward is index_put_(accumulate)."""

    def __init__(self, rows: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(rows, dim))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.weight[idx]
        return out


class Tagger(nn.Module):
    """Scores 16 tags per token straight from its embedding row (cheap: the test's cost is
    the lookup's backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = Lookup(64, 16)
        self.scale = nn.Parameter(torch.ones(16))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.emb(idx) * self.scale
        return out


class Jitter(nn.Module):
    """Noise from a generator of its own, seeded from the operating system: unseeded."""

    def __init__(self) -> None:
        super().__init__()
        self.gen = torch.Generator()
        self.gen.seed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.1 * torch.randn(x.shape, generator=self.gen)


class Scatter(nn.Module):
    """put_ with accumulate=False: torch flags it under deterministic mode (warn_only)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(8, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin(x).clone()
        out: torch.Tensor = y.put_(torch.tensor([0, 5]), torch.tensor([1.0, 2.0]))
        return out


def deterministic() -> tuple[Any, ...]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
    x, y = torch.randn(64, 16), torch.randn(64, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, x, lambda out: nn.functional.mse_loss(out, y), opt


def embedding() -> tuple[Any, ...]:
    torch.manual_seed(0)
    model = Tagger()
    idx = torch.randint(0, 64, (EMBEDDING_INDICES,))
    y = torch.randint(0, 16, (EMBEDDING_INDICES,))
    # A loss with targets: the sum of the outputs would send every row the same few
    # gradient values, whose sums come out alike in any order.
    loss_fn = lambda out: nn.functional.cross_entropy(out, y)  # noqa: E731
    return model, idx, loss_fn, torch.optim.SGD(model.parameters(), lr=0.1)


def unseeded() -> dict[str, Any]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), Jitter(), nn.Linear(8, 1))
    return {"model": model, "batch": torch.randn(4, 8)}


def flagged() -> tuple[Any, ...]:
    torch.manual_seed(0)
    return nn.Sequential(Scatter(), nn.Linear(8, 1)), torch.randn(4, 8)


def not_a_model() -> tuple[Any, ...]:
    return "model", torch.zeros(1)


def crashes() -> tuple[Any, ...]:
    return nn.Linear(3, 1), torch.zeros(2, 4)  # the batch does not fit the layer
