"""What ``repro export-check`` costs per format, against exporting and comparing by hand.

    python benchmarks/bench_export.py [--repeat 3] [--width 64] [--held-out 40] [--smoke]

Model: a Transformer encoder (embedding, 2 layers, head) in eval mode on token ids
(4, 32), the ``--width`` setting its size. For each format, interleaved in one process:

* ``by hand``: the exporter, one run of the exported model and one
  ``torch.testing.assert_close`` against eager (what a user writes without repro);
* ``export-check``: ``check_subject`` for that format alone, calibration included.

The ratio is export-check's median over by hand's. Also: the calibration's own seconds,
and how many held-out one-ulp weight nudges (seeds the calibration never saw) fall
outside the bound: the false-alarm rate the stated alpha promises to stay under.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from torch import nn

from repro.export.check import check_subject
from repro.export.formats import FORMATS
from repro.export.onnx_format import missing_packages
from repro.export.subject import Subject
from repro.export.tolerance import calibrate, nudge, run_eager
from runner import Timing, add_smoke_option, print_table


class Encoder(nn.Module):
    def __init__(self, width: int, vocab: int = 100) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 4, 2 * width, dropout=0.1, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.enc(self.emb(tokens)))


def by_hand(fmt: str, model: nn.Module, example: tuple[torch.Tensor, ...]) -> float:
    """Export, run once, assert_close against eager: the alternative, in seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TorchScript's deprecation, the exporters' notes
        want = model(*example)
        if fmt == "export":
            got = torch.export.export(model, example).module()(*example)
        elif fmt == "torchscript":
            got = torch.jit.trace(model, example, check_trace=False)(*example)
        else:
            import onnxruntime as ort

            program = torch.onnx.export(model, example, dynamo=True, verbose=False)
            assert program is not None  # None only for the legacy exporter writing a file
            session = ort.InferenceSession(program.model_proto.SerializeToString())
            feed = {session.get_inputs()[0].name: example[0].numpy()}
            got = torch.from_numpy(session.run(None, feed)[0])
        torch.testing.assert_close(got, want)
    return time.perf_counter() - start


def held_out_alarms(subject: Subject, members: int, held_out: int) -> tuple[int, int, float]:
    """(nudges outside the bound, nudges tried, calibration seconds)."""
    model = subject.model
    references = [run_eager(model, s) for s in subject.input_sets]
    cal = calibrate(model, subject.input_sets, references, members=members)
    bound = cal.bound(1, 0).bound
    originals = {n: p.detach().clone() for n, p in model.named_parameters()}
    alarms = 0
    try:
        for seed in range(held_out):
            generator = torch.Generator().manual_seed(50_000 + seed)  # never a calibration seed
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(nudge(originals[name], generator))
            got = run_eager(model, subject.example)[0]
            alarms += float((got.double() - references[0][0].double()).abs().max()) > bound
    finally:
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(originals[name])
    return alarms, held_out, cal.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=40)
    add_smoke_option(parser)
    args = parser.parse_args()
    repeat, width, held_out = (1, 16, 4) if args.smoke else (args.repeat, args.width, args.held_out)
    torch.manual_seed(0)
    model = Encoder(width).eval()
    example = (torch.randint(0, 100, (4, 32), generator=torch.Generator().manual_seed(1)),)
    subject = Subject(model, [example], "bench")
    formats = [f for f in FORMATS if f != "onnx" or not missing_packages()]
    params = sum(p.numel() for p in model.parameters())
    timings: list[Timing] = []
    for fmt in formats:
        hand: list[float] = []
        check: list[float] = []
        for _ in range(repeat):  # interleaved: machine drift hits both alike
            hand.append(by_hand(fmt, model, example))
            start = time.perf_counter()
            result = check_subject(subject, formats=[fmt])
            check.append(time.perf_counter() - start)
            assert result.verdict.passed, result.summary
        timings += [
            Timing(f"{fmt}: by hand", tuple(hand)),
            Timing(f"{fmt}: export-check", tuple(check)),
        ]
    title = f"repro export-check per format ({params:,} parameters, {4 * params / 1e6:.2f} MB fp32)"
    for fmt in formats:
        pair = [t for t in timings if t.name.startswith(f"{fmt}:")]
        print_table(f"{title}: {fmt}", pair, baseline=f"{fmt}: by hand", unit="s")
    alarms, tried, seconds = held_out_alarms(subject, 16, held_out)
    print(
        f"\ncalibration (16 nudged eager runs): {seconds:.2f} s; held-out nudges outside the "
        f"bound: {alarms}/{tried} (alpha 0.01 per format)"
    )
    if missing_packages():
        print(f"onnx not measured: {', '.join(missing_packages())} not installed")


if __name__ == "__main__":
    main()
