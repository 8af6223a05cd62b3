"""The reference training, one process per rank, started by torch's elastic launcher.

``repro run`` launches it for one node::

    python -m torch.distributed.run --standalone --nproc-per-node 2 -m repro.reference.train --plan PLAN.json

and the same module runs unchanged on a cluster (every node)::

    torchrun --nnodes 2 --nproc-per-node 1 --rdzv-backend c10d --rdzv-endpoint HOST:29400 \\
        -m repro.reference.train --profile quick --runs-dir runs

Step k: loss_k is computed from parameters p_k; update k produces p_{k+1};
p_0 is the initialisation. A plan may hold several runs (band members, seeds):
they execute one after another in this launch, paying the start-up once.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from repro import atomic
from repro.profile import Profile, build_profile
from repro.reference.data import TrainSet, eval_set, make_loader
from repro.reference.determinism import configure_determinism, derive_seed
from repro.reference.fingerprint import Fingerprinter, digest_ints, state_dict_identity, to_hex
from repro.reference.model import Transformer
from repro.reference.tracing import Tracer
from repro.store import RECORD_SCHEMA_VERSION, write_status

_BAND = 4  # derived-seed stream (see determinism.py for the others)
# Steps per cross-rank gather of the per-step rows: one collective instead of ten
# (about 1 ms each on gloo); every step's rows are still checked.
_GATHER_EVERY = 10
# The only buffer is the constant dropout key table: no need to re-send it every forward.
# torch 2.13 renamed the option; older releases know only the first spelling.
_NO_BUFFER_SYNC: dict[str, Any] = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
    else {"broadcast_buffers": False}
)
_AMP = {"bfloat16": torch.bfloat16, "float16": torch.float16}
_SDPA_NAMES = {0: "math", 1: "flash", 2: "efficient", 3: "cudnn", 4: "overrideable"}


class TrainingFailure(Exception):
    """NaN/Inf or desynchronised ranks: agreed on by every rank, so all stop at the same step."""

    def __init__(self, step: int, rank: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.step, self.rank, self.kind = step, rank, kind


def _lr_lambda(profile: Profile) -> Any:
    def factor(step: int) -> float:
        if step < profile.warmup_steps:
            shape = (step + 1) / profile.warmup_steps
        else:
            progress = (step - profile.warmup_steps) / max(1, profile.steps - profile.warmup_steps)
            cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
            shape = profile.min_lr_ratio + (1 - profile.min_lr_ratio) * cosine
        return profile.fault.lr_factor * shape

    return factor


def _sdpa_context(profile: Profile) -> AbstractContextManager[Any]:
    if profile.sdpa_backend == "default":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "math": SDPBackend.MATH,
        "flash": SDPBackend.FLASH_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
    }[profile.sdpa_backend]
    return sdpa_kernel(backend)


def _selected_sdpa_backend(profile: Profile, device: torch.device) -> str:
    """Which SDPA kernel torch picks for this model's attention shapes and dtype."""
    cfg = profile.model
    dtype = _AMP.get(profile.amp_dtype, torch.float32)
    q = torch.zeros(
        1, cfg.n_heads, cfg.seq_len, cfg.d_model // cfg.n_heads, device=device, dtype=dtype
    )
    try:
        choice = int(torch._fused_sdp_choice(q, q, q, None, 0.0, True))
    except Exception as exc:  # a private API: record why it could not be read
        return f"unknown ({exc.__class__.__name__})"
    return _SDPA_NAMES.get(choice, f"backend {choice}")


class RankTrainer:
    """One run on one rank. ``run`` returns normally, raises ``TrainingFailure``, or crashes."""

    def __init__(self, entry: dict[str, Any], rank: int, local_rank: int, world: int) -> None:
        self.run_dir = Path(entry["run_dir"])
        self.profile = build_profile(entry["settings"], f"plan entry {self.run_dir.name}")
        self.entry = entry
        self.rank, self.world = rank, world
        if self.profile.world_size != world:
            raise ValueError(
                f"profile {self.profile.name!r} needs world_size={self.profile.world_size} but the "
                f"launcher started {world} ranks; match --nnodes x --nproc-per-node to it."
            )
        cuda = self.profile.device == "cuda"
        self.device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        self.fault_rank = self.profile.fault.fault_rank % world
        self.quiet = bool(entry.get("quiet"))

    # -- building -----------------------------------------------------------------------------

    def _amp(self) -> AbstractContextManager[Any]:
        dtype = _AMP.get(self.profile.amp_dtype)
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _perturb_initial(self, model: torch.nn.Module) -> None:
        """Band members: relative noise at bf16 resolution, so autocast cannot absorb it."""
        gen = torch.Generator(device=self.device).manual_seed(
            derive_seed(self.profile.seed, _BAND, self.profile.band_member or 0)
        )
        with torch.no_grad():
            for p in model.parameters():
                noise = torch.rand(p.shape, generator=gen, device=self.device) * 2 - 1
                p.mul_(1 + self.profile.band_perturbation * noise)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> None:
        p = self.profile
        determinism = configure_determinism(p, self.rank)
        fingerprint = Fingerprinter(self.device)
        model = Transformer(p.model).to(self.device)
        if p.band_member is not None:
            self._perturb_initial(model)
        names = [n for n, _ in model.named_parameters()]
        params = [q for _, q in model.named_parameters()]

        def param_fps() -> torch.Tensor:
            return torch.stack([fingerprint(q) for q in params])

        initial = param_fps().tolist()
        ddp = DDP(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            **_NO_BUFFER_SYNC,
        )
        tracer = Tracer(fingerprint)
        tracer.watch(model)
        ddp.register_comm_hook(None, tracer.comm_hook)
        foreach = self.device.type == "cuda"
        optimizer = torch.optim.AdamW(
            params, lr=p.lr, betas=p.betas, weight_decay=p.weight_decay, foreach=foreach
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(p))
        scaler = torch.amp.GradScaler(self.device.type, enabled=p.amp_dtype == "float16")
        dataset = TrainSet(p, os_entropy_dropout=p.fault.nondeterministic)
        loader, sampler = make_loader(
            p, dataset, self.rank, self.world, pin_memory=self.device.type == "cuda"
        )

        if self.rank == 0:
            self._write_manifest(determinism, foreach, _selected_sdpa_backend(p, self.device))

        steps: list[dict[str, Any]] = []
        step_times: list[float] = []
        weights = torch.arange(len(params), dtype=torch.int64, device=self.device) * 2 + 1
        t_start = time.perf_counter()
        batches: Iterator[dict[str, Any]] = iter(())
        failure: TrainingFailure | None = None
        pending: list[tuple[int, torch.Tensor, float, float, float, list[int], Any]] = []
        with _sdpa_context(p):
            for step in range(p.steps):
                t0 = time.perf_counter()
                epoch, position = divmod(step, p.steps_per_epoch)
                if position == 0:
                    if not p.fault.skip_set_epoch:
                        sampler.set_epoch(epoch)
                    batches = iter(loader)
                batch = next(batches)
                tracer.active = step < p.trace_steps
                tokens = batch["tokens"].to(self.device, non_blocking=True)
                targets = batch["targets"].to(self.device, non_blocking=True)
                seeds = batch["dropout_seed"].to(self.device, non_blocking=True)
                with self._amp():
                    logits = ddp(tokens, seeds)  # (B, T, vocab)
                loss = F.cross_entropy(logits.float().view(-1, p.model.vocab), targets.view(-1))
                if p.fault.nan_step == step and self.rank == self.fault_rank:
                    loss = loss * float("nan")
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, p.grad_clip)
                loss_scale = float(scaler.get_scale()) if scaler.is_enabled() else 1.0
                lr = float(schedule.get_last_lr()[0])
                scaler.step(optimizer)
                scaler.update()
                schedule.step()
                self._inject_step_faults(step, params)
                fps = param_fps()  # p_{k+1}
                occurrences = batch["occurrence"].to(self.device, torch.int64)
                local = torch.cat(
                    [
                        (fps * weights).sum().view(1),
                        # 1: this rank's loss is NaN/Inf; 2: the (shared) gradient norm is.
                        (
                            (~torch.isfinite(loss.detach())).to(torch.int64)
                            + 2 * (~torch.isfinite(grad_norm)).to(torch.int64)
                        ).view(1),
                        loss.detach().float().view(1).view(torch.int32).to(torch.int64),
                        occurrences,
                    ]
                )
                trace = self._gather_trace(tracer.take()) if step < p.trace_steps else None
                if step + 1 == p.trace_steps:
                    tracer.unwatch()  # no hook cost once tracing is over
                norm = float(grad_norm)
                pending.append((step, local, norm, lr, loss_scale, fps.tolist(), trace))
                # Gradients are all-reduced, so every rank sees the same norm: a NaN/Inf
                # anywhere makes all ranks gather at this very step and stop together.
                if not math.isfinite(norm) or len(pending) == _GATHER_EVERY or step == p.steps - 1:
                    failure = self._gather_rows(pending, steps)
                    pending = []
                step_times.append(time.perf_counter() - t0)
                if failure:
                    break
                if self.rank == 0 and not self.quiet and steps:
                    self._progress(step, steps[-1]["loss"], step_times)
        train_s = time.perf_counter() - t_start
        if self.rank == 0 and not self.quiet:
            print(file=sys.stderr)
        if failure is not None:
            if self.rank == 0:
                self._write_failure(failure, names, initial, steps)
            raise failure
        if self.rank == 0:
            self._finish(model, names, initial, steps, step_times, train_s, foreach)
        dist.barrier()

    def _gather_rows(
        self,
        pending: list[tuple[int, torch.Tensor, float, float, float, list[int], Any]],
        steps: list[dict[str, Any]],
    ) -> TrainingFailure | None:
        """One all_gather for several steps' rows (losses, batch indices, NaN flags, parameter
        fingerprints); every rank checks every step's rows and so reaches the same decision."""
        block = torch.stack([row for _, row, *_ in pending])  # (steps, row)
        gathered = [torch.empty_like(block) for _ in range(self.world)]
        dist.all_gather(gathered, block)
        per_rank = [g.tolist() for g in gathered]
        for i, (step, _row, norm, lr, loss_scale, fps, trace) in enumerate(pending):
            rows = [per_rank[r][i] for r in range(self.world)]
            if self.rank == 0:
                steps.append(self._step_record(step, rows, norm, lr, loss_scale, fps, trace))
            failure = self._check_ranks(step, rows)
            if failure:
                return failure
        return None

    def _gather_trace(self, local: dict[str, Any]) -> list[dict[str, Any]]:
        """Every rank's trace on every rank (traced steps only): a rank's own backward can part first."""
        traces: list[Any] = [None] * self.world
        dist.all_gather_object(traces, local)
        return traces

    def _inject_step_faults(self, step: int, params: Sequence[torch.Tensor]) -> None:
        p = self.profile
        if p.band_member is not None:
            # Every step a perturbation far below the initial one keeps members from re-merging.
            gen = torch.Generator(device=self.device).manual_seed(
                derive_seed(p.seed, _BAND, p.band_member, step + 1)
            )
            with torch.no_grad():
                for q in params:
                    noise = torch.rand(q.shape, generator=gen, device=self.device) * 2 - 1
                    q.mul_(1 + p.band_perturbation / 32 * noise)
        if p.fault.desync_step == step and self.rank == self.fault_rank:
            with torch.no_grad():
                params[0].add_(1e-3)
        if p.fault.raise_step == step and self.rank == self.fault_rank:
            raise RuntimeError(f"injected fault: rank {self.rank} raised at step {step}")
        if p.fault.hang_step == step and self.rank == self.fault_rank:
            time.sleep(10 * p.collective_timeout_s + 3600)

    def _check_ranks(self, step: int, rows: list[list[int]]) -> TrainingFailure | None:
        """Every rank sees the same gathered rows, so every rank reaches the same decision."""
        # Name the rank whose own loss went bad; a NaN gradient norm is shared by all ranks.
        flagged = sorted((row[1] & 1 == 0, rank) for rank, row in enumerate(rows) if row[1])
        if flagged:
            rank = flagged[0][1]
            return TrainingFailure(
                step, rank, "nonfinite", f"NaN/Inf loss or gradient at step {step} on rank {rank}"
            )
        last = step == self.profile.steps - 1
        if step % self.profile.check_every == 0 or last:
            for rank, row in enumerate(rows[1:], start=1):
                if row[0] != rows[0][0]:
                    return TrainingFailure(
                        step,
                        rank,
                        "desync",
                        f"ranks desynchronised at step {step}: rank {rank}'s parameters differ from rank 0's",
                    )
        return None

    def _step_record(
        self,
        step: int,
        rows: list[list[int]],
        grad_norm: float,
        lr: float,
        loss_scale: float,
        fps: list[int],
        trace: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        rank_losses = [_float32_from_bits(row[2]) for row in rows]
        rank_batches = [row[3:] for row in rows]
        record: dict[str, Any] = {
            "step": step,
            "loss": math.fsum(rank_losses) / len(rank_losses),  # mean over the global batch
            "grad_norm": grad_norm,
            "lr": lr,
            "loss_scale": loss_scale,
            "global_batch": digest_ints(sorted(i for b in rank_batches for i in b)),
            "rank_batches": [digest_ints(b) for b in rank_batches],
            "params": [to_hex(v) for v in fps],
        }
        if trace is not None:
            record["trace"] = trace
        return record

    def _progress(self, step: int, loss: float, step_times: list[float]) -> None:
        every = max(1, self.profile.steps // 20)
        if step % every and step != self.profile.steps - 1:
            return
        recent = step_times[-every:]
        rate = self.profile.global_batch * len(recent) / max(sum(recent), 1e-9)
        end = "\r" if sys.stderr.isatty() else "\n"
        print(
            f"  step {step + 1:>5}/{self.profile.steps}  loss {loss:.4f}  {rate:8.1f} samples/s",
            end=end,
            file=sys.stderr,
            flush=True,
        )

    # -- outputs (rank 0) ---------------------------------------------------------------------

    def _write_manifest(self, determinism: dict[str, Any], foreach: bool, sdpa: str) -> None:
        from repro.manifest import capture_manifest
        from repro.manifest.schema import write_manifest

        p = self.profile
        manifest = capture_manifest(self.entry.get("repo"), argv=self.entry.get("argv"))
        manifest["run"] = {
            "device": self.device.type,
            "world_size": self.world,
            "threads_per_rank": p.threads_per_rank,
            "amp_dtype": p.amp_dtype,
            "sdpa_backend": sdpa,
            "optimizer_impl": "foreach" if foreach else "for-loop",
            "seeds": {k: v for k, v in determinism.items() if k.endswith("seed")},
            "deterministic": {k: v for k, v in determinism.items() if not k.endswith("seed")},
        }
        manifest["config"] = p.to_dict()
        write_manifest(self.run_dir / "manifest.yaml", manifest)

    def _evaluate(self, model: torch.nn.Module) -> tuple[float, float]:
        """Mean token loss and accuracy over the held-out set, on rank 0 alone."""
        tokens, targets = eval_set(self.profile)
        model.eval()
        loss_sum, correct = 0.0, 0
        seeds = torch.zeros(self.profile.eval_batch, dtype=torch.int64, device=self.device)
        with torch.no_grad(), _sdpa_context(self.profile):
            for start in range(0, len(tokens), self.profile.eval_batch):
                x = tokens[start : start + self.profile.eval_batch].to(self.device)
                y = targets[start : start + self.profile.eval_batch].to(self.device)
                with self._amp():
                    logits = model(x, seeds[: len(x)])
                logits = logits.float().view(-1, self.profile.model.vocab)
                loss_sum += float(F.cross_entropy(logits, y.view(-1), reduction="sum").double())
                correct += int((logits.argmax(-1) == y.view(-1)).sum())
        model.train()
        n = targets.numel()
        return loss_sum / n, correct / n

    def _finish(
        self,
        model: torch.nn.Module,
        names: list[str],
        initial: list[int],
        steps: list[dict[str, Any]],
        step_times: list[float],
        train_s: float,
        foreach: bool,
    ) -> None:
        eval_loss, eval_accuracy = self._evaluate(model)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        identity = state_dict_identity(state)
        checkpoint = self.run_dir / "checkpoint.pt"
        tmp = self.run_dir / ".checkpoint.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, checkpoint)
        import hashlib

        file_sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
        final = {
            "eval_loss": eval_loss,
            "eval_accuracy": eval_accuracy,
            "converged": eval_accuracy >= self.profile.converged_accuracy,
            "checkpoint_identity": identity,
        }
        atomic.write_json(self.run_dir / "record.json", self._record(names, initial, steps, final))
        atomic.write_json(
            self.run_dir / "timings.json",
            {
                "train_seconds": train_s,
                "step_seconds": step_times,
                "samples_per_second": self.profile.global_batch
                * len(step_times)
                / max(train_s, 1e-9),
                "checkpoint_file_sha256": file_sha,
            },
        )
        status = "COMPLETE" if final["converged"] else "FAILED"
        detail = (
            {}
            if final["converged"]
            else {
                "reason": f"not converged: evaluation accuracy {eval_accuracy:.4f} is below "
                f"the profile's {self.profile.converged_accuracy}",
                "kind": "not_converged",
            }
        )
        write_status(self.run_dir, status, **detail)  # the last act of a run

    def _record(
        self,
        names: list[str],
        initial: list[int],
        steps: list[dict[str, Any]],
        final: dict[str, Any] | None,
    ) -> dict[str, Any]:
        return {
            "schema_version": RECORD_SCHEMA_VERSION,
            "profile": self.profile.name,
            "seed": self.profile.seed,
            "world_size": self.world,
            "param_names": names,
            "initial_params": [to_hex(v) for v in initial],
            "steps": steps,
            "final": final,
        }

    def _write_failure(
        self,
        failure: TrainingFailure,
        names: list[str],
        initial: list[int],
        steps: list[dict[str, Any]],
    ) -> None:
        record = self._record(names, initial, steps, None)
        record["failure"] = {
            "step": failure.step,
            "rank": failure.rank,
            "kind": failure.kind,
            "message": str(failure),
        }
        atomic.write_json(self.run_dir / "record.json", record)
        write_status(
            self.run_dir,
            "FAILED",
            reason=str(failure),
            kind=failure.kind,
            step=failure.step,
            rank=failure.rank,
        )


def _float32_from_bits(bits: int) -> float:
    return float(torch.tensor([bits], dtype=torch.int64).to(torch.int32).view(torch.float32).item())


def _write_rank_error(run_dir: Path, rank: int, exc: BaseException) -> None:
    with suppress(OSError):
        atomic.write_json(
            run_dir / f"error-rank{rank}.json",
            {
                "rank": rank,
                "error": f"{exc.__class__.__name__}: {exc}",
                "traceback": traceback.format_exc(),
            },
        )


def _load_plan(args: argparse.Namespace, rank: int) -> list[dict[str, Any]]:
    if args.plan:
        plan: list[dict[str, Any]] = json.loads(Path(args.plan).read_text())
        return plan
    # Direct use under torchrun (multi-node): rank 0 prepares the run, the others learn where.
    from repro.runner import prepare_run

    box: list[Any] = [None]
    if rank == 0:
        box[0] = prepare_run(
            args.profile,
            args.set,
            runs_dir=Path(args.runs_dir),
            repo=args.repo,
            argv=sys.argv,
            quiet=args.quiet,
        )
    dist.broadcast_object_list(box, src=0)
    return [box[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m repro.reference.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--plan", help="JSON list of prepared runs (written by `repro run`)")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--runs-dir", default=os.environ.get("REPRO_RUNS_DIR", "runs"))
    parser.add_argument("--repo", default=None)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="collective timeout in seconds")
    args = parser.parse_args(argv)

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = os.environ.get("REPRO_DEVICE", "cpu") == "cuda"
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=args.timeout))
    current: Path | None = None
    try:
        for entry in _load_plan(args, rank):
            current = Path(entry["run_dir"])
            try:
                RankTrainer(entry, rank, local_rank, world).run()
            except TrainingFailure:
                continue  # recorded by rank 0; every rank agreed, so the launch goes on
        return 0
    except BaseException as exc:
        if current is not None:
            _write_rank_error(current, rank, exc)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
