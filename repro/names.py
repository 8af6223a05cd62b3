"""Module and parameter names as a reader would say them.

``blocks.0.attn.qkv`` -> ``block 0 attention qkv projection``.
"""

from __future__ import annotations

_PARTS = {
    "tok_emb": "token embedding",
    "pos_emb": "position embedding",
    "ln1": "pre-attention LayerNorm",
    "ln2": "pre-MLP LayerNorm",
    "attn": "attention",
    "qkv": "qkv projection",
    "mlp": "MLP",
    "fc": "up projection",
    "act": "GELU",
    "ln_f": "final LayerNorm",
    "head": "output head",
    "weight": "weight",
    "bias": "bias",
}


def readable(dotted: str) -> str:
    parts = dotted.split(".")
    words: list[str] = []
    i = 0
    while i < len(parts):
        part = parts[i]
        if part == "blocks" and i + 1 < len(parts):
            words.append(f"block {parts[i + 1]}")
            i += 2
            continue
        if part == "proj":
            words.append("down projection" if "mlp" in parts[:i] else "output projection")
        else:
            words.append(_PARTS.get(part, part))
        i += 1
    return " ".join(words)
