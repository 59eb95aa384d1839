"""Normalized trunks with exact statistics (Spec(norm="exact")) against keeping them (norm="fixed").

For each zoo model with LayerNorm or a hand-written LayerNorm2d (NAFNet at width 32 as in
bench_latency.py; SwinIR, Restormer, shifted-window SwinIR, Uformer and Restormer-UNet at 32
channels, wide enough that round_to=8 can halve them), a hand-written
NAFNet block, and EDSR as the CNN reference, this prunes by L1 at ratio 0.5 (round_to=8) in both
modes and reports: the kept MAC fraction; exactness, the largest |sliced − masked| on a fresh
input at another size than the example (the masked model is the reference the decision means);
ONNX Runtime parity (fxprune.export_onnx's check); and the ORT latency of the pruned model ÷ the
dense one (2 threads, interleaved rounds, median). Models are random-initialized: MACs, exactness
and latency do not depend on the weights.

Then NAFNet's latency floor (every group at its smallest rounded count, sliced and timed) in both
modes, and ``Spec(latency=0.5)`` on NAFNet in both modes: refused (SpecError) or met (measured ÷
dense, goal within ±10% of 0.5).

Last, the exported form of a LayerNorm over kept channels (C' = 32 of C = 64 on 64×64 tokens,
between two Linear layers that are the same in every form): the decomposed form the slicing pass
writes (ReduceMean, Sub, Mul, Sqrt ...) against padding the kept channels back to C with zeros
around ONNX's native LayerNormalization and slicing after it (equal results), with the plain
LayerNormalization over the kept channels (what renormalizing computes; not exact) beside.

    python benchmarks/bench_norm.py            # ~10-15 min on 2 idle cores, writes RESULTS.md
    python benchmarks/bench_norm.py --quick    # smoke test (~2 min), small inputs, prints only
"""
from __future__ import annotations

import argparse
import datetime
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import fxprune
from fxprune.masking import masked_model
from fxprune.models import build
from fxprune.passes.slice_channels import slice_channels
from fxprune.selection import plan_keep

from bench_common import Clock, ort_session, interleaved_median_ms, run_line
from results_file import replace_section

HEADING = "## Normalized trunks: exact statistics vs fixed (bench_norm.py)"
RESULTS = Path(__file__).with_name("RESULTS.md")
RATIO, ROUND_TO, LATENCY_TARGET, TOLERANCE = 0.5, 8, 0.5, 0.10


class LayerNorm2d(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.rand(c) + 0.5), nn.Parameter(torch.rand(c) - 0.5)

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) / (var + 1e-6).sqrt() * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class NAFBlockNet(nn.Module):
    """conv -> [LayerNorm2d -> 1x1 -> depthwise 3x3 -> SimpleGate -> channel attention -> 1x1] + skip -> conv."""

    def __init__(self, c: int = 32):
        super().__init__()
        self.intro, self.norm = nn.Conv2d(3, c, 3, padding=1), LayerNorm2d(c)
        self.expand, self.dw = nn.Conv2d(c, 2 * c, 1), nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.sca, self.project, self.ending = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1), nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, x):
        trunk = self.intro(x)
        a, b = self.dw(self.expand(self.norm(trunk))).chunk(2, dim=1)
        gated = a * b
        gated = gated * self.sca(gated.mean((2, 3), keepdim=True))
        return self.ending(trunk + self.project(gated)) + x


def models(quick: bool) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    width = 16 if quick else 32
    return {
        f"NAFNet (width {width}, 3 levels)": build("nafnet", width=width, enc_blocks=(1, 1, 1), middle_blocks=1,
                                                  dec_blocks=(1, 1, 1)),
        "SwinIR (C 32, 2 layers)": build("swinir"),
        "Restormer (C 32, 2 blocks)": build("restormer", channels=32),
        "SwinIR, shifted windows (C 32, 2 heads)": build("swinir_windows", channels=32),
        "Uformer (C 32)": build("uformer", channels=32, heads=2),
        "Restormer-UNet (C 32, 3 levels)": build("restormer_unet", channels=32),
        "hand-written NAFNet block (C 32)": NAFBlockNet(),
        "EDSR 8x32 (CNN reference)": build("edsr", blocks=8, channels=32),
    }


def exactness(model: nn.Module, x: torch.Tensor, other: torch.Tensor, norm: str) -> float:
    """Largest |sliced − masked| of the ratio-0.5 L1 plan, on an input of another size than ``x``."""
    graph = fxprune.analyze(model, (x,), norm=norm)
    keep = plan_keep(graph, fxprune.Spec(ratio=RATIO, round_to=ROUND_TO))
    with torch.no_grad():
        return (slice_channels(graph, keep)(other) - masked_model(graph, keep)(other)).abs().max().item()


def export(model: nn.Module, path: Path, x: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fxprune.export_onnx(model, path, (x,), dynamic_hw=False).max_abs_error


def model_rows(quick: bool, folder: Path, rounds: int) -> list[str]:
    size = 32 if quick else 64
    x, other = torch.rand(1, 3, size, size), torch.rand(1, 3, size + 8, size - 8)
    rows = ["| model | MACs kept, fixed | MACs kept, exact | max abs sliced − masked (exact) | ORT parity (exact) "
            "| ORT latency ÷ dense, fixed | ORT latency ÷ dense, exact |", "|---|---|---|---|---|---|---|"]
    for label, model in models(quick).items():
        model.eval()
        dense_macs = fxprune.count_macs(model, (x,))
        paths, macs, parity = {"dense": folder / "dense.onnx"}, {}, None
        export(model, paths["dense"], x)
        for norm in ("fixed", "exact"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                small = fxprune.compress(model, fxprune.Spec(ratio=RATIO, round_to=ROUND_TO, norm=norm), (x,))
            macs[norm] = fxprune.count_macs(small, (x,)) / dense_macs
            paths[norm] = folder / f"{norm}.onnx"
            error = export(small, paths[norm], x)
            parity = error if norm == "exact" else parity
        gap = exactness(model, x, other, "exact")
        times = interleaved_median_ms({k: ort_session(p) for k, p in paths.items()}, {"input": x.numpy()}, rounds)
        rows.append(f"| {label} | {macs['fixed']:.3f} | {macs['exact']:.3f} | {gap:.1e} | {parity:.1e} "
                    f"| {times['fixed'] / times['dense']:.3f} | {times['exact'] / times['dense']:.3f} |")
        print(rows[-1], flush=True)
    return rows


def nafnet_latency(quick: bool, folder: Path, rounds: int) -> list[str]:
    """The floor (every group at its smallest count) and Spec(latency=0.5), fixed vs exact."""
    size = 32 if quick else 64
    x = torch.rand(1, 3, size, size)
    model = next(iter(models(quick).values())).eval()
    lines = []
    paths = {"dense": folder / "naf_dense.onnx"}
    export(model, paths["dense"], x)
    for norm in ("fixed", "exact"):
        graph = fxprune.analyze(model, (x,), norm=norm)
        floor = slice_channels(graph, plan_keep(graph, fxprune.Spec(ratio=0.999, round_to=ROUND_TO)))
        paths[f"floor {norm}"] = folder / f"naf_floor_{norm}.onnx"
        export(floor, paths[f"floor {norm}"], x)
    for norm in ("fixed", "exact"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                small = fxprune.compress(model, fxprune.Spec(latency=LATENCY_TARGET, round_to=ROUND_TO, norm=norm), (x,))
        except fxprune.SpecError as error:
            lines.append(f"- Spec(latency={LATENCY_TARGET}, norm=\"{norm}\"): refused: {str(error).splitlines()[0]}")
            continue
        paths[f"latency {norm}"] = folder / f"naf_latency_{norm}.onnx"
        export(small, paths[f"latency {norm}"], x)
    times = interleaved_median_ms({k: ort_session(p) for k, p in paths.items()}, {"input": x.numpy()}, rounds)
    for norm in ("fixed", "exact"):
        lines.append(f"- Latency floor, norm=\"{norm}\": {times[f'floor {norm}'] / times['dense']:.3f} of dense "
                     f"({times[f'floor {norm}']:.2f} vs {times['dense']:.2f} ms)")
        if f"latency {norm}" in times:
            ratio = times[f"latency {norm}"] / times["dense"]
            met = abs(ratio - LATENCY_TARGET) <= TOLERANCE * LATENCY_TARGET
            lines.append(f"- Spec(latency={LATENCY_TARGET}, norm=\"{norm}\"): measured {ratio:.3f} of dense "
                         f"({'within' if met else 'outside'} ±{TOLERANCE:.0%} of the target)")
    for line in lines:
        print(line, flush=True)
    return sorted(lines, key=lambda line: ("floor" not in line, line))


class PaddedNative(nn.Module):
    """The kept channels padded back to C with zeros, native LayerNorm over C, kept channels taken back."""

    def __init__(self, kept: int, total: int):
        super().__init__()
        self.kept, self.total = kept, total
        self.weight, self.bias = nn.Parameter(torch.rand(kept) + 0.5), nn.Parameter(torch.rand(kept))

    def forward(self, x):
        padded = F.pad(x, (0, self.total - self.kept))
        return F.layer_norm(padded, (self.total,))[..., : self.kept] * self.weight + self.bias


class Sandwich(nn.Module):
    """Linear C -> C' (the kept outputs), a LayerNorm form over C' kept of C, Linear C' -> C."""

    def __init__(self, first: nn.Linear, norm: nn.Module, last: nn.Linear):
        super().__init__()
        self.first, self.norm, self.last = first, norm, last

    def forward(self, t):
        return self.last(self.norm(self.first(t)))


def layer_norm_forms(quick: bool, folder: Path, rounds: int) -> list[str]:
    """The three forms inside Linear 64 -> 32 -> LayerNorm form -> Linear 32 -> 64 on the tokens, so
    the linears are the same in each and the difference is the LayerNorm's."""
    total, kept, tokens = 64, 32, (32 * 32 if quick else 64 * 64)
    torch.manual_seed(0)
    dense = Sandwich(nn.Linear(total, total), nn.LayerNorm(total), nn.Linear(total, total)).eval()
    with torch.no_grad():
        dense.norm.weight.uniform_(0.5, 1.5)
        dense.norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(1, tokens, total)
    graph = fxprune.analyze(dense, (x,))
    keep = {graph.group_of("first").id: np.arange(total) < kept}
    first, last = nn.Linear(total, kept), nn.Linear(kept, total)
    padded, plain = PaddedNative(kept, total), nn.LayerNorm(kept)
    with torch.no_grad():
        first.weight.copy_(dense.first.weight[:kept])
        first.bias.copy_(dense.first.bias[:kept])
        last.weight.copy_(dense.last.weight[:, :kept])
        last.bias.copy_(dense.last.bias)
        for norm in (padded, plain):
            norm.weight.copy_(dense.norm.weight[:kept])
            norm.bias.copy_(dense.norm.bias[:kept])
    forms = {"decomposed (what slicing writes)": slice_channels(graph, keep),
             "zero-pad + native LayerNormalization + slice": Sandwich(first, padded, last).eval(),
             "native over kept only (not exact)": Sandwich(first, plain, last).eval()}
    paths = {}
    for k, (label, module) in enumerate(forms.items()):
        paths[label] = folder / f"ln_{k}.onnx"
        export(module, paths[label], x)
    with torch.no_grad():
        reference = masked_model(graph, keep)(x)
        gaps = {label: (module(x) - reference).abs().max().item() for label, module in forms.items()}
    times = interleaved_median_ms({k: ort_session(p) for k, p in paths.items()}, {"input": x.numpy()}, rounds)
    base = times["decomposed (what slicing writes)"]
    lines = [f"- {label}: {ms:.3f} ms ({ms / base:.2f}× the decomposed form), max abs difference from the masked "
             f"model {gaps[label]:.1e}" for label, ms in times.items()]
    for line in lines:
        print(line, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, prints only")
    args = parser.parse_args()
    clock, rounds = Clock(), (10 if args.quick else 40)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = model_rows(args.quick, folder, rounds)
        naf = nafnet_latency(args.quick, folder, rounds)
        forms = layer_norm_forms(args.quick, folder, rounds)
    body = "\n".join([
        run_line(datetime.date.today().isoformat(), 1, clock),
        "",
        f"L1 at ratio {RATIO}, round_to={ROUND_TO}, {'32' if args.quick else '64'}-px inputs, random weights; "
        "ORT 2 threads, median of interleaved rounds. 'fixed' keeps channels read by LayerNorm/mean/softmax "
        "(fxprune before exact statistics), 'exact' prunes them with the original count kept.",
        "",
        *rows,
        "",
        "NAFNet, latency floor and a latency budget:",
        "",
        *naf,
        "",
        "Exported form of a LayerNorm over 32 kept of 64 channels, between Linear 64→32 and 32→64 on "
        f"{'32×32' if args.quick else '64×64'} tokens (ORT, 2 threads):",
        "",
        *forms,
    ])
    print(body)
    if not args.quick:
        replace_section(RESULTS, HEADING, body)


if __name__ == "__main__":
    main()
