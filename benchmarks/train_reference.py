"""Train the dense reference ×2 models that ship in ``fxprune/weights`` (fixed seed, CPU).

Three: EDSR at the demo's size (4 blocks × 32 channels, standard upsampler) and the ASSL
ablation's (8 × 64, ASSL's light upsampler), and the zoo's default SwinIR (2 Swin layers × 32
channels, LayerNorm trunk: the model bench_norm_finetune.py prunes). Training: L1 loss, Adam, lr ``--lr`` with a cosine decay to 1% over
``--steps``, random 32×32 LR patches (batch 16) from the bundled training images. Every
``--eval-every`` steps the model is evaluated on the held-out demo test images (Y-PSNR, shave 2)
against bicubic; the best weights so far are saved at once (float32, or per-channel int8 when
float32 would exceed 1 MB; the figure after the int8 round trip is logged too), so stopping the
script at any time leaves the best model on disk.

    python benchmarks/train_reference.py --model 4x32 --steps 20000 --log /tmp/ref_4x32.log
    python benchmarks/train_reference.py --model 8x64 --steps 20000 --minutes 80

``--report`` trains nothing: it evaluates every shipped file on the held-out images and writes the
"Reference models" section of ``benchmarks/RESULTS.md`` (the training figures are in the logs).

``--minutes`` stops early (keeping the best weights so far); the cosine schedule still follows
``--steps``, so a stopped run is the prefix of the full one. ``--init FILE`` starts from saved
weights (a second stage with its own cosine schedule; the log records both stages).

The shipped files came from these runs on 2 shared cores (their logs: benchmarks/logs/):

    python benchmarks/train_reference.py --model 4x32 --steps 20000 --eval-every 1000 --minutes 75
    python benchmarks/train_reference.py --model 8x64 --steps 2500 --batch 8 --eval-every 250 --minutes 70
    python benchmarks/train_reference.py --model swinir --steps 4000 --eval-every 250 --minutes 30

(Those runs drew their batches with the DataLoader shuffle that ``fxprune.train.loader_for`` used
before crash-safe runs replaced it with :class:`fxprune.train.StepBatches`; a rerun today sees the
same patches in another order, so expect figures close to, not equal to, the logs.)
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from fxprune.data import pairs_from
from fxprune.metrics import bicubic_baseline, evaluate
from fxprune.models import build
from fxprune.train import TrainConfig, loader_for
from fxprune.counting import count_params
from fxprune.weights import HERE as WEIGHTS, SHIPPED, load_state, pack_state
from results_file import replace_section

SIZES = {"4x32": "edsr_x2_4x32.pt", "8x64": "edsr_x2_8x64_light.pt", "swinir": "swinir_x2_2x32.pt"}
LIMIT = 1_000_000


def save_best(model: torch.nn.Module, path: Path) -> int:
    """Write the weights atomically; returns the file size."""
    state = model.state_dict()
    int8 = sum(v.numel() for v in state.values()) * 4 > LIMIT - 50_000
    tmp = path.with_suffix(".tmp")
    torch.save(pack_state(state, int8), tmp)
    os.replace(tmp, path)
    return path.stat().st_size


def report(results: Path) -> None:
    """Evaluate every shipped file as stored and write the RESULTS.md section."""
    torch.set_num_threads(1)
    pairs = pairs_from(None, "test", task="sr", scale=2)
    floor = bicubic_baseline(pairs, 2)["psnr"]
    rows = []
    for file, (name, kwargs) in SHIPPED.items():
        model = build(name, **kwargs)
        model.load_state_dict(load_state(WEIGHTS / file))
        psnr = evaluate(model.eval(), pairs, shave=2)["psnr"]
        packed = torch.load(WEIGHTS / file, weights_only=True)
        int8 = any(isinstance(v, dict) for v in packed["tensors"].values())
        config = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        rows.append(f"| `{file}` | {name}({config}) | {count_params(model):,} | {'int8 per output channel' if int8 else 'float32'} "
                    f"| {(WEIGHTS / file).stat().st_size / 1e6:.2f} MB | {psnr:.2f} dB | {psnr - floor:+.2f} dB |")
    body = "\n".join([
        "Dense ×2 models shipped in `fxprune/weights` (the demo's and the ASSL ablation's EDSR, the SwinIR of the",
        "normalized-trunk fine-tuning benchmark), trained by this",
        "script on the 9 bundled training images; training runs and their evaluations are logged in",
        f"`benchmarks/logs/`. Evaluated as stored on the 3 held-out demo images (Y-PSNR, shave 2); bicubic {floor:.2f} dB.",
        "Written by `python benchmarks/train_reference.py --report`.",
        "",
        "| file | model | params | stored as | size | Y-PSNR | vs bicubic |",
        "|---|---|---|---|---|---|---|",
        *rows,
    ])
    replace_section(results, "## Reference models (train_reference.py)", body)
    print(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="evaluate the shipped files and write RESULTS.md")
    parser.add_argument("--model", choices=sorted(SIZES))
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--patch", type=int, default=32)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--minutes", type=float, help="stop after this many minutes (best weights kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", type=Path, help="start from these weights (a file this script wrote)")
    parser.add_argument("--out", type=Path, help="weights file (default: the package's fxprune/weights/...)")
    parser.add_argument("--log", type=Path, help="progress log (default: a temp file, printed)")
    args = parser.parse_args()
    if args.report:
        report(Path(__file__).resolve().parent / "RESULTS.md")
        return
    if args.model is None:
        parser.error("--model is required (or --report)")
    torch.set_num_threads(1)
    file = SIZES[args.model]
    out = args.out or WEIGHTS / file
    log_path = args.log or Path(tempfile.gettempdir()) / f"train_reference_{args.model}.log"
    name, kwargs = SHIPPED[file]
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    model = build(name, **kwargs)
    if args.init is not None:
        model.load_state_dict(load_state(args.init))
    config = TrainConfig(patch_size=args.patch, batch_size=args.batch, lr=args.lr, seed=args.seed, device="cpu")
    pairs = pairs_from(None, "test", task="sr", scale=2)
    floor = bicubic_baseline(pairs, 2)["psnr"]
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps)))
    start, best, running = time.perf_counter(), -math.inf, []
    with open(log_path, "a") as log:
        def say(text: str) -> None:
            line = f"[{(time.perf_counter() - start) / 60:6.1f} min] {text}"
            print(line, flush=True)
            log.write(line + "\n")
            log.flush()

        say(f"{name} {args.model} {kwargs}, steps {args.steps}, lr {args.lr} cosine, batch {args.batch}, patch "
            f"{args.patch}, seed {args.seed}, init {args.init or 'random'}; bicubic {floor:.3f} dB on the demo test images -> {out}")
        model.train()
        for step, (lr_batch, hr_batch) in enumerate(loader_for(config, 2, args.steps), start=1):
            loss = (model(lr_batch) - hr_batch).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            running.append(loss.item())
            over = args.minutes is not None and time.perf_counter() - start > args.minutes * 60
            if step % args.eval_every == 0 or step == args.steps or over:
                psnr = evaluate(model, pairs, shave=2)["psnr"]
                model.train()
                note = ""
                if psnr > best:
                    best = psnr
                    size = save_best(model, out)
                    check = build(name, **kwargs)
                    check.load_state_dict(load_state(out))
                    stored = evaluate(check, pairs, shave=2)["psnr"]
                    note = f" -> saved ({size / 1e6:.2f} MB, {stored:.3f} dB as stored, {stored - floor:+.3f} dB vs bicubic)"
                say(f"step {step}: loss {np.mean(running):.4f}, Y-PSNR {psnr:.3f} dB ({psnr - floor:+.3f} vs bicubic), "
                    f"lr {schedule.get_last_lr()[0]:.2e}{note}")
                running.clear()
            if over:
                say("time budget reached; stopping")
                break
        say(f"best {best:.3f} dB ({best - floor:+.3f} dB vs bicubic)")


if __name__ == "__main__":
    main()
