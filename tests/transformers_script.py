"""A Hugging Face ``Trainer`` training of the kind people write, recorded by repro's callback.

    python tests/transformers_script.py RUNS_DIR OUTPUT_DIR [--lr 3e-3] [--crash-at 5]

A one-layer GPT-2 built from a config (randomly initialised, nothing downloaded) learns
to continue generated sequences for a few steps, evaluated twice.
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from repro.integrations.transformers import ReproCallback

VOCAB, SEQ = 32, 16


class Sequences(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """Each token is the previous plus a per-sequence stride, modulo the vocabulary."""

    def __init__(self, seed: int, count: int, crash_at: int = -1) -> None:
        g = torch.Generator().manual_seed(seed)
        start = torch.randint(0, VOCAB, (count, 1), generator=g)
        stride = torch.randint(1, 5, (count, 1), generator=g)
        self.tokens = (start + stride * torch.arange(SEQ)) % VOCAB
        self.crash_at = crash_at

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        if i == self.crash_at:
            raise RuntimeError(f"the user's dataset broke at item {i}")
        return {"input_ids": self.tokens[i], "labels": self.tokens[i]}


def train(
    runs_dir: str, output_dir: str, *, lr: float = 3e-3, crash_at: int = -1, save: bool = False
) -> ReproCallback:
    args = TrainingArguments(
        output_dir=output_dir,
        report_to=[],
        use_cpu=True,
        seed=0,
        full_determinism=True,
        learning_rate=lr,
        max_steps=8,
        per_device_train_batch_size=16,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=4,
        save_strategy="steps" if save else "no",
        save_steps=4,
        disable_tqdm=True,
    )
    config = GPT2Config(vocab_size=VOCAB, n_positions=SEQ, n_embd=32, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    callback = ReproCallback(runs_dir=runs_dir)
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=Sequences(0, 128, crash_at),
        eval_dataset=Sequences(1, 32),
        callbacks=[callback],
    )
    trainer.train()
    return callback


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("runs_dir")
    parser.add_argument("output_dir")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--crash-at", type=int, default=-1)
    parser.add_argument("--save", action="store_true")
    args = parser.parse_args()
    train(args.runs_dir, args.output_dir, lr=args.lr, crash_at=args.crash_at, save=args.save)
