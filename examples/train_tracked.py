"""A training script of the kind people write, tracked by repro.

    python examples/train_tracked.py --runs-dir runs
    torchrun --nproc-per-node 2 examples/train_tracked.py --runs-dir runs
    python examples/train_tracked.py --stop-at 29     # saves runs/<run>/checkpoint.pt
    python examples/train_tracked.py --resume runs/<run>/checkpoint.pt

A small Transformer learns to continue generated sequences (each token is the previous
plus a per-sequence stride, modulo the vocabulary); it prints the held-out accuracy.
Under torchrun the batch is split across ranks (DDP over gloo). Everything that decides
the numbers is seeded; the thread count and kernels are whatever the machine gives, so
two machines (or one with another OMP_NUM_THREADS) can disagree, and `repro compare`
says where and why. A run stopped with ``--stop-at`` and resumed with ``--resume`` is
bit-identical to the run that never stopped; ``--weights-only`` resumes as a script that
kept only ``model.state_dict()`` does, and `repro compare` says where that one parts.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

import repro
import repro.checkpoint

VOCAB, SEQ = 64, 32


def batches(seed: int, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, VOCAB, (count * size, 1), generator=g)
    stride = torch.randint(1, 5, (count * size, 1), generator=g)
    tokens = (start + stride * torch.arange(SEQ + 1)) % VOCAB
    return tokens[:, :-1].view(count, size, SEQ), tokens[:, 1:].reshape(count, size, SEQ)


class Model(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, width)
        self.pos = nn.Parameter(torch.zeros(SEQ, width))
        layer = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True)
        self.body = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(width, VOCAB)
        self.mask = nn.Transformer.generate_square_subsequent_mask(SEQ)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(
            self.body(self.embed(x) + self.pos, mask=self.mask, is_causal=True)
        )
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tensorboard", action="store_true", help="also log to TensorBoard, in the run's folder"
    )
    parser.add_argument(
        "--stop-at", type=int, metavar="K", help="stop after step K, saving checkpoint.pt"
    )
    parser.add_argument("--resume", metavar="PATH", help="go on from a --stop-at checkpoint")
    parser.add_argument(
        "--weights-only", action="store_true", help="with --resume: restore the weights alone"
    )
    args = parser.parse_args()

    distributed = "RANK" in os.environ
    rank, world = (
        (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if distributed else (0, 1)
    )
    if distributed:
        dist.init_process_group("gloo")
    torch.manual_seed(args.seed)
    model = Model(args.width)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr)
    xs, ys = batches(args.seed, args.steps, args.batch)
    test_x, test_y = batches(args.seed + 1, 1, 256)
    share = args.batch // world
    # What defines the training: where it is logged, stopped or resumed from does not.
    how = ("runs_dir", "tensorboard", "stop_at", "resume", "weights_only")
    config = {k: v for k, v in vars(args).items() if k not in how}
    with repro.track(config=config, seed=args.seed, runs_dir=args.runs_dir) as run:
        board = None
        if args.tensorboard and rank == 0 and run.path is not None:
            from torch.utils.tensorboard import SummaryWriter

            board = SummaryWriter(str(run.path / "tensorboard"))
        start = 0
        if args.resume:
            # Inside the tracked run, load records the resume: its step and what it restored.
            optimizer = None if args.weights_only else opt
            start = repro.checkpoint.load(args.resume, model=model, optimizer=optimizer)["step"] + 1
        for step in range(start, args.steps):
            x = xs[step, rank * share : (rank + 1) * share]
            y = ys[step, rank * share : (rank + 1) * share]
            loss = F.cross_entropy(net(x).view(-1, VOCAB), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            run.log(step, loss=loss.detach(), grad_norm=grad_norm)
            if board is not None:
                board.add_scalar("loss", loss.item(), step)
                board.add_scalar("grad_norm", grad_norm.item(), step)
            if step == args.stop_at and run.path is not None:
                checkpoint = run.path / "checkpoint.pt"  # every rank calls save: it gathers RNGs
                repro.checkpoint.save(checkpoint, model=model, optimizer=opt, step=step)
                if rank == 0:
                    print(f"{run.path}  stopped after step {step}: {checkpoint}")
                if board is not None:
                    board.close()
                if distributed:
                    dist.destroy_process_group()
                return
        with torch.no_grad():
            logits = model(test_x[0])
            accuracy = (logits.argmax(-1) == test_y[0]).float().mean()
            eval_loss = F.cross_entropy(logits.view(-1, VOCAB), test_y[0].reshape(-1))
        run.final(eval_accuracy=accuracy, eval_loss=eval_loss)
        if board is not None:
            board.add_scalar("final/eval_accuracy", float(accuracy), args.steps)
            board.add_scalar("final/eval_loss", float(eval_loss), args.steps)
            board.close()
        run.fingerprint(model)
    if rank == 0:
        print(f"{run.path}  eval_accuracy {float(accuracy):.4f}  eval_loss {float(eval_loss):.4f}")
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
