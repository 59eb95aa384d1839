"""Community checkpoint files through fxprune: per spandrel architecture, a tiny random-weight
model saved as a state-dict file, loaded with ``fxprune.load_checkpoint``, compressed with L1 at
ratio 0.5, exported to ONNX in fp32 and fp16; prints the MAC fraction left and the ONNX Runtime
errors (max abs vs the fp32 PyTorch model; the output peak for scale).

Needs spandrel (``pip install 'fxprune[spandrel]'``); where torchvision is missing, the tests'
stand-in (tests/stubs) is put on the path, as the tests do. ``--quick``: 2 architectures.

    python benchmarks/bench_checkpoint_files.py [--quick] [--size 32]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from spandrel_nets import ARCHITECTURES, build, save  # noqa: E402 - after the path is set

import fxprune  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Compact and SPAN only")
    parser.add_argument("--size", type=int, default=32, help="example input side (default 32)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    archs = ("Compact", "SPAN") if args.quick else ARCHITECTURES
    print("| architecture | file | MACs left (L1 0.5) | ORT max abs error fp32 | fp16 | output peak | seconds |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for k, arch in enumerate(archs):
            start = time.perf_counter()
            suffix = (".pth", ".safetensors")[k % 2]
            file = save(build(arch), Path(folder) / f"{arch}{suffix}")
            model = fxprune.load_checkpoint(file)
            x = fxprune.checkpoint_info(model).example_input((args.size, args.size))
            try:
                small = fxprune.compress(model, fxprune.Spec(method="l1", ratio=0.5, round_to=4), (x,))
            except fxprune.FxpruneError as error:  # reported in the table, the other architectures still run
                first = str(error).strip().splitlines()[0]
                print(f"| {arch} | {suffix} | failed: {first[:300]} | | | | {time.perf_counter() - start:.0f} |")
                continue
            fraction = fxprune.count_macs(small, (x,)) / fxprune.count_macs(model, (x,))
            fp32 = fxprune.export_onnx(small, Path(folder) / f"{arch}.onnx", (x,))
            fp16 = fxprune.export_onnx(small, Path(folder) / f"{arch}_fp16.onnx", (x,), dtype="float16")
            with torch.no_grad():
                peak = float(small(x).abs().max())
            print(f"| {arch} | {suffix} | {fraction:.3f} | {fp32.max_abs_error:.2e} | {fp16.max_abs_error:.2e} | "
                  f"{peak:.3g} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
