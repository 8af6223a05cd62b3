"""A small pre-norm Transformer whose dropout masks come from the data, not from an RNG.

Dropout masks are derived from each sample's 32-bit ``dropout_seed`` (itself a
function of the master seed, the epoch and the global sample index) through a
counter-based hash evaluated on the device. So a sample gets the same masks
whichever rank, worker or batch position it lands on: 1 rank and 2 ranks with
the same global batch differ only by how the batch is split and reduced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from repro.profile import ModelConfig

_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 integer hash on int64 tensors holding values in [0, 2**32).

    Pure integer arithmetic, so CPU and every GPU produce the same bits.
    """
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


class HashDropout(nn.Module):
    """Inverted dropout whose keep-mask is ``hash32(sample_seed ^ key[site, t, c]) >= p * 2**32``."""

    keys: torch.Tensor

    def __init__(self, p: float, n_sites: int, seq_len: int, width: int) -> None:
        super().__init__()
        self.p = p
        positions = torch.arange(n_sites * seq_len * width, dtype=torch.int64)
        # One fixed key per (site, position, channel); not a parameter, not saved.
        self.register_buffer(
            "keys", hash32(positions).view(n_sites, seq_len, width), persistent=False
        )
        self.threshold = int(p * 2**32)

    def forward(self, x: torch.Tensor, seeds: torch.Tensor, site: int) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        T = x.size(1)
        bits = hash32(seeds.view(-1, 1, 1) ^ self.keys[site, :T])  # (B, T, C)
        keep = bits >= self.threshold
        return x * keep.to(x.dtype) / (1.0 - self.p)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # (B, nh, T, hs)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))  # type: ignore[no-any-return]


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.act = nn.GELU()
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.act(self.fc(x)))  # type: ignore[no-any-return]


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, index: int) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)
        self.sites = (1 + 2 * index, 2 + 2 * index)  # dropout sites of the two residual branches

    def forward(self, x: torch.Tensor, seeds: torch.Tensor, dropout: HashDropout) -> torch.Tensor:
        x = x + dropout(self.attn(self.ln1(x)), seeds, self.sites[0])
        return x + dropout(self.mlp(self.ln2(x)), seeds, self.sites[1])  # type: ignore[no-any-return]


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.seq_len, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab)
        # Sites: the embedding, then attention and MLP residual branch of each block.
        self.dropout = HashDropout(cfg.dropout, 1 + 2 * cfg.n_layers, cfg.seq_len, cfg.d_model)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens: torch.Tensor, dropout_seeds: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) int64, dropout_seeds (B,) int64 -> logits (B, T, vocab)."""
        T = tokens.size(1)
        pos = torch.arange(T, device=tokens.device)
        x = self.dropout(self.tok_emb(tokens) + self.pos_emb(pos), dropout_seeds, 0)
        for block in self.blocks:
            x = block(x, dropout_seeds, self.dropout)
        return self.head(self.ln_f(x))  # type: ignore[no-any-return]
