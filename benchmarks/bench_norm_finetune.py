"""Normalized trunks after equal fine-tuning: exact statistics vs renormalized ones, on a trained SwinIR.

``Spec(norm="exact")`` keeps every LayerNorm's statistics as in the masked model (the pruned
channels count as zeros, decomposed LayerNorm in the export); ``norm="renormalize"`` computes plain
statistics over the kept channels (native LayerNorm, what Torch-Pruning does) and relies on
fine-tuning to repair the change; ``norm="fixed"`` keeps the trunk (more MACs; shown for
reference). Model: the shipped trained SwinIR ×2 (``fxprune.weights.pretrained("swinir")``, 2 Swin
layers × 32 channels, trained by ``train_reference.py``). Each mode prunes it by L1 at ratio 0.5
(round_to=8) and is fine-tuned with the same steps, learning rate (cosine), batches and seeds on
the bundled training images; Y-PSNR (shave 2) on the 3 held-out demo test images, whole images,
pooled over pixels (per-image figures beside), before fine-tuning and after it (mean over seeds,
min–max). Latency: each mode's pruned model exported to ONNX (fp32, its ORT parity reported) and
timed against the dense one at a 64×64 input (ORT 2 threads, interleaved rounds, median), after the
fine-tuning pool has finished. The last line says which mode the data favour.

    python benchmarks/bench_norm_finetune.py             # ~15 min on 2 idle cores (400 steps, 2 seeds), writes RESULTS.md
    python benchmarks/bench_norm_finetune.py --quick     # smoke test: 10 steps, 1 seed, prints only
"""
from __future__ import annotations

import datetime
import statistics
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

import fxprune
from fxprune.data import pairs_from
from fxprune.metrics import psnr, run_model
from fxprune.routing.evaluate import pooled_psnr
from fxprune.train import TrainConfig
from fxprune.weights import pretrained

from bench_common import Clock, interleaved_median_ms, ort_session, run_jobs, run_line, training_config, training_parser
from results_file import replace_section

HEADING = "## Normalized trunks after fine-tuning: exact vs renormalize (bench_norm_finetune.py)"
MODES = ("exact", "renormalize", "fixed")
RATIO, ROUND_TO, SCALE, LR = 0.5, 8, 2, 2e-4
QUICK = {"steps": 10, "seeds": 1}
FULL = {"steps": 400, "seeds": 2}


def _spec(norm: str) -> fxprune.Spec:
    return fxprune.Spec(ratio=RATIO, round_to=ROUND_TO, norm=norm)


def _example() -> tuple[torch.Tensor]:
    return (torch.rand(1, 3, 32, 32),)


def scores(model: torch.nn.Module) -> tuple[float, list[float]]:
    """(pooled Y-PSNR, per-image Y-PSNRs) on the held-out demo test images."""
    pairs = pairs_from(None, "test", task="sr", scale=SCALE)
    per = [psnr(run_model(model, lr), hr, shave=SCALE) for lr, hr in pairs]
    pixels = [(hr.shape[-2] - 2 * SCALE) * (hr.shape[-1] - 2 * SCALE) for _, hr in pairs]
    return pooled_psnr(per, pixels), per


def compressed(norm: str, steps: int, seed: int) -> torch.nn.Module:
    train = TrainConfig(steps=steps, seed=seed, lr=LR, lr_schedule="cosine", progress=False, device="cpu") if steps else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fxprune.compress(pretrained("swinir"), _spec(norm), _example(), train=train)


def work(job: dict) -> dict:
    """One pruned and fine-tuned model's scores (runs in a worker process, 1 torch thread)."""
    torch.set_num_threads(1)
    pooled, per = scores(compressed(job["norm"], job["steps"], job["seed"]))
    return {**job, "pooled": pooled, "per": per}


def latency_rows(folder: Path, rounds: int) -> tuple[list[str], dict[str, float]]:
    """MACs, ORT parity and ORT latency ÷ dense of each mode's pruned model (weights do not matter)."""
    x = torch.rand(1, 3, 64, 64)
    dense = pretrained("swinir")
    models = {"dense": dense, **{norm: compressed(norm, 0, 0) for norm in MODES}}
    paths, parity, macs = {}, {}, {}
    for name, model in models.items():
        paths[name] = folder / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parity[name] = fxprune.export_onnx(model, paths[name], (x,), dynamic_hw=False).max_abs_error
        macs[name] = fxprune.count_macs(model, (x,))
    times = interleaved_median_ms({k: ort_session(p) for k, p in paths.items()}, {"input": x.numpy()}, rounds)
    rows = ["| mode | MACs kept | ORT latency ÷ dense | ORT ms | ORT parity |", "|---|---|---|---|---|"]
    for name in models:
        rows.append(f"| {name} | {macs[name] / macs['dense']:.3f} | {times[name] / times['dense']:.3f} "
                    f"| {times[name]:.2f} | {parity[name]:.1e} |")
    return rows, {name: times[name] / times["dense"] for name in models}


def psnr_rows(results: list[dict], dense: tuple[float, list[float]], bicubic: tuple[float, list[float]]
              ) -> tuple[list[str], dict]:
    rows = ["| mode | fine-tuning steps | Y-PSNR pooled (mean over seeds) | min–max over seeds | per image (seed mean) |",
            "|---|---|---|---|---|",
            *(f"| {name} | – | {pooled:.3f} | – | {', '.join(f'{p:.2f}' for p in per)} |"
              for name, (pooled, per) in (("bicubic", bicubic), ("dense", dense)))]
    means = {}
    for norm in MODES:
        for steps in sorted({r["steps"] for r in results}):
            runs = [r for r in results if r["norm"] == norm and r["steps"] == steps]
            if not runs:
                continue
            pooled = [r["pooled"] for r in runs]
            per = [statistics.mean(values) for values in zip(*(r["per"] for r in runs))]
            means[(norm, steps)] = (statistics.mean(pooled), min(pooled), max(pooled))
            rows.append(f"| {norm} | {steps} | {statistics.mean(pooled):.3f} | {min(pooled):.3f}–{max(pooled):.3f} "
                        f"| {', '.join(f'{p:.2f}' for p in per)} |")
    return rows, means


def verdict(means: dict, steps: int, latency: dict[str, float]) -> str:
    exact, renorm = means[("exact", steps)], means[("renormalize", steps)]
    gap = renorm[0] - exact[0]
    overlap = renorm[1] <= exact[2] and exact[1] <= renorm[2]
    where = "within the seed spread" if overlap else ("renormalize ahead" if gap > 0 else "exact ahead")
    return (f"After {steps} steps: renormalize − exact = {gap:+.3f} dB pooled ({where}; before fine-tuning "
            f"{means[('renormalize', 0)][0] - means[('exact', 0)][0]:+.3f} dB); ORT latency ÷ dense at equal MACs: "
            f"exact {latency['exact']:.3f}, renormalize {latency['renormalize']:.3f}.")


def main() -> None:
    args = training_parser(__doc__.splitlines()[0], "mode").parse_args()
    cfg = training_config(args, QUICK, FULL, "bench_norm_finetune")
    clock = Clock()
    torch.set_num_threads(1)
    dense = scores(pretrained("swinir"))
    bicubic = scores(nn.Upsample(scale_factor=SCALE, mode="bicubic", align_corners=False))  # as bicubic_baseline, pooled
    jobs = [{"norm": norm, "steps": 0, "seed": 0} for norm in MODES]
    jobs += [{"norm": norm, "steps": cfg["steps"], "seed": seed} for seed in range(cfg["seeds"]) for norm in MODES]
    results: list[dict] = []

    def add(result: dict) -> None:
        results.append(result)
        print(f"{result['norm']} {result['steps']} steps seed {result['seed']}: {result['pooled']:.3f} dB "
              f"({clock.text()})", flush=True)

    run_jobs(work, jobs, args, cfg["steps"], add)
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        latency, ratios = latency_rows(Path(tmp), 10 if args.quick else 40)
    table, means = psnr_rows(results, dense, bicubic)
    body = "\n".join([
        run_line(datetime.date.today().isoformat(), args.jobs, clock),
        "",
        f"Trained SwinIR ×2 (2 Swin layers × 32 channels), L1 at ratio {RATIO}, round_to={ROUND_TO}; fine-tuning "
        f"Adam lr {LR} cosine, batch 16, 48-px LR patches, seeds 0–{cfg['seeds'] - 1}; Y-PSNR on the 3 held-out "
        "demo test images (whole images, shave 2, pooled over pixels).",
        "",
        *table,
        "",
        "Cost at a 64×64 input (ORT 2 threads, interleaved rounds, median; after the fine-tuning runs):",
        "",
        *latency,
        "",
        verdict(means, cfg["steps"], ratios),
    ])
    print(body)
    if not args.quick:
        replace_section(args.out, HEADING, body)


if __name__ == "__main__":
    main()
