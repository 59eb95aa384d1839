"""ONNX Runtime CPU latency of dense vs L1-pruned models, next to their MAC ratio.

For each model (EDSR-baseline, RCAN, NAFNet) and each pruning ratio (0.25 / 0.5 / 0.75), with
channel rounding to 16 and without, this compresses with ``Spec(method="l1")``, exports to ONNX
(with the ONNX Runtime parity check), and times ONNX Runtime (2 threads) and PyTorch eager on the
same input. Runs of all variants of one model are interleaved, so slow phases of the machine hit
every variant alike; the figure is the median.

    python benchmarks/bench_latency.py                 # full run, writes benchmarks/RESULTS.md
    python benchmarks/bench_latency.py --quick         # small models and input, a smoke test
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tqdm import tqdm

import fxprune
from fxprune.counting import count_macs
from fxprune.models import build
from fxprune.passes.export_onnx import export_onnx

from results_file import replace_section

RATIOS = (0.25, 0.5, 0.75)


@dataclass
class Variant:
    label: str
    ratio: float
    round_to: int
    model: torch.nn.Module
    macs: int = 0
    params: int = 0
    session: ort.InferenceSession | None = None
    ort_ms: list[float] | None = None
    torch_ms: list[float] | None = None


def model_configs(quick: bool) -> dict[str, dict]:
    if quick:
        return {"edsr": dict(blocks=2, channels=32), "rcan": dict(groups=1, blocks=2, channels=32), "nafnet": dict(width=16)}
    return {
        "edsr": dict(blocks=16, channels=64, scale=2),  # EDSR-baseline
        "rcan": dict(groups=5, blocks=10, channels=64, reduction=16, scale=2),  # half the paper's depth: 2 cores
        "nafnet": dict(width=32, enc_blocks=(1, 1, 1), middle_blocks=1, dec_blocks=(1, 1, 1)),
    }


def make_variants(name: str, options: dict, x: torch.Tensor) -> list[Variant]:
    torch.manual_seed(0)
    dense = build(name, **options).eval()
    variants = [Variant("dense", 0.0, 1, dense)]
    for ratio in RATIOS:
        for round_to in (16, 1):
            spec = fxprune.Spec(method="l1", ratio=ratio, round_to=round_to)
            small = fxprune.compress(dense, spec, (x,))
            variants.append(Variant(f"l1 {ratio:.2f} round {round_to}", ratio, round_to, small))
    return variants


def session_for(variant: Variant, x: torch.Tensor, folder: Path) -> ort.InferenceSession:
    path = folder / f"{variant.label.replace(' ', '_')}.onnx"
    export_onnx(variant.model, path, (x,))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def time_once(fn) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def measure(variants: list[Variant], x: torch.Tensor, repeats: int) -> None:
    """Interleaved timing: each round runs every variant once, in ONNX Runtime and in PyTorch."""
    feed = {"input": x.numpy()}
    for v in variants:
        v.ort_ms, v.torch_ms = [], []
        v.session.run(None, feed)  # warm-up
        with torch.inference_mode():
            v.model(x)
    for _ in range(repeats):
        for v in variants:
            v.ort_ms.append(time_once(lambda: v.session.run(None, feed)))
            with torch.inference_mode():
                v.torch_ms.append(time_once(lambda: v.model(x)))


def table(name: str, variants: list[Variant]) -> list[str]:
    dense = variants[0]
    ort_dense, torch_dense = statistics.median(dense.ort_ms), statistics.median(dense.torch_ms)
    rows = [
        f"**{name}** — dense: {dense.params / 1e3:.0f}K params, {dense.macs / 1e9:.2f} GMACs, "
        f"ORT {ort_dense:.1f} ms, PyTorch {torch_dense:.1f} ms",
        "",
        "| variant | params | MAC ratio | ORT ms | ORT ratio | ORT ratio / MAC ratio | PyTorch ms | PyTorch ratio |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for v in variants:
        mac_ratio = v.macs / dense.macs
        ort_ms, torch_ms = statistics.median(v.ort_ms), statistics.median(v.torch_ms)
        rows.append(
            f"| {v.label} | {v.params / 1e3:.0f}K | {mac_ratio:.3f} | {ort_ms:.1f} | {ort_ms / ort_dense:.3f} | "
            f"{(ort_ms / ort_dense) / mac_ratio:.2f} | {torch_ms:.1f} | {torch_ms / torch_dense:.3f} |"
        )
    return rows + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small models and input (smoke test)")
    parser.add_argument("--size", type=int, default=None, help="input height and width (default 128, quick 32)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per variant (default 15, quick 3)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = parser.parse_args()
    size = args.size or (32 if args.quick else 128)
    repeats = args.repeats or (3 if args.quick else 15)
    torch.set_num_threads(2)
    x = torch.randn(1, 3, size, size)
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} with {os.cpu_count()} cores, "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}; input 1×3×{size}×{size}, 2 threads, "
        f"median of {repeats} interleaved runs. Every exported model passed the ONNX Runtime parity check.",
        "",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for name, options in tqdm(model_configs(args.quick).items(), desc="models"):
            variants = make_variants(name, options, x)
            for v in tqdm(variants, desc=f"{name}: export", leave=False):
                v.macs, v.params = count_macs(v.model, (x,)), sum(p.numel() for p in v.model.parameters())
                v.session = session_for(v, x, Path(folder))
            measure(variants, x, repeats)
            lines += table(name, variants)
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        replace_section(args.out, "## Latency: dense vs L1-pruned (bench_latency.py)", text)


if __name__ == "__main__":
    main()
